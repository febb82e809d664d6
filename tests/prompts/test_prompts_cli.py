"""`leaddesk prompts check` lists every problem as file:line: message; `leaddesk prompts show`
prints the configuration in force (the admin's files merged with the shipped defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.cli import main
from tests.prompts.conftest import edit, line_of

pytestmark = pytest.mark.usefixtures("offline_env")


def _problems(out: str) -> list[tuple[str, int, str]]:
    found = []
    for line in out.splitlines():
        file, number, message = line.split(":", 2)
        found.append((file, int(number), message.strip()))
    return found


def test_check_passes_on_the_shipped_prompts(capsys):
    assert main(["prompts", "check", str(DEFAULT_PROMPTS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "ok - 7 statuses" in out and "templates in" in out
    cases = int(out.rsplit(", ", 1)[1].split()[0])
    assert cases >= 40


def test_check_lists_every_problem_of_every_file_with_its_line(prompts_dir, monkeypatch, capsys):
    monkeypatch.chdir(prompts_dir.parent)
    business = prompts_dir / "business.yaml"
    timezone_line = line_of(business, "timezone:")
    edit(business, "timezone: America/Chicago", "timezone: Mars/Olympus_Mons")
    statuses = prompts_dir / "statuses.yaml"
    action_line = line_of(statuses, "action: notify")
    edit(statuses, "action: notify", "action: shout")
    scoring = prompts_dir / "scoring.yaml"
    points_line = line_of(scoring, "points: 35")
    edit(scoring, "points: 35", "points: lots")
    bot_system = prompts_dir / "bot_system.md"
    knowledge_line = bot_system.read_text(encoding="utf-8").splitlines().index("{knowledge}") + 1
    edit(bot_system, "\n{knowledge}\n", "\n{knowlege}\n")
    french = prompts_dir / "templates" / "fr.yaml"
    french.write_text(french.read_text(encoding="utf-8") + 'greeting2: "pas fermé\n', "utf-8")
    french_line = len(french.read_text(encoding="utf-8").splitlines())

    assert main(["prompts", "check", "prompts"]) == 1
    captured = capsys.readouterr()
    problems = _problems(captured.out)
    where = {(file, line) for file, line, _ in problems}
    assert ("prompts/business.yaml", timezone_line) in where
    assert ("prompts/statuses.yaml", action_line) in where
    assert ("prompts/scoring.yaml", points_line) in where
    assert ("prompts/bot_system.md", knowledge_line) in where
    assert [n for f, n in where if f == "prompts/templates/fr.yaml"] == [french_line]
    messages = " | ".join(m for _, _, m in problems)
    assert "Mars/Olympus_Mons" in messages and "'shout'" in messages
    assert "unknown placeholder {knowlege}" in messages
    assert "missing placeholder {knowledge}" in messages
    assert f"{len(problems)} problem(s)" in captured.err


def test_a_missing_placeholder_names_the_file(prompts_dir, capsys):
    copilot = prompts_dir / "copilot_system.md"
    edit(copilot, "\n{statuses}\n", "\nthe statuses\n")
    assert main(["prompts", "check", str(prompts_dir)]) == 1
    problems = _problems(capsys.readouterr().out)
    assert [(Path(f).name, m) for f, _, m in problems] == [
        ("copilot_system.md", "missing placeholder {statuses}: the prompt must contain it")
    ]


def test_a_duplicate_key_is_reported_on_its_line(prompts_dir, capsys):
    business = prompts_dir / "business.yaml"
    business.write_text(
        business.read_text(encoding="utf-8") + "name: Another Name\n", encoding="utf-8"
    )
    last = len(business.read_text(encoding="utf-8").splitlines())
    assert main(["prompts", "check", str(prompts_dir)]) == 1
    [(file, line, message)] = _problems(capsys.readouterr().out)
    assert Path(file).name == "business.yaml" and line == last
    assert "duplicate key 'name'" in message


def test_check_validates_the_eval_cases_too(prompts_dir, capsys):
    cases = prompts_dir / "eval" / "cases.jsonl"
    cases.parent.mkdir()
    good = {
        "id": "ok",
        "messages": [{"channel": "web", "sender": "a", "text": "hi"}],
        "expect": {"status_in": ["New"]},
    }
    bad_status = {**good, "id": "hot", "expect": {"status_in": ["Hot"]}}
    cases.write_text(
        "# cases\n" + json.dumps(good) + "\n{not json\n" + json.dumps(bad_status) + "\n",
        encoding="utf-8",
    )
    assert main(["prompts", "check", str(prompts_dir)]) == 1
    problems = [(Path(f).name, n, m) for f, n, m in _problems(capsys.readouterr().out)]
    assert problems[0][:2] == ("cases.jsonl", 3) and "invalid JSON" in problems[0][2]
    assert problems[1][:2] == ("cases.jsonl", 4) and "'Hot' is not a status" in problems[1][2]


def test_check_of_a_missing_directory_fails(tmp_path, capsys):
    assert main(["prompts", "check", str(tmp_path / "nowhere")]) == 1
    assert "the prompts directory does not exist" in capsys.readouterr().out


def test_show_merges_the_admins_files_with_the_defaults(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "business.yaml").write_text(
        "# Our business.\nname: Moonbeam Solar\ntimezone: Europe/Madrid\n"
        'hours:\n  mon: "09:00-14:00"\n',
        encoding="utf-8",
    )
    assert main(["prompts", "show", str(mine), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["business"]["name"] == "Moonbeam Solar"
    assert shown["business"]["hours"]["mon"] == "09:00-14:00"
    assert shown["business"]["hours"]["tue"] == "closed"
    assert [s["name"] for s in shown["statuses"]][:2] == ["New", "Interested"]
    origins = {item["file"]: item["from"] for item in shown["files"]}
    assert origins["business.yaml"] == "yours"
    assert origins[str((DEFAULT_PROMPTS_DIR / "statuses.yaml").resolve())] == "shipped default"
    assert shown["scoring"]["signals"]["pricing"]["points"] > 0
    assert "{business_name}" in shown["bot_system"]
    assert "greeting" in shown["templates"]["en"]

    assert main(["prompts", "show", str(mine)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# The configuration in force")
    assert yaml.safe_load(out) == shown


def test_every_shipped_file_starts_with_a_comment_on_what_it_controls():
    for path in sorted(DEFAULT_PROMPTS_DIR.rglob("*")):
        if not path.is_file():
            continue
        first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
        if path.suffix == ".md":
            assert first.startswith("<!--"), path
        else:
            assert first.startswith("#"), path
        assert len(first) > 20, path


def test_check_warns_about_knowledge_sections_missing_in_a_listed_language(prompts_dir, capsys):
    (prompts_dir / "knowledge" / "de" / "policies.md").unlink()
    assert main(["prompts", "check", str(prompts_dir)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if ": warning: " in line]
    assert len(warnings) == 4  # warranty, cancellation, privacy, payment terms
    assert all("policies.md:" in line and "no de version" in line for line in warnings)
    assert "section 'warranty' (Warranty) has no de version (add it to knowledge/de/" in out
    assert "4 warning(s)" in out
    assert main(["prompts", "check", "--strict", str(prompts_dir)]) == 1


def test_check_reports_a_section_id_used_twice_in_one_language(prompts_dir, capsys):
    spanish = prompts_dir / "knowledge" / "es" / "faq.md"
    spanish.write_text(
        spanish.read_text(encoding="utf-8") + "\n## Otra garantía {#warranty}\nTexto.\n",
        encoding="utf-8",
    )
    assert main(["prompts", "check", str(prompts_dir)]) == 1
    out = capsys.readouterr().out
    assert "section id 'warranty' is already used at" in out and "faq.md" in out
