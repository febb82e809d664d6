"""The offline engine: knowledge retrieval over `prompts/knowledge/` and deterministic replies built
from the templates, plus the reply rules both engines share (phone asks, hand-over notes, and the
safety check every model-written reply must pass before a customer sees it).
"""

from __future__ import annotations

import math
import re
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from bot.prompts import KnowledgeSection, PromptConfig
from bot.scoring import find_instructions, knowledge_terms
from bot.text import normalize, stem, words
from store.contacts import find_emails, find_phones, try_normalize_phone

PHONELESS_CHANNELS = ("web", "messenger", "instagram")
POSITIVE_INTENT = ("interest", "pricing", "comparison", "demo", "timeline", "purchase", "callback")

_STOPWORDS = set(
    """
a an the is are was be been am do does did you your yours i me my mine we our us it its of to in on
at for with
and or but not no yes what how when where which who why can could would will should shall may might
there this
that these those about much many any some please hi hello hey thanks thank get got want like need
know tell
have has had just also more very so if than then them they their he she his her from by as up out
into over
offer offers provide sell got
worth well instead really someone somebody anyone place come see ok okay guys also still already
even lot thing things way new old big small good best nice right sure maybe was were been being
wonder wondering wondered think thinking thought look looking ask asking talk talking keep keeps
getting moved move husband wife partner family friend neighbor neighbour kids again bit
cuanto cuanta
el la los las un una unos unas de del que en y o por para con es son era mi mis tu tus su sus como
cuando donde
cual cuales hola gracias quiero quisiera tienen tiene hay se me lo le al muy mas pero si no ya esto
esta este
le la les un une des du et ou est sont pour avec mon ma mes vous je tu que quel quelle comment
bonjour merci
il elle nous ce cette qui dans sur pas plus
der die das ein eine und oder ist sind fur mit mein meine sie ich wie was hallo danke es zu den dem
im auf bei
nicht auch noch
o os as um uma do da dos das e para com meu minha voce que como ola obrigado obrigada tem no na em
في من على هل ما كم أن عن الى إلى مع هذا هذه
""".split()
)

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
# Knowledge retrieval


def tokens(text: str) -> list[str]:
    return [root(t) for t in words(text) if t not in _STOPWORDS and (len(t) > 1 or t.isdigit())]


def root(word: str) -> str:
    """A crude stem for retrieval: plural, English -ing/-ed and (for Latin script) everything after
    six letters cut, so that "buying"/"buy", "production"/"produce" and "financing"/"finance" meet.
    """
    word = stem(word)
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 5 and word.endswith("ed") and not word.endswith("eed"):
        word = word[:-2]
    if len(word) > ROOT_LENGTH and word.isascii() and word.isalpha():
        word = word[:ROOT_LENGTH]
    return word


ROOT_LENGTH = 6


@dataclass
class _Index:
    sections: tuple[KnowledgeSection, ...]
    counts: list[Counter[str]]
    lengths: list[int]
    df: Counter[str]
    avg_length: float
    terms: frozenset[str]
    allowed_phones: frozenset[str]
    allowed_emails: frozenset[str]
    heading_terms: frozenset[str] = frozenset()


_INDEXES: weakref.WeakKeyDictionary[PromptConfig, _Index] = weakref.WeakKeyDictionary()


def knowledge_index(config: PromptConfig) -> _Index:
    """The retrieval index of this configuration (built once per loaded configuration)."""
    index = _INDEXES.get(config)
    if index is not None:
        return index
    counts, lengths = [], []
    df: Counter[str] = Counter()
    for section in config.knowledge:
        count = Counter(tokens(section.text))
        for token in tokens(section.heading):
            count[token] += (
                3  # a word in the heading says more about the section than one in its body
            )
        counts.append(count)
        lengths.append(sum(count.values()))
        df.update(set(count))
    phones = {p for s in config.knowledge for p in find_phones(s.text, "US")}
    business_phone = (
        try_normalize_phone(config.business.phone, "US") if config.business.phone else None
    )
    if business_phone:
        phones.add(business_phone)
    emails = {e.lower() for s in config.knowledge for e in find_emails(s.text)}
    if config.business.email:
        emails.add(config.business.email.lower())
    index = _Index(
        sections=config.knowledge,
        counts=counts,
        lengths=lengths,
        df=df,
        avg_length=(sum(lengths) / len(lengths)) if lengths else 1.0,
        terms=knowledge_terms(config.knowledge),
        allowed_phones=frozenset(phones),
        allowed_emails=frozenset(emails),
        heading_terms=frozenset(t for s in config.knowledge for t in tokens(s.title)),
    )
    _INDEXES[config] = index
    return index


