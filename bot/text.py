"""Text helpers shared by the loader, the scorer and the offline engine: normalisation, keyword
matching with positions in the original text, evidence excerpts, sentence splitting, language guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import ahocorasick

_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_WORD = re.compile(r"\w", re.UNICODE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


@lru_cache(maxsize=4096)
def normalize_with_map(text: str) -> tuple[str, Sequence[int]]:
    """Case-fold, strip accents and unify apostrophes; also return each output char's source index.

    Cached (bounded): the scorer matches the same recent messages against many keyword lists."""
    if text.isascii():
        # Nothing to decompose or strip, and ASCII case folding is lowering: one char per char.
        return text.translate(_APOSTROPHES).lower(), range(len(text))
    out: list[str] = []
    index: list[int] = []
    for i, char in enumerate(text.translate(_APOSTROPHES)):
        decomposed = unicodedata.normalize("NFKD", char)
        for piece in decomposed:
            if unicodedata.combining(piece):
                continue
            for folded in piece.casefold():
                out.append(folded)
                index.append(i)
    return "".join(out), tuple(index)


def normalize(text: str) -> str:
    return normalize_with_map(text)[0]


@dataclass(frozen=True)
class Match:
    """One keyword found in a text: the keyword as written and its span in the original text."""

    keyword: str
    language: str
    start: int
    end: int


FIND_CACHE_SIZE = 256


@dataclass
class KeywordSet:
    """Keywords per language, compiled once: words, `word*` prefixes, `=text` whole messages.

    Built with the configuration (so once per configuration version): one pattern per keyword,
    and one Aho-Corasick automaton of each keyword's longest literal word, which finds in a
    single pass over a text the few keywords whose pattern can match there."""

    by_language: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._found: dict[str, tuple[Match, ...]] = {}
        self._patterns: list[tuple[re.Pattern[str], str, str]] = []
        self._exact: dict[str, tuple[str, str]] = {}
        # Keywords without a literal word (only punctuation and marks) are tried on every text.
        self._always: tuple[int, ...] = ()
        self._automaton: Any = None
        anchors: dict[str, list[int]] = {}
        always: list[int] = []
        for language, keywords in self.by_language.items():
            for keyword in keywords:
                if keyword.startswith("="):
                    self._exact[_bare(normalize(keyword[1:]))] = (keyword, language)
                    continue
                position = len(self._patterns)
                self._patterns.append((keyword_pattern(keyword), keyword, language))
                anchor = keyword_anchor(keyword)
                if anchor:
                    anchors.setdefault(anchor, []).append(position)
                else:
                    always.append(position)
        self._always = tuple(always)
        if anchors:
            automaton = ahocorasick.Automaton()
            for anchor, positions in anchors.items():
                automaton.add_word(anchor, tuple(positions))
            automaton.make_automaton()
            self._automaton = automaton

    def __bool__(self) -> bool:
        return bool(self._patterns or self._exact)

    def find(self, text: str) -> list[Match]:
        """Every keyword occurrence in `text` (non-overlapping per keyword), in text order."""
        return list(self._matches(text))

    def _matches(self, text: str) -> tuple[Match, ...]:
        """`find`'s answer, kept for the last texts: scoring and retrieval look at the same
        messages many times per turn."""
        if not text:
            return ()
        cached = self._found.get(text)
        if cached is not None:
            return cached
        matches = tuple(self._find(text))
        if len(self._found) >= FIND_CACHE_SIZE:
            self._found.clear()  # plain dict operations: safe across the server's threads
        self._found[text] = matches
        return matches

    def _find(self, text: str) -> list[Match]:
        normalized, index = normalize_with_map(text)
        matches: list[Match] = []
        if self._exact:
            bare = _bare(normalized)
            if bare in self._exact:
                keyword, language = self._exact[bare]
                matches.append(Match(keyword, language, 0, len(text)))
        candidates = set(self._always)
        if self._automaton is not None:
            for _end, positions in self._automaton.iter(normalized):
                candidates.update(positions)
        patterns = self._patterns
        # In the keywords' own order, as before: it breaks ties between equal spans.
        for position in sorted(candidates):
            pattern, keyword, language = patterns[position]
            for found in pattern.finditer(normalized):
                if found.end() == found.start():
                    continue
                start = index[found.start()]
                end = index[found.end() - 1] + 1
                matches.append(Match(keyword, language, start, end))
        matches.sort(key=lambda m: (m.start, -(m.end - m.start)))
        return matches

    def first(self, text: str) -> Match | None:
        found = self._matches(text)
        return found[0] if found else None

    def languages(self) -> set[str]:
        return set(self.by_language)


def _bare(normalized: str) -> str:
    return re.sub(r"[\W_]+", " ", normalized).strip()


def keyword_anchor(keyword: str) -> str:
    """The longest word of a keyword as it reads normalised: text its pattern cannot match without.

    Empty for a keyword with no word at all, which must then be tried on every text."""
    parts = normalize(keyword.rstrip("*").strip()).split()
    return max(parts, key=len) if parts else ""


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Compile a keyword: accent/case-insensitive, flexible spaces, word boundaries."""
    prefix = keyword.endswith("*")
    text = normalize(keyword.rstrip("*").strip())
    body = r"\s+".join(re.escape(part) for part in text.split())
    # Arabic attaches articles and prepositions to words ("بالسعر"): match inside words.
    bounded = not _ARABIC.search(text)
    before = r"(?<!\w)" if bounded and text and _WORD.match(text[0]) else ""
    if prefix:
        after = r"\w*"
    elif bounded and text and _WORD.match(text[-1]):
        after = r"(?!\w)"
    else:
        after = ""
    return re.compile(before + body + after)


