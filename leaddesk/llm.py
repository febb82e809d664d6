"""The model factory: an OpenAI-compatible chat model when a key is configured, else None (offline)."""

from __future__ import annotations

from typing import Optional

from langchain_core.language_models import BaseChatModel

from leaddesk.settings import Settings


def make_chat_model(settings: Settings) -> Optional[BaseChatModel]:
    """Build the chat model from OPENAI_API_KEY / OPENAI_BASE_URL / LEADDESK_MODEL, or None when offline."""
    if not settings.llm_configured:
        return None
    from langchain_openai import ChatOpenAI

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