# Words added to a query when a signal shows what the customer is after ("how much" says nothing
# about prices to a bag of words).
_SIGNAL_HINTS = {
    "pricing": "price prices cost precio precios prix preis preco سعر",
    "timeline": "how long installation take tarda instalacion delai dauer",
    "demo": "site survey visit visita",
    "purchase": "payment terms deposit pago",
}


# When this share of the question's weight (IDF) is words the knowledge base never uses, the
# question is about something it does not cover: the bot says it will check with the team rather
# than answer a different question with the nearest section.
MAX_UNKNOWN_SHARE = 0.45
# An unknown word counts as a quarter of a rare word (chat is full of words no FAQ uses)...
UNKNOWN_SHARE = 0.25
# ...but fully when it names something ("the Pro plan", "an Enphase inverter", "Tesla Powerwall").
NAMED_UNKNOWN_SHARE = 1.0
# Weight of the words of an interest label ("Battery storage") when an unknown word of the question
# is one of its keywords ("blackouts"): scoring.yaml's interests double as a small thesaurus.
INTEREST_HINT_WEIGHT = 0.7
# Sections quoting a price rank higher for a pricing question ("how much is the EV charger?").
PRICE_BOOST = 1.6
_PRICE = re.compile(r"[$€£]\s?\d|\d[\d.,]*\s?(?:usd|eur|euros?|dollars?|€|\$)", re.IGNORECASE)


@dataclass
class _Query:
    weights: dict[str, float]  # token -> weight in the ranking
    known: dict[str, float]  # the customer's words the knowledge base uses -> IDF
    unknown: float  # the weight of the words it never uses


def _analyse(config: PromptConfig, index: _Index, query: str, signals: Iterable[str]) -> _Query:
    """The question's words: what ranks the sections, and how much of it they cannot cover."""
    raw = words(query)
    # Words a signal recognised ("cost", "how long") say what the customer wants to know, not
    # about what: the signal hints answer them (unless a section is named after them, as
    # "Discounts"). Words an interest recognised ("blackouts") are understood through its label
    # ("Battery storage") even when the knowledge base never uses them.
    intent: set[str] = set()
    for signal in config.scoring.signals.values():
        for match in signal.keywords.find(query):
            intent.update(tokens(query[match.start : match.end]))
    intent -= index.heading_terms
    understood: set[str] = set()
    hints: dict[str, float] = {}
    for label, keywords in config.scoring.interests.items():
        matched = {t for m in keywords.find(query) for t in tokens(query[m.start : m.end])}
        unknown = {t for t in matched if not index.df.get(t)}
        understood.update(unknown)
        if unknown:
            for token in tokens(label):
                hints[token] = max(hints.get(token, 0.0), INTEREST_HINT_WEIGHT)
    n = max(1, len(index.sections))
    idf_unknown = math.log(1 + (n + 0.5) / 0.5)
    weights: dict[str, float] = {}
    known: dict[str, float] = {}
    unknown_weight: dict[str, float] = {}
    content = [w for w in raw if w not in _STOPWORDS and (len(w) > 1 or w.isdigit())]
    # Two capitalised words in a row inside a sentence name a product ("Tesla Powerwall"); the
    # customer's own name does not count.
    own_name = set(words(extract_name([query]) or ""))
    proper_names = {
        normalize(word)
        for pair in re.finditer(r"(?<![.!?¿¡]\s)(?<!^)\b([A-Z][\w-]+)\s+([A-Z][\w-]+)", query)
        for word in pair.groups()
    } - own_name
    for word in content:
        token = root(word)
        weights[token] = 1.0
        if word.isdigit():
            continue
        if token in intent or token in understood:
            continue
        if index.df.get(token):
            known[token] = _idf(index, token)
            continue
        # A name we do not know: a capitalised pair ("a Tesla Powerwall") or a word right before
        # one we use ("the pro plan", "an enphase inverter").
        following = raw.index(word) + 1 if word in raw else len(raw)
        named = word in proper_names or (
            following < len(raw)
            and raw[following] not in _STOPWORDS
            and bool(index.df.get(root(raw[following])))
        )
        share = NAMED_UNKNOWN_SHARE if named else UNKNOWN_SHARE
        unknown_weight[token] = max(unknown_weight.get(token, 0.0), idf_unknown * share)
    if weights:
        for token, weight in hints.items():
            weights.setdefault(token, weight)
        for signal in signals:
            for token in tokens(_SIGNAL_HINTS.get(signal, "")):
                weights.setdefault(token, 0.4)
    return _Query(weights, known, sum(unknown_weight.values()))


