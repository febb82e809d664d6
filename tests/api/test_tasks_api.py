"""The task endpoints: create, list by window, update, complete, a lead's tasks, logging a call,
who may see what (another agent's task is 404), bad input (4xx JSON), and the calendar feed read
back with the icalendar package."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar

from tests.api.conftest import T0


def _create(api, lead_id: int, **fields):  # type: ignore[no-untyped-def]
    body = {"lead_id": lead_id, "kind": "call", "due_at": (T0 + timedelta(hours=2)).isoformat()}
    body.update(fields)
    return api.post("/api/tasks", json=body)


def test_create_list_complete_and_reopen(world, clock):
    ana_id, ana = world.agent("Ana")
    lead = world.lead("Dana", agent_id=ana_id)
    created = _create(ana, lead, notes="ask about the battery")
    assert created.status_code == 201, created.json
    task = created.json
    assert (task["title"], task["agent_id"], task["done"]) == ("Call Dana", ana_id, False)
    assert [t["id"] for t in ana.get("/api/tasks?window=today").json["tasks"]] == [task["id"]]
    assert ana.get("/api/tasks?window=overdue").json["tasks"] == []
    clock.advance(hours=3)
    overdue = ana.get("/api/tasks?window=overdue").json["tasks"]
    assert [t["id"] for t in overdue] == [task["id"]] and overdue[0]["overdue"]
    done = ana.post(f"/api/tasks/{task['id']}/complete", json={"outcome": "reached"})
    assert done.status_code == 200 and done.json["done"] and done.json["outcome"] == "reached"
    assert ana.get("/api/tasks?window=overdue").json["tasks"] == []
    reopened = ana.patch(f"/api/tasks/{task['id']}", json={"done": False})
    assert reopened.json["done"] is False


def test_reschedule_and_clear_the_due_time(world):
    ana_id, ana = world.agent("Ana")
    task = _create(ana, world.lead("Dana", agent_id=ana_id)).json
    later = (T0 + timedelta(days=2)).isoformat()
    moved = ana.patch(f"/api/tasks/{task['id']}", json={"due_at": later, "kind": "meeting"})
    assert moved.status_code == 200
    assert moved.json["kind"] == "meeting" and moved.json["due_at"].startswith("2024-06-05T12:00")
    cleared = ana.patch(f"/api/tasks/{task['id']}", json={"due_at": None})
    assert cleared.json["due_at"] is None


def test_another_agents_task_is_404_and_their_lead_403(world):
    ana_id, ana = world.agent("Ana")
    _ben_id, ben = world.agent("Ben")
    _boss_id, boss = world.agent("Boss", role="admin")
    lead = world.lead("Dana", agent_id=ana_id)
    task = _create(ana, lead).json
    for answer in (
        ben.get(f"/api/tasks/{task['id']}"),
        ben.patch(f"/api/tasks/{task['id']}", json={"notes": "mine now"}),
        ben.post(f"/api/tasks/{task['id']}/complete", json={}),
    ):
        assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
    assert _create(ben, lead).status_code == 403
    assert ben.get(f"/api/leads/{lead}/tasks").status_code == 403
    assert ben.get("/api/tasks").json["tasks"] == []
    assert boss.get(f"/api/tasks/{task['id']}").status_code == 200
    assert [t["id"] for t in boss.get(f"/api/tasks?agent_id={ana_id}").json["tasks"]] == [
        task["id"]
    ]


def test_bad_input_is_a_clear_4xx(world):
    ana_id, ana = world.agent("Ana")
    lead = world.lead("Dana", agent_id=ana_id)
    cases = [
        ({"lead_id": lead, "kind": "lunch"}, "kind"),
        ({"lead_id": lead, "due_at": "tomorrow-ish"}, "due_at"),
        ({"lead_id": lead, "due_at": "2024-06-04T10:00:00"}, "due_at"),  # no time zone
        ({"lead_id": 0}, "lead_id"),
        ({"lead_id": lead, "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        answer = ana.post("/api/tasks", json=body)
        assert 400 <= answer.status_code < 500, (body, answer.status_code)
        assert answer.json["error"]["field"] == field, (body, answer.json)
    assert ana.post("/api/tasks", data="not json").status_code == 400
    assert ana.get("/api/tasks?window=someday").status_code == 422
    assert ana.get("/api/tasks?colour=red").status_code == 400
    assert ana.get("/api/tasks/99999").status_code == 404
    assert _create(ana, 999999).status_code == 404
    assert world.anonymous().get("/api/tasks").status_code == 401


def test_a_logged_call_shows_in_the_leads_tasks_and_audit(world):
    ana_id, ana = world.agent("Ana")
    lead = world.lead("Dana", agent_id=ana_id)
    logged = ana.post(
        f"/api/leads/{lead}/activities",
        json={"kind": "call", "outcome": "voicemail", "notes": "left a message"},
    )
    assert logged.status_code == 201 and logged.json["done"]
    listed = ana.get(f"/api/leads/{lead}/tasks").json["tasks"]
    assert [(t["kind"], t["outcome"]) for t in listed] == [("call", "voicemail")]
    audit = ana.get(f"/api/leads/{lead}").json["audit"]
    assert any(a["action"] == "log" and "voicemail" in (a["new_value"] or "") for a in audit)
    bad = ana.post(f"/api/leads/{lead}/activities", json={"kind": "call", "outcome": "great"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "outcome"


def test_the_calendar_feed_parses_back_with_icalendar(world, clock):
    ana_id, ana = world.agent("Ana")
    lead = world.lead("Dana", agent_id=ana_id)
    due = _create(ana, lead, notes="bring the quote").json
    _create(ana, lead, due_at=None, kind="email")  # no due time: not in the feed
    issued = ana.post("/api/agents/me/calendar-token")
    assert issued.status_code == 201
    token = issued.json["token"]
    assert issued.json["url"].endswith(f"/api/agents/me/calendar.ics?token={token}")
    anonymous = world.anonymous()
    feed = anonymous.get(f"/api/agents/me/calendar.ics?token={token}")
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    events = Calendar.from_ical(feed.data).walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert str(event["summary"]) == "Call Dana"
    assert event.decoded("dtstart") == T0 + timedelta(hours=2)
    assert str(event["description"]) == "bring the quote"
    assert str(event["uid"]).startswith(f"task-{due['id']}@")
    # The calendar token opens the feed only, and a rotated one stops working.
    speaking_as = world.anonymous()
    speaking_as.token = token
    assert speaking_as.get("/api/tasks").status_code == 401
    ana.post("/api/agents/me/calendar-token")
    assert anonymous.get(f"/api/agents/me/calendar.ics?token={token}").status_code == 404
    assert anonymous.get("/api/agents/me/calendar.ics").status_code == 404
