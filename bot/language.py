"""Which language the customer writes in: detected per message with lingua, restricted to the
business's languages plus English, and kept for the conversation until the customer clearly
switches (a short or ambiguous message keeps the conversation's language).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from bot.text import language_hints, words

log = logging.getLogger(__name__)

# A message needs this many words (or an unmistakable script) before it may change the language.
MIN_WORDS = 3
# lingua's confidence, plus HINT_BONUS per very common word of a language ("the", "combien"),
# must reach CLEAR and lead the runner-up by MARGIN for the message to count as that language.
CLEAR = 0.6
MARGIN = 0.2
HINT_BONUS = 0.15
MAX_HINTS = 3

_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_NOISE = re.compile(r"https?://\S+|\S+@\S+|[\d+()./:,-]{4,}")


@dataclass(frozen=True)
class Detection:
    """The language of a burst and whether the text itself said so (else it was kept)."""

    language: str
    clear: bool


def language_name(code: str) -> str:
    """ "Spanish" for "es" (the code itself when lingua does not know it)."""
    language = _lingua_language(code)
    return language.name.capitalize() if language is not None else code


def _lingua_language(code: str) -> Language | None:
    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except (ValueError, AttributeError):
        return None


@lru_cache(maxsize=8)
def detector(codes: tuple[str, ...]) -> LanguageDetector | None:
    """One detector per set of languages, models loaded once per process (they are large)."""
    languages = [lang for lang in (_lingua_language(c) for c in codes) if lang is not None]
    if len(languages) < 2:
        return None
    log.debug("loading language models for %s", ", ".join(codes))
    return (
        LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()
    )


def candidate_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """The languages a customer may be answered in: the business's, plus English."""
    ordered = list(dict.fromkeys([*languages, "en"]))
    return tuple(ordered)


def detect_language(
    texts: Iterable[str],
    *,
    languages: Sequence[str],
    current: str | None,
    default: str,
) -> Detection:
    """The language to answer this burst in.

    `current` is the conversation's language (None for a new conversation): it is kept unless the
    burst is clearly written in another of `languages`.
    """
    allowed = candidate_languages(languages)
    keep = current if current in allowed else None
    fallback = keep or (default if default in allowed else allowed[0])
    text = _NOISE.sub(" ", " ".join(t for t in texts if t)).strip()
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return Detection(fallback, False)
    if "ar" in allowed and sum(1 for c in letters if _ARABIC.match(c)) / len(letters) > 0.5:
        return Detection("ar", True)
    tokens = [w for w in words(text) if not w.isdigit()]
    hints = {
        code: min(MAX_HINTS, sum(map(language_hints(code).__contains__, tokens)))
        for code in allowed
    }
    if len(tokens) < MIN_WORDS:
        # "Hola", "merci", "ok": only a greeting or thanks word of one language says anything,
        # and it only decides for a conversation that has no language yet.
        best = _unique_best(hints)
        if keep is None and best is not None:
            return Detection(best, True)
        return Detection(fallback, False)
    scores = dict.fromkeys(allowed, 0.0)
    found = detector(allowed)
    if found is not None:
        for value in found.compute_language_confidence_values(text):
            code = value.language.iso_code_639_1.name.lower()
            if code in scores:
                scores[code] = value.value
    for code, count in hints.items():
        scores[code] += HINT_BONUS * count
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    (top, top_score), runner_up = ranked[0], (ranked[1][1] if len(ranked) > 1 else 0.0)
    if top_score >= CLEAR and top_score - runner_up >= MARGIN:
        return Detection(top, True)
    if keep is None and top_score > runner_up:
        return Detection(top, False)  # a first guess for a new conversation
    return Detection(fallback, False)


def _unique_best(hints: dict[str, int]) -> str | None:
    if not hints:
        return None
    best = max(hints.values())
    if best == 0:
        return None
    winners = [code for code, count in hints.items() if count == best]
    return winners[0] if len(winners) == 1 else None
