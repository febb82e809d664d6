"""Every way tests/prompts/broken_files.yaml breaks a copy of the shipped prompts is refused with
exactly the problems it lists, each on its file and line; `locks` is read from statuses.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import check_prompts, load_prompts
from tests.prompts.conftest import edit, line_of

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "broken_files.yaml").read_text(encoding="utf-8")
)


def _break(directory: Path, edits: list[dict[str, Any]]) -> None:
    for change in edits:
        path = directory / change["file"]
        if change.get("delete"):
            path.unlink()
        elif "write" in change:
            path.write_text(change["write"], encoding="utf-8")
        elif "append" in change:
            path.write_text(path.read_text(encoding="utf-8") + change["append"], encoding="utf-8")
        else:
            edit(path, change["replace"], change["with"])


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_each_broken_file_is_reported_on_its_line(prompts_dir: Path, case: dict[str, Any]) -> None:
    _break(prompts_dir, case["edits"])
    expected = [
        (
            item["file"],
            item["at"]
            if isinstance(item["at"], int)
            else line_of(prompts_dir / item["file"], item["at"]),
            item["message"],
        )
        for item in case["problems"]
    ]
    found = [  # files (also those named in a message) relative to the directory
        (
            Path(p.file).relative_to(prompts_dir).as_posix(),
            p.line,
            p.message.replace(f"{prompts_dir}/", ""),
        )
        for p in check_prompts(prompts_dir, defaults=None)
    ]
    assert sorted(found) == sorted(expected)


def test_the_cases_cover_every_file_and_a_problem_each() -> None:
    assert all(case["problems"] for case in CASES)
    broken = {Path(item["file"]).parts[0] for case in CASES for item in case["problems"]}
    assert broken >= {
        "business.yaml",
        "scoring.yaml",
        "statuses.yaml",
        "custom_fields.yaml",
        "bot_system.md",
        "copilot_system.md",
        "templates",
        "knowledge",
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('sat: "09:00-13:00"', "sat: false"),  # false reads as closed
        ("  sun: closed", "  sun:"),  # so does nothing
    ],
)
def test_a_day_can_be_closed_in_several_ways(prompts_dir: Path, old: str, new: str) -> None:
    edit(prompts_dir / "business.yaml", old, new)
    day = 5 if old.startswith("sat") else 6
    assert load_prompts(prompts_dir).business.hours.days[day] is None


def test_an_empty_custom_fields_file_means_none(prompts_dir: Path) -> None:
    (prompts_dir / "custom_fields.yaml").write_text("# no extra fields\n", encoding="utf-8")
    assert load_prompts(prompts_dir).custom_fields == ()


def test_a_status_locks_only_when_statuses_yaml_says_so(prompts_dir: Path) -> None:
    statuses = load_prompts(prompts_dir).statuses
    assert [s.name for s in statuses if s.locks] == ["Converted"]
    path = prompts_dir / "statuses.yaml"
    edit(path, "    locks: true", "    locks: false")
    edit(path, "    terminal: true\n    ai_can_set: true", "    terminal: true\n    locks: true")
    assert [s.name for s in load_prompts(prompts_dir).statuses if s.locks] == ["Not Interested"]
    edit(path, "    locks: true", "    locks: sometimes")
    [problem] = check_prompts(prompts_dir)
    assert problem.line == line_of(path, "locks: sometimes")
    assert problem.message == "`locks` must be true or false, got 'sometimes'"


def test_the_configuration_cannot_be_changed(prompts_dir: Path) -> None:
    config = load_prompts(prompts_dir)
    with pytest.raises((TypeError, ValueError)):
        config.statuses[0].name = "Fresh"  # type: ignore[misc]
    with pytest.raises((TypeError, ValueError)):
        config.business.hours.mon = None  # type: ignore[misc]
