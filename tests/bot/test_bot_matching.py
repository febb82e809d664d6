"""Keyword matching: the precompiled matcher (an Aho-Corasick pass that picks the keywords whose
pattern can match) finds exactly what trying every keyword's pattern on the text finds, over the
shipped prompts' keyword sets and odd texts, and it is compiled once per configuration version."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import bot.scoring
import bot.text
from bot import load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from bot.knowledge import knowledge_index
from bot.reload import PromptStore
from bot.scoring import CustomerMessage, assess
from bot.text import KeywordSet, Match, keyword_pattern, normalize_with_map
from tests.prompts.conftest import edit

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


@functools.cache
def reference_normalize(text: str) -> tuple[str, tuple[int, ...]]:
    """Normalisation one character at a time, as it was before the ASCII shortcut."""
    out: list[str] = []
    index: list[int] = []
    for i, char in enumerate(text.translate(_APOSTROPHES)):
        for piece in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(piece):
                continue
            for folded in piece.casefold():
                out.append(folded)
                index.append(i)
    return "".join(out), tuple(index)


compiled = functools.lru_cache(maxsize=None)(keyword_pattern)


def reference_find(keywords: KeywordSet, text: str) -> list[Match]:
    """Every keyword's pattern tried on the whole text, as matching worked before the automaton."""
    if not text:
        return []
    normalized, index = reference_normalize(text)
    matches: list[Match] = []
    bare = re.sub(r"[\W_]+", " ", normalized).strip()
    whole: dict[str, tuple[str, str]] = {}  # a whole message listed twice: the last one counts
    for language, words in keywords.by_language.items():
        for keyword in words:
            if keyword.startswith("="):
                exact = re.sub(r"[\W_]+", " ", reference_normalize(keyword[1:])[0]).strip()
                whole[exact] = (keyword, language)
    if bare in whole:
        matches.append(Match(*whole[bare], 0, len(text)))
    for language, words in keywords.by_language.items():
        for keyword in words:
            if keyword.startswith("="):
                continue
            for found in compiled(keyword).finditer(normalized):
                if found.end() == found.start():
                    continue
                start, end = index[found.start()], index[found.end() - 1] + 1
                matches.append(Match(keyword, language, start, end))
    matches.sort(key=lambda m: (m.start, -(m.end - m.start)))
    return matches


