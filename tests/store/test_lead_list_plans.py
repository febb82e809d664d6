"""Lead list pages come from an index on PostgreSQL: the plans of the pages that were slow at a
million leads (stale, last contact newest first, by score, an agent's by score).

The table here is small, so sequential and bitmap scans are switched off for the transaction: the
planner then shows which index it can read the page from, and whether it must still sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, Executable

from store import make_engine
from store.models import Agent, Lead
from store.query import LeadQuery, build_lead_query, order_leads

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain)
def _explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


@pytest.fixture
def pg_session(postgres_url: str) -> Iterator[Session]:
    """The session's PostgreSQL database with a few leads, in a transaction rolled back after."""
    engine: Engine = make_engine(postgres_url)
    with Session(engine) as session:
        agent = Agent(
            name="Ana",
            email="ana@desk.example",
            role="agent",
            active=True,
            capacity=10,
            token_hash="plans-ana",
        )
        session.add(agent)
        session.flush()
        for i in range(40):
            created = NOW - timedelta(days=i)
            session.add(
                Lead(
                    name=f"Lead {i}",
                    status="Interested" if i % 2 else "New",
                    score=i * 2,
                    assigned_agent_id=agent.id if i % 3 else None,
                    created_at=created,
                    last_contacted_at=None if i % 5 == 0 else created + timedelta(hours=1),
                    score_factors=[],
                    interests=[],
                    objections=[],
                    tags=[],
                    custom_fields={},
                )
            )
        session.flush()
        session.execute(text("SET LOCAL enable_seqscan = off"))
        session.execute(text("SET LOCAL enable_bitmapscan = off"))
        yield session
        session.rollback()
    engine.dispose()


def plan(session: Session, q: LeadQuery) -> str:
    """The plan of the page `query_leads` reads for `q` on PostgreSQL."""
    stmt = order_leads(build_lead_query(q, now=NOW), q.sort).limit(50)
    return "\n".join(line for (line,) in session.execute(_Explain(stmt)))


def test_a_stale_page_skips_recent_leads_inside_the_newest_first_index(pg_session: Session) -> None:
    shown = plan(pg_session, LeadQuery(stale_days=14))
    assert "Index Scan Backward using ix_leads_live_created" in shown, shown
    index_cond = next(line for line in shown.splitlines() if "Index Cond" in line)
    assert "COALESCE(last_contacted_at, created_at) <" in index_cond, shown


def test_last_contact_newest_first_reads_its_index_without_sorting(pg_session: Session) -> None:
    shown = plan(pg_session, LeadQuery(sort="-last_contacted_at"))
    assert "Index Scan using ix_leads_live_contacted_desc" in shown, shown
    assert "Sort" not in shown, shown


@pytest.mark.parametrize(
    ("q", "index"),
    [
        (LeadQuery(sort="-score"), "ix_leads_live_score"),
        (LeadQuery(sort="score"), "ix_leads_live_score"),
        (LeadQuery(agent_id=1, stale_days=7, sort="-score"), "ix_leads_live_agent"),
    ],
)
def test_pages_by_score_read_the_index_in_order(
    pg_session: Session, q: LeadQuery, index: str
) -> None:
    if q.agent_id is not None:
        q.agent_id = pg_session.scalar(select(Agent.id))
    shown = plan(pg_session, q)
    assert f"using {index}" in shown, shown
    assert "Sort" not in shown, shown
