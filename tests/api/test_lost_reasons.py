"""A lost status through the API: the reason is required (422 without one), kept on the lead, listed
by GET /api/statuses, needed by the bulk change too, and counted on the dashboard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Prompts, Status, World, default_prompts


@pytest.fixture
def prompts() -> Prompts:
    base = default_prompts()
    base.statuses.append(
        Status("Lost", "#78716c", terminal=True, ai_can_set=False, asks_reason=True)
    )
    return base


def test_moving_to_lost_needs_a_configured_reason(world: World, team: dict[str, Any]) -> None:
    lead = world.lead("Dana", agent_id=team["sarah_id"])
    sarah = team["sarah"]
    missing = sarah.patch(f"/api/leads/{lead}", json={"status": "Lost"})
    assert missing.status_code == 422
    error = missing.get_json()["error"]
    assert error["code"] == "lost_reason_required" and error["field"] == "lost_reason"
    assert "Price; Chose a competitor; No budget" in error["message"]
    unknown = sarah.patch(f"/api/leads/{lead}", json={"status": "Lost", "lost_reason": "Weather"})
    assert unknown.status_code == 422
    too_long = sarah.patch(f"/api/leads/{lead}", json={"status": "Lost", "lost_reason": "x" * 101})
    assert too_long.status_code in (400, 422)
    alone = sarah.patch(f"/api/leads/{lead}", json={"lost_reason": "Price"})
    assert alone.status_code == 422
    assert world.read(lead).status == "New"

    done = sarah.patch(
        f"/api/leads/{lead}",
        json={"status": "lost", "lost_reason": "chose a competitor", "lost_note": "SunCo"},
    )
    assert done.status_code == 200, done.get_json()
    data = done.get_json()
    assert data["status"] == "Lost"
    assert (data["lost_reason"], data["lost_note"]) == ("Chose a competitor", "SunCo")
    audit = {(e["field"], e["new_value"]) for e in data["audit"]}
    assert ("lost_reason", "Chose a competitor") in audit


def test_statuses_list_the_reasons(team: dict[str, Any]) -> None:
    data = team["sarah"].get("/api/statuses").get_json()
    assert data["lost_reasons"] == ["Price", "Chose a competitor", "No budget"]
    asks = [s["name"] for s in data["statuses"] if s["asks_reason"]]
    assert asks == ["Lost"]


def test_creating_a_lost_lead_needs_the_reason_too(team: dict[str, Any]) -> None:
    refused = team["sarah"].post("/api/leads", json={"name": "Old lead", "status": "Lost"})
    assert refused.status_code == 422
    made = team["sarah"].post(
        "/api/leads", json={"name": "Old lead", "status": "Lost", "lost_reason": "No budget"}
    )
    assert made.status_code == 201 and made.get_json()["lost_reason"] == "No budget"


def test_bulk_lost_needs_a_reason_and_the_dashboard_counts_them(
    world: World, team: dict[str, Any]
) -> None:
    leads = [world.lead(f"L{i}") for i in range(3)]
    admin = team["admin"]
    refused = admin.post("/api/leads/bulk/status", json={"ids": leads, "status": "Lost"})
    assert refused.status_code == 422
    assert {world.read(i).status for i in leads} == {"New"}
    ok = admin.post(
        "/api/leads/bulk/status", json={"ids": leads[:2], "status": "Lost", "lost_reason": "Price"}
    )
    assert ok.status_code == 200 and ok.get_json()["changed"] == 2
    admin.patch(f"/api/leads/{leads[2]}", json={"status": "Lost", "lost_reason": "No budget"})
    dashboard = admin.get("/api/dashboard").get_json()
    assert dashboard["lost_reasons"] == [
        {"label": "Price", "count": 2},
        {"label": "Chose a competitor", "count": 0},
        {"label": "No budget", "count": 1},
    ]
    # Reopened, a lead no longer counts as lost.
    admin.patch(f"/api/leads/{leads[0]}", json={"status": "Interested"})
    counts = {
        r["label"]: r["count"] for r in admin.get("/api/dashboard").get_json()["lost_reasons"]
    }
    assert counts["Price"] == 1
