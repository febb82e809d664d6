"""Lead list pages and counts at scale, by behaviour (SQLite and PostgreSQL): a text search counts
to its own lower cap, offset pages and keyset cursors give exactly the leads the full order has
there, empty sort values (never contacted, no name) included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from store import query
from store.models import Lead
from store.query import (
    SORT_KEYS,
    LeadCount,
    LeadQuery,
    count_leads,
    count_leads_capped,
    list_count_cap,
    query_leads,
)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def desk(session: Session, make_lead: Callable[..., Lead], make_agent: Callable[..., Any]) -> None:
    """23 leads with ties and empty values on every sortable column."""
    agent = make_agent(name="Ana")
    for i in range(23):
        created = NOW - timedelta(hours=i % 6)
        make_lead(
            name=None if i % 4 == 0 else f"Sara {i % 5}",
            score=(i * 7) % 100,
            assigned_agent_id=agent.id if i % 2 else None,
            created_at=created,
            last_contacted_at=None if i % 3 == 0 else NOW - timedelta(hours=i % 4),
        )


def page_ids(session: Session, q: LeadQuery) -> list[int]:
    return [lead.id for lead in query_leads(q, session=session, now=NOW)]


def test_a_text_search_counts_to_its_own_lower_cap(
    session: Session, desk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "SEARCH_COUNT_CAP", 4)
    search = LeadQuery(search="sara")
    exact = count_leads(search, session=session, now=NOW)
    assert exact > 4
    assert list_count_cap(search) == 4
    assert count_leads_capped(search, session=session, now=NOW) == LeadCount(4, capped=True)
    assert str(count_leads_capped(search, session=session, now=NOW)) == "4+"
    # The same leads without a search count to the list cap; blank text is no search.
    assert count_leads_capped(LeadQuery(), session=session, now=NOW) == LeadCount(23)
    assert list_count_cap(LeadQuery(search="  ")) == query.LIST_COUNT_CAP
    # A search with fewer matches than the cap is exact; exports and reports stay exact.
    assert count_leads_capped(LeadQuery(search="sara 1"), session=session, now=NOW) == LeadCount(
        count_leads(LeadQuery(search="sara 1"), session=session, now=NOW)
    )
    assert count_leads(search, session=session, now=NOW) == exact
    # The list cap still bounds a search if it is the lower one.
    monkeypatch.setattr(query, "LIST_COUNT_CAP", 2)
    assert count_leads_capped(search, session=session, now=NOW) == LeadCount(2, capped=True)


@pytest.mark.parametrize("sort", SORT_KEYS)
def test_offset_pages_are_slices_of_the_whole_order(
    session: Session, desk: None, sort: str
) -> None:
    for filters in ({}, {"unassigned": True}, {"search": "sara"}):
        whole = page_ids(session, LeadQuery(sort=sort, limit=100, **filters))
        pages = [
            lead_id
            for offset in range(0, len(whole) + 5, 5)
            for lead_id in page_ids(
                session, LeadQuery(sort=sort, limit=5, offset=offset, **filters)
            )
        ]
        assert pages == whole, (sort, filters)
    beyond = page_ids(session, LeadQuery(sort=sort, limit=5, offset=500))
    assert beyond == []


def _cursor(lead: Lead, sort: str) -> tuple[Any, int]:
    return getattr(lead, sort.lstrip("-")), lead.id


@pytest.mark.parametrize("sort", SORT_KEYS)
def test_cursor_pages_walk_the_whole_order_across_the_empty_values(
    session: Session, desk: None, sort: str
) -> None:
    whole = page_ids(session, LeadQuery(sort=sort, limit=100))
    for size in (1, 4, 7):
        walked: list[int] = []
        after: tuple[Any, int] | None = None
        while True:
            rows = query_leads(LeadQuery(sort=sort, limit=size, after=after), session=session)
            walked += [lead.id for lead in rows]
            if len(rows) < size:
                break
            after = _cursor(rows[-1], sort)
        assert walked == whole, (sort, size)


def test_a_page_takes_an_offset_or_a_cursor_not_both(session: Session, desk: None) -> None:
    with pytest.raises(ValueError, match="not both"):
        query_leads(LeadQuery(offset=5, after=(NOW, 3)), session=session)
