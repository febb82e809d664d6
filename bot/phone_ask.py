"""When the bot asks for a phone number, and what counts as a "no" to the question: rules both
engines share (a model-written reply that asks when the rules say not to is not used)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.config import PromptConfig
from bot.scoring import POSITIVE_INTENT
from bot.text import normalize

# Channels that do not tell us the customer's phone number (WhatsApp does).
PHONELESS_CHANNELS = ("web", "messenger", "instagram")

_ASKS_PHONE = re.compile(
    r"phone number|your number|number to reach|numero de telefono|tu numero|su numero|"
    r"numero de telephone|votre numero|telefonnummer|ihre nummer|numero de telefone|seu numero|"
    r"رقم هاتف|رقم الهاتف|رقم جوال"
)
_MENTIONS_PHONE = re.compile(
    r"phone|number|telefono|numero|telephone|telefon|telefone|whatsapp|هاتف|رقم"
)


def asks_for_phone(text: str) -> bool:
    return bool(_ASKS_PHONE.search(normalize(text or "")))


def declined_phone(texts: Iterable[str], *, config: PromptConfig, asked_last: bool) -> bool:
    """Whether the customer refused to give a phone ("no thanks" counts right after an ask)."""
    for text in texts:
        if not config.scoring.phone_decline.first(text):
            continue
        if asked_last or _MENTIONS_PHONE.search(normalize(text)):
            return True
    return False


def should_ask_phone(
    *,
    channel: str,
    has_phone: bool,
    declined: bool,
    asks: int,
    max_asks: int,
    asked_last: bool,
    interested: bool,
    quiet: bool,
) -> bool:
    """Ask for a phone only where the channel gives none, once interest shows, never twice in a
    row, at most `max_asks` times, and never after a "no"."""
    return (
        channel in PHONELESS_CHANNELS
        and not has_phone
        and not declined
        and asks < max_asks
        and not asked_last
        and interested
        and not quiet
    )


def shows_interest(score: int, signals: Iterable[str], min_score: int) -> bool:
    """Interest enough to ask for a phone: a high enough score or a buying signal."""
    return score >= min_score or any(s in POSITIVE_INTENT for s in signals)
