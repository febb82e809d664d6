"""The words an agent may type to answer the copilot's confirmations: one set for every path."""

from __future__ import annotations

import pytest

from copilot.service import match_choice

YES_NO = [{"value": "yes", "label": "Yes"}, {"value": "no", "label": "No"}]


@pytest.mark.parametrize("said", ["yes", "Yup!", "yes please", "please do", "sí", "ok."])
def test_yes_words_confirm(said: str) -> None:
    assert match_choice(said, YES_NO) == "yes"


@pytest.mark.parametrize("said", ["no", "Nope", "never mind", "não"])
def test_no_words_decline(said: str) -> None:
    assert match_choice(said, YES_NO) == "no"


def test_yes_picks_the_single_merge_offered() -> None:
    options = [{"value": "merge:12", "label": "Merge into 12"}, {"value": "no", "label": "No"}]
    assert match_choice("yup", options) == "merge:12"


def test_other_words_pick_nothing() -> None:
    assert match_choice("maybe later", YES_NO) is None
