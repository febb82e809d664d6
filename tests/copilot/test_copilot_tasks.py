"""The copilot's tasks: due times read in the business's time zone, scheduling and the day's plate
offline, and a model's task calls checked like the router's (a time it cannot read is refused)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import AIMessage
from sqlalchemy import select

from copilot.dates import parse_when
from store.models import Task
from tests.copilot.conftest import make_copilot
from tests.copilot.test_copilot_model import call, scripted, tool_results

CHICAGO = ZoneInfo("America/Chicago")
# Wednesday 5 March 2025, 10:00 in Chicago.
WEDNESDAY = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("said", "local"),
    [
        ("tomorrow at 10", datetime(2025, 3, 6, 10, 0)),
        ("on Thursday 3pm", datetime(2025, 3, 6, 15, 0)),
        ("thursday at 3", datetime(2025, 3, 6, 15, 0)),  # "at 3" at work is the afternoon
        ("friday", datetime(2025, 3, 7, 9, 0)),  # a day alone: its morning
        ("at 4pm", datetime(2025, 3, 5, 16, 0)),
        ("at 9", datetime(2025, 3, 6, 9, 0)),  # past today: tomorrow's
        ("wednesday at 5pm", datetime(2025, 3, 5, 17, 0)),
        ("next wednesday", datetime(2025, 3, 12, 9, 0)),
        ("next monday 10:30", datetime(2025, 3, 10, 10, 30)),  # after the clocks change
        ("tomorrow morning", datetime(2025, 3, 6, 9, 0)),
        ("at noon tomorrow", datetime(2025, 3, 6, 12, 0)),
        ("2025-03-07 14:30", datetime(2025, 3, 7, 14, 30)),
    ],
)
def test_due_times_are_read_in_the_business_zone(said, local):
    assert parse_when(said, now=WEDNESDAY, zone=CHICAGO) == local.replace(tzinfo=CHICAGO)


def test_relative_and_explicit_times():
    assert parse_when("in 2 hours", now=WEDNESDAY, zone=CHICAGO) == datetime(
        2025, 3, 5, 18, 0, tzinfo=UTC
    )
    assert parse_when("2025-03-07T14:30:00Z", now=WEDNESDAY, zone=CHICAGO) == datetime(
        2025, 3, 7, 14, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("said", ["", "soonish", "tomorrow at 25", "13pm", "blue moon"])
def test_times_it_cannot_read_are_refused(said):
    with pytest.raises(ValueError, match=r"when|time|not a"):
        parse_when(said, now=WEDNESDAY, zone=CHICAGO)


def test_schedule_and_read_the_plate_offline(world, chat, sf, clock):
    clock.now = WEDNESDAY
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    reply = chat(sarah)(f"remind me to call lead {lead} at 2pm: ask about the roof")
    assert reply.startswith(f"Scheduled: Call Dana Smith (#{lead}), Wed 05 Mar 14:00")
    with sf() as session:
        task = session.scalars(select(Task)).one()
        assert (task.kind, task.source, task.notes) == ("call", "copilot", "ask about the roof")
        assert task.due_at == datetime(2025, 3, 5, 20, 0, tzinfo=UTC)
    plate = chat(sarah)("what's on my plate today?")
    assert plate.startswith("Today (1):") and "14:00 · Call Dana Smith" in plate
    clock.now = datetime(2025, 3, 5, 21, 0, tzinfo=UTC)
    assert chat(sarah)("what's on my plate?").startswith("Overdue (1):")
    assert chat(sarah)("/tasks week").startswith("This week (1):")


def test_another_agents_lead_gets_no_task(world, chat, sf, clock):
    clock.now = WEDNESDAY
    sarah, mike = world.agent("Sarah"), world.agent("Mike")
    lead = world.lead("Dana Smith", agent=mike)
    reply = chat(sarah)(f"book a demo with lead {lead} on Thursday 3pm")
    assert "assigned to another agent" in reply
    with sf() as session:
        assert session.scalars(select(Task)).all() == []


def test_a_models_task_call_is_checked_like_the_routers(world, sf, prompts, clock):
    clock.now = WEDNESDAY
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted(
        call("schedule_task", {"lead": str(lead), "kind": "call", "when": "whenever"}),
        call(
            "schedule_task",
            {"lead": str(lead), "kind": "meeting", "when": "thursday 3pm"},
            "call-2",
        ),
        AIMessage("Booked for Thursday."),
    )
    copilot = make_copilot(sf, prompts, clock, model=model)
    answer = copilot.ask(sarah, "t", "book a demo with Dana on Thursday 3pm")
    assert answer.reply == "Booked for Thursday."
    refused, booked = tool_results(model.seen[-1])
    assert "I can't tell when 'whenever' is" in refused
    assert booked.startswith("Scheduled: Meeting with Dana Smith") and "Thu 06 Mar 15:00" in booked
    with sf() as session:
        assert [t.kind for t in session.scalars(select(Task))] == ["meeting"]
