"""The model factory: an OpenAI-compatible chat model when a key is configured, else None
(offline)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel

from leaddesk.settings import Settings


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """Build the chat model from OPENAI_API_KEY / OPENAI_BASE_URL / LEADDESK_MODEL, or None when
    offline."""
    if not settings.llm_configured:
        return None
    # Here rather than at the top: langchain-openai (and openai) take seconds to import, and a
    # process on the offline engine never needs them (`leaddesk worker` preloads them instead).
    from langchain_openai import ChatOpenAI  # noqa: PLC0415 - slow to import

    return ChatOpenAI(
        model=settings.model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout,
        max_retries=1,
        temperature=0.2,
    )


def engine_name(settings: Settings) -> str:
    if settings.llm_configured:
        where = settings.openai_base_url or "api.openai.com"
        return f"LLM ({settings.model} at {where})"
    return "offline engine (no OPENAI_API_KEY set)"


Transcribe = Callable[[str, dict[str, Any]], str | None]


def make_transcriber(
    settings: Settings, fetch_media: Callable[[str, dict[str, Any]], Any]
) -> Transcribe | None:
    """With a model configured and LEADDESK_TRANSCRIBE=1: a function that reads a stored voice
    note's words (fetch its audio with `fetch_media(channel, payload)`, a `webhooks.graph.MediaFile`
    or None, then the OpenAI-compatible /audio/transcriptions endpoint); else None."""
    if not (settings.llm_configured and settings.transcribe):
        return None
    # Here rather than at the top: see make_chat_model.
    from openai import OpenAI  # noqa: PLC0415 - slow to import

    assert settings.openai_api_key is not None
    client = OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout,
        max_retries=1,
    )

    def transcribe(channel: str, payload: dict[str, Any]) -> str | None:
        audio = fetch_media(channel, payload)
        if audio is None:
            return None
        result = client.audio.transcriptions.create(
            model=settings.transcribe_model,
            file=(audio.filename, audio.data, audio.mime_type),
        )
        text = getattr(result, "text", None)
        return text if isinstance(text, str) else None

    return transcribe
