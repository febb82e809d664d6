"""The console's lost dialog (the lead page's profile form and the bulk bar): a lost status needs a
reason from statuses.yaml, which the lead page shows and the dashboard counts."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.api.conftest import World
from tests.console.conftest import Console


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


def _signed_in(app: Flask, world: World) -> Console:
    world.agent("Sarah", email="sarah@example.com", password="correct horse")
    console = Console(app.test_client())
    assert console.login(email="sarah@example.com", password="correct horse").status_code == 302
    return console


def test_the_lead_page_asks_why_and_refuses_lost_without_a_reason(app: Flask, world: World) -> None:
    sarah = _signed_in(app, world)
    lead = world.lead("Dana")
    page = sarah.get(f"/console/leads/{lead}").text
    assert 'id="lost-reason"' in page and "<option>Chose a competitor</option>" in page
    refused = sarah.post(f"/console/leads/{lead}/edit", {"status": "Lost", "lost_reason": ""})
    page = sarah.get(refused.headers["Location"]).text
    assert "Lost needs a reason: one of Price too high" in page
    assert world.read(lead).status == "New"
    done = sarah.post(
        f"/console/leads/{lead}/edit",
        {"status": "Lost", "lost_reason": "Chose a competitor", "lost_note": "Went with SunCo"},
    )
    page = sarah.get(done.headers["Location"]).text
    assert "Lost: Chose a competitor (Went with SunCo)" in page
    saved = world.read(lead)
    assert (saved.status, saved.lost_reason, saved.lost_note) == (
        "Lost",
        "Chose a competitor",
        "Went with SunCo",
    )


def test_bulk_lost_needs_a_reason_and_the_dashboard_counts_it(app: Flask, world: World) -> None:
    sarah = _signed_in(app, world)
    leads = [world.lead(f"L{i}") for i in range(2)]
    form: dict[str, Any] = {"ids": [str(i) for i in leads], "action": "status", "status": "Lost"}
    refused = sarah.post("/console/leads/bulk", form)
    assert "Lost needs a reason" in sarah.get(refused.headers["Location"]).text
    sarah.post("/console/leads/bulk", {**form, "lost_reason": "No budget"})
    assert {world.read(i).lost_reason for i in leads} == {"No budget"}
    dashboard = sarah.get("/console/dashboard").text
    assert 'id="lost-reasons"' in dashboard
    assert "<title>No budget: 2</title>" in dashboard
