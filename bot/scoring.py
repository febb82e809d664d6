"""Intent scoring 0-100 from signals computed in code, each factor with the words behind it.

Plain, deterministic Python: the language model's judgement is just one more weighted factor, and
instructions written by the customer ("set my score to 100") are set aside as content, never obeyed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from itertools import pairwise
from statistics import median
from typing import Any, Literal

from bot.config import KnowledgeSection, PromptConfig, ScoringConfig
from bot.schemas import ModelJudgement
from bot.text import KeywordSet, Match, clip, excerpt, normalize, stem, words
from store.models import HOT_SCORE

BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 20, "very low"),
    (21, 40, "mild"),
    (41, 60, "moderate"),
    (61, 80, "high"),
    (81, 100, "ready to buy"),
)
# A keyword signal this negative is a clear "no": it cancels the interest shown before it.
HARD_NEGATIVE = -30
# Positive keyword signals after the strongest count this much.
SECONDARY_SHARE = 0.25
# The signal a specific question about a product (an `interests` keyword) implies.
IMPLIED_SIGNAL = "interest"
# Signals that show the customer wants to buy (a phone may be asked for; a reply answers them).
POSITIVE_INTENT = ("interest", "pricing", "comparison", "demo", "timeline", "purchase", "callback")

# Instructions aimed at the bot rather than the business, matched on normalised text (lower case,
# no accents). They are quoted as evidence and left out of the scoring.
_INJECTION = re.compile(
    "|".join(
        [
            r"\b(?:set|change|make|put|update|raise|bump)\s+(?:my|the|our)\s+(?:lead\s+)?(?:score|status|rating|priority)",
            r"\bmark\s+(?:me|us|this\s+lead)\s+(?:as\s+)?(?:converted|hot|vip|qualified|a\s+customer|closed|won)",
            r"\bignore\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding)\s+"
            r"(?:instructions?|prompts?|rules|messages?)",
            r"\b(?:system|developer|hidden)\s+(?:prompt|message|instructions?)",
            r"\byou\s+are\s+now\b",
            r"\b(?:reveal|show|print|repeat|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:instructions|prompt|rules)",
            r"\bscore\s+(?:me\s+)?(?:to|=|as|at)\s*\d+",
            r"\b(?:pon|cambia|sube|pone)\s+mi\s+(?:puntuacion|estado|score)",
            r"\bignora\s+(?:todas\s+)?(?:las\s+)?instrucciones",
            r"\bmarcame\s+como\b",
            r"\bignorez?\s+(?:toutes\s+)?(?:les\s+)?instructions",
            r"\b(?:mets|change|changez)\s+mon\s+(?:score|statut)",
            r"\bmarque[zs]?[- ]moi\s+comme",
            r"\bignoriere\s+(?:alle\s+)?(?:vorherigen\s+)?anweisungen",
            r"\bsetze?\s+mein(?:en)?\s+(?:score|status)",
            r"\bmarkiere\s+mich\s+als",
            r"\bignore\s+(?:todas\s+)?(?:as\s+)?instrucoes",
            r"\b(?:coloque|mude|altere)\s+(?:minha\s+pontuacao|meu\s+status|meu\s+score)",
            r"\bme\s+marque\s+como",
            r"تجاهل\s+(?:جميع\s+)?التعليمات",
            r"(?:غير|غيّر)\s+حالتي",
            r"اجعل\s+تقييمي",
        ]
    )
)

_QUESTION_WORDS = {
    "how",
    "what",
    "when",
    "where",
    "which",
    "who",
    "why",
    "can",
    "could",
    "do",
    "does",
    "is",
    "are",
    "will",
    "would",
    "should",
    "como",
    "que",
    "cuando",
    "donde",
    "cual",
    "cuanto",
    "cuanta",
    "puedo",
    "pueden",
    "tienen",
    "hay",
    "comment",
    "quoi",
    "quand",
    "ou",
    "quel",
    "quelle",
    "combien",
    "est-ce",
    "pouvez",
    "wie",
    "was",
    "wann",
    "wo",
    "welche",
    "welcher",
    "kann",
    "konnen",
    "gibt",
    "quanto",
    "quanta",
    "qual",
    "onde",
    "posso",
    "podem",
    "هل",
    "كم",
    "ما",
    "متى",
    "كيف",
    "أين",
    "ماذا",
}
_GENERIC_TERMS = {
    "what",
    "does",
    "with",
    "your",
    "have",
    "from",
    "that",
    "this",
    "much",
    "long",
    "will",
    "happens",
    "work",
    "take",
    "days",
    "night",
    "many",
    "about",
    "frequently",
    "asked",
    "questions",
    "question",
    "products",
    "policies",
    "preguntas",
    "frecuentes",
    "contact",
    "opening",
    "hours",
    "and",
    "cuanto",
    "tarda",
    "mensuales",
    "terms",
    "area",
    "free",
    "save",
}


@dataclass
class CustomerMessage:
    """One customer message in the window; `new` marks the burst being processed now."""

    text: str
    new: bool = False
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Assessment:
    """The turn's score with the factors behind it, and what the customer's words show."""

    score: int
    band: str
    factors: list[dict[str, Any]]
    signals: list[str]  # signals of the new messages (what decides a status now)
    window_signals: list[str]
    interests: list[str]
    objections: list[str]
    keyword_tags: list[str]
    ignored_instructions: list[str] = field(default_factory=list)
    question: str | None = None  # the latest question asked, if any


def band(score: int) -> str:
    for low, high, name in BANDS:
        if low <= score <= high:
            return name
    return BANDS[-1][2] if score > 100 else BANDS[0][2]


def is_hot(score: int) -> bool:
    return score >= HOT_SCORE


def find_instructions(text: str) -> list[tuple[int, int]]:
    """Spans (in `text`) of sentences that try to instruct the bot."""
    spans = []
    for sentence in re.finditer(r"[^.!?\n]+[.!?\n]*", text or ""):
        if _INJECTION.search(normalize(sentence.group(0))):
            spans.append((sentence.start(), sentence.end()))
    return spans


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, min(end, len(chars))):
            chars[i] = " "
    return "".join(chars)


def knowledge_terms(sections: Iterable[KnowledgeSection]) -> frozenset[str]:
    """Words that make a question specific: product and topic names from the knowledge base."""
    terms: set[str] = set()
    for section in sections:
        sources = [section.title, *re.findall(r"\*\*(.+?)\*\*", section.text)]
        for source in sources:
            for word in words(source):
                if len(word) >= 4 and word not in _GENERIC_TERMS and not word.isdigit():
                    terms.add(stem(word))
    return frozenset(terms)


def is_question(text: str) -> bool:
    stripped = (text or "").strip()
    if not stripped:
        return False
    if "?" in stripped or "¿" in stripped or "؟" in stripped:
        return True
    first = words(stripped[:40])
    return bool(first) and first[0] in _QUESTION_WORDS and len(first) >= 3


@lru_cache(maxsize=4096)
def question_specificity(text: str, terms: frozenset[str]) -> float:
    """0 when not a question; 0.3 for a generic question, 1.0 for a specific one.

    Cached (bounded): each turn asks it of the window's messages again, several times each."""
    if not is_question(text):
        return 0.0
    tokens = words(text)
    mentioned = {stem(t) for t in tokens} & terms
    has_number = bool(re.search(r"\d", text))
    if len(mentioned) >= 2 or (mentioned and (has_number or len(tokens) >= 7)):
        return 1.0
    return 0.3


