"""The safety check every model-written reply passes before a customer sees it; a reply that fails
is replaced by the offline one."""

from __future__ import annotations

import re

from bot.config import PromptConfig
from bot.knowledge import knowledge_index
from bot.text import normalize
from store.contacts import find_emails, find_phones

_SCORE_WORDS = re.compile(
    r"\b(?:lead\s+score|intent\s+score|score|scoring|puntuacion|pontuacao|punktzahl|"
    r"scores)\b"
)


def unsafe_reply_reason(
    text: str,
    *,
    config: PromptConfig,
    lead_phone: str | None,
    lead_email: str | None,
    region: str,
) -> str | None:
    """Why a model-written reply must not reach the customer, or None when it is safe.

    It must not contain phone numbers or emails other than the customer's and the business's (no
    other lead's data), talk about scores, or quote the system prompt.
    """
    index = knowledge_index(config)
    allowed_phones = set(index.allowed_phones) | ({lead_phone} if lead_phone else set())
    for phone in find_phones(text, region):
        if phone not in allowed_phones:
            return "it contains a phone number that is neither the customer's nor ours"
    allowed_emails = set(index.allowed_emails) | ({lead_email.lower()} if lead_email else set())
    for email in find_emails(text):
        if email.lower() not in allowed_emails:
            return "it contains an email address that is neither the customer's nor ours"
    normalized = normalize(text)
    if _SCORE_WORDS.search(normalized):
        return "it talks about scores"
    for line in config.bot_system.split("\n"):
        stripped = normalize(re.sub(r"\{[a-z_]+\}", "", line)).strip(" -*#")
        if len(stripped) >= 30 and stripped in normalized:
            return "it quotes the system prompt"
    return None
