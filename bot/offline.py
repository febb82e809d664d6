"""The offline engine: knowledge retrieval over `prompts/knowledge/` and deterministic replies built
from the templates, plus the reply rules both engines share (phone asks, hand-over notes, and the
safety check every model-written reply must pass before a customer sees it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from bot.knowledge import STOPWORDS, answer, prompt_knowledge
from bot.knowledge import knowledge_index as knowledge_index  # re-exported for the graph
from bot.knowledge import retrieve as retrieve
from bot.knowledge import section_excerpt as section_excerpt
from bot.config import PromptConfig
from bot.scoring import find_instructions
from bot.text import normalize
from store.contacts import find_emails, find_phones

PHONELESS_CHANNELS = ("web", "messenger", "instagram")
POSITIVE_INTENT = ("interest", "pricing", "comparison", "demo", "timeline", "purchase", "callback")

_ASKS_PHONE = re.compile(
    r"phone number|your number|number to reach|numero de telefono|tu numero|su numero|"
    r"numero de telephone|votre numero|telefonnummer|ihre nummer|numero de telefone|seu numero|"
    r"رقم هاتف|رقم الهاتف|رقم جوال"
)
_SCORE_WORDS = re.compile(
    r"\b(?:lead\s+score|intent\s+score|score|scoring|puntuacion|pontuacao|punktzahl|"
    r"scores)\b"
)
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

_DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "pt": (
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ),
    "ar": ("الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت", "الأحد"),
}
_OPENING_FORMATS = {
    "en": ("today at {t}", "tomorrow at {t}", "on {d} at {t}"),
    "es": ("hoy a las {t}", "mañana a las {t}", "el {d} a las {t}"),
    "fr": ("aujourd'hui à {t}", "demain à {t}", "{d} à {t}"),
    "de": ("heute um {t}", "morgen um {t}", "am {d} um {t}"),
    "pt": ("hoje às {t}", "amanhã às {t}", "na {d} às {t}"),
    "ar": ("اليوم الساعة {t}", "غدا الساعة {t}", "يوم {d} الساعة {t}"),
}


# --------------------------------------------------------------------------------------------
# Knowledge (the retrieval itself lives in bot.knowledge)


def knowledge_for_prompt(
    config: PromptConfig,
    query: str,
    *,
    language: Optional[str],
    k: int = 3,
    max_chars: int = 900,
    signals: Iterable[str] = (),
    context: Sequence[str] = (),
) -> str:
    """The best sections for the model's prompt, each clipped, so the prompt stays bounded."""
    del signals  # the question types read the question itself
    text, _ = prompt_knowledge(
        config, query, language=language, k=k, max_chars=max_chars, context=context
    )
    return text


# --------------------------------------------------------------------------------------------
# Contacts, names, phone rules


def extract_name(texts: Iterable[str]) -> Optional[str]:
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


_MENTIONS_PHONE = re.compile(
    r"phone|number|telefono|numero|telephone|telefon|telefone|whatsapp|هاتف|رقم"
)


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
    return score >= min_score or any(s in POSITIVE_INTENT for s in signals)


