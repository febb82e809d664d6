"""`leaddesk tasks list|add|done` and `leaddesk agents calendar-token` on the test database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.agents import create_agent
from store.models import Lead


def _team(db_engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with Session(db_engine) as session, session.begin():
        ana, _ = create_agent("Ana", session=session, email="ana@example.com")
        ben, _ = create_agent("Ben", session=session, email="ben@example.com")
        lead = Lead(name="Dana", assigned_agent_id=ana.id)
        session.add(lead)
        session.flush()
        return ana.id, ben.id, lead.id


def test_add_list_and_complete_a_task(cli, db_engine):
    _ana, _ben, lead = _team(db_engine)
    added = cli("tasks", "add", "ana@example.com", str(lead), "--due", "2030-01-07 10:00", "--json")
    assert added.code == 0, added.err
    task = added.json()
    # Read in the business's time zone (America/Chicago in the shipped prompts).
    assert task["due_at"] == "2030-01-07T16:00:00+00:00" and task["due_local"] == "2030-01-07 10:00"
    listed = cli("tasks", "list", "ana@example.com")
    assert listed.code == 0 and "Call Dana" in listed.out and "2030-01-07 10:00" in listed.out
    done = cli("tasks", "done", str(task["id"]), "--outcome", "reached")
    assert done.code == 0 and "done" in done.out
    assert cli("tasks", "list", "ana@example.com", "--window", "done", "--json").json()[0]["done"]
    assert "no tasks" in cli("tasks", "list", "ana@example.com").out


def test_errors_are_one_line(cli, db_engine):
    _ana, _ben, lead = _team(db_engine)
    for argv, says in (
        (("tasks", "add", "ben@example.com", str(lead)), "assigned to another agent"),
        (("tasks", "add", "nobody@example.com", str(lead)), "no agent matches"),
        (("tasks", "add", "ana@example.com", str(lead), "--due", "soon"), "is not a time"),
        (("tasks", "done", "4242"), "no task with id 4242"),
    ):
        run = cli(*argv)
        assert run.code == 1 and says in run.err and "Traceback" not in run.err, run.err
        assert len(run.err.strip().splitlines()) == 1
    assert cli("tasks", "list", "ana@example.com", "--window", "someday").code == 2


def test_a_calendar_token_is_issued_and_replaces_the_old(cli, db_engine):
    _team(db_engine)
    first = cli("agents", "calendar-token", "ana@example.com", "--json")
    assert first.code == 0, first.err
    second = cli("agents", "calendar-token", "ana@example.com")
    assert second.code == 0 and "calendar.ics?token=ldcal_" in second.out
    assert first.json()["token"] not in second.out
    assert cli("agents", "calendar-token", "nobody").code == 1
