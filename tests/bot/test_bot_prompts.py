"""The prompts directory: shipped defaults load; every kind of mistake is refused with file:line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import PromptError, load_prompts
from bot.config import DEFAULT_PROMPTS_DIR, check_prompts
from tests.bot.support import copy_prompts


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_shipped_defaults_load_with_the_seven_statuses(prompts):
    assert [s.name for s in prompts.statuses] == [
        "New",
        "Interested",
        "Scouting",
        "Follow Up",
        "Not Interested",
        "Converted",
        "Lost",
    ]
    expected = {
        "New": ("none", "continue", False, True),
        "Interested": ("notify", "continue", False, True),
        "Scouting": ("notify", "continue", False, True),
        "Follow Up": ("auto_assign", "pause", False, True),
        "Not Interested": ("none", "stop", True, True),
        "Converted": ("none", "continue", True, False),
        "Lost": ("none", "continue", True, False),
    }
    for status in prompts.statuses:
        assert (status.action, status.ai_behaviour, status.terminal, status.ai_can_set) == expected[
            status.name
        ]
        assert status.colour.startswith("#") and status.description
    assert prompts.status("follow up").pause_minutes == 60
    assert prompts.initial_status.name == "New"
    assert [s.name for s in prompts.statuses if s.asks_reason] == ["Lost"]
    assert "Chose a competitor" in prompts.lost_reasons


def test_every_shipped_file_starts_with_a_comment():
    for path in sorted(DEFAULT_PROMPTS_DIR.rglob("*")):
        if path.is_file():
            first = path.read_text(encoding="utf-8").lstrip()
            assert first.startswith(("#", "<!--")), f"{path} does not start with a comment"


def test_keywords_cover_six_languages(prompts):
    for name in ("pricing", "purchase", "not_interested"):
        assert {"en", "es", "ar", "fr", "de", "pt"} <= prompts.scoring.signals[
            name
        ].keywords.languages()


def test_knowledge_is_split_by_heading_with_lines_and_languages(prompts):
    headings = {s.title: s for s in prompts.knowledge}
    assert "Package prices" in headings and "Warranty" in headings
    prices = headings["Package prices"]
    assert "$12,400" in prices.text
    assert Path(prices.file).name == "pricing.md" and prices.line > 1
    assert headings["Precios de los paquetes"].language == "es"


def test_templates_exist_in_english_and_spanish_and_fill_placeholders(prompts):
    for key in (
        "greeting",
        "phone_ask",
        "handover",
        "resume_disclosure",
        "out_of_hours",
        "intro_email",
    ):
        assert prompts.template(key, "en")
        assert prompts.template(key, "es") != prompts.template(key, "en")
    assert "Sunpeak Solar" in prompts.template("greeting", "en")
    email = prompts.template("intro_email", "en", customer_name="Ana", agent_name="Sam")
    assert "Hi Ana" in email and "Sam" in email and "{" not in email
    # A language without its own template falls back to the default language.
    assert prompts.template("ack_pricing", "it") == prompts.template("ack_pricing", "en")


def test_system_prompts_render_with_the_configuration(prompts):
    text = prompts.render_bot_system(statuses="- New: x", knowledge="K", lead="L", now="today")
    assert "Sunpeak Solar" in text and "warm, clear" in text and "<!--" not in text
    copilot = prompts.render_copilot_system(agent_name="Sam", now="Tuesday")
    assert "Sam" in copilot and "Follow Up" in copilot and "Objection" in copilot


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "statuses.yaml"
    line = _line_of(path, "name: Scouting")
    _edit(path, "name: Scouting", "name: [Scouting")
    with pytest.raises(PromptError) as info:
        load_prompts(directory)
    problem = info.value.problems[0]
    assert problem.file == str(path)
    assert line <= problem.line <= line + 2
    assert str(problem).startswith(f"{path}:{problem.line}: ")


def test_invalid_status_values_are_reported_each_with_its_line(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "statuses.yaml"
    _edit(path, "action: notify", "action: email")
    _edit(path, "ai_behaviour: stop", "ai_behaviour: sleep")
    _edit(path, "signals: [pricing, comparison, demo]", "signals: [pricing, teleport]")
    problems = check_prompts(directory)
    by_message = {p.message.split(";")[0]: p for p in problems}
    assert any(
        "action" in p.message and "email" in p.message and p.line == _line_of(path, "action: email")
        for p in problems
    )
    assert any(
        "sleep" in p.message and p.line == _line_of(path, "ai_behaviour: sleep") for p in problems
    )
    assert any("teleport" in p.message and p.line == _line_of(path, "teleport") for p in problems)
    assert all(p.file == str(path) for p in problems), by_message


def test_duplicate_keys_and_statuses_are_refused(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "statuses.yaml"
    _edit(path, "  - name: Scouting", "  - name: Interested")
    problems = check_prompts(directory)
    lines = path.read_text(encoding="utf-8").splitlines()
    twice = [p for p in problems if "defined twice" in p.message]
    assert len(twice) == 1 and twice[0].file == str(path)
    assert "name: Interested" in lines[twice[0].line - 1] and twice[0].line > _line_of(
        path, "name: Interested"
    )
    business = directory / "business.yaml"
    _edit(business, "tone: warm", "name: Again\ntone: warm")
    problems = check_prompts(directory)
    assert any(p.file == str(business) and "duplicate key" in p.message for p in problems)


def test_unknown_and_missing_placeholders_name_file_and_line(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "bot_system.md"
    _edit(path, "Opening hours: {business_hours}", "Opening hours: {opening_hours}")
    _edit(path, "{knowledge}\n", "(knowledge removed)\n")
    problems = check_prompts(directory)
    unknown = [p for p in problems if "{opening_hours}" in p.message]
    assert (
        unknown
        and unknown[0].line == _line_of(path, "{opening_hours}")
        and unknown[0].file == str(path)
    )
    assert any("missing placeholder {knowledge}" in p.message for p in problems)


def test_a_stray_brace_is_an_error_with_its_line(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "copilot_system.md"
    _edit(path, "Note categories:", "Note categories { use them:")
    problems = check_prompts(directory)
    assert [p.line for p in problems if p.file == str(path)] == [
        _line_of(path, "Note categories {")
    ]


def test_template_with_unknown_placeholder_is_refused(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "templates" / "es.yaml"
    _edit(path, "{business_name}. Soy", "{empresa}. Soy")
    problems = check_prompts(directory)
    assert any(
        p.file == str(path) and "{empresa}" in p.message and p.line == _line_of(path, "{empresa}")
        for p in problems
    )


def test_business_hours_and_time_zone_are_validated(tmp_path):
    directory = copy_prompts(tmp_path)
    path = directory / "business.yaml"
    _edit(path, "timezone: America/Chicago", "timezone: Mars/Olympus")
    _edit(path, 'sat: "09:00-13:00"', 'sat: "nine to one"')
    problems = check_prompts(directory)
    assert any(
        "Mars/Olympus" in p.message and p.line == _line_of(path, "Mars/Olympus") for p in problems
    )
    assert any("sat" in p.message and p.line == _line_of(path, "nine to one") for p in problems)


def test_missing_files_fall_back_to_the_shipped_defaults(tmp_path):
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "business.yaml").write_text(
        (DEFAULT_PROMPTS_DIR / "business.yaml")
        .read_text(encoding="utf-8")
        .replace("Sunpeak Solar", "Acme Roofs"),
        encoding="utf-8",
    )
    config = load_prompts(directory)
    assert config.business.name == "Acme Roofs"
    assert config.status_names[0] == "New"
    assert "Acme Roofs" in config.template("greeting", "en")


def test_without_defaults_a_missing_file_is_an_error(tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    problems = check_prompts(directory, defaults=None)
    assert {Path(p.file).name for p in problems} >= {
        "business.yaml",
        "statuses.yaml",
        "scoring.yaml",
    }


def test_custom_fields_coerce_values(prompts):
    bill = prompts.custom_field("monthly_bill")
    assert bill.coerce("1,250") == 1250
    with pytest.raises(ValueError, match="must be a number"):
        bill.coerce("a lot")
    roof = prompts.custom_field("roof_type")
    assert roof.coerce("FLAT") == "flat"
    with pytest.raises(ValueError, match="one of"):
        roof.coerce("thatch")
    assert prompts.custom_field("survey_date").coerce("2025-04-01") == "2025-04-01"
    assert prompts.custom_field("property_owner").coerce("yes") is True


def test_business_hours_know_the_next_opening(prompts):
    hours = prompts.business.hours
    tuesday_9am = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
    assert hours.is_open(tuesday_9am)
    saturday_evening = datetime(2025, 3, 8, 23, 0, tzinfo=UTC)  # 17:00 in Chicago, closed
    assert not hours.is_open(saturday_evening)
    opening = hours.next_opening(saturday_evening)
    assert opening.weekday() == 0 and (opening.hour, opening.minute) == (8, 0)
