"""The console's tasks: scheduling from the lead page (in the business's time zone), My tasks with
overdue / today / this week, done, logging a call, and the calendar address."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from store.domain import tasks
from store.models import AuditEvent, Notification, Task
from tests.api.conftest import T0


def _sign_in(console, world, name: str = "Sarah"):  # type: ignore[no-untyped-def]
    email = f"{name.lower()}@example.com"
    agent_id, _api = world.agent(name, email=email, password="correct horse")
    assert console.login(email=email, password="correct horse").status_code == 302
    return agent_id


def test_schedule_from_the_lead_and_see_it_in_my_tasks(console, world, session_factory, clock):
    sarah = _sign_in(console, world)
    lead = world.lead("Dana", agent_id=sarah)
    # T0 is Monday 12:00 UTC, 07:00 in Chicago (the shipped prompts' zone).
    for due, notes in (("2024-06-03T10:00", "today"), ("2024-06-05T09:30", "later")):
        answer = console.post(
            f"/console/leads/{lead}/tasks", {"kind": "call", "due": due, "notes": notes}
        )
        assert answer.status_code == 302
    with session_factory() as session:
        due_times = sorted(t.due_at for t in session.scalars(select(Task)))
    assert due_times[0] == datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
    page = console.get(f"/console/leads/{lead}")
    assert page.status_code == 200 and "Call Dana" in page.text
    assert 'id="schedule-form"' in page.text
    mine = console.get("/console/tasks").text
    today, week = mine.index('id="tasks-today"'), mine.index('id="tasks-week"')
    assert mine.index("today", today) < week and "later" in mine[week:]
    clock.now = T0.replace(hour=16)  # 11:00 in Chicago: the 10:00 call is overdue
    mine = console.get("/console/tasks").text
    overdue = mine[mine.index('id="tasks-overdue"') : mine.index('id="tasks-today"')]
    assert "Call Dana" in overdue


def test_done_and_bad_input(console, world, session_factory):
    sarah = _sign_in(console, world)
    lead = world.lead("Dana", agent_id=sarah)
    console.post(f"/console/leads/{lead}/tasks", {"kind": "meeting", "due": "2024-06-04T10:00"})
    with session_factory() as session:
        task_id = session.scalars(select(Task.id)).one()
    assert console.post(f"/console/tasks/{task_id}/done", {}).status_code == 302
    with session_factory() as session:
        assert session.get(Task, task_id).done
    refused = console.post(
        f"/console/leads/{lead}/tasks", {"kind": "lunch", "due": "x"}, follow_redirects=True
    )
    assert refused.status_code == 200 and "is not a date and time" in refused.text
    assert console.post("/console/tasks/99999/done", {}, follow_redirects=True).status_code == 200


def test_another_agents_task_cannot_be_touched(console, world, session_factory):
    _sign_in(console, world)
    mike, mike_api = world.agent("Mike")
    lead = world.lead("Dana", agent_id=mike)
    task = mike_api.post("/api/tasks", json={"lead_id": lead}).json
    answer = console.post(f"/console/tasks/{task['id']}/done", {}, follow_redirects=True)
    assert f"no task with id {task['id']}" in answer.text
    assert console.post(f"/console/leads/{lead}/tasks", {"kind": "call"}).status_code == 302
    with session_factory() as session:
        assert not session.get(Task, task["id"]).done
        assert session.scalars(select(Task)).all()[-1].id == task["id"]  # nothing added


def test_log_a_call_in_one_click(console, world, session_factory):
    sarah = _sign_in(console, world)
    lead = world.lead("Dana", agent_id=sarah)
    answer = console.post(
        f"/console/leads/{lead}/activities",
        {"kind": "call", "outcome": "no_answer", "notes": "try after 5"},
    )
    assert answer.status_code == 302
    page = console.get(f"/console/leads/{lead}").text
    assert "Call logged: no answer" in page and "try after 5" in page
    timeline = page[page.index('id="timeline"') : page.index("</ol>", page.index('id="timeline"'))]
    assert "Call logged" in timeline and "no answer" in timeline and "try after 5" in timeline
    with session_factory() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "log")).one()


def test_the_calendar_address_is_shown_once(console, world):
    _sign_in(console, world)
    page = console.post("/console/account/calendar-token", {})
    assert page.status_code == 200 and "/api/agents/me/calendar.ics?token=ldcal_" in page.text
    assert "New calendar address" in console.get("/console/tasks").text
    assert 'id="account-calendar-token"' in console.get("/console/account").text


def test_a_due_reminder_reaches_the_notifications_page(console, world, session_factory, clock):
    sarah = _sign_in(console, world)
    lead = world.lead("Dana", agent_id=sarah)
    console.post(f"/console/leads/{lead}/tasks", {"kind": "call", "due": "2024-06-03T07:30"})
    with session_factory.begin() as session:
        tasks.send_reminders(session=session, now=T0.replace(hour=13))
    with session_factory() as session:
        assert session.scalars(select(Notification.kind)).all() == ["task_due"]
    assert "Due now: Call Dana" in console.get("/console/notifications").text