def keyword_sets(value: Any, found: list[KeywordSet] | None = None) -> list[KeywordSet]:
    """Every KeywordSet inside a configuration."""
    found = [] if found is None else found
    if isinstance(value, KeywordSet):
        found.append(value)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            keyword_sets(getattr(value, name), found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            keyword_sets(getattr(value, item.name), found)
    elif isinstance(value, dict):
        for item in value.values():
            keyword_sets(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            keyword_sets(item, found)
    return found


def eval_texts() -> list[str]:
    """The customer messages of the shipped eval cases, in every shipped language."""
    texts = []
    for path in sorted((DEFAULT_PROMPTS_DIR / "eval").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                case = json.loads(line)
                texts += [m["text"] for m in case.get("messages", []) if m.get("text")]
    return texts


@pytest.fixture(scope="module")
def shipped() -> list[KeywordSet]:
    sets = keyword_sets(load_prompts())
    assert len(sets) > 10 and sum(len(s.by_language) for s in sets) > 30
    return sets


def odd_texts(keywords: list[str]) -> list[str]:
    """Each keyword as a customer might write it: shouting, without or with accents, glued to
    punctuation and emoji, inside a word, and all of them in one very long text."""
    texts = []
    for keyword in keywords:
        word = keyword.lstrip("=").rstrip("*")
        bare = "".join(
            c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)
        )
        texts += [
            word,
            word.upper(),
            bare,
            f"¿{word}?!",
            f"😀{word}🙏 ok",
            f"x{word}y",
            f"{word}s and {word}, {word}.",
            word.replace(" ", "   \n"),
            word.replace("'", "\u2019"),
        ]
    texts.append(" … ".join(k.lstrip("=").rstrip("*") for k in keywords) * 3)
    return texts


def as_tuples(matches: list[Match]) -> list[tuple[str, str, int, int]]:
    return [(m.keyword, m.language, m.start, m.end) for m in matches]


def test_the_matcher_finds_what_every_pattern_finds_in_the_eval_messages(shipped):
    texts = eval_texts()
    assert len(texts) > 100
    for keywords in shipped:
        for text in texts:
            assert as_tuples(keywords.find(text)) == as_tuples(reference_find(keywords, text)), text


def test_the_matcher_finds_what_every_pattern_finds_in_odd_texts(shipped):
    every_keyword = sorted({k for s in shipped for words in s.by_language.values() for k in words})
    texts = [*odd_texts(every_keyword), "", " ", "🙂🙂🙂", "?!", "\u0301\u0301", "a" * 5000]
    for keywords in shipped:
        for text in texts:
            assert as_tuples(keywords._find(text)) == as_tuples(reference_find(keywords, text)), (
                keywords.by_language,
                text,
            )


ALPHABET = st.sampled_from(
    ["price", "precio", "cuánto", "CUANTO", "combien", "coûte", "how much", "interesad", "أريد",
     "معرفة", "بالسعر", " ", "  ", "\n", ",", "?", "¿", "!", "'", "\u2019", "-", "😀", "é",
     "e\u0301", "ß", "İ", "ﬁ", "1", "_", "not", "no", "thanks", "call me", "quiero"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_the_matcher_agrees_on_generated_texts(shipped, text):
    for keywords in shipped:
        assert as_tuples(keywords._find(text)) == as_tuples(reference_find(keywords, text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_the_ascii_shortcut_normalises_like_the_full_path(text):
    normalized, index = normalize_with_map(text)
    assert (normalized, tuple(index)) == reference_normalize(text)


def test_keywords_without_a_word_are_still_tried_on_every_text():
    marks = KeywordSet({"en": ("\u0301*", "?!")})
    for text in ("hello there?!", "no question", "¿qué?! sí"):
        assert as_tuples(marks.find(text)) == as_tuples(reference_find(marks, text))
    assert marks.find("hello")  # a bare prefix pattern matches any word, as before


def test_ties_keep_the_keywords_order():
    keywords = KeywordSet({"en": ("solar panel*", "solar panels", "solar"), "es": ("solar",)})
    found = keywords.find("Solar panels please")
    assert as_tuples(found) == as_tuples(reference_find(keywords, "Solar panels please"))
    assert keywords.first("Solar panels please") == found[0]
    assert found[0].keyword == "solar panel*" and (found[0].start, found[0].end) == (0, 12)


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped prompts (without the eval cases)."""
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target, ignore=shutil.ignore_patterns("eval"))
    return target


class CountingAutomata:
    """Stands in for the `ahocorasick` module and counts the automata built."""

    def __init__(self, real: Any):
        self.real = real
        self.built = 0

    def Automaton(self) -> Any:  # noqa: N802 - the module's own name
        self.built += 1
        return self.real.Automaton()


def test_the_matcher_is_compiled_once_per_configuration_and_again_on_reload(
    prompts_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    counting = CountingAutomata(bot.text.ahocorasick)
    monkeypatch.setattr(bot.text, "ahocorasick", counting)
    store = PromptStore(prompts_dir, poll_seconds=0)
    built = counting.built
    assert built >= len(keyword_sets(store()))

    texts = ["Hi there", "How much is the Home package?", "¿Cuánto cuesta el paquete Plus?"]
    for number in range(30):
        messages = [CustomerMessage(f"{text} {number}", new=True) for text in texts]
        assess(messages, config=store(), terms=frozenset())
    assert counting.built == built  # messages reuse the compiled matchers

    scoring = prompts_dir / "scoring.yaml"
    assert not store().scoring.signals["interest"].keywords.find("I fancy a gizmo")
    edit(scoring, "en: [interested, ", "en: [fancy a gizmo, interested, ")
    assert store.check() is True
    assert counting.built >= 2 * built  # the new version compiled its own
    assert store().scoring.signals["interest"].keywords.first("I fancy a GIZMO!")
    after = counting.built
    assess([CustomerMessage("I fancy a gizmo", new=True)], config=store(), terms=frozenset())
    assert counting.built == after


WINDOW = [
    "Hi there",
    "Not interested in the battery. How much is the Home package?",
    "It's too expensive, I'm comparing offers",
    "Does the Home 6.5 kW package suit a flat roof, and how long does installation take?",
    "I want to buy it this week, send the contract",
]


def window_of(texts: list[str]) -> list[CustomerMessage]:
    return [CustomerMessage(text, new=i == len(texts) - 1) for i, text in enumerate(texts)]


def test_each_turn_matches_only_the_texts_the_configuration_has_not_seen(
    prompts_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    config = load_prompts(prompts_dir)
    terms = knowledge_index(config).terms
    matched: list[str] = []
    keyword_signals = bot.scoring._keyword_signals

    def counting(text: str, *args: Any) -> Any:
        matched.append(text)
        return keyword_signals(text, *args)

    monkeypatch.setattr(bot.scoring, "_keyword_signals", counting)
    for turn in range(1, len(WINDOW) + 1):
        # Each turn scores the whole window again, as the bot does.
        found = assess(window_of(WINDOW[:turn]), config=config, terms=terms)
        fresh = assess(window_of(WINDOW[:turn]), config=load_prompts(prompts_dir), terms=terms)
        assert found == fresh
    # Once per text under `config`, and once per turn under each fresh configuration.
    assert len(matched) == len(WINDOW) + sum(range(1, len(WINDOW) + 1))
    # What the configuration keeps is not part of it: it still equals one freshly read.
    assert config.scoring == load_prompts(prompts_dir).scoring


def test_an_edited_configuration_does_not_answer_from_what_the_last_one_kept(prompts_dir: Path):
    store = PromptStore(prompts_dir, poll_seconds=0)
    texts = ["Hi", "I fancy a gizmo"]
    before = assess(window_of(texts), config=store(), terms=frozenset())
    assert "interest" not in before.signals and "Solar panels" not in before.interests
    scoring = prompts_dir / "scoring.yaml"
    edit(scoring, "en: [interested, ", "en: [fancy a gizmo, interested, ")
    edit(scoring, "en: [solar, panel*", "en: [gizmo*, solar, panel*")
    assert store.check() is True
    after = assess(window_of(texts), config=store(), terms=frozenset())
    assert "interest" in after.signals and "Solar panels" in after.interests
    assert after.score > before.score
