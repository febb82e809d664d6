"""Task reminders with a controllable clock: a due task reminds its agent once, overdue tasks roll
into one morning digest per agent and day, a restart in the middle sends nothing twice, and two
workers racing send one reminder."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.config.models import BusinessHours
from store.agents import create_agent
from store.domain import tasks
from store.models import Lead, Notification, Task

CHICAGO = ZoneInfo("America/Chicago")
HOURS = BusinessHours(mon="08:00-18:00", tue="08:00-18:00").in_zone("America/Chicago")
# Monday 3 June 2024, 07:00 in Chicago (12:00 UTC); the business opens at 08:00.
MONDAY_7AM = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def _setup(session_factory, *due: datetime) -> tuple[int, list[int]]:
    with session_factory.begin() as session:
        ana, _token = create_agent("Ana", session=session, email="ana@example.com")
        lead = Lead(name="Dana", assigned_agent_id=ana.id)
        session.add(lead)
        session.flush()
        made = [
            tasks.create_task(lead, by=ana, session=session, now=MONDAY_7AM, due_at=at)
            for at in due
        ]
        return ana.id, [t.id for t in made]


def _round(session_factory, now: datetime) -> tasks.ReminderReport:
    with session_factory.begin() as session:
        return tasks.send_reminders(session=session, now=now, zone=CHICAGO, hours=HOURS)


def _notes(session_factory, kind: str) -> list[Notification]:
    with session_factory() as session:
        query = select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        return list(session.scalars(query))


def test_a_task_reminds_its_agent_once_when_it_falls_due(session_factory):
    due = MONDAY_7AM + timedelta(minutes=30)
    ana, [task_id] = _setup(session_factory, due)
    assert _round(session_factory, due - timedelta(seconds=1)).reminded == []
    assert _round(session_factory, due).reminded == [task_id]
    assert _round(session_factory, due + timedelta(minutes=5)).reminded == []
    [note] = _notes(session_factory, "task_due")
    assert note.agent_id == ana and "Call Dana" in note.text and "07:30" in note.text


def test_a_rescheduled_task_reminds_again_and_a_done_one_never(session_factory):
    due = MONDAY_7AM + timedelta(minutes=10)
    _ana, [first, second] = _setup(session_factory, due, due)
    _round(session_factory, due)
    with session_factory.begin() as session:
        task = session.get(Task, first)
        later = due + timedelta(hours=1)
        tasks.update_task(task, by=task.agent, session=session, now=due, due_at=later)
        done = session.get(Task, second)
        tasks.update_task(done, by=done.agent, session=session, now=due, due_at=later)
        tasks.complete_task(done, by=done.agent, session=session, now=due)
    assert _round(session_factory, due + timedelta(hours=1)).reminded == [first]
    assert len(_notes(session_factory, "task_due")) == 3


def test_overdue_tasks_roll_into_one_digest_at_opening_per_agent_and_day(session_factory):
    yesterday = MONDAY_7AM - timedelta(days=1)
    ana, ids = _setup(session_factory, yesterday, yesterday + timedelta(hours=1))
    before_opening = _round(session_factory, MONDAY_7AM)
    assert before_opening.digests == []  # 07:00, the business opens at 08:00
    assert _round(session_factory, MONDAY_7AM + timedelta(hours=1)).digests == [ana]
    assert _round(session_factory, MONDAY_7AM + timedelta(hours=3)).digests == []
    [digest] = _notes(session_factory, "task_digest")
    assert digest.agent_id == ana and "2 overdue task(s)" in digest.text
    # The next business day brings a new digest while they are still overdue.
    assert _round(session_factory, MONDAY_7AM + timedelta(days=1, hours=1)).digests == [ana]
    assert len(ids) == 2


def test_no_digest_on_a_closed_day(session_factory):
    _setup(session_factory, MONDAY_7AM - timedelta(days=3))
    sunday_noon = MONDAY_7AM - timedelta(hours=20)
    assert _round(session_factory, sunday_noon).digests == []


def test_a_restart_in_the_middle_sends_nothing_twice(session_factory):
    due = MONDAY_7AM + timedelta(hours=1, minutes=5)
    _setup(session_factory, MONDAY_7AM - timedelta(days=1), due)
    # A round cut off by a crash after claiming: its transaction never committed.
    session = session_factory()
    with session.begin():
        tasks.send_due_reminders(session=session, now=due, zone=CHICAGO)
        session.rollback()
    session.close()
    assert _notes(session_factory, "task_due") == []
    # The restarted process catches up: each reminder and the digest once, however many rounds.
    for minutes in (0, 1, 2):
        _round(session_factory, due + timedelta(minutes=minutes))
    assert len(_notes(session_factory, "task_due")) == 2
    assert len(_notes(session_factory, "task_digest")) == 1


def test_two_workers_racing_send_one_reminder_and_one_digest(session_factory):
    due = MONDAY_7AM + timedelta(hours=1, minutes=1)
    _setup(session_factory, MONDAY_7AM - timedelta(days=1), due)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            _round(session_factory, due)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_notes(session_factory, "task_due")) == 2  # the overdue task and the due one
    assert len(_notes(session_factory, "task_digest")) == 1


def test_two_workers_sweepers_share_one_lock_and_remind_once(db_engine, session_factory):
    """With a broker, each worker's sweeper runs the reminders under the sweep lock: two workers
    sweeping at the same time, and a third started later (a restart), send each reminder once."""
    from leaddesk.worker.locks import make_locks
    from leaddesk.worker.sweeper import Sweeper

    due = MONDAY_7AM + timedelta(hours=1, minutes=1)
    _setup(session_factory, MONDAY_7AM - timedelta(days=1), due)

    def worker() -> Sweeper:
        return Sweeper(
            session_factory=session_factory,
            locks=make_locks(db_engine),
            submit=lambda _key: None,
            clock=lambda: due,
            catch_up=lambda session, now: tasks.send_reminders(
                session=session, now=now, zone=CHICAGO, hours=HOURS
            ),
        )

    start = threading.Barrier(2)

    def sweep(sweeper: Sweeper) -> None:
        start.wait()
        sweeper.sweep()

    threads = [threading.Thread(target=sweep, args=(worker(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    worker().sweep()
    assert len(_notes(session_factory, "task_due")) == 2
    assert len(_notes(session_factory, "task_digest")) == 1
