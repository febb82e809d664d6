"""How the copilot compares what agents type with names and words: accent-, case- and
punctuation-insensitive folding, and fuzzy scores (rapidfuzz) for typos."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

_SEPARATORS = re.compile(r"[\-‐‑‒–—'’`´_./]+")
_NOT_WORD = re.compile(r"[^\w@+#]+")


@lru_cache(maxsize=65536)
def fold(text: str | None) -> str:
    """Lower-case, accent-free, single-spaced: 'María-José  O’Neil' -> 'maria jose o neil'."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    bare = _SEPARATORS.sub(" ", bare)
    return " ".join(_NOT_WORD.sub(" ", bare).split())


def fold_word(word: str) -> str:
    """One token folded, punctuation around it dropped."""
    return fold(word).replace(" ", "")


def name_score(query: str, name: str) -> float:
    """How well a folded query names a folded name, 0-100: every typed word must start a word of
    the name (exact, prefix or near) for a high score; whole-name typos still score by ratio."""
    if not query or not name:
        return 0.0
    if query == name:
        return 100.0
    words = name.split()
    typed = query.split()
    per_word: list[float] = []
    for word in typed:
        best = 0.0
        for candidate in words:
            if candidate == word:
                best = 100.0
                break
            if len(word) >= 3 and candidate.startswith(word):
                best = max(best, 92.0)
            elif len(word) >= 4:
                best = max(best, fuzz.ratio(word, candidate) * 0.95)
        per_word.append(best)
    words_score = min(per_word) if per_word else 0.0
    if words_score >= 99.0 and len(typed) < len(words):
        words_score = 96.0  # "maria" names "Maria Lopez" well, but less than the full name does
    return max(words_score, fuzz.ratio(query, name) * 0.97)


def closest_word(word: str, vocabulary: dict[str, str]) -> str | None:
    """The canonical word a typo stands for ('qualfy' -> 'qualify', 'drfat' -> 'draft'), or None:
    one edit (a letter dropped, doubled, swapped or wrong) for short words, two for long ones."""
    if word in vocabulary:
        return vocabulary[word]
    if len(word) < 4:
        return None
    allowed = 1 if len(word) < 8 else 2
    best, best_distance = None, allowed + 1
    for known, canonical in vocabulary.items():
        if len(known) < 4 or abs(len(known) - len(word)) > allowed:
            continue
        distance = OSA.distance(word, known, score_cutoff=allowed)
        if distance < best_distance:
            best, best_distance = canonical, distance
    return best
