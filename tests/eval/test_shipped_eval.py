"""The labelled conversations shipped in prompts/eval/: they cover statuses, scores, phones, merges,
injections, the knowledge section that answers and the language of the reply in every shipped
language, and the offline engine passes all of them (CI runs them with the rest of the suite)."""

from __future__ import annotations

import json

import phonenumbers
import pytest

from bot import load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from bot.text import guess_language
from leaddesk.cli import main
from leaddesk.cli.eval import case_files, read_cases

EVAL_DIR = DEFAULT_PROMPTS_DIR / "eval"


@pytest.fixture(scope="module")
def cases():
    config = load_prompts(DEFAULT_PROMPTS_DIR)
    found, problems = read_cases(case_files([EVAL_DIR]), statuses=config.status_names)
    assert problems == []
    return found


def test_the_cases_cover_statuses_bands_phones_merges_languages_and_injections(cases):
    assert len(cases) >= 40
    expected = [c.expect for c in cases]
    statuses = {s for e in expected for s in e.get("status_in", [])}
    assert {"New", "Interested", "Scouting", "Follow Up", "Not Interested"} <= statuses
    assert any("converted" in c.id for c in cases)  # Converted: only a human may set it

    def within(low: int, high: int) -> bool:
        return any(
            e.get("score_min", 0) >= low and e.get("score_max", 100) <= high
            for e in expected
            if "score_min" in e or "score_max" in e
        )

    bands = [(0, 20), (21, 40), (41, 60), (61, 80), (81, 100)]
    assert all(within(low, high) for low, high in bands)

    countries = {
        phonenumbers.region_code_for_number(phonenumbers.parse(e["phone"]))
        for e in expected
        if e.get("phone")
    }
    assert len(countries) >= 10
    assert any("phone" in e and e["phone"] is None for e in expected)  # distractors only

    merges = [
        c for c in cases if c.expect.get("leads") == 1 and len({m.channel for m in c.messages}) > 1
    ]
    assert len(merges) >= 3
    assert any(c.expect.get("leads", 0) >= 2 for c in cases)

    languages = {guess_language([m.text for m in c.messages]) for c in cases}
    assert {"es", "ar", "fr", "de", "pt"} <= languages
    assert len([c for c in cases if c.id.startswith("inject")]) >= 5


def test_every_shipped_language_has_wrong_section_and_language_drift_cases(cases):
    config = load_prompts(DEFAULT_PROMPTS_DIR)
    by_language: dict[str, set[str]] = {}
    for case in cases:
        language = case.expect.get("reply_language")
        if language is None:
            continue
        kind = "section" if "reply_knowledge" in case.expect else "language"
        if case.id.startswith("drift"):
            kind = "language"
        by_language.setdefault(language, set()).add(kind)
        # A language case checks facts too, not only the language.
        assert case.expect.get("reply_contains"), case.id
    for language in config.business.languages:
        assert by_language.get(language, set()) >= {"section", "language"}, language
    assert sum(1 for c in cases if "reply_language" in c.expect) >= 35


def test_the_offline_engine_passes_every_case(capsys):
    code = main(["eval", str(EVAL_DIR), "--json"])
    result = json.loads(capsys.readouterr().out)
    summary = result["summary"]
    failed = [(c["id"], c["problems"]) for c in result["cases"] if not c["passed"]]
    assert summary["total"] >= 120
    assert failed == []
    assert summary["passed"] == summary["total"]
    assert summary["by_expectation"]["reply_language"]["accuracy"] == 1.0
    assert code == 0
