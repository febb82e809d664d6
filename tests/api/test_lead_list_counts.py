"""GET /api/leads counts: a text search is counted to 1,000 (its own cap), other lists to 10,000;
the OpenAPI document says so. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import T0


def test_a_search_total_stops_at_the_search_cap(world, team, monkeypatch):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    for i in range(4):
        world.lead(f"Sara {i}")
    world.lead("Omar")
    monkeypatch.setattr("store.query.SEARCH_COUNT_CAP", 3)
    body = admin.get("/api/leads", query_string={"q": "sara", "limit": 2}).get_json()
    assert (body["total"], body["total_capped"]) == (3, True)
    assert len(body["leads"]) == 2 and body["next_cursor"]
    # The list without a search, and a search with fewer matches, are counted exactly.
    body = admin.get("/api/leads").get_json()
    assert (body["total"], body["total_capped"]) == (5, False)
    body = admin.get("/api/leads", query_string={"q": "omar"}).get_json()
    assert (body["total"], body["total_capped"]) == (1, False)


@pytest.mark.parametrize("sort", ["-last_contacted_at", "last_contacted_at", "name", "-name"])
def test_cursor_pages_reach_the_leads_without_a_value(world, team, sort):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    made = [
        world.lead(
            f"Lead {i % 3}" if i % 2 else None,
            last_contacted_at=None if i % 3 == 0 else T0 - timedelta(hours=i % 2),
        )
        for i in range(7)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        query = {"limit": 2, "sort": sort, **({"cursor": cursor} if cursor else {})}
        body = admin.get("/api/leads", query_string=query).get_json()
        seen += [lead["id"] for lead in body["leads"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))


def test_the_openapi_document_gives_the_search_cap(app):  # type: ignore[no-untyped-def]
    document = app.test_client().get("/api/openapi.json").get_json()
    page = document["components"]["schemas"]["LeadPage"]
    assert "1,000+" in page["properties"]["total_capped"]["description"]
    assert "1,000 with a text search" in page["properties"]["total"]["description"]
