"""Tasks: creating, rescheduling, completing, the lists in the business's time zone, who sees
what, logging a call, and the task the bot proposes from a next best action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from store.domain import status as lead_status
from store.domain import tasks
from store.domain.errors import Invalid, NotFound
from store.leads import merge_leads
from store.models import AuditEvent, Message, Task
from tests.domain.conftest import T0

CHICAGO = ZoneInfo("America/Chicago")


def test_a_task_is_created_audited_and_listed_for_its_agent(session, agent, lead):
    ana = agent("Ana")
    dana = lead(ana, name="Dana")
    task = tasks.create_task(
        dana, by=ana, session=session, now=T0, kind="call", due_at=T0 + timedelta(hours=2)
    )
    assert (task.agent_id, task.kind, task.title) == (ana.id, "call", "Call Dana")
    assert [t.id for t in tasks.list_tasks(ana, session=session, now=T0)] == [task.id]
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "task")).one()
    assert audit.lead_id == dana.id and "Call Dana" in (audit.new_value or "")


def test_bad_input_is_refused_with_the_field_named(session, agent, lead):
    ana = agent("Ana")
    dana = lead(ana)
    with pytest.raises(Invalid) as kind:
        tasks.create_task(dana, by=ana, session=session, now=T0, kind="lunch")
    assert kind.value.field == "kind"
    with pytest.raises(Invalid) as due:
        tasks.create_task(dana, by=ana, session=session, now=T0, due_at=datetime(2024, 6, 3, 9))
    assert due.value.field == "due_at"


def test_windows_follow_the_business_day_not_utc(session, agent, lead):
    ana = agent("Ana")
    dana = lead(ana)
    # 03:00 UTC on Tuesday is still Monday 22:00 in Chicago.
    now = datetime(2024, 6, 4, 3, 0, tzinfo=UTC)
    late_monday = tasks.create_task(
        dana, by=ana, session=session, now=now, due_at=datetime(2024, 6, 4, 4, 30, tzinfo=UTC)
    )
    tuesday = tasks.create_task(
        dana, by=ana, session=session, now=now, due_at=datetime(2024, 6, 4, 15, 0, tzinfo=UTC)
    )
    overdue = tasks.create_task(
        dana, by=ana, session=session, now=now, due_at=datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
    )
    next_week = tasks.create_task(
        dana, by=ana, session=session, now=now, due_at=datetime(2024, 6, 11, 15, 0, tzinfo=UTC)
    )

    def ids(window: str) -> list[int]:
        found = tasks.list_tasks(ana, session=session, now=now, zone=CHICAGO, window=window)
        return [t.id for t in found]

    assert ids("today") == [overdue.id, late_monday.id]
    assert ids("overdue") == [overdue.id]
    assert ids("week") == [overdue.id, late_monday.id, tuesday.id]
    plate = tasks.my_plate(ana, session=session, now=now, zone=CHICAGO)
    assert [t.id for t in plate.overdue] == [overdue.id]
    assert [t.id for t in plate.today] == [late_monday.id]
    assert [t.id for t in plate.week] == [tuesday.id]
    assert next_week.id in ids("open")


def test_another_agents_task_is_not_found_and_admins_see_all(session, agent, lead):
    ana, ben, boss = agent("Ana"), agent("Ben"), agent("Boss", role="admin")
    task = tasks.create_task(lead(ana), by=ana, session=session, now=T0)
    with pytest.raises(NotFound):
        tasks.get_task(task.id, ben, session=session)
    with pytest.raises(NotFound):
        tasks.complete_task(task, by=ben, session=session, now=T0)
    assert tasks.get_task(task.id, boss, session=session) is task
    assert tasks.list_tasks(ben, session=session, now=T0, agent_id=ana.id) == []
    assert tasks.list_tasks(boss, session=session, now=T0, agent_id=ana.id) == [task]


def test_only_an_admin_gives_a_task_to_someone_who_can_see_the_lead(session, agent, lead):
    ana, ben, boss = agent("Ana"), agent("Ben"), agent("Boss", role="admin")
    anas = lead(ana)
    with pytest.raises(Invalid):
        tasks.create_task(anas, by=ana, session=session, now=T0, assignee=ben)
    with pytest.raises(Invalid):
        tasks.create_task(anas, by=boss, session=session, now=T0, assignee=ben)
    given = tasks.create_task(anas, by=boss, session=session, now=T0, assignee=ana)
    assert given.agent_id == ana.id


def test_complete_reopen_and_reschedule(session, agent, lead):
    ana = agent("Ana")
    task = tasks.create_task(lead(ana), by=ana, session=session, now=T0, due_at=T0)
    task.reminded_at = T0
    assert tasks.complete_task(task, by=ana, session=session, now=T0, outcome="reached")
    assert not tasks.complete_task(task, by=ana, session=session, now=T0)
    assert task.done and task.outcome == "reached"
    assert tasks.reopen_task(task, by=ana, session=session, now=T0)
    assert not task.done
    later = T0 + timedelta(days=1)
    assert tasks.update_task(task, by=ana, session=session, now=T0, due_at=later)
    assert task.due_at == later and task.reminded_at is None  # it reminds again
    with pytest.raises(Invalid):
        tasks.complete_task(task, by=ana, session=session, now=T0, outcome="great")


def test_a_logged_call_is_a_done_task_with_its_outcome_in_the_audit(session, agent, lead):
    ana = agent("Ana")
    dana = lead(ana)
    logged = tasks.log_activity(
        dana, by=ana, session=session, now=T0, kind="call", outcome="no answer", notes="busy"
    )
    assert logged.done and logged.outcome == "no_answer" and logged.notes == "busy"
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "log")).one()
    assert audit.field == "call" and audit.new_value == "no answer: busy"
    with pytest.raises(Invalid):
        tasks.log_activity(dana, by=ana, session=session, now=T0, outcome="")


@pytest.mark.parametrize(
    ("action", "kind", "delay"),
    [
        ("Call within 24 hours", "call", timedelta(hours=24)),
        ("Call now to close: they are ready for next steps.", "call", timedelta(0)),
        ("Book the free site survey they asked about.", "meeting", timedelta(hours=24)),
        ("Send a tailored quote within 2 days", "email", timedelta(days=2)),
    ],
)
def test_a_next_best_action_becomes_a_proposal(action, kind, delay):
    assert tasks.proposal_from_action(action, T0) == (kind, T0 + delay)


def test_waiting_is_not_a_task():
    assert tasks.proposal_from_action("Wait for the customer to say what they need.", T0) is None
    assert tasks.proposal_from_action("No action: the customer declined.", T0) is None


def test_the_bot_proposes_one_task_per_status_change(session, agent, lead, room, policy):
    ana = agent("Ana")
    dana = lead(ana, next_best_action="Call within 24 hours")
    conversation = room(dana)
    session.add(
        Message(conversation_id=conversation.id, channel="web", direction="in", author="customer")
    )
    session.flush()
    lead_status.change_status_by_bot(dana, "Interested", session=session, policy=policy, now=T0)
    # The same turn delivered again (the status is already set) and the proposal made again.
    lead_status.change_status_by_bot(dana, "Interested", session=session, policy=policy, now=T0)
    key = f"status:{dana.id}:Interested:"
    assert tasks.propose_task(dana, ana, session=session, now=T0, key=key + "1") is None
    made = list(session.scalars(select(Task).where(Task.lead_id == dana.id)))
    assert [(t.kind, t.agent_id, t.due_at, t.source) for t in made] == [
        ("call", ana.id, T0 + timedelta(hours=24), "bot")
    ]


def test_a_status_without_an_action_proposes_nothing(session, agent, lead, policy):
    ana = agent("Ana")
    dana = lead(ana, next_best_action="Call within 24 hours")
    lead_status.change_status_by_bot(dana, "Callback", session=session, policy=policy, now=T0)
    assert session.scalars(select(Task)).all() == []


def test_a_merge_moves_the_tasks_to_the_surviving_lead(session, agent, lead):
    ana = agent("Ana")
    survivor, absorbed = lead(ana, name="Dana"), lead(ana, name="Dana S.")
    task = tasks.create_task(absorbed, by=ana, session=session, now=T0, due_at=T0)
    merge_leads(survivor, absorbed, session=session, into=survivor)
    session.expire_all()
    assert session.get(Task, task.id).lead_id == survivor.id
    assert [t.id for t in tasks.list_tasks(ana, session=session, now=T0, lead_id=survivor.id)] == [
        task.id
    ]
