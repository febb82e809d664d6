"""Who the customer is, from what they say: their name ("my name is Ana Ruiz", "me llamo Ana") and
their company ("this is Ana from Acme Solar", "I work at Acme"). Whether either may replace what
the lead already has is the store's rule (`store.leads.set_stated_details`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.knowledge import STOPWORDS

# A company name: capitalised words (digits and "&" allowed), joined by a few small words.
_COMPANY = (
    r"((?-i:[A-ZÀ-ÖØ-Þ0-9][\w&'’.-]*(?:\s+(?:(?:of|and|et|y|e|de|do|da|del|des|du|und|&)\s+)?"
    r"[A-ZÀ-ÖØ-Þ0-9][\w&'’.-]*){0,4}))"
)
_PERSON = r"[^\W\d_][\w'’-]*(?:\s+[^\W\d_][\w'’-]*){0,2}"
_COMPANY_PATTERNS = [
    # "this is Ana from Acme Solar", "I'm Ana Ruiz at Acme", "soy Ana de Acme"
    re.compile(
        rf"\b(?:this is|i'm|i’m|i am|it's|it’s|my name is|soy|je suis|ich bin|sou)\s+{_PERSON}"
        rf"\s+(?:from|at|with|de|chez|von|bei|da)\s+{_COMPANY}",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?:i work (?:at|for)|i'm with|i’m with|calling from|writing from|on behalf of|"
        rf"trabajo (?:en|para)|de la empresa|je travaille (?:chez|pour)|de la société|"
        rf"ich arbeite (?:bei|für)|von der firma|trabalho (?:na|no|em|para)|da empresa)"
        rf"\s+{_COMPANY}",
        re.IGNORECASE,
    ),
]
# Capitalised words that are not companies when they follow "from"/"at".
_NOT_COMPANIES = {
    "home",
    "work",
    "the",
    "my",
    "a",
    "an",
    "i",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "noon",
    "night",
}


def extract_company(texts: Iterable[str]) -> str | None:
    """The company the customer says they are from or work at, if they say so."""
    for text in texts:
        for pattern in _COMPANY_PATTERNS:
            for match in pattern.finditer(text or ""):
                company = match.group(1).strip(" .,;:!?'’")
                if not company or company.lower() in _NOT_COMPANIES:
                    continue
                # "at 5" or "at 10am" is a time, not a company.
                if company[:1].isdigit() and not re.search(r"[A-Za-z]{3,}", company):
                    continue
                return company[:200]
    return None


_NAME_PATTERNS = [
    re.compile(
        r"\b(?:my name is|my name's|this is|call me|i'm|i’m|i am|me llamo|mi nombre es|soy|"
        r"je m'appelle|je m’appelle|"
        r"mon nom est|ich hei(?:ss|ß)e|mein name ist|meu nome [eé]|me chamo|chamo-me)\s+"
        r"([^\W\d_][^\W\d_'’-]*(?:[ -][^\W\d_][^\W\d_'’-]*){0,2})",
        re.IGNORECASE,
    ),
    re.compile(r"(?:اسمي)\s+(\S+(?:\s+\S+)?)"),
]
_NOT_NAMES = {
    "interested",
    "looking",
    "ready",
    "not",
    "from",
    "the",
    "a",
    "here",
    "back",
    "asking",
    "just",
    "sure",
    "wondering",
    "calling",
    "writing",
    "good",
    "fine",
    "great",
    "me",
    "you",
    "asap",
    "tomorrow",
    "today",
    "in",
    "on",
    "at",
    "thinking",
    "trying",
    "planning",
    "going",
    "considering",
    "curious",
    "happy",
    "also",
    "still",
    "very",
    "so",
    "el",
    "la",
    "un",
    "una",
    "de",
    "del",
    "cliente",
    "nuevo",
    "nueva",
}


def extract_name(texts: Iterable[str]) -> str | None:
    """A name the customer gives for themselves ("my name is Ana Ruiz", "me llamo Ana")."""
    for text in texts:
        for pattern in _NAME_PATTERNS:
            match = pattern.search(text or "")
            if not match:
                continue
            parts = [p for p in re.split(r"\s+", match.group(1).strip()) if p]
            kept = []
            for part in parts:
                if part.lower() in _NOT_NAMES or part.lower() in STOPWORDS:
                    break
                initial = part[:1]
                # Names are capitalised (scripts without case, such as Arabic, always pass).
                caseless = initial.lower() == initial.upper()
                if initial.isalpha() and not initial.isupper() and not caseless:
                    break
                kept.append(part.strip("'’-،,."))
            if kept:
                return " ".join(kept)[:200]
    return None