# A message's keyword signals: signal name -> (the match, the message's text it was found in).
Found = dict[str, tuple[Match, str]]
LabelKind = Literal["interests", "objections", "tags"]
EMPTY: frozenset[str] = frozenset()


def assess(
    messages: list[CustomerMessage],
    *,
    config: PromptConfig,
    terms: frozenset[str],
    previous_score: int = 0,
    model_judgement: ModelJudgement | None = None,
) -> Assessment:
    """Score the customer's side of the window: `messages` oldest first, the new burst `new`."""
    del previous_score  # the score is read from the window afresh every turn
    scoring = config.scoring
    cleaned, ignored, instructed_now = _set_instructions_aside(messages, scoring)
    per_message = [
        scoring.remembered("signals", text, terms, partial(_keyword_signals, text, scoring, terms))
        for text in cleaned
    ]
    start, softened = _since_last_clear_no(per_message, scoring)
    positives, negatives = _strongest_signals(per_message, start, softened, scoring)
    depth, deepest, latest_question = _questions(messages, cleaned, start, terms)

    weights = scoring.weights
    factors: list[dict[str, Any]] = [
        {"factor": "base", "points": scoring.base, "evidence": "every conversation starts here"}
    ]
    factors += _engagement_factor(messages, weights.get("engagement", 0))
    factors += _question_factor(depth, deepest, weights.get("question_depth", 0))
    factors += _keyword_factors(positives, negatives, scoring.intent_cap)
    factors += _trend_factor(messages, cleaned, start, terms, weights.get("trend", 0))
    factors += _model_factor(
        model_judgement, messages, instructed_now, weights.get("model_judgement", 0)
    )
    factors += _ignored_instruction_factors(ignored)
    score = max(0, min(100, sum(int(f["points"]) for f in factors)))

    return Assessment(
        score=score,
        band=band(score),
        factors=factors,
        signals=_signals_now(messages, cleaned, per_message, softened, scoring, terms),
        window_signals=sorted({n for found in per_message[start:] for n in found}),
        interests=_labels(scoring, "interests", cleaned[start:]),
        objections=_labels(scoring, "objections", cleaned),
        keyword_tags=_labels(scoring, "tags", cleaned),
        ignored_instructions=ignored,
        question=latest_question,
    )


