"""Canned replies from prompts/replies/*.md: listed for a reply box, filled in for the lead, never
for a lead the agent may not see."""

from __future__ import annotations

import pytest

from webhooks.console.replies import fill, load_replies


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def team(world):  # type: ignore[no-untyped-def]
    sarah, _ = world.agent("Sarah Lee", email="sarah@example.com", password="correct horse")
    mike, _ = world.agent("Mike", email="mike@example.com", password="correct horse")
    return {"sarah": sarah, "mike": mike}


def test_the_shipped_replies_are_filled_in_for_the_lead(console, world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Dana Whitfield", channel="whatsapp", phone="+14155550123")
    console.login(email="sarah@example.com", password="correct horse")
    replies = console.get(f"/console/replies?lead_id={lead_id}").get_json()["replies"]
    by_shortcut = {r["shortcut"]: r for r in replies}
    assert set(by_shortcut) == {"call-back", "financing", "site-survey"}  # not README.md
    survey = by_shortcut["site-survey"]
    assert survey["title"] == "Offer a free site survey"
    assert survey["text"].startswith("Hi Dana, Sarah Lee from Sunpeak Solar here.")
    assert "+14155550123" in by_shortcut["call-back"]["text"]


def test_a_lead_of_another_agent_gets_no_replies(console, world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Priya", channel="web", agent_id=team["mike"])
    console.login(email="sarah@example.com", password="correct horse")
    assert console.get(f"/console/replies?lead_id={lead_id}").status_code == 403
    assert console.get("/console/replies?lead_id=999999").status_code == 404


def test_placeholders_without_a_value_are_left_out_and_odd_files_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert fill("Hi {first_name}, thanks!", {"first_name": None}) == "Hi, thanks!"
    assert fill("Dear {nickname}", {}) == "Dear {nickname}"
    assert fill("Use {braces} and { alone", {}) == "Use {braces} and { alone"
    (tmp_path / "Bad Name!.md").write_text("text", encoding="utf-8")
    (tmp_path / "empty.md").write_text("# Only a title\n", encoding="utf-8")
    (tmp_path / "thanks.md").write_text("Thank you, {first_name}!", encoding="utf-8")
    (tmp_path / "binary.md").write_bytes(b"\xff\xfe\x00")
    replies = load_replies(tmp_path)
    assert [(r.shortcut, r.title) for r in replies] == [("thanks", "Thanks")]
    assert load_replies(tmp_path / "missing") == []


def test_a_leading_comment_is_not_part_of_the_reply(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hello.md").write_text(
        "<!-- For the admin: greets a lead. -->\n# Say hello\nHello {first_name}!", encoding="utf-8"
    )
    (reply,) = load_replies(tmp_path)
    assert (reply.title, reply.text) == ("Say hello", "Hello {first_name}!")
