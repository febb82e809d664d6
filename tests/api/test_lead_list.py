"""GET /api/leads: every filter of the shared query, sorting, cursor pages and who sees what (SQLite
and PostgreSQL).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import T0


def ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_json()
    return [lead["id"] for lead in response.get_json()["leads"]]


def test_a_token_is_required(world):  # type: ignore[no-untyped-def]
    response = world.anonymous().get("/api/leads")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    bad = world.anonymous()
    bad.token = "ld_not-a-real-token"
    assert bad.get("/api/leads").status_code == 401


def test_agents_see_their_own_and_unassigned_leads_admins_all(world, team):  # type: ignore[no-untyped-def]
    own = world.lead("Own", agent_id=team["sarah_id"])
    free = world.lead("Free")
    other = world.lead("Other", agent_id=team["mike_id"])
    assert set(ids(team["sarah"].get("/api/leads"))) == {own, free}
    assert set(ids(team["mike"].get("/api/leads"))) == {other, free}
    assert set(ids(team["admin"].get("/api/leads"))) == {own, free, other}
    # Asking for someone else's leads by agent_id shows nothing to an agent, everything to an admin.
    assert ids(team["sarah"].get(f"/api/leads?agent_id={team['mike_id']}")) == []
    assert ids(team["admin"].get(f"/api/leads?agent_id={team['mike_id']}")) == [other]


def test_status_hot_score_and_assignment_filters(world, team):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    new = world.lead("New one", score=10)
    interested = world.lead("Keen", score=60, status="Interested", agent_id=team["sarah_id"])
    hot = world.lead("Hot", score=80, status="Interested")
    scouting = world.lead("Scout", score=75, status="Scouting", agent_id=team["mike_id"])

    assert set(ids(admin.get("/api/leads?status=Interested"))) == {interested, hot}
    assert set(ids(admin.get("/api/leads?status=interested&status=Scouting"))) == {
        interested,
        hot,
        scouting,
    }
    assert set(ids(admin.get("/api/leads?status=Interested,Scouting"))) == {
        interested,
        hot,
        scouting,
    }
    assert set(ids(admin.get("/api/leads?hot=1"))) == {hot, scouting}
    assert set(ids(admin.get("/api/leads?hot=true&status=Interested"))) == {hot}
    assert set(ids(admin.get("/api/leads?score_min=60&score_max=75"))) == {interested, scouting}
    assert set(ids(admin.get("/api/leads?unassigned=1"))) == {new, hot}
    assert set(ids(admin.get(f"/api/leads?agent_id={team['sarah_id']}"))) == {interested}
    assert set(ids(team["sarah"].get("/api/leads?mine=1"))) == {interested}


def test_channel_date_stale_archived_and_search_filters(world, team, clock):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    old = world.lead(
        "Old Timer",
        channel="messenger",
        created_at=T0 - timedelta(days=40),
        last_contacted_at=T0 - timedelta(days=30),
        company="Acme Corp",
    )
    recent = world.lead(
        "Recent",
        channel="whatsapp",
        phone="+14155550123",
        created_at=T0 - timedelta(days=2),
        last_contacted_at=T0 - timedelta(hours=3),
    )
    both = world.lead(
        "Both",
        channel="web",
        phone="+14155550999",
        extra_channels=("instagram",),
        created_at=T0 - timedelta(days=10),
        last_contacted_at=T0 - timedelta(days=9),
    )
    done = world.lead(
        "Done",
        status="Not Interested",
        created_at=T0 - timedelta(days=50),
        last_contacted_at=T0 - timedelta(days=45),
    )
    archived = world.lead("Gone", archived=True)

    assert set(ids(admin.get("/api/leads?channel=instagram"))) == {both}
    assert set(ids(admin.get("/api/leads?channel=whatsapp&channel=messenger"))) == {recent, old}
    since = (T0 - timedelta(days=11)).isoformat()
    assert set(ids(admin.get("/api/leads", query_string={"created_from": since}))) == {
        recent,
        both,
        archived,
    } - {archived}
    assert set(ids(admin.get("/api/leads", query_string={"created_to": since}))) == {old, done}
    assert set(ids(admin.get("/api/leads", query_string={"contacted_from": "2024-06-01"}))) == {
        recent
    }
    assert set(ids(admin.get("/api/leads", query_string={"contacted_to": "2024-05-20"}))) == {
        old,
        done,
    }
    # Stale: no contact for 7 days, terminal statuses excluded.
    assert set(ids(admin.get("/api/leads?stale_days=7"))) == {old, both}
    assert set(ids(admin.get("/api/leads?archived=true"))) == {archived}
    assert archived in ids(admin.get("/api/leads?archived=all"))
    assert archived not in ids(admin.get("/api/leads"))
    assert set(ids(admin.get("/api/leads?q=acme"))) == {old}
    # A phone typed in any format finds the E.164 number.
    assert set(ids(admin.get("/api/leads", query_string={"q": "(415) 555-0123"}))) == {recent}
    assert set(ids(admin.get(f"/api/leads?q={both}"))) == {both}


def test_sorting(world, team):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    a = world.lead(
        "Anna",
        score=50,
        created_at=T0 - timedelta(days=3),
        last_contacted_at=T0 - timedelta(days=1),
    )
    b = world.lead("Bob", score=90, created_at=T0 - timedelta(days=1))
    c = world.lead(
        "Cleo",
        score=10,
        created_at=T0 - timedelta(days=2),
        last_contacted_at=T0 - timedelta(days=2),
    )
    assert ids(admin.get("/api/leads")) == [b, c, a]
    assert ids(admin.get("/api/leads?sort=created_at")) == [a, c, b]
    assert ids(admin.get("/api/leads?sort=-score")) == [b, a, c]
    assert ids(admin.get("/api/leads?sort=score")) == [c, a, b]
    assert ids(admin.get("/api/leads?sort=name")) == [a, b, c]
    assert ids(admin.get("/api/leads?sort=-name")) == [c, b, a]
    # Never-contacted leads come last either way.
    assert ids(admin.get("/api/leads?sort=-last_contacted_at")) == [a, c, b]
    assert ids(admin.get("/api/leads?sort=last_contacted_at")) == [c, a, b]
    assert ids(admin.get("/api/leads?sort=id")) == [a, b, c]


@pytest.mark.parametrize(
    "sort", ["-created_at", "score", "-score", "name", "-last_contacted_at", "id", "-id"]
)
def test_cursor_pages_walk_every_lead_once(world, team, sort):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    made = set()
    for i in range(23):
        made.add(
            world.lead(
                f"Lead {i % 5}" if i % 4 else None,
                score=(i * 7) % 100,
                created_at=T0 - timedelta(hours=i % 6),
                last_contacted_at=None if i % 3 == 0 else T0 - timedelta(hours=i % 4),
            )
        )
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 5, "sort": sort, **({"cursor": cursor} if cursor else {})}
        body = admin.get("/api/leads", query_string=query).get_json()
        assert body["total"] == (23 if pages < 2 else 24)
        seen += [lead["id"] for lead in body["leads"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        if pages == 2:
            # A lead arriving mid-walk does not shift what the cursor points at.
            world.lead("Newcomer", score=50)
    assert len(seen) == len(set(seen))
    assert made <= set(seen)
    assert pages == 5
    whole = ids(admin.get("/api/leads", query_string={"limit": 200, "sort": sort}))
    assert [i for i in whole if i in made] == [i for i in seen if i in made]


def test_bad_parameters_are_clear_4xx(world, team):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    cases = {
        "/api/leads?score_min=abc": (422, "score_min"),
        "/api/leads?score_min=101": (422, "score_min"),
        "/api/leads?score_min=80&score_max=20": (422, "score_min"),
        "/api/leads?sort=phone": (422, "sort"),
        "/api/leads?limit=0": (422, "limit"),
        "/api/leads?channel=telex": (422, "channel.0"),
        "/api/leads?created_from=yesterday": (422, "created_from"),
        "/api/leads?status=Imaginary": (422, "status"),
        "/api/leads?colour=red": (400, "colour"),
        "/api/leads?cursor=garbage!!": (400, "cursor"),
        "/api/leads?limit=2&limit=3": (400, "limit"),
    }
    for path, (status, field) in cases.items():
        response = admin.get(path)
        assert response.status_code == status, path
        error = response.get_json()["error"]
        assert error["field"] == field, path
        assert error["message"]
    # A cursor from another sort order is refused rather than misread.
    world.lead("A")
    world.lead("B")
    cursor = admin.get("/api/leads?limit=1&sort=score").get_json()["next_cursor"]
    response = admin.get("/api/leads", query_string={"cursor": cursor, "sort": "name"})
    assert response.status_code == 400


def test_the_total_is_exact_up_to_the_cap_then_flagged(world, team, monkeypatch):  # type: ignore[no-untyped-def]
    admin = team["admin"]
    for i in range(4):
        world.lead(f"Lead {i}", score=80 if i < 2 else 10)
    monkeypatch.setattr("store.query.LIST_COUNT_CAP", 3)
    body = admin.get("/api/leads", query_string={"limit": 2}).get_json()
    assert (body["total"], body["total_capped"]) == (3, True)
    assert len(body["leads"]) == 2 and body["next_cursor"]
    body = admin.get("/api/leads", query_string={"hot": 1}).get_json()
    assert (body["total"], body["total_capped"]) == (2, False)


def test_the_openapi_document_explains_a_capped_total(app):  # type: ignore[no-untyped-def]
    document = app.test_client().get("/api/openapi.json").get_json()
    page = document["components"]["schemas"]["LeadPage"]
    assert set(page["required"]) >= {"leads", "total", "total_capped", "next_cursor"}
    assert page["properties"]["total_capped"]["type"] == "boolean"
    assert "10,000+" in page["properties"]["total_capped"]["description"]
    assert "10,000" in page["properties"]["total"]["description"]
