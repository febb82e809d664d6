"""How the copilot reads reps' wording: folded and fuzzy names, typo-tolerant command words,
afterthoughts, pronouns, other languages from prompts/copilot, dates, and the vocabulary check."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot import load_prompts
from copilot.dates import period_range
from copilot.intents import Reply, ToolCall, route
from copilot.text import closest_word, fold, name_score
from copilot.vocabulary import COMMAND_WORDS, check_vocabulary, load_vocabulary
from leaddesk.cli import main
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def vocabulary(prompts):  # type: ignore[no-untyped-def]
    return load_vocabulary(prompts)


def read(text: str, vocabulary, **context):  # type: ignore[no-untyped-def]
    statuses = ("New", "Interested", "Scouting", "Follow Up", "Not Interested", "Converted")
    return route(
        text,
        statuses=statuses,
        vocabulary=vocabulary,
        fields=["roof_type", "monthly_bill"],
        **context,
    )


def test_names_fold_accents_case_hyphens_and_apostrophes() -> None:
    assert fold("María-José  O’Neil") == "maria jose o neil"
    assert fold("Jürgen MÜLLER") == "jurgen muller"
    assert name_score("maria jose", fold("María José Fernández")) >= 90
    assert name_score("garcia marquez", fold("José García-Márquez")) >= 90
    assert name_score("francios", fold("François Lefèvre")) >= 82  # a typo still names him
    assert name_score("dana", fold("Nina Smith")) < 60


def test_typos_are_corrected_towards_command_words_only() -> None:
    words = {w: w for w in COMMAND_WORDS}
    assert closest_word("qualfy", words) == "qualify"
    assert closest_word("qualiffy", words) == "qualify"
    assert closest_word("drfat", words) == "draft"
    assert closest_word("sumarise", words) == "summarise"
    assert closest_word("dana", words) is None
    assert closest_word("kwalify", words) is None  # two edits in a short word: not a guess


@pytest.mark.parametrize(
    ("text", "call"),
    [
        ("qualfy maria jose", ToolCall("qualify_lead", {"lead": "maria jose"})),
        ("drfat an intro email for 12", ToolCall("draft_intro_email", {"lead": "12"})),
        (
            "set 12 to follow up, she asked for a call",
            ToolCall("set_status", {"lead": "12", "status": "Follow Up"}),
        ),
        ("qualify 12 - he called this morning", ToolCall("qualify_lead", {"lead": "12"})),
        ("how warm is he?", ToolCall("check_hot", {"lead": "7"})),
        ("write him a first email", ToolCall("draft_intro_email", {"lead": "7"})),
        ("give that one to me", ToolCall("assign_lead", {"lead": "7", "agent": "me"})),
        (
            "set her company to Acme",
            ToolCall("set_field", {"lead": "7", "field": "company", "value": "Acme"}),
        ),
        (
            "rename 12 to Ana Ruiz",
            ToolCall("set_field", {"lead": "12", "field": "name", "value": "Ana Ruiz"}),
        ),
        (
            "set the name of lead 1 to Ana Ruiz",
            ToolCall("set_field", {"lead": "1", "field": "name", "value": "Ana Ruiz"}),
        ),
        (
            "set 12's roof type to metal",
            ToolCall("set_field", {"lead": "12", "field": "roof_type", "value": "metal"}),
        ),
        ("what happened yesterday?", ToolCall("activity_digest", {"period": "yesterday"})),
        ("what happened on monday", ToolCall("activity_digest", {"period": "monday"})),
        (
            "new leads last month",
            ToolCall("list_leads", {"kind": "recent", "period": "last month"}),
        ),
        ("what's next for 12?", ToolCall("next_action", {"lead": "12"})),
        ("show Mike's leads", ToolCall("list_leads", {"kind": "all", "agent": "mike"})),
        (
            "summarise my hot leads",
            ToolCall("list_leads", {"kind": "hot", "agent": "me", "detail": True}),
        ),
        (
            "assign all unassigned leads to Mike",
            ToolCall("bulk_update", {"kind": "unassigned", "action": "assign", "agent": "Mike"}),
        ),
        (
            "set all stale leads to not interested",
            ToolCall(
                "bulk_update", {"kind": "stale", "action": "status", "status": "Not Interested"}
            ),
        ),
        (
            "archive all leads with score below 10",
            ToolCall("bulk_update", {"kind": "all", "score_max": 9, "action": "archive"}),
        ),
        (
            "move all of Sarah's leads to Mike",
            ToolCall("reassign_leads", {"from_agent": "Sarah", "to_agent": "Mike"}),
        ),
        # other languages, from prompts/copilot/<language>.yaml
        ("resúmeme a María José", ToolCall("lead_summary", {"lead": "María José"})),
        (
            "pon a 12 en seguimiento, me pidió una llamada",
            ToolCall("set_status", {"lead": "12", "status": "Follow Up"}),
        ),
        ("asígnale ese lead a Mike", ToolCall("assign_lead", {"lead": "7", "agent": "Mike"})),
        ("¿qué pasó ayer?", ToolCall("activity_digest", {"period": "yesterday"})),
        (
            "nota para 12: llamó ayer",
            ToolCall("add_note", {"lead": "12", "text": "llamó ayer", "category": "General"}),
        ),
        ("donne-le à moi", ToolCall("assign_lead", {"lead": "7", "agent": "me"})),
        ("qualifie-le", ToolCall("qualify_lead", {"lead": "7"})),
        ("was ist gestern passiert?", ToolCall("activity_digest", {"period": "yesterday"})),
        ("o que aconteceu hoje?", ToolCall("activity_digest", {"period": "today"})),
        # English stays English: "resume" is not Spanish here
        ("resume the bot for 42", ToolCall("resume_bot", {"lead": "42"})),
    ],
)
def test_reps_wording_becomes_the_right_call(text: str, call: ToolCall, vocabulary) -> None:  # type: ignore[no-untyped-def]
    assert read(text, vocabulary, focus_lead_id=7) == call


def test_a_which_one_question_takes_a_name_or_a_distinguishing_word(vocabulary) -> None:  # type: ignore[no-untyped-def]
    clarify = {
        "tool": "qualify_lead",
        "args": {"lead": "maria"},
        "arg": "lead",
        "candidates": [12, 30],
        "labels": ["María José Fernández Solaris", "Maria Lopez"],
    }
    assert read("fernandez", vocabulary, clarify=clarify) == ToolCall(
        "qualify_lead", {"lead": "12"}
    )
    assert read("Lopez", vocabulary, clarify=clarify) == ToolCall("qualify_lead", {"lead": "30"})
    assert read("the one at solaris", vocabulary, clarify=clarify) == ToolCall(
        "qualify_lead", {"lead": "12"}
    )
    # "maria" names both: not a choice, so it is read as a new request.
    assert read("maria", vocabulary, clarify=clarify) != ToolCall("qualify_lead", {"lead": "12"})


def test_a_pronoun_without_a_lead_in_focus_asks_which_lead(vocabulary) -> None:  # type: ignore[no-untyped-def]
    intent = read("write him a first email", vocabulary)
    assert isinstance(intent, Reply) and "Which lead" in intent.text


def test_periods_are_days_of_the_business_time_zone() -> None:
    chicago = ZoneInfo("America/Chicago")
    now = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)  # Wednesday 10:00 in Chicago
    start, end, label = period_range("yesterday", now=now, zone=chicago)
    assert (start, end, label) == (
        datetime(2025, 3, 4, 6, 0, tzinfo=UTC),
        datetime(2025, 3, 5, 6, 0, tzinfo=UTC),
        "yesterday",
    )
    start, end, _ = period_range("monday", now=now, zone=chicago)
    assert start == datetime(2025, 3, 3, 6, 0, tzinfo=UTC) and end == datetime(
        2025, 3, 4, 6, 0, tzinfo=UTC
    )
    start, end, _ = period_range("last month", now=now, zone=chicago)
    assert start == datetime(2025, 2, 1, 6, 0, tzinfo=UTC) and end == datetime(
        2025, 3, 1, 6, 0, tzinfo=UTC
    )
    start, _, _ = period_range("this week", now=now, zone=chicago)
    assert start == datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown period"):
        period_range("someday", now=now)


def test_every_business_language_ships_a_vocabulary(prompts) -> None:  # type: ignore[no-untyped-def]
    assert check_vocabulary(prompts) == []
    for language in prompts.business.languages:
        assert (REPO_ROOT / "prompts" / "copilot" / f"{language}.yaml").is_file()


def test_prompts_check_reports_vocabulary_mistakes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", folder, ignore=shutil.ignore_patterns("eval"))
    (folder / "copilot" / "es.yaml").write_text(
        "phrases:\n  resumeme: summarise\n  bailame: dance with\npronouns: ese\nwords: []\n",
        encoding="utf-8",
    )
    assert main(["prompts", "check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "es.yaml:3: 'bailame' maps to 'dance with', which the copilot does not know" in out
    assert "es.yaml:4: pronouns must be a list" in out
    assert "es.yaml:5: unknown section 'words'" in out
    # An added word works without code.
    (folder / "copilot" / "es.yaml").write_text("phrases:\n  chequea: qualify\n", encoding="utf-8")
    assert main(["prompts", "check", str(folder)]) == 0
    config = load_prompts(folder)
    assert read("chequea a 12", load_vocabulary(config)) == ToolCall("qualify_lead", {"lead": "12"})
