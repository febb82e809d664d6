"""Writing the reply: the offline engine's reply from the templates and the knowledge base, and
what wraps every reply whichever engine wrote it (resume notice, greeting, phone ask, the next
opening when the business is closed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import PromptConfig
from bot.knowledge import answer
from bot.scoring import POSITIVE_INTENT, find_instructions

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


def format_opening(opening: datetime, now: datetime, zone_name: str, language: str) -> str:
    """'tomorrow at 08:00' / 'mañana a las 08:00': the next opening in the business's time zone."""
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


@dataclass
class ReplyContext:
    """What a reply depends on (raw data from the graph state)."""

    config: PromptConfig
    language: str
    burst_text: str
    signals: list[str]
    transition: str | None  # "pause" | "stop" | None
    greet: bool
    notice_due: bool
    ask_phone: bool
    phone_given: bool
    injection: bool
    closed_until: str | None  # formatted next opening when the business is closed now
    customer_name: str | None = None
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
