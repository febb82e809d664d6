"""The shared lead query: every filter, search, sort and paging, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.query import (
    SORT_KEYS,
    LeadCount,
    LeadQuery,
    count_leads,
    count_leads_capped,
    query_leads,
)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def ids(session, now=NOW, **filters) -> list[int]:
    """Ids of the leads matching `filters`, sorted by id (paging wide open)."""
    q = LeadQuery(sort="id", limit=1000, **filters)
    found = [lead.id for lead in query_leads(q, session=session, now=now)]
    assert count_leads(q, session=session, now=now) == len(found)
    return found


@pytest.fixture
def crowd(session, make_lead, make_agent):
    """A small population where each lead stands out on one or two filters."""
    ana, ben = make_agent(name="Ana"), make_agent(name="Ben")
    day = timedelta(days=1)
    leads = {
        "new_web": make_lead(
            name="Nora Webb",
            status="New",
            score=10,
            created_at=NOW - 2 * day,
            last_contacted_at=NOW - 1 * day,
            channels=("web",),
        ),
        "hot_wa": make_lead(
            name="Hamid",
            phone="+966501234567",
            status="Interested",
            score=90,
            assigned_agent_id=ana.id,
            created_at=NOW - 40 * day,
            last_contacted_at=NOW - 30 * day,
            channels=("whatsapp",),
        ),
        "warm_ms": make_lead(
            name="Mia",
            email="mia@shop.example",
            company="Shopify Fans",
            status="Scouting",
            score=75,
            assigned_agent_id=ben.id,
            created_at=NOW - 10 * day,
            last_contacted_at=NOW - 3 * day,
            channels=("messenger", "instagram"),
        ),
        "lost": make_lead(
            name="Lou",
            status="Not Interested",
            score=5,
            created_at=NOW - 100 * day,
            last_contacted_at=NOW - 90 * day,
            channels=("web",),
        ),
        "quiet": make_lead(
            name="Quinn",
            phone="+442079460958",
            status="Follow Up",
            score=50,
            assigned_agent_id=ana.id,
            created_at=NOW - 20 * day,
            last_contacted_at=None,
            channels=("web", "whatsapp"),
        ),
        "archived": make_lead(
            name="Arch",
            status="New",
            score=80,
            archived=True,
            created_at=NOW - 5 * day,
            channels=("web",),
        ),
        "percent": make_lead(
            name="100% Pure_Juice",
            company="Juice Co",
            status="New",
            score=0,
            created_at=NOW - 1 * day,
            channels=("manual",),
        ),
    }
    tomb = make_lead(name="Hamid (old)", status="New", score=99, created_at=NOW - 50 * day)
    tomb.merged_into_id = leads["hot_wa"].id
    tomb.archived = True
    session.flush()
    return {key: lead.id for key, lead in leads.items()} | {"ana": ana.id, "ben": ben.id}


def test_default_shows_active_leads_and_never_merged_tombstones(session, crowd):
    assert ids(session) == sorted(
        v for k, v in crowd.items() if k not in ("archived", "ana", "ben")
    )


def test_archived_only_and_both(session, crowd):
    assert ids(session, archived=True) == [crowd["archived"]]
    assert crowd["archived"] in ids(session, archived=None)
    assert len(ids(session, archived=None)) == 7  # the merged tombstone still never shows


def test_status_filter_takes_several(session, crowd):
    assert ids(session, status=["Interested"]) == [crowd["hot_wa"]]
    assert ids(session, status=["Scouting", "Follow Up"]) == sorted(
        [crowd["warm_ms"], crowd["quiet"]]
    )


def test_score_range_and_hot(session, crowd):
    assert ids(session, score_min=50, score_max=75) == sorted([crowd["warm_ms"], crowd["quiet"]])
    assert ids(session, hot=True) == sorted([crowd["hot_wa"], crowd["warm_ms"]])  # 75 is hot
    assert ids(session, hot=True, score_max=80) == [crowd["warm_ms"]]


def test_agent_unassigned_and_agent_visibility(session, crowd):
    assert ids(session, agent_id=crowd["ana"]) == sorted([crowd["hot_wa"], crowd["quiet"]])
    assert ids(session, unassigned=True) == sorted(
        [crowd["new_web"], crowd["lost"], crowd["percent"]]
    )
    visible = ids(session, visible_to_agent_id=crowd["ben"])
    assert visible == sorted([crowd["new_web"], crowd["warm_ms"], crowd["lost"], crowd["percent"]])


def test_channel_filter_matches_any_identity(session, crowd):
    assert ids(session, channel=["whatsapp"]) == sorted([crowd["hot_wa"], crowd["quiet"]])
    assert ids(session, channel=["instagram"]) == [crowd["warm_ms"]]
    assert ids(session, channel=["instagram", "manual"]) == sorted(
        [crowd["warm_ms"], crowd["percent"]]
    )


def test_created_and_contacted_ranges_are_half_open(session, crowd):
    day = timedelta(days=1)
    assert ids(session, created_from=NOW - 10 * day, created_to=NOW - 2 * day) == [crowd["warm_ms"]]
    assert ids(session, created_from=NOW - 2 * day) == sorted([crowd["new_web"], crowd["percent"]])
    assert ids(session, contacted_from=NOW - 3 * day) == sorted(
        [crowd["new_web"], crowd["warm_ms"]]
    )
    assert ids(session, contacted_to=NOW - 30 * day) == [crowd["lost"]]


def test_stale_means_no_contact_for_n_days_and_not_terminal(session, crowd):
    # Lou went quiet 90 days ago but is Not Interested (terminal); Quinn was never contacted and
    # was created 20 days ago; Hamid's last contact was 30 days ago.
    terminal = ("Not Interested", "Converted")
    assert ids(session, stale_days=14, terminal_statuses=terminal) == sorted(
        [crowd["hot_wa"], crowd["quiet"]]
    )
    assert ids(session, stale_days=25, terminal_statuses=terminal) == [crowd["hot_wa"]]
    assert ids(session, stale_days=14, terminal_statuses=()) == sorted(
        [crowd["hot_wa"], crowd["lost"], crowd["quiet"]]
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("nora", "new_web"),  # name, any case
        ("MIA@SHOP", "warm_ms"),  # email
        ("shopify", "warm_ms"),  # company
        ("+966 50 123 4567", "hot_wa"),  # phone, international format
        ("050-123-4567", "hot_wa"),  # phone, national format with trunk 0
        ("00966501234567", "hot_wa"),  # phone, 00 prefix
        ("٠٥٠١٢٣٤٥٦٧", "hot_wa"),  # phone, Arabic-Indic digits
        ("020 7946 0958", "quiet"),  # UK national
        ("7946", "quiet"),  # a fragment of the number
        ("100%", "percent"),  # LIKE wildcards are literal
        ("pure_juice", "percent"),
    ],
)
def test_search_finds_name_email_company_and_phone_in_any_format(session, crowd, text, key):
    assert ids(session, search=text) == [crowd[key]]


def test_search_wildcards_do_not_match_everything_and_ids_are_found(session, crowd):
    assert ids(session, search="%") == [crowd["percent"]]
    assert ids(session, search="_") == [crowd["percent"]]
    assert crowd["lost"] in ids(session, search=str(crowd["lost"]))
    assert ids(session, search="99999999999999999999") == []  # not an id: no overflow error
    assert ids(session, search="   ") == ids(session)


def test_filters_combine(session, crowd):
    assert ids(session, hot=True, channel=["whatsapp"], agent_id=crowd["ana"]) == [crowd["hot_wa"]]
    assert ids(session, status=["New"], search="juice", channel=["manual"]) == [crowd["percent"]]
    assert ids(session, status=["New"], channel=["whatsapp"]) == []


def test_sort_and_pages_are_stable(session, crowd):
    by_score = [lead.score for lead in query_leads(LeadQuery(sort="-score"), session=session)]
    assert by_score == sorted(by_score, reverse=True)
    by_contact = query_leads(LeadQuery(sort="-last_contacted_at"), session=session)
    assert by_contact[-1].last_contacted_at is None  # never contacted sorts last either way
    assert (
        query_leads(LeadQuery(sort="last_contacted_at"), session=session)[-1].last_contacted_at
        is None
    )
    names = [lead.name for lead in query_leads(LeadQuery(sort="name"), session=session)]
    assert names == sorted(names)
    everyone = [
        lead.id for lead in query_leads(LeadQuery(sort="-created_at", limit=100), session=session)
    ]
    pages = [
        lead.id
        for offset in range(0, 6, 2)
        for lead in query_leads(
            LeadQuery(sort="-created_at", limit=2, offset=offset), session=session
        )
    ]
    assert pages == everyone[:6]
    after = query_leads(LeadQuery(sort="id", after_id=crowd["hot_wa"], limit=2), session=session)
    assert [lead.id for lead in after] == [crowd["warm_ms"], crowd["lost"]]


def test_every_sort_key_works_and_an_unknown_one_is_refused(session, crowd):
    for key in SORT_KEYS:
        assert len(query_leads(LeadQuery(sort=key), session=session)) == 6
    with pytest.raises(ValueError, match="sort must be one of"):
        query_leads(LeadQuery(sort="phone; drop table leads"), session=session)


def test_page_carries_identities_and_agent(session, crowd):
    lead = query_leads(LeadQuery(ids=[crowd["warm_ms"]]), session=session)[0]
    assert lead.channels == ["instagram", "messenger"]
    assert lead.assigned_agent is not None and lead.assigned_agent.name == "Ben"


def test_list_counts_are_exact_up_to_the_cap_then_say_more(session, crowd):
    q = LeadQuery()
    exact = count_leads(q, session=session, now=NOW)
    assert exact >= 3
    at_cap = count_leads_capped(q, session=session, now=NOW, cap=exact)
    assert at_cap == LeadCount(exact, capped=False) and str(at_cap) == str(exact)
    beyond = count_leads_capped(q, session=session, now=NOW, cap=exact - 1)
    assert beyond == LeadCount(exact - 1, capped=True) and str(beyond) == f"{exact - 1}+"
    # Filters count the same way, and a count under the cap is exact.
    hot = count_leads(LeadQuery(hot=True), session=session, now=NOW)
    assert count_leads_capped(LeadQuery(hot=True), session=session, now=NOW) == LeadCount(hot)
    assert str(LeadCount(10_000, capped=True)) == "10,000+"
    assert str(LeadCount(1234)) == "1,234"


def test_stale_counts_a_lead_contacted_long_ago_even_if_recorded_as_created_since(
    session, make_lead
):
    # A channel's own timestamp may put the last contact before the lead's creation here.
    day = timedelta(days=1)
    odd = make_lead(created_at=NOW - 2 * day, last_contacted_at=NOW - 20 * day)
    recent = make_lead(created_at=NOW - 30 * day, last_contacted_at=NOW - 2 * day)
    never = make_lead(created_at=NOW - 30 * day, last_contacted_at=None)
    fresh = make_lead(created_at=NOW - 2 * day, last_contacted_at=None)
    found = ids(session, stale_days=14)
    assert odd.id in found and never.id in found
    assert recent.id not in found and fresh.id not in found
