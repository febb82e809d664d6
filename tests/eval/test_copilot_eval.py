"""`leaddesk eval --copilot`: labelled chats with the copilot on a seeded desk; the shipped cases
cover the ways reps type and all pass offline; the report has the bot eval's shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot import load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.cli import main
from leaddesk.cli.copilot_eval import evaluate, read_copilot_cases, read_desk
from leaddesk.cli.eval import case_files

COPILOT_EVAL = DEFAULT_PROMPTS_DIR / "eval" / "copilot"


@pytest.fixture(scope="module")
def shipped():  # type: ignore[no-untyped-def]
    desk = read_desk(COPILOT_EVAL)
    cases, problems = read_copilot_cases(case_files([COPILOT_EVAL]), desk)
    assert problems == []
    return desk, cases


def test_the_shipped_cases_cover_how_reps_type(shipped) -> None:  # type: ignore[no-untyped-def]
    _desk, cases = shipped
    assert len(cases) >= 120
    ids = [case.id for case in cases]
    for prefix in (
        "name-",
        "typo-",
        "after-",
        "follow-",
        "es-",
        "fr-",
        "de-",
        "pt-",
        "ar-",
        "bulk-",
        "change-",
        "digest-",
        "list-",
        "draft-",
    ):
        assert any(i.startswith(prefix) for i in ids), prefix
    turns = [turn for case in cases for turn in case.turns]
    assert sum(len(case.turns) > 1 for case in cases) >= 30  # threads, not single questions
    assert (
        sum(turn.say.strip().lower() in ("yes", "sí", "sim") for turn in turns) >= 10
    )  # changes after a yes
    assert (
        sum(bool(turn.expect.get("pending")) for turn in turns) >= 20
    )  # nothing changes before it
    assert sum("lead" in turn.expect for turn in turns) >= 100


def test_every_shipped_case_passes_offline(shipped) -> None:  # type: ignore[no-untyped-def]
    desk, cases = shipped
    outcomes, summary = evaluate(cases, desk, config=load_prompts(DEFAULT_PROMPTS_DIR))
    failed = {o.id: o.problems for o in outcomes if not o.passed}
    assert failed == {}
    assert summary["passed"] == summary["total"] == len(cases)
    assert {"tool", "lead", "pending", "changes"} <= set(summary["by_expectation"])


def _cases_dir(tmp_path: Path, *cases: Any) -> Path:
    folder = tmp_path / "copilot"
    folder.mkdir()
    shutil.copy(COPILOT_EVAL / "desk.yaml", folder / "desk.yaml")
    (folder / "cases.jsonl").write_text(
        "# test cases\n"
        + "\n".join(c if isinstance(c, str) else json.dumps(c) for c in cases)
        + "\n",
        encoding="utf-8",
    )
    return folder


PASSING = {
    "id": "ok",
    "agent": "sarah",
    "turns": [
        {"say": "archive nina", "tool": "archive_lead", "lead": "nina", "pending": True},
        {"say": "yes", "changes": {"nina": {"archived": True}}},
    ],
}
# Claims the change happens at once: it waits for a yes, so the case fails on that turn.
WRONG = {
    "id": "wrong",
    "agent": "sarah",
    "turns": [
        {
            "say": "archive nina",
            "tool": "qualify_lead",
            "lead": "zoe",
            "changes": {"nina": {"archived": True}},
        }
    ],
}


def test_a_table_and_exit_0_when_every_case_passes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = _cases_dir(tmp_path, PASSING)
    assert main(["eval", "--copilot", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "engine: offline" in out
    assert "ok" in out and "pass" in out and "1/1 cases passed (100.0%)" in out
    assert "changes" in out and "pending" in out


def test_json_report_and_exit_1_when_a_case_fails(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = _cases_dir(
        tmp_path, PASSING, WRONG, '{"id": "broken", "agent": "nobody", "turns": []}'
    )
    assert main(["eval", "--copilot", "--json", str(folder)]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report) == {"cases", "summary"}
    by_id = {case["id"]: case for case in report["cases"]}
    assert by_id["ok"]["passed"] is True and by_id["ok"]["problems"] == []
    wrong = by_id["wrong"]
    assert wrong["passed"] is False
    assert any("expected tool qualify_lead, got archive_lead" in p for p in wrong["problems"])
    assert any("expected lead zoe, got nina" in p for p in wrong["problems"])
    assert any("expected changes" in p for p in wrong["problems"])
    assert by_id["broken"]["passed"] is False and "not on the desk" in captured.err
    summary = report["summary"]
    assert summary["passed"] == 1 and summary["total"] == 3
    assert summary["by_expectation"]["tool"] == {"passed": 1, "total": 2, "accuracy": 0.5}


def test_a_change_before_the_yes_fails_the_turn(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    # The turn itself must change nothing: the assignment happens at once, so "no change" fails.
    case = {
        "id": "unasked",
        "agent": "sarah",
        "turns": [{"say": "assign kim to me", "tool": "assign_lead"}],
    }
    folder = _cases_dir(tmp_path, case)
    assert main(["eval", "--copilot", "--json", str(folder)]) == 1
    [result] = json.loads(capsys.readouterr().out)["cases"]
    assert result["problems"] == [
        "turn 1: nothing should change yet, but {'kim': {'agent': 'sarah'}}"
    ]