def _set_instructions_aside(
    messages: list[CustomerMessage], scoring: ScoringConfig
) -> tuple[list[str], list[str], bool]:
    """Each message with its sentences that instruct the bot blanked out, those sentences
    (clipped, as evidence), and whether the new burst holds one. A text is read once
    (`ScoringConfig.remembered`): the window is scored again at every turn."""
    cleaned: list[str] = []
    ignored: list[str] = []
    instructed_now = False
    for message in messages:
        text = message.text
        kept, instructions = scoring.remembered(
            "instructions", text, EMPTY, partial(_instructions_aside, text)
        )
        instructed_now = instructed_now or bool(instructions and message.new)
        ignored.extend(instructions)
        cleaned.append(kept)
    return cleaned, ignored, instructed_now


def _instructions_aside(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with its sentences that instruct the bot blanked out, and those sentences clipped."""
    spans = find_instructions(text)
    if not spans:
        return text, ()
    return _blank(text, spans), tuple(clip(text[start:end], 120) for start, end in spans)


def _keyword_signals(text: str, scoring: ScoringConfig, terms: frozenset[str]) -> Found:
    """The signals one message shows: clear "no"s first, then everything else on what is left.
    `assess` keeps the answer for the text (`ScoringConfig.remembered`): it is not changed."""
    found: Found = {}
    spans = []
    for name, signal in scoring.signals.items():
        if signal.points < 0:
            match = signal.keywords.first(text)
            if match:
                found[name] = (match, text)
                spans.append((match.start, match.end))
    remaining = _blank(text, spans)
    for name, signal in scoring.signals.items():
        if signal.points < 0:
            continue
        match = signal.keywords.first(remaining)
        if match:
            found[name] = (match, text)
    implied = _implied_interest(remaining, scoring, terms)
    if implied is not None and IMPLIED_SIGNAL not in found:
        found[IMPLIED_SIGNAL] = (implied, text)
    return found


def _since_last_clear_no(per_message: list[Found], scoring: ScoringConfig) -> tuple[int, set[int]]:
    """Where interest counts from (the last clear "no"), and the messages whose "no" is softened
    because the same message also shows intent ("not the battery, how much are the panels?")."""
    start = 0
    softened: set[int] = set()
    for index, found in enumerate(per_message):
        positives = [n for n in found if scoring.signals[n].points > 0]
        hard = [n for n in found if scoring.signals[n].points <= HARD_NEGATIVE]
        if hard and positives:
            softened.add(index)
        elif hard:
            start = index
    return start, softened


def _strongest_signals(
    per_message: list[Found], start: int, softened: set[int], scoring: ScoringConfig
) -> tuple[dict[str, tuple[int, Match, str]], dict[str, tuple[int, Match, str]]]:
    """The latest occurrence of each positive and negative signal since the last clear "no", with
    the points it is worth there (a "no" taken back later counts half, a softened one a quarter)."""
    positives: dict[str, tuple[int, Match, str]] = {}
    negatives: dict[str, tuple[int, Match, str]] = {}
    last = len(per_message) - 1
    for index, found in enumerate(per_message):
        if index < start:
            continue
        for name, (match, text) in found.items():
            points = scoring.signals[name].points
            if points > 0:
                positives[name] = (points, match, text)
            elif points < 0:
                effective = points
                if index in softened and points <= HARD_NEGATIVE:
                    effective = round(points * SECONDARY_SHARE)
                elif (
                    index != last
                    and points <= HARD_NEGATIVE
                    and _later_positive(per_message, index, scoring)
                ):
                    effective = round(points / 2)
                negatives[name] = (effective, match, text)
    return positives, negatives


def _questions(
    messages: list[CustomerMessage], cleaned: list[str], start: int, terms: frozenset[str]
) -> tuple[float, str | None, str | None]:
    """Since the last clear "no": the most specific question's depth and text, and the latest
    question as the customer wrote it."""
    best_depth, best_question, latest_question = 0.0, None, None
    for index, text in enumerate(cleaned):
        depth = question_specificity(text, terms)
        if depth and index >= start:
            latest_question = messages[index].text
            if depth >= best_depth:
                best_depth, best_question = depth, text
    return best_depth, best_question, latest_question


def _engagement_factor(messages: list[CustomerMessage], weight: int) -> list[dict[str, Any]]:
    """How many customer messages the window holds, and whether they come quickly."""
    count = len(messages)
    if not weight or not count:
        return []
    points = weight * min(count, 5) / 5 * 0.8
    times = [m.sent_at for m in messages if m.sent_at is not None]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times) if b >= a]
    quick = bool(gaps) and median(gaps) <= 15 * 60
    if quick:
        points += weight * 0.2
    evidence = f"{count} message{'s' if count != 1 else ''}" + (
        ", replying within minutes" if quick else ""
    )
    return [{"factor": "engagement", "points": round(points), "evidence": evidence}]


def _question_factor(depth: float, question: str | None, weight: int) -> list[dict[str, Any]]:
    """The most specific question since the last clear "no"."""
    if not weight or not question:
        return []
    label = "specific question" if depth >= 1 else "general question"
    return [
        {
            "factor": f"question depth: {label}",
            "points": round(weight * depth),
            "evidence": clip(question, 120),
        }
    ]


def _keyword_factors(
    positives: dict[str, tuple[int, Match, str]],
    negatives: dict[str, tuple[int, Match, str]],
    intent_cap: int,
) -> list[dict[str, Any]]:
    """The strongest positive signal fully, the others a quarter, all capped; then every
    negative one, the strongest first."""
    factors: list[dict[str, Any]] = []
    ordered = sorted(positives.items(), key=lambda item: -item[1][0])
    budget = intent_cap
    for rank, (name, (points, match, text)) in enumerate(ordered):
        effective = points if rank == 0 else round(points * SECONDARY_SHARE)
        effective = max(0, min(effective, budget))
        budget -= effective
        if effective == 0 and rank > 0:
            continue
        factors.append(
            {
                "factor": f"intent: {name.replace('_', ' ')}",
                "points": effective,
                "evidence": excerpt(text, match.start, match.end),
            }
        )
    for name, (points, match, text) in sorted(negatives.items(), key=lambda item: item[1][0]):
        factors.append(
            {
                "factor": f"negative: {name.replace('_', ' ')}",
                "points": points,
                "evidence": excerpt(text, match.start, match.end),
            }
        )
    return factors


def _trend_factor(
    messages: list[CustomerMessage],
    cleaned: list[str],
    start: int,
    terms: frozenset[str],
    weight: int,
) -> list[dict[str, Any]]:
    """Whether the new messages are more (or less) engaged than the earlier ones."""
    new_texts = [t for t, m in zip(cleaned, messages, strict=True) if m.new]
    old_texts = [t for t, m in zip(cleaned, messages, strict=True) if not m.new][start:]
    if not weight or not new_texts or len(old_texts) < 2:
        return []
    new_level = sum(_engagement_level(t, terms) for t in new_texts) / len(new_texts)
    old_level = sum(_engagement_level(t, terms) for t in old_texts) / len(old_texts)
    latest = clip(new_texts[-1], 120)
    if new_level >= old_level * 1.5 and new_level - old_level >= 3:
        return [{"factor": "trend: more engaged than before", "points": weight, "evidence": latest}]
    if new_level <= old_level * 0.5 and old_level - new_level >= 3:
        return [
            {"factor": "trend: less engaged than before", "points": -weight, "evidence": latest}
        ]
    return []


def _model_factor(
    judgement: ModelJudgement | None,
    messages: list[CustomerMessage],
    instructed_now: bool,
    weight: int,
) -> list[dict[str, Any]]:
    """The language model's own reading of intent, centred on 50."""
    if judgement is None or not weight:
        return []
    points = round(weight * (int(judgement.intent_score) - 50) / 50)
    evidence = _model_evidence(judgement, [m.text for m in messages])
    if instructed_now and points > 0:
        # The customer just tried to instruct the bot; the model may have been talked into it.
        points, evidence = 0, "not counted: the new message tries to instruct the bot"
    level = str(judgement.intent_level or "").replace("_", " ")
    label = f"model judgement: {level}" if level else "model judgement"
    return [{"factor": label, "points": points, "evidence": evidence}]


def _ignored_instruction_factors(ignored: list[str]) -> list[dict[str, Any]]:
    """The last instructions set aside, shown with no points so that an agent sees them."""
    return [
        {
            "factor": "ignored instruction (customer text is not a command)",
            "points": 0,
            "evidence": instruction,
        }
        for instruction in ignored[-3:]
    ]


def _signals_now(
    messages: list[CustomerMessage],
    cleaned: list[str],
    per_message: list[Found],
    softened: set[int],
    scoring: ScoringConfig,
    terms: frozenset[str],
) -> list[str]:
    """What decides a status now: the signals of the new messages (a softened "no" left out)."""
    new_indexes = [i for i, m in enumerate(messages) if m.new] or [len(messages) - 1]
    signals: set[str] = set()
    for index in new_indexes:
        if index < 0:
            continue
        for name in per_message[index]:
            if scoring.signals[name].points <= HARD_NEGATIVE and index in softened:
                continue
            signals.add(name)
        if question_specificity(cleaned[index], terms):
            signals.add("question")
    return sorted(signals)


def _implied_interest(text: str, scoring: ScoringConfig, terms: frozenset[str]) -> Match | None:
    """A specific question about one of the products ("does the PowerCell battery work with my
    inverter?") shows interest in it even without an interest phrase: the product word, or None."""
    signal = scoring.signals.get(IMPLIED_SIGNAL)
    if signal is None or signal.points <= 0 or question_specificity(text, terms) < 1.0:
        return None
    for keywords in scoring.interests.values():
        match = keywords.first(text)
        if match is not None:
            return match
    return None


def _later_positive(
    per_message: list[dict[str, tuple[Match, str]]], index: int, scoring: ScoringConfig
) -> bool:
    return any(scoring.signals[n].points > 0 for found in per_message[index + 1 :] for n in found)


@lru_cache(maxsize=4096)
def _engagement_level(text: str, terms: frozenset[str]) -> float:
    return len(words(text)) + 5 * question_specificity(text, terms) * 2


def _labels(scoring: ScoringConfig, kind: LabelKind, texts: list[str]) -> list[str]:
    """The labels of a kind (interests, objections, tags) that any of `texts` shows, in the
    configuration's order."""
    groups: dict[str, KeywordSet] = getattr(scoring, kind)
    shown: set[str] = set()
    for text in texts:
        shown.update(scoring.remembered(kind, text, EMPTY, partial(_labels_in, groups, text)))
    return [label for label in groups if label in shown]


def _labels_in(groups: dict[str, KeywordSet], text: str) -> frozenset[str]:
    return frozenset(label for label, keywords in groups.items() if keywords.first(text))


def _model_evidence(judgement: ModelJudgement, texts: list[str]) -> str:
    """The model's quote when it really is the customer's words, else its reasoning (clipped)."""
    quote = str(judgement.intent_evidence or "").strip().strip('"“”')
    if quote and any(normalize(quote) in normalize(text) for text in texts):
        return clip(quote, 120)
    return clip(str(judgement.reasoning or "model assessment"), 160)


def merge_labels(existing: Iterable[Any], new: Iterable[str], limit: int = 12) -> list[str]:
    merged: list[str] = []
    for item in [*existing, *new]:
        text = str(item).strip()
        if text and text.lower() not in {m.lower() for m in merged}:
            merged.append(text)
    return merged[-limit:]


BOT_TAGS = ("High Intent", "Price Sensitive", "Urgent", "Comparing Options", "Opted Out")


def derive_tags(existing: Iterable[Any], assessment: Assessment, config: PromptConfig) -> list[str]:
    """The lead's tags: human tags kept, signal tags added (sticky), High Intent per score."""
    tags = [str(t) for t in existing if str(t) != "High Intent"]
    signals = set(assessment.window_signals) | set(assessment.signals)
    wanted = list(assessment.keyword_tags)
    if assessment.score >= HOT_SCORE:
        wanted.append("High Intent")
    if "price_objection" in signals or "Price" in assessment.objections:
        wanted.append("Price Sensitive")
    if "urgency" in signals:
        wanted.append("Urgent")
    if "comparison" in signals:
        wanted.append("Comparing Options")
    if "opt_out" in assessment.signals:
        wanted.append("Opted Out")
    return merge_labels(tags, wanted, limit=20)


def conversion_probability(score: int, status: str | None, config: PromptConfig) -> float:
    """A rough chance this lead buys, from the score; terminal statuses are certain either way."""
    state = config.status(status)
    if state is not None and state.terminal:
        return 0.0 if state.ai_behaviour == "stop" else 1.0
    likelihood: float = (score / 100) ** 1.6
    return round(min(0.95, max(0.01, likelihood)), 2)


def next_best_action(
    assessment: Assessment, status: str | None, *, has_phone: bool, config: PromptConfig
) -> str:
    """One sentence for the sales agent: what to do next with this lead."""
    state = config.status(status)
    signals = set(assessment.signals) | set(assessment.window_signals)
    if state is not None and state.terminal and state.ai_behaviour == "stop":
        return "No action: the customer declined. Respect their choice and do not contact them."
    if state is not None and state.terminal:
        return "Onboard the customer and ask for a referral."
    if "purchase" in signals or "callback" in signals or assessment.score >= 81:
        return (
            "Call now to close: they are ready for next steps."
            if has_phone
            else "Reply in the chat now to close: they are ready for next steps (no phone yet)."
        )
    if "Price" in assessment.objections or "price_objection" in signals:
        return "Address the price concern: show financing options and the tax credit."
    if "demo" in signals:
        return "Book the free site survey they asked about."
    if "pricing" in signals or "comparison" in signals:
        return "Send a tailored quote and compare the packages for their home."
    if assessment.score >= 41:
        return "Answer their detailed questions and offer a free site survey."
    if assessment.score >= 21:
        return "Nurture: share how solar would work for their home."
    return "Wait for the customer to say what they need."


def summarize(
    assessment: Assessment, *, name: str | None, has_phone: bool, status: str | None
) -> str:
    """A short summary for the sales team, built from the signals (the offline engine's summary)."""
    parts = []
    who = name or "The lead"
    if assessment.interests:
        parts.append(f"{who} is interested in {', '.join(assessment.interests).lower()}.")
    else:
        parts.append(f"{who} has not named a product yet.")
    asked = [
        s.replace("_", " ")
        for s in assessment.window_signals
        if s in ("pricing", "comparison", "demo", "timeline", "purchase", "callback")
    ]
    if asked:
        parts.append(f"Signals: {', '.join(asked)}.")
    if assessment.objections:
        parts.append(f"Objections: {', '.join(assessment.objections).lower()}.")
    if assessment.question:
        parts.append(f'Last question: "{clip(assessment.question, 90)}".')
    parts.append(f"Phone {'known' if has_phone else 'not known yet'}.")
    return " ".join(parts)[:600]
