"""The webhook inbox: events acknowledged to their channel, waiting to be ingested.

A webhook request adds its events with one multi-row INSERT … ON CONFLICT DO NOTHING (`enqueue`,
SQLAlchemy Core, no ORM), so a redelivered message is dropped by the unique index. A drain claims
unprocessed rows oldest first (`claim`), ingests them and marks them (`mark_processed`); an event
that keeps failing is set aside with its error after `MAX_ATTEMPTS` (`record_failures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from store.db import insert_for
from store.models import Inbox, table_of
from store.tenancy import current_workspace

# The dispatcher's key for "the inbox has work" (conversation ids start at 1; 0 and -1 are the
# sweeper's and the set-up's locks).
INBOX_KEY = -2
# Failed attempts after which an event is set aside (kept, reported in /healthz, never retried).
MAX_ATTEMPTS = 3

_TABLE = table_of(Inbox)


@dataclass(frozen=True)
class InboxEvent:
    """One event for `enqueue`: its kind, the channel's message id (None: no dedupe), its data."""

    channel: str
    kind: str
    dedupe_key: str | None
    event: dict[str, Any]
    received_at: datetime | None = None  # None: the `now` of `enqueue`
    workspace_id: int | None = (
        None  # the workspace the channel's account routes to (None: in force)
    )


@dataclass(frozen=True)
class Backlog:
    unprocessed: int
    oldest: datetime | None
    set_aside: int


def enqueue(
    events: Sequence[InboxEvent], *, connection: Connection, now: datetime
) -> list[tuple[str, str]]:
    """Insert the events in one statement; return the (channel, dedupe key) pairs that were new
    (not redeliveries; a key twice among `events` is new once).

    Events without a dedupe key are always inserted (and not returned)."""
    if not events:
        return []
    rows = [
        {
            "channel": e.channel,
            "kind": e.kind,
            "dedupe_key": e.dedupe_key,
            "event": e.event,
            "received_at": e.received_at or now,
            "attempts": 0,
            "workspace_id": e.workspace_id if e.workspace_id is not None else current_workspace(),
        }
        for e in events
    ]
    # A list of parameters: one cached statement, sent as one multi-row INSERT ("insertmanyvalues").
    result = connection.execute(_enqueue_statement(connection.dialect.name), rows)
    return [(channel, key) for channel, key in result if key is not None]


@cache
def _enqueue_statement(dialect: str) -> Any:
    """`enqueue`'s INSERT ... ON CONFLICT DO NOTHING RETURNING, built once per dialect (composing
    it, and its cache key, cost more than a webhook's own share of the insert)."""
    return (
        insert_for(dialect)(_TABLE)
        .on_conflict_do_nothing(index_elements=["workspace_id", "channel", "dedupe_key"])
        .returning(_TABLE.c.channel, _TABLE.c.dedupe_key)
    )


def claim(
    *, session: Session, limit: int, after_id: int = 0
) -> Sequence[Row[Any, Any, Any, Any, Any, Any, Any]]:
    """The oldest unprocessed rows not set aside (id, channel, kind, event, attempts, received_at,
    workspace_id), of every workspace.

    On PostgreSQL the rows are locked (rows another drain holds are skipped)."""
    statement = _claim_statement(session.get_bind().dialect.name, limit)
    return session.execute(statement, {"after_id": after_id}).all()


@lru_cache(maxsize=32)
def _claim_statement(dialect: str, limit: int) -> Any:
    """`claim`'s SELECT, built once per dialect and batch size. The drain runs it at every batch
    (as it runs `mark_processed` and `store.leads.known_senders`); a statement built anew had its
    cache key worked out, and the session's workspace options added, every time."""
    statement = (
        select(
            _TABLE.c.id,
            _TABLE.c.channel,
            _TABLE.c.kind,
            _TABLE.c.event,
            _TABLE.c.attempts,
            _TABLE.c.received_at,
            _TABLE.c.workspace_id,
        )
        .where(
            _TABLE.c.processed_at.is_(None),
            _TABLE.c.attempts < MAX_ATTEMPTS,
            _TABLE.c.id > bindparam("after_id"),
        )
        .order_by(_TABLE.c.id)
        .limit(limit)
    )
    return statement.with_for_update(skip_locked=True) if dialect == "postgresql" else statement


def mark_processed(ids: Sequence[int], *, session: Session, now: datetime) -> None:
    if ids:
        session.execute(_mark_statement(), {"ids": list(ids), "now": now})


@cache
def _mark_statement() -> Any:
    """`mark_processed`'s UPDATE, built once."""
    return (
        update(_TABLE)
        .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
        .values(processed_at=bindparam("now", type_=_TABLE.c.processed_at.type))
    )


def record_failures(failures: Sequence[tuple[int, str]], *, session: Session) -> None:
    """Count a failed attempt on each row, keeping the error (the last one counts)."""
    for row_id, error in failures:
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id == row_id)
            .values(attempts=_TABLE.c.attempts + 1, last_error=error[:2000])
        )


def has_work(*, session: Session, received_before: datetime | None = None) -> bool:
    """Whether an unprocessed row (received before the given time) waits to be drained."""
    statement = select(_TABLE.c.id).where(
        _TABLE.c.processed_at.is_(None), _TABLE.c.attempts < MAX_ATTEMPTS
    )
    if received_before is not None:
        statement = statement.where(_TABLE.c.received_at < received_before)
    return session.execute(statement.limit(1)).first() is not None


def oldest_waiting(*, session: Session) -> datetime | None:
    """When the oldest unprocessed row (not set aside) arrived, or None when none waits."""
    received = session.execute(
        select(_TABLE.c.received_at)
        .where(_TABLE.c.processed_at.is_(None), _TABLE.c.attempts < MAX_ATTEMPTS)
        .order_by(_TABLE.c.id)
        .limit(1)
    ).scalar()
    return received if isinstance(received, datetime) else None


def backlog(*, session: Session) -> Backlog:
    waiting = _TABLE.c.attempts < MAX_ATTEMPTS
    unprocessed, oldest, set_aside = session.execute(
        select(
            func.count().filter(waiting),
            func.min(_TABLE.c.received_at).filter(waiting),
            func.count().filter(_TABLE.c.attempts >= MAX_ATTEMPTS),
        ).where(_TABLE.c.processed_at.is_(None))
    ).one()
    if oldest is not None and not isinstance(oldest, datetime):
        oldest = datetime.fromisoformat(str(oldest))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return Backlog(int(unprocessed or 0), oldest, int(set_aside or 0))


def set_aside(*, session: Session, limit: int = 5) -> list[dict[str, Any]]:
    """The latest events set aside, with their errors (no event data: it may hold personal data)."""
    rows = session.execute(
        select(_TABLE.c.id, _TABLE.c.channel, _TABLE.c.kind, _TABLE.c.last_error)
        .where(_TABLE.c.processed_at.is_(None), _TABLE.c.attempts >= MAX_ATTEMPTS)
        .order_by(_TABLE.c.id.desc())
        .limit(limit)
    ).all()
    return [{"id": r.id, "channel": r.channel, "kind": r.kind, "error": r.last_error} for r in rows]


def prune(*, session: Session, processed_before: datetime) -> int:
    """Delete rows processed before the given time; return how many."""
    result = session.execute(
        delete(_TABLE).where(_TABLE.c.processed_at < processed_before),
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
