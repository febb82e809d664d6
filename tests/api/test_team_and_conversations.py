"""Agents and tokens (admins), statuses and custom fields (everyone), replies and bot pause/resume,
export.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest
from sqlalchemy import select

from bot import load_prompts
from store.models import Message
from tests.conftest import REPO_ROOT


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    """Behaviour, not backend: the list and change tests run on PostgreSQL too."""
    return sqlite_engine


@pytest.fixture
def team(world):  # type: ignore[no-untyped-def]
    admin_id, admin = world.agent("Ada", role="admin")
    sarah_id, sarah = world.agent("Sarah")
    return {"admin": admin, "sarah": sarah, "admin_id": admin_id, "sarah_id": sarah_id}


def test_admins_create_agents_and_the_token_works_once_shown(world, team):  # type: ignore[no-untyped-def]
    created = team["admin"].post(
        "/api/agents",
        json={
            "name": "Mike",
            "email": "Mike@Example.com",
            "password": "long enough",
            "capacity": 10,
        },
    )
    assert created.status_code == 201
    body = created.get_json()
    assert (
        body["token"].startswith("ld_")
        and body["email"] == "Mike@example.com"
        and body["role"] == "agent"
    )
    mike = world.anonymous()
    mike.token = body["token"]
    assert mike.get("/api/me").get_json()["name"] == "Mike"
    assert "token" not in team["admin"].get("/api/agents").get_json()["agents"][0]
    duplicate = team["admin"].post(
        "/api/agents", json={"name": "Mike 2", "email": "Mike@example.com"}
    )
    assert duplicate.status_code == 409 and duplicate.get_json()["error"]["field"] == "email"
    assert team["admin"].post("/api/agents", json={"name": "x", "role": "boss"}).status_code == 422
    assert (
        team["admin"].post("/api/agents", json={"name": "x", "password": "short"}).status_code
        == 422
    )
    assert team["sarah"].post("/api/agents", json={"name": "Eve"}).status_code == 403


def test_disable_rotate_and_the_last_admin(world, team):  # type: ignore[no-untyped-def]
    admin, sarah = team["admin"], team["sarah"]
    assert (
        admin.patch(f"/api/agents/{team['sarah_id']}", json={"active": False}).get_json()["active"]
        is False
    )
    assert sarah.get("/api/me").status_code == 401
    admin.patch(f"/api/agents/{team['sarah_id']}", json={"active": True, "capacity": 5})
    assert sarah.get("/api/me").get_json()["capacity"] == 5
    # Agents rotate their own token; the old one stops working at once.
    old = sarah.token
    rotated = sarah.post(f"/api/agents/{team['sarah_id']}/token").get_json()["token"]
    assert rotated != old and sarah.get("/api/me").status_code == 401
    sarah.token = rotated
    assert sarah.get("/api/me").status_code == 200
    assert sarah.post(f"/api/agents/{team['admin_id']}/token").status_code == 403
    assert sarah.patch(f"/api/agents/{team['sarah_id']}", json={"role": "admin"}).status_code == 403
    last = admin.patch(f"/api/agents/{team['admin_id']}", json={"active": False})
    assert last.status_code == 409 and last.get_json()["error"]["code"] == "last_admin"
    assert admin.patch("/api/agents/999", json={"name": "x"}).status_code == 404
    assert admin.patch(f"/api/agents/{team['sarah_id']}", json={"name": None}).status_code == 422
    # Agents see their active colleagues; admins see everyone.
    admin.patch(f"/api/agents/{team['sarah_id']}", json={"active": False})
    assert len(admin.get("/api/agents").get_json()["agents"]) == 2


def test_statuses_and_custom_fields_from_the_prompts_directory(world, team, app):  # type: ignore[no-untyped-def]
    app.extensions["leaddesk"] = replace(
        app.extensions["leaddesk"], prompts=lambda: load_prompts(REPO_ROOT / "prompts")
    )
    statuses = team["sarah"].get("/api/statuses").get_json()["statuses"]
    by_name = {s["name"]: s for s in statuses}
    assert list(by_name)[:2] == ["New", "Interested"]
    assert by_name["Converted"]["terminal"] is True and by_name["Converted"]["ai_can_set"] is False
    assert (
        by_name["Follow Up"]["action"] == "auto_assign"
        and by_name["Follow Up"]["ai_behaviour"] == "pause"
    )
    assert all(s["colour"].startswith("#") for s in statuses)
    fields = {
        f["name"]: f for f in team["sarah"].get("/api/custom-fields").get_json()["custom_fields"]
    }
    assert fields["roof_type"]["type"] == "choice" and "metal" in fields["roof_type"]["choices"]
    lead_id = world.lead("Roofer")
    ok = team["sarah"].patch(
        f"/api/leads/{lead_id}",
        json={"custom_fields": {"roof_type": "METAL", "monthly_bill": "180"}},
    )
    assert ok.get_json()["custom_fields"] == {"roof_type": "metal", "monthly_bill": 180}
    assert (
        team["sarah"]
        .patch(f"/api/leads/{lead_id}", json={"custom_fields": {"monthly_bill": "nan"}})
        .status_code
        == 422
    )
    assert (
        team["sarah"]
        .patch(f"/api/leads/{lead_id}", json={"custom_fields": {"roof_type": "thatch"}})
        .status_code
        == 422
    )


def test_agent_reply_goes_out_and_pauses_the_bot(world, team, clock, session_factory):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Dana", channel="messenger")
    world.customer_message(lead_id, "Are you open on Sunday?", channel="messenger")
    response = team["sarah"].post(f"/api/leads/{lead_id}/reply", json={"text": "Yes, 10 to 4!"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["message"]["author"] == "agent" and body["message"]["agent_name"] == "Sarah"
    assert (
        body["message"]["channel"] == "messenger" and body["message"]["delivery_status"] == "sent"
    )
    assert body["ai_paused_until"].startswith("2024-06-03T13:00")  # the 60-minute takeover window
    with session_factory() as session:
        message = session.scalars(select(Message).where(Message.author == "agent")).one()
        assert message.external_id == "messenger-user-1" and message.agent_id == team["sarah_id"]
    assert team["sarah"].post(f"/api/leads/{lead_id}/reply", json={"text": ""}).status_code == 422
    assert (
        team["sarah"].post(f"/api/leads/{lead_id}/reply", json={"text": "x" * 5000}).status_code
        == 422
    )
    never_wrote = world.lead("Imported", channel="manual")
    refused = team["sarah"].post(f"/api/leads/{never_wrote}/reply", json={"text": "Hello"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "no_conversation"


def test_pause_and_resume_the_bot(world, team, clock):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Quiet please")
    sarah = team["sarah"]
    paused = sarah.post(f"/api/leads/{lead_id}/bot/pause", json={"minutes": 30}).get_json()
    assert paused["ai_paused"] is True and paused["ai_paused_until"].startswith("2024-06-03T12:30")
    clock.advance(minutes=31)
    assert sarah.get(f"/api/leads/{lead_id}").get_json()["ai_paused"] is False
    stopped = sarah.post(f"/api/leads/{lead_id}/bot/pause", json={}).get_json()
    assert stopped["ai_stopped"] is True and stopped["ai_paused"] is True
    resumed = sarah.post(f"/api/leads/{lead_id}/bot/resume").get_json()
    assert resumed["ai_stopped"] is False and resumed["ai_paused"] is False
    assert any(a["field"] == "ai_stopped" and a["agent_name"] == "Sarah" for a in resumed["audit"])
    assert sarah.post(f"/api/leads/{lead_id}/bot/pause", json={"minutes": 0}).status_code == 422


def test_bulk_assignment_by_ids_filter_and_round_robin(world, team):  # type: ignore[no-untyped-def]
    mike_id, mike = world.agent("Mike")
    admin = team["admin"]
    leads = [world.lead(f"Lead {i}", score=80 if i < 4 else 10) for i in range(6)]
    by_filter = admin.post(
        "/api/leads/bulk/assign", json={"filter": {"hot": True}, "agent_id": mike_id}
    ).get_json()
    assert by_filter == {"matched": 4, "changed": 4, "unchanged": 0, "skipped": []}
    assert {lead["id"] for lead in mike.get("/api/leads?mine=1").get_json()["leads"]} == set(
        leads[:4]
    )
    # Round-robin spreads the rest over the agents with the fewest open leads.
    spread = admin.post(
        "/api/leads/bulk/assign", json={"ids": leads[4:], "round_robin": True}
    ).get_json()
    assert spread["changed"] == 2
    owners = {world.read(i).assigned_agent_id for i in leads[4:]}
    assert owners <= {team["admin_id"], team["sarah_id"]} and len(owners) == 2
    # Sarah cannot reach Mike's leads in bulk: they are skipped with the reason.
    skipped = (
        team["sarah"]
        .post("/api/leads/bulk/assign", json={"ids": [leads[0], 999], "agent_id": team["sarah_id"]})
        .get_json()
    )
    assert skipped["changed"] == 0
    assert skipped["skipped"] == [
        {"id": leads[0], "reason": "assigned to another agent"},
        {"id": 999, "reason": "not found"},
    ]
    for body in (
        {"agent_id": mike_id},
        {"ids": [1], "filter": {}, "agent_id": mike_id},
        {"ids": [1], "agent_id": 999},
    ):
        assert admin.post("/api/leads/bulk/assign", json=body).status_code == 422, body
    status = admin.post(
        "/api/leads/bulk/status", json={"ids": leads[:2], "status": "scouting"}
    ).get_json()
    assert status["changed"] == 2 and world.read(leads[0]).status == "Scouting"
    assert (
        admin.post("/api/leads/bulk/status", json={"ids": leads[:2], "status": "Nope"}).status_code
        == 422
    )


def test_assign_one_lead(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Solo")
    sarah = team["sarah"]
    mine = sarah.post(
        f"/api/leads/{lead_id}/assign", json={"agent_id": team["sarah_id"]}
    ).get_json()
    assert mine["assigned_agent"]["name"] == "Sarah"
    handed = sarah.post(f"/api/leads/{lead_id}/assign", json={"agent_id": team["admin_id"]})
    assert handed.status_code == 200 and handed.get_json()["assigned_agent"]["name"] == "Ada"
    assert sarah.get(f"/api/leads/{lead_id}").status_code == 403  # now someone else's
    assert (
        team["admin"]
        .post(f"/api/leads/{lead_id}/assign", json={"agent_id": None})
        .get_json()["assigned_agent"]
        is None
    )
    team["admin"].patch(f"/api/agents/{team['sarah_id']}", json={"capacity": 0})
    team["admin"].patch(f"/api/agents/{team['admin_id']}", json={"capacity": 0})
    full = team["admin"].post(f"/api/leads/{lead_id}/assign", json={"round_robin": True})
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "no_agent_available"


def test_export_streams_the_filtered_leads_as_csv(world, team):  # type: ignore[no-untyped-def]
    world.lead('Hot "Quoted", Name', score=90, phone="+14155550131", company='=HYPERLINK("x")')
    world.lead("Cold", score=5)
    world.lead("Theirs", score=95, agent_id=team["admin_id"])
    response = team["sarah"].get("/api/leads/export.csv?hot=1")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["name"] for r in rows] == ['Hot "Quoted", Name']
    assert rows[0]["phone"] == "+14155550131" and rows[0]["company"].startswith("'=")
    everything = list(
        csv.reader(io.StringIO(team["admin"].get("/api/leads/export.csv").get_data(as_text=True)))
    )
    assert everything[0][:4] == ["id", "name", "email", "phone"] and len(everything) == 4
    assert team["sarah"].get("/api/leads/export.csv?score_min=x").status_code == 422
    assert world.anonymous().get("/api/leads/export.csv").status_code == 401


def test_dashboard_endpoint(world, team):  # type: ignore[no-untyped-def]
    world.lead("Hot", score=80, channel="whatsapp", phone="+14155550140")
    world.lead("Mild", score=30, status="Interested")
    data = team["sarah"].get("/api/dashboard").get_json()
    assert data["total"] == 2
    assert {r["label"]: r["count"] for r in data["by_band"]}["high"] == 1
    assert {r["label"]: r["count"] for r in data["by_status"]}["Interested"] == 1
    assert (
        data["by_channel"][0] == {"label": "web", "count": 1}
        or {"label": "whatsapp", "count": 1} in data["by_channel"]
    )
    assert [lead["name"] for lead in data["hot_needing_attention"]] == ["Hot"]
    assert len(data["new_per_day"]) == 14 and data["new_per_day"][-1]["count"] == 2


def test_csv_import_reports_like_the_cli(world, team, session_factory):  # type: ignore[no-untyped-def]
    existing = world.lead("Known", phone="+14155550150")
    csv_text = (
        "name,phone,email,company,status,note,industry,shoe_size\n"
        "Ann Lee,(415) 555-0151,ann@example.com,Acme,Interested,Met at the fair,retail,9\n"
        "Known Again,415.555.0150,,,,Second visit,,\n"
        "Bad Phone,12,,,,,,\n"
        "Bad Status,415 555 0152,,,Hibernating,,,\n"
    )
    from io import BytesIO

    response = team["admin"].post(
        "/api/leads/import",
        data={"file": (BytesIO(csv_text.encode()), "fair.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["file"] == "fair.csv" and report["rows"] == 4
    assert report["created"] == 1 and report["merged"] == 1 and report["rejected_count"] == 2
    assert [r["line"] for r in report["rejected"]] == [4, 5]
    assert report["unknown_columns"] == ["shoe_size"]
    ann = team["admin"].get("/api/leads?q=ann@example.com").get_json()["leads"][0]
    assert ann["phone"] == "+14155550151" and ann["status"] == "Interested"
    notes = team["admin"].get(f"/api/leads/{existing}/notes").get_json()["notes"]
    assert [n["text"] for n in notes] == ["Second visit"]
    # A text/csv body works too; agents may not import; a file without a header is refused.
    plain = team["admin"].post("/api/leads/import", data="name\nZed\n", content_type="text/csv")
    assert plain.get_json()["created"] == 1
    assert (
        team["sarah"]
        .post("/api/leads/import", data="name\nX\n", content_type="text/csv")
        .status_code
        == 403
    )
    empty = team["admin"].post("/api/leads/import", data="", content_type="text/csv")
    assert empty.status_code == 422 and empty.get_json()["error"]["field"] == "file"
    latin = team["admin"].post(
        "/api/leads/import", data="name\nJos\xe9\n".encode("latin-1"), content_type="text/csv"
    )
    assert latin.status_code == 422
    assert team["admin"].post("/api/leads/import", json={"name": "x"}).status_code == 400
    # A multipart part without a name is no file: a clear error, not a 500.
    nameless = team["admin"].post(
        "/api/leads/import",
        data=b"--b\r\nContent-Disposition: form-data\r\n\r\nname\nZed\n\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    assert nameless.status_code == 400
    assert nameless.get_json()["error"]["code"] == "missing_file"
