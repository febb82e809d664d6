"""What the bot makes of non-text messages: voice notes, images, documents, stickers, reactions,
locations.

The channel adapters store a media message with its kind and a readable text such as
"[image] my roof" (`webhooks.events.bracket`): the label in brackets, then the caption. The bot
reads the caption (or a voice note's transcript) as what the customer wrote; a sticker or a
reaction on its own needs no answer; a voice note it could not hear, a file or a location gets an
honest acknowledgement in the customer's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from bot.config import PromptConfig

# Kinds that need no reply when they come alone.
SILENT_KINDS = frozenset({"sticker", "reaction"})
AUDIO_KINDS = frozenset({"audio", "voice"})
FILE_KINDS = frozenset(
    {"image", "video", "document", "attachments", "share", "story", "story_mention", "link"}
)
LOCATION_KINDS = frozenset({"location"})
MEDIA_KINDS = SILENT_KINDS | AUDIO_KINDS | FILE_KINDS | LOCATION_KINDS


class Received(Protocol):
    """One message of the burst as the bot reads it (`bot.state.PendingMessage`)."""

    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def transcribed(self) -> bool: ...


Ack = Literal["voice", "file", "location"]
ACK_TEMPLATES: dict[Ack, str] = {
    "voice": "media_voice",
    "file": "media_file",
    "location": "media_location",
}
# Used when the prompts directory has no wording of its own (templates/<language>.yaml).
DEFAULT_WORDING: dict[Ack, str] = {
    "voice": "I can't listen to voice notes here; could you type your question?",
    "file": "Thanks, I've received it and saved it for our team to look at.",
    "location": "Thanks for sharing your location; I've passed it on to our team.",
}

_LABELLED = re.compile(r"^\[[^\]]*\]\s*(.*)$", re.DOTALL)


def transcript_of(payload: Mapping[str, Any] | None) -> str | None:
    """The transcript stored beside a voice note, if one was made."""
    if not isinstance(payload, Mapping):
        return None
    transcript = payload.get("transcript")
    if isinstance(transcript, Mapping):
        text = transcript.get("text")
        return text.strip() if isinstance(text, str) and text.strip() else None
    return None


def customer_text(kind: str, text: str, payload: Mapping[str, Any] | None = None) -> str:
    """What the customer wrote in a message: the text, a media message's caption, a voice note's
    transcript; "" when a media message carries no words."""
    if kind not in MEDIA_KINDS:
        return text or ""
    if kind in AUDIO_KINDS:
        transcript = transcript_of(payload)
        if transcript:
            return transcript
    if kind in SILENT_KINDS or kind in LOCATION_KINDS:
        return ""
    match = _LABELLED.match((text or "").strip())
    if match is None:
        return (text or "").strip()
    return match.group(1).strip()


def acknowledgements(messages: Iterable[Received]) -> list[Ack]:
    """What the burst's media call for, once each, in a stable order: a voice note nobody could
    hear, files (stored for the agent), a location."""
    wanted: set[Ack] = set()
    for message in messages:
        kind = message.kind or "text"
        if kind in AUDIO_KINDS and not message.transcribed:
            wanted.add("voice")
        elif kind in FILE_KINDS and not (message.text or "").strip():
            wanted.add("file")
        elif kind in LOCATION_KINDS:
            wanted.add("location")
    return [ack for ack in ("voice", "file", "location") if ack in wanted]


def is_silent_burst(messages: Iterable[Received]) -> bool:
    """Only stickers and reactions: nothing to answer."""
    kinds = [m.kind or "text" for m in messages]
    return bool(kinds) and all(kind in SILENT_KINDS for kind in kinds)


def acknowledgement_text(acks: Iterable[Ack], config: PromptConfig, language: str) -> str:
    """The acknowledgements in the customer's language, one sentence each."""
    return " ".join(
        config.template(ACK_TEMPLATES[ack], language) or DEFAULT_WORDING[ack] for ack in acks
    )
