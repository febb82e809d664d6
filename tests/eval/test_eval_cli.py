"""`leaddesk eval`: labelled cases through the replay pipeline; a table or the JSON shape of the
issue, accuracy per expectation, exit 1 when any case fails or is invalid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.cli import main

WEB = {"channel": "web", "sender": "v1"}


def _case(case_id: str, *texts: str, **expect: Any) -> dict[str, Any]:
    return {"id": case_id, "messages": [{**WEB, "text": t} for t in texts], "expect": expect}


def _write(path: Path, *cases: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# test cases\n"
        + "\n".join(c if isinstance(c, str) else json.dumps(c) for c in cases)
        + "\n",
        encoding="utf-8",
    )
    return path


PASSING = [
    _case("greeting", "Hi there", status_in=["New"], score_max=20, ai_paused=False, leads=1),
    _case(
        "price",
        "How much is the Home package?",
        status_in=["Scouting"],
        score_min=41,
        phone=None,
        reply_contains=["$12,400"],
        reply_must_not_contain=["check with the team"],
    ),
    {
        "id": "merge",
        "region": "GB",
        "messages": [
            {"channel": "web", "sender": "v1", "text": "Interested! Call me on 07911 123456"},
            {"channel": "whatsapp", "sender": "447911123456", "text": "Hi, me again"},
        ],
        "expect": {"leads": 1, "phone": "+447911123456"},
    },
]


def test_all_cases_pass_exit_0_with_a_table(tmp_path, capsys):
    cases = _write(tmp_path / "cases.jsonl", *PASSING)
    assert main(["eval", str(cases)]) == 0
    out = capsys.readouterr().out
    assert "engine: offline" in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line[:1].islower()}
    assert rows["greeting"] == rows["price"] == rows["merge"] == "pass"
    assert "3/3 cases passed (100.0%)" in out
    assert "status_in" in out and "2/2" in out  # accuracy per expectation kind


def test_a_run_leaves_the_bot_logging_as_it_found_it(tmp_path, capsys):
    import logging

    bot_log = logging.getLogger("bot")
    before = bot_log.level
    cases = _write(tmp_path / "cases.jsonl", *PASSING)
    assert main(["eval", str(cases)]) == 0
    # A server or test in the same process must still see the bot's warnings afterwards.
    assert bot_log.level == before


def test_json_output_has_the_documented_shape(tmp_path, capsys):
    failing = _case(
        "wrong",
        "How much is the Home package?",
        status_in=["New"],
        score_max=10,
        reply_contains=["unicorn"],
    )
    cases = _write(tmp_path / "cases.jsonl", *PASSING, failing)
    assert main(["eval", str(cases), "--json"]) == 1
    captured = capsys.readouterr()
    assert "engine: offline" in captured.err  # stdout is only the JSON
    data = json.loads(captured.out)
    assert set(data) == {"cases", "summary"}
    assert all(set(case) == {"id", "passed", "problems"} for case in data["cases"])
    assert [c["id"] for c in data["cases"]] == ["greeting", "price", "merge", "wrong"]
    assert [c["passed"] for c in data["cases"]] == [True, True, True, False]
    problems = data["cases"][3]["problems"]
    assert problems[0] == "status is Scouting, expected New"
    assert problems[1].startswith("score ") and problems[1].endswith("is above 10")
    assert problems[2] == "the last reply lacks 'unicorn'"
    summary = data["summary"]
    assert set(summary) == {"passed", "total", "by_expectation"}
    assert (summary["passed"], summary["total"]) == (3, 4)
    assert summary["by_expectation"]["status_in"] == {"passed": 2, "total": 3, "accuracy": 0.667}
    assert summary["by_expectation"]["leads"] == {"passed": 2, "total": 2, "accuracy": 1.0}


def test_every_expectation_kind_can_fail(tmp_path, capsys):
    case = {
        "id": "all-wrong",
        "messages": [{**WEB, "text": "Please call me, I want to buy the Home package"}],
        "expect": {
            "status_in": ["New"],
            "score_min": 0,
            "score_max": 20,
            "phone": "+15128675309",
            "leads": 2,
            "ai_paused": False,
            "reply_contains": ["wind turbine"],
            "reply_must_not_contain": ["advisor"],
        },
    }
    assert main(["eval", str(_write(tmp_path / "c.jsonl", case)), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    by_kind = result["summary"]["by_expectation"]
    failed = {kind for kind, counts in by_kind.items() if counts["passed"] == 0}
    assert failed == {
        "status_in",
        "score_max",
        "phone",
        "leads",
        "ai_paused",
        "reply_contains",
        "reply_must_not_contain",
    }
    assert by_kind["score_min"]["passed"] == 1
    assert "the bot is paused, expected it to answer" in result["cases"][0]["problems"]


def test_invalid_cases_are_reported_with_file_and_line_and_count_as_failed(tmp_path, capsys):
    cases = _write(
        tmp_path / "cases.jsonl",
        PASSING[0],
        "{oops",
        _case("bad-status", "hi", status_in=["Hot"]),
        {"id": "no-messages", "messages": [], "expect": {"phone": "555"}},
        {**PASSING[0]},  # the same id again
    )
    assert main(["eval", str(cases), "--json"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert f"{cases}:3: invalid JSON" in err
    assert f"{cases}:4: status_in: 'Hot' is not a status" in err
    assert f"{cases}:5: messages must be a non-empty list" in err
    assert f"{cases}:5: phone must be an E.164 number" in err
    assert f"{cases}:6: the id 'greeting' is already used at {cases}:2" in err
    data = json.loads(captured.out)
    assert [c["passed"] for c in data["cases"]] == [True, False, False, False, False]
    assert data["cases"][1]["id"] == "cases.jsonl:3"
    assert data["cases"][1]["problems"][0].startswith("invalid case: invalid JSON")


def test_a_directory_of_case_files_and_another_prompts_directory(tmp_path, capsys):
    _write(tmp_path / "cases" / "a.jsonl", PASSING[0])
    _write(tmp_path / "cases" / "b.jsonl", _case("named", "Hi", reply_contains=["Moonbeam Solar"]))
    (tmp_path / "cases" / "notes.txt").write_text("not a case file", encoding="utf-8")
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    business = prompts / "business.yaml"
    business.write_text(
        business.read_text(encoding="utf-8").replace("Sunpeak Solar", "Moonbeam Solar"), "utf-8"
    )
    assert main(["eval", str(tmp_path / "cases"), "--json"]) == 1  # shipped name: Sunpeak
    assert json.loads(capsys.readouterr().out)["summary"]["passed"] == 1
    args = ["eval", str(tmp_path / "cases"), "--prompts", str(prompts), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["summary"] == {
        "passed": 2,
        "total": 2,
        "by_expectation": {
            "status_in": {"passed": 1, "total": 1, "accuracy": 1.0},
            "score_max": {"passed": 1, "total": 1, "accuracy": 1.0},
            "leads": {"passed": 1, "total": 1, "accuracy": 1.0},
            "ai_paused": {"passed": 1, "total": 1, "accuracy": 1.0},
            "reply_contains": {"passed": 1, "total": 1, "accuracy": 1.0},
        },
    }


def test_out_of_hours_cases_use_their_own_times_and_others_a_fixed_open_hour(tmp_path, capsys):
    at_night = {
        "id": "night",
        "messages": [{**WEB, "at": "2025-03-05T03:30:00Z", "text": "Please call me back"}],
        "expect": {"reply_contains": ["tomorrow at 08:00"]},
    }
    daytime = _case("day", "Please call me back", reply_must_not_contain=["offline"])
    assert main(["eval", str(_write(tmp_path / "c.jsonl", at_night, daytime))]) == 0


def test_usage_errors(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", str(empty)]) == 1
    assert "holds no .jsonl case files" in capsys.readouterr().err
    only_comments = _write(tmp_path / "c.jsonl")
    assert main(["eval", str(only_comments)]) == 1
    assert "no cases found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(DEFAULT_PROMPTS_DIR, broken, ignore=shutil.ignore_patterns("eval"))
    (broken / "statuses.yaml").write_text("statuses: [\n", encoding="utf-8")
    cases = _write(tmp_path / "ok.jsonl", PASSING[0])
    assert main(["eval", str(cases), "--prompts", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken / 'statuses.yaml'}:" in err and "do not validate" in err


def test_the_reply_language_and_its_knowledge_sections_are_checked(tmp_path, capsys):
    cases = _write(
        tmp_path / "language.jsonl",
        _case(
            "spanish-price",
            "Hola, ¿cuánto cuesta el paquete Home?",
            reply_language="es",
            reply_knowledge=["package-prices"],
        ),
        _case("wrong-language", "Hola, ¿cuánto cuesta el paquete Home?", reply_language="en"),
        _case("wrong-section", "What warranty do the panels have?", reply_knowledge=["privacy"]),
        _case("no-section", "Hi there", reply_knowledge=[]),
        _case("bad-language", "hi", reply_language="Spanish"),
    )
    assert main(["eval", str(cases), "--json"]) == 1
    captured = capsys.readouterr()
    assert f"{cases}:6: reply_language must be a language code" in captured.err
    result = {c["id"]: c for c in json.loads(captured.out)["cases"]}
    assert result["spanish-price"]["passed"] and result["no-section"]["passed"]
    assert result["wrong-language"]["problems"] == ["the last reply is in es, expected en"]
    assert result["wrong-section"]["problems"] == [
        "the last reply used sections ['warranty'], expected ['privacy']"
    ]
    assert not result["bad-language"]["passed"]


def test_reply_count_name_and_company_are_checked(tmp_path, capsys):
    burst = [
        {**WEB, "text": "hi", "at": "2025-03-04T15:00:00Z"},
        {**WEB, "text": "this is Ana Ruiz from Acme Solar", "at": "2025-03-04T15:00:00.500Z"},
    ]
    right = {
        "id": "right",
        "messages": burst,
        "expect": {"reply_count": 1, "name": "Ana Ruiz", "company": "Acme Solar"},
    }
    wrong = {
        "id": "wrong",
        "messages": burst,
        "expect": {"reply_count": 2, "name": None, "company": "Acme"},
    }
    invalid = {"id": "invalid", "messages": burst, "expect": {"reply_count": -1, "name": 3}}
    cases = _write(tmp_path / "cases.jsonl", right, wrong, invalid)
    assert main(["eval", str(cases), "--json"]) == 1
    captured = capsys.readouterr()
    report = {c["id"]: c for c in json.loads(captured.out)["cases"]}
    assert report["right"]["passed"] is True
    assert report["wrong"]["problems"] == [
        "name is Ana Ruiz, expected none",
        "company is Acme Solar, expected Acme",
        "1 reply(ies), expected 2",
    ]
    assert "reply_count must be a whole number" in captured.err
    assert "name must be a text, or null for none" in captured.err
