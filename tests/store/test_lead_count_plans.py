"""The lead list queries that were still slow at a million leads, by their plan on PostgreSQL: an
agent's stale count on an index alone, an offset page's ids from the index alone, a deep cursor by
last contact starting inside the index.

The table here is small, so sequential and bitmap scans are switched off for the transaction: the
planner then shows which index it can answer from, and whether it must visit the rows or sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, Executable

from store import make_engine
from store.models import Agent, Lead
from store.query import LeadQuery, after_cursor, build_lead_query, order_leads, query_leads

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain)
def _explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + str(compiler.process(element.statement, **kw))


@pytest.fixture
def pg_session(postgres_url: str) -> Iterator[Session]:
    """The session's PostgreSQL database with 2,000 leads (100 of them the agent's), in a
    transaction rolled back after.
    """
    engine: Engine = make_engine(postgres_url)
    with Session(engine) as session:
        agent = Agent(
            name="Ana",
            email="ana@desk.example",
            role="agent",
            active=True,
            capacity=10,
            token_hash="count-plans-ana",
        )
        session.add(agent)
        session.flush()
        rows = [
            {
                "name": f"Lead {i}",
                "status": "Interested" if i % 2 else "New",
                "score": i % 100,
                "assigned_agent_id": agent.id if i % 20 == 1 else None,
                "created_at": NOW - timedelta(hours=i),
                "last_contacted_at": None if i % 5 == 0 else NOW - timedelta(hours=i - 1),
                "score_factors": [],
                "interests": [],
                "objections": [],
                "tags": [],
                "custom_fields": {},
            }
            for i in range(2000)
        ]
        session.execute(insert(Lead), rows)
        session.flush()
        # Statistics of these rows (rolled back with them), whatever autovacuum last saw.
        session.execute(text("ANALYZE leads"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        session.execute(text("SET LOCAL enable_bitmapscan = off"))
        yield session
        session.rollback()
    engine.dispose()


def explain(session: Session, stmt: Any) -> str:
    return "\n".join(line for (line,) in session.execute(_Explain(stmt)))


def count_statement(q: LeadQuery) -> Any:
    """The statement `count_leads_capped` runs (capped at 10,000)."""
    matches = build_lead_query(q, now=NOW).with_only_columns(Lead.id).limit(10_001).subquery()
    return select(func.count()).select_from(matches)


@pytest.mark.parametrize("terminal", [(), ("Converted", "Not Interested")])
def test_an_agents_stale_count_is_an_index_only_scan(
    pg_session: Session, terminal: tuple[str, ...]
) -> None:
    agent_id = pg_session.scalar(select(Agent.id))
    q = LeadQuery(agent_id=agent_id, stale_days=7, terminal_statuses=terminal)
    shown = explain(pg_session, count_statement(q))
    assert "Index Only Scan using ix_leads_live_agent_created" in shown, shown
    index_cond = next(line for line in shown.splitlines() if "Index Cond" in line)
    assert "assigned_agent_id =" in index_cond, shown


@pytest.mark.parametrize("stale_days", [None, 7])
def test_an_agents_page_newest_first_reads_the_agents_index_in_order(
    pg_session: Session, stale_days: int | None
) -> None:
    q = LeadQuery(agent_id=pg_session.scalar(select(Agent.id)), stale_days=stale_days)
    shown = explain(pg_session, order_leads(build_lead_query(q, now=NOW), q.sort).limit(50))
    assert "Index Scan Backward using ix_leads_live_agent_created" in shown, shown
    assert "Sort" not in shown, shown
    if stale_days is not None:  # the recent leads are skipped inside the index
        index_cond = next(line for line in shown.splitlines() if "Index Cond" in line)
        assert "COALESCE(last_contacted_at, created_at) <" in index_cond, shown


def test_an_offset_page_finds_its_ids_on_the_index_alone(pg_session: Session) -> None:
    q = LeadQuery(offset=20)
    ids = order_leads(build_lead_query(q, now=NOW).with_only_columns(Lead.id), q.sort)
    shown = explain(pg_session, ids.limit(50).offset(20))
    assert "Index Only Scan Backward using ix_leads_live_created" in shown, shown
    assert "Sort" not in shown, shown


def test_a_deep_cursor_by_last_contact_starts_inside_the_index(pg_session: Session) -> None:
    sort = "-last_contacted_at"
    stmt = after_cursor(build_lead_query(LeadQuery(sort=sort), now=NOW), sort, NOW, 10)
    shown = explain(pg_session, order_leads(stmt, sort).limit(51))
    assert "Index Scan using ix_leads_live_contacted_desc" in shown, shown
    index_cond = next(line for line in shown.splitlines() if "Index Cond" in line)
    assert "last_contacted_at <=" in index_cond, shown
    assert "Sort" not in shown, shown
    # Once the page reaches the never-contacted leads, they too are one range of that index.
    empty = after_cursor(build_lead_query(LeadQuery(sort=sort), now=NOW), sort, None, 2**31 - 1)
    shown = explain(pg_session, order_leads(empty, sort).limit(51))
    assert "Index Scan using ix_leads_live_contacted_desc" in shown, shown
    index_cond = next(line for line in shown.splitlines() if "Index Cond" in line)
    assert "last_contacted_at IS NULL" in index_cond and "id <" in index_cond, shown
    assert "Sort" not in shown, shown


def page_plan(session: Session, q: LeadQuery) -> str:
    """The plan of the statement `query_leads` sends first for `q` (the page itself)."""
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        query_leads(q, session=session, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, parameters = sent[0]
    rows = session.connection().exec_driver_sql("EXPLAIN " + statement, parameters)
    return "\n".join(line for (line,) in rows)


@pytest.mark.parametrize(
    "q",
    [
        LeadQuery(hot=True, unassigned=True, status=["Interested"]),
        LeadQuery(score_min=40, score_max=60),
        LeadQuery(stale_days=14),
        LeadQuery(contacted_from=NOW - timedelta(days=30)),
    ],
)
def test_a_filtered_page_finds_its_ids_on_the_newest_first_index_alone(
    pg_session: Session, q: LeadQuery
) -> None:
    shown = page_plan(pg_session, q)
    assert "Index Only Scan Backward using ix_leads_live_created" in shown, shown
    # Only the page's own leads are read from the table, by id.
    assert "Index Scan using leads_pkey" in shown, shown