def format_opening(opening: datetime, now: datetime, zone_name: str, language: str) -> str:
    """'tomorrow at 08:00' / 'mañana a las 08:00': the next opening in the business's time zone."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    local_open, local_now = opening.astimezone(zone), now.astimezone(zone)
    formats = _OPENING_FORMATS.get(language, _OPENING_FORMATS["en"])
    days = _DAY_NAMES.get(language, _DAY_NAMES["en"])
    when = f"{local_open.hour:02d}:{local_open.minute:02d}"
    delta = (local_open.date() - local_now.date()).days
    if delta <= 0:
        return formats[0].format(t=when)
    if delta == 1:
        return formats[1].format(t=when)
    return formats[2].format(t=when, d=days[local_open.weekday()])


# --------------------------------------------------------------------------------------------
# Replies


@dataclass
class ReplyContext:
    """What a reply depends on (raw data from the graph state)."""

    config: PromptConfig
    language: str
    burst_text: str
    signals: list[str]
    transition: Optional[str]  # "pause" | "stop" | None
    greet: bool
    notice_due: bool
    ask_phone: bool
    phone_given: bool
    injection: bool
    closed_until: Optional[str]  # formatted next opening when the business is closed now
    customer_name: Optional[str] = None
    question: bool = False
    phone_declined: bool = False
    # The customer's earlier messages, newest first (what a follow-up like "how much is it?" means).
    context: list[str] = field(default_factory=list)
    # Filled in by `offline_core`: the ids of the knowledge sections the reply quotes.
    knowledge: list[str] = field(default_factory=list)


def offline_core(ctx: ReplyContext) -> str:
    """The main body of an offline reply (without greeting, resume notice or phone ask)."""
    config, lang = ctx.config, ctx.language
    signals = set(ctx.signals)
    if ctx.transition == "stop":
        key = "opt_out" if "opt_out" in signals else "not_interested"
        return config.template(key, lang)
    parts: list[str] = []
    if ctx.transition == "pause" or "callback" in signals:
        parts.append(config.template("handover", lang))
        if ctx.closed_until:
            parts.append(config.template("out_of_hours", lang, next_opening=ctx.closed_until))
        return _join(parts)
    if ctx.phone_given:
        parts.append(config.template("phone_thanks", lang))
    elif ctx.phone_declined:
        parts.append(config.template("phone_declined", lang))
    if ctx.injection and not ctx.question and not (signals & set(POSITIVE_INTENT)):
        parts.append(config.template("refusal", lang))
        return _join(parts)
    answered = False
    if ctx.question or signals & {"pricing", "comparison", "demo", "timeline", "interest"}:
        # Instructions aimed at the bot are not part of the question ("... and mark me converted").
        query = ctx.burst_text
        for start, end in find_instructions(query):
            query = query[:start] + " " * (end - start) + query[end:]
        found = answer(config, query, language=lang, context=ctx.context)
        if found is not None:
            section = found.section
            if found.translated:
                # "package prices" inside a sentence; German keeps its capitalised nouns.
                topic = (
                    section.title[:1].lower() + section.title[1:]
                    if not section.title[:2].isupper() and lang != "de"
                    else section.title
                )
                intro = config.template("answer_intro", lang, topic=topic)
            else:
                # Only the default language has this section: say so in the customer's language.
                intro = config.template("untranslated_note", lang) or config.template(
                    "answer_intro", lang, topic=section.title
                )
            parts.append(_join([intro, found.text], sep="\n"))
            ctx.knowledge.append(section.id)
            answered = True
        elif ctx.question:
            parts.append(config.template("no_answer", lang))
            answered = True
    for signal in ("purchase", "demo", "pricing", "timeline", "comparison"):
        if signal in signals:
            ack = config.template(f"ack_{signal}", lang)
            if ack and (not answered or signal in ("purchase", "demo")):
                parts.append(ack)
            break
    if not parts and not ctx.greet:
        parts.append(config.template("fallback", lang))
    if ctx.closed_until:
        # An agent was notified but will only see it when we open: say when.
        parts.append(config.template("out_of_hours", lang, next_opening=ctx.closed_until))
    return _join(parts)


def finish_reply(core: str, ctx: ReplyContext, *, greet: bool) -> str:
    """Wrap the core reply: resume notice, greeting, then the core, then the phone ask."""
    config, lang = ctx.config, ctx.language
    parts = []
    if ctx.notice_due:
        parts.append(config.template("resume_disclosure", lang))
    if greet:
        parts.append(config.template("greeting", lang))
    parts.append(core)
    if ctx.ask_phone:
        parts.append(config.template("phone_ask", lang))
    text = _join(parts)
    if not text:
        text = config.template("fallback", lang) or config.template("greeting", lang)
    return text


def _join(parts: Iterable[str], sep: str = "\n\n") -> str:
    return sep.join(p.strip() for p in parts if p and p.strip())


def asks_for_phone(text: str) -> bool:
    return bool(_ASKS_PHONE.search(normalize(text or "")))


def unsafe_reply_reason(
    text: str,
    *,
    config: PromptConfig,
    lead_phone: Optional[str],
    lead_email: Optional[str],
    region: str,
) -> Optional[str]:
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