def excerpt(text: str, start: int, end: int, width: int = 120) -> str:
    """The sentence around text[start:end], shortened to about `width` characters."""
    left = max(text.rfind(mark, 0, start) for mark in (".", "!", "?", "\n", "¿", "¡"))
    right_candidates = [
        i for i in (text.find(mark, end) for mark in (".", "!", "?", "\n")) if i != -1
    ]
    right = min(right_candidates) + 1 if right_candidates else len(text)
    sentence_start = left + 1
    sentence = text[sentence_start:right].strip()
    if len(sentence) <= width:
        return sentence
    middle = (start + end) // 2 - sentence_start
    lo = max(0, middle - width // 2)
    hi = min(len(sentence), lo + width)
    lo = max(0, hi - width)
    clipped = sentence[lo:hi].strip()
    return ("…" if lo > 0 else "") + clipped + ("…" if hi < len(sentence) else "")


def clip(text: str, width: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?؟\n])\s+", text or "")
    return [p.strip() for p in parts if p.strip()]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", normalize(text or ""))


def stem(word: str) -> str:
    """A very light plural stripper (batteries -> battery, packages -> package)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz" and not word.endswith("ses"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# A few very common words per language: enough to tell the customer's language apart.
_LANGUAGE_HINTS: dict[str, set[str]] = {
    "en": {
        "the",
        "is",
        "are",
        "and",
        "you",
        "your",
        "what",
        "how",
        "do",
        "does",
        "can",
        "i",
        "my",
        "for",
        "with",
        "much",
        "hi",
        "hello",
        "thanks",
        "please",
        "want",
        "have",
        "price",
        "when",
    },
    "es": {
        "el",
        "la",
        "los",
        "las",
        "es",
        "y",
        "que",
        "como",
        "cuanto",
        "cuesta",
        "hola",
        "gracias",
        "quiero",
        "para",
        "por",
        "con",
        "mi",
        "tienen",
        "precio",
        "una",
        "un",
        "de",
        "del",
        "cuando",
        "puedo",
        "necesito",
        "buenas",
        "buenos",
        "dias",
        "esta",
        "estoy",
    },
    "fr": {
        "le",
        "la",
        "les",
        "est",
        "et",
        "que",
        "comment",
        "combien",
        "bonjour",
        "merci",
        "je",
        "veux",
        "pour",
        "avec",
        "mon",
        "vous",
        "avez",
        "prix",
        "une",
        "des",
        "du",
        "suis",
        "quand",
        "pouvez",
    },
    "de": {
        "der",
        "die",
        "das",
        "ist",
        "und",
        "wie",
        "viel",
        "hallo",
        "danke",
        "ich",
        "mochte",
        "fur",
        "mit",
        "mein",
        "sie",
        "haben",
        "preis",
        "ein",
        "eine",
        "kostet",
        "wann",
        "bitte",
        "guten",
        "tag",
    },
    "pt": {
        "o",
        "os",
        "as",
        "e",
        "que",
        "como",
        "quanto",
        "custa",
        "ola",
        "obrigado",
        "obrigada",
        "quero",
        "para",
        "com",
        "meu",
        "minha",
        "voces",
        "tem",
        "preco",
        "uma",
        "um",
        "do",
        "da",
        "quando",
        "bom",
        "dia",
        "estou",
        "gostaria",
    },
}


def language_hints(language: str) -> frozenset[str]:
    """Very common words of a language (empty for a language without a list)."""
    return _HINT_SETS.get(language, frozenset())


_HINT_SETS = {language: frozenset(hints) for language, hints in _LANGUAGE_HINTS.items()}


def guess_language(texts: Iterable[str], default: str = "en") -> str:
    """Guess the language of the customer's recent messages (ISO 639-1), or `default`."""
    joined = " ".join(t for t in texts if t)
    if not joined.strip():
        return default
    letters = [c for c in joined if c.isalpha()]
    if letters and sum(1 for c in letters if _ARABIC.match(c)) / len(letters) > 0.3:
        return "ar"
    tokens = words(joined)
    if not tokens:
        return default
    scores = {lang: sum(1 for t in tokens if t in hints) for lang, hints in _LANGUAGE_HINTS.items()}
    # Spanish and Portuguese share many words; the tie-breakers below are the distinctive ones.
    if scores["es"] and scores["pt"]:
        distinct_pt = sum(
            1
            for t in tokens
            if t
            in {
                "voces",
                "nao",
                "obrigado",
                "obrigada",
                "tem",
                "quanto",
                "ola",
                "gostaria",
                "meu",
                "minha",
            }
        )
        distinct_es = sum(
            1
            for t in tokens
            if t
            in {
                "cuanto",
                "cuesta",
                "hola",
                "gracias",
                "tienen",
                "necesito",
                "el",
                "los",
                "del",
                "quiero",
            }
        )
        scores["pt"] += distinct_pt
        scores["es"] += distinct_es
    best = max(scores, key=lambda lang: (scores[lang], lang == default))
    if scores[best] == 0 or (scores[best] == scores.get(default, 0)):
        return default
    return best
