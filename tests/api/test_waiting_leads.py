"""A lead that needed an agent while none was available gets one when an agent is added or
enabled, through the API as through the console and the CLI (one rule: store.domain.waiting)."""

from __future__ import annotations

from datetime import timedelta


def test_adding_the_first_agent_assigns_the_lead_that_waited(world):  # type: ignore[no-untyped-def]
    # The hottest lead reached Follow Up (which auto-assigns) before anyone could take it.
    waiting = world.lead("Dana", status="Follow Up", score=90)
    _admin_id, admin = world.agent("Ada", role="admin", capacity=0)  # admins with no room
    created = admin.post("/api/agents", json={"name": "Sarah", "capacity": 5})
    assert created.status_code == 201
    sarah_id = created.get_json()["id"]
    assert world.read(waiting).assigned_agent_id == sarah_id
    notices = world.anonymous()
    notices.token = created.get_json()["token"]
    told = notices.get("/api/notifications").get_json()["notifications"]
    assert any("was waiting for an agent" in n["text"] for n in told)


def test_enabling_an_agent_assigns_waiting_leads(world):  # type: ignore[no-untyped-def]
    _admin_id, admin = world.agent("Ada", role="admin", capacity=0)
    mike_id, _mike = world.agent("Mike")
    assert admin.patch(f"/api/agents/{mike_id}", json={"active": False}).status_code == 200
    waiting = world.lead("Omar", status="Follow Up")
    assert world.read(waiting).assigned_agent_id is None
    assert admin.patch(f"/api/agents/{mike_id}", json={"active": True}).status_code == 200
    assert world.read(waiting).assigned_agent_id == mike_id


def test_replying_to_an_unassigned_lead_makes_the_agent_its_owner(world):  # type: ignore[no-untyped-def]
    sarah_id, sarah = world.agent("Sarah")
    lead_id = world.lead("Dana", channel="messenger")
    world.customer_message(lead_id, "Anyone there?", channel="messenger")
    assert sarah.post(f"/api/leads/{lead_id}/reply", json={"text": "Hi Dana!"}).status_code == 201
    assert world.read(lead_id).assigned_agent_id == sarah_id
    # A lead with an owner keeps it (an admin answering does not take it over).
    _admin_id, admin = world.agent("Ada", role="admin")
    assert admin.post(f"/api/leads/{lead_id}/reply", json={"text": "Ada here"}).status_code == 201
    assert world.read(lead_id).assigned_agent_id == sarah_id


def test_replying_leaves_the_lead_unassigned_when_business_yaml_says_so(world, prompts):  # type: ignore[no-untyped-def]
    prompts.business.assign_on_reply = False
    _sarah_id, sarah = world.agent("Sarah")
    lead_id = world.lead("Omar", channel="web")
    world.customer_message(lead_id, "Hello?", channel="web")
    assert sarah.post(f"/api/leads/{lead_id}/reply", json={"text": "Hi!"}).status_code == 201
    assert world.read(lead_id).assigned_agent_id is None


def test_raising_an_agents_capacity_assigns_waiting_leads(world):  # type: ignore[no-untyped-def]
    _admin_id, admin = world.agent("Ada", role="admin", capacity=0)
    mike_id, _mike = world.agent("Mike", capacity=0)
    newer = world.lead("Priya", status="Follow Up", created_at=world.clock() - timedelta(hours=1))
    older = world.lead("Omar", status="Follow Up", created_at=world.clock() - timedelta(hours=2))
    assert world.read(older).assigned_agent_id is None  # nobody has room
    changed = admin.patch(f"/api/agents/{mike_id}", json={"capacity": 1})
    assert changed.status_code == 200 and changed.get_json()["open_leads"] == 1
    assert world.read(older).assigned_agent_id == mike_id  # the one that waited longest
    assert world.read(newer).assigned_agent_id is None