def _idf(index: _Index, token: str) -> float:
    n = len(index.sections)
    df = index.df.get(token, 0)
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def unknown_share(query: _Query) -> float:
    """The share of the question's weight that the knowledge base has no word for."""
    total = sum(query.known.values()) + query.unknown
    return query.unknown / total if total > 0 else 0.0


def retrieve(
    config: PromptConfig,
    query: str,
    *,
    language: Optional[str] = None,
    k: int = 3,
    min_score: float = 1.2,
    signals: Iterable[str] = (),
    max_unknown_share: float = MAX_UNKNOWN_SHARE,
) -> list[tuple[KnowledgeSection, float]]:
    """The sections that answer `query`, best first (BM25 over heading-weighted sections); none
    when the question is mostly about things the knowledge base never mentions (better "I'll check
    with the team" than the nearest section passed off as the answer)."""
    index = knowledge_index(config)
    signals = list(signals)
    analysed = _analyse(config, index, query, signals)
    weights = analysed.weights
    if not weights or not index.sections:
        return []
    if unknown_share(analysed) >= max_unknown_share:
        return []
    results = []
    for section, count, length in zip(index.sections, index.counts, index.lengths, strict=True):
        score = 0.0
        for token, weight in weights.items():
            tf = count.get(token, 0)
            if not tf:
                continue
            norm = tf + 1.2 * (0.25 + 0.75 * length / index.avg_length)
            score += weight * _idf(index, token) * tf * 2.2 / norm
        if score <= 0:
            continue
        if language and section.language == language:
            score *= 1.3
        elif language and section.language not in (language, config.business.default_language):
            score *= 0.5
        if "pricing" in signals and _PRICE.search(section.text):
            score *= PRICE_BOOST
        results.append((section, score))
    results.sort(key=lambda item: -item[1])
    return [(s, score) for s, score in results[:k] if score >= min_score]


def section_excerpt(section: KnowledgeSection, max_chars: int = 450) -> str:
    """The start of a section as plain text, whole lines only: prose lines joined, bullets kept."""
    blocks: list[str] = []
    total = 0
    for raw in section.text.split("\n"):
        line = raw.strip().replace("**", "")
        if not line:
            continue
        bullet = line.startswith(("- ", "* "))
        if bullet:
            line = "• " + line[2:]
        if blocks and total + len(line) > max_chars:
            break
        total += len(line) + 1
        if (
            not bullet
            and blocks
            and not blocks[-1].startswith("• ")
            and not blocks[-1].endswith(":")
        ):
            blocks[-1] = blocks[-1] + " " + line
        else:
            blocks.append(line)
    return "\n".join(blocks)


def knowledge_for_prompt(
    config: PromptConfig,
    query: str,
    *,
    language: Optional[str],
    k: int = 3,
    max_chars: int = 900,
    signals: Iterable[str] = (),
) -> str:
    """The best sections for the model's prompt, each clipped, so the prompt stays bounded."""
    found = retrieve(config, query, language=language, k=k, min_score=0.5, signals=signals)
    if not found:
        return "(no section matches; say you will check with the team)"
    return "\n\n".join(f"## {section.heading}\n{section.text[:max_chars]}" for section, _ in found)


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
                if part.lower() in _NOT_NAMES or part.lower() in _STOPWORDS:
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
        found = retrieve(config, query, language=lang, k=1, signals=signals)
        if found:
            section = found[0][0]
            topic = (
                section.title[:1].lower() + section.title[1:]
                if not section.title[:2].isupper()
                else section.title
            )
            intro = config.template(
                "answer_intro", section.language if section.language == lang else lang, topic=topic
            )
            parts.append(_join([intro, section_excerpt(section)], sep="\n"))
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
