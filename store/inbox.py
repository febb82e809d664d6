"""The webhook inbox: events acknowledged to their channel, waiting to be ingested.

A webhook request adds its events with one multi-row INSERT … ON CONFLICT DO NOTHING (`enqueue`,
on the driver's cursor), so a redelivered message is dropped by the unique index. A drain claims
unprocessed rows oldest first (`claim`), ingests them and marks them (`mark_processed`); an event
that keeps failing is set aside with its error after `MAX_ATTEMPTS` (`record_failures`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Row, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

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

    Events without a dedupe key are always inserted (and not returned).

    The statement goes to the driver's cursor, in `connection`'s transaction: SQLAlchemy's
    execution around it (its context, result and the rows' bind processing) cost the web process
    more CPU than the insert itself. The columns' own bind processors convert the values, as
    SQLAlchemy's execution would, and a driver's error is raised as SQLAlchemy raises it."""
    if not events:
        return []
    dialect = connection.dialect
    event_value, time_value = _converters(dialect)
    workspace = current_workspace()
    # Meta sends at most 1000 events a webhook: 6,000 parameters, within both databases' limits.
    sql = _enqueue_sql(dialect.name, len(events))
    params: list[Any] = []
    try:
        for e in events:
            params += (
                e.workspace_id if e.workspace_id is not None else workspace,
                e.channel,
                e.kind,
                e.dedupe_key,
                event_value(e.event),
                time_value(e.received_at or now),
            )
        rows = _on_cursor(connection, sql, params)
    except (TypeError, ValueError) as exc:
        # An event the JSON column cannot take (psycopg's JSON wrapper dumps it as it sends),
        # raised as SQLAlchemy's execution raises it: the webhook answers 503.
        raise StatementError(
            f"an inbox row could not be written ({type(exc).__name__}: {exc})",
            sql,
            None,
            exc,
            hide_parameters=True,
        ) from exc
    return [(channel, key) for channel, key in rows if key is not None]


@lru_cache(maxsize=16)
def _converters(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The event's and the arrival time's bind processors on `dialect` (JSON text or the driver's
    JSON wrapper; the stored form of a UTC time)."""

    def processor(column: str) -> Callable[[Any], Any]:
        kind = _TABLE.c[column].type
        found = kind.dialect_impl(dialect).bind_processor(dialect)
        return found if found is not None else _as_is

    return processor("event"), processor("received_at")


def _as_is(value: Any) -> Any:
    return value


@lru_cache(maxsize=64)
def _enqueue_sql(dialect: str, rows: int) -> str:
    """`enqueue`'s INSERT ... ON CONFLICT DO NOTHING RETURNING for `rows` rows, in the driver's
    parameter style (qmark for sqlite3, format for psycopg)."""
    mark = "%s" if dialect == "postgresql" else "?"
    row = f"({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, 0)"
    return (
        "INSERT INTO inbox (workspace_id, channel, kind, dedupe_key, event, received_at, "
        f"attempts) VALUES {', '.join([row] * rows)} "
        "ON CONFLICT (workspace_id, channel, dedupe_key) DO NOTHING "
        "RETURNING channel, dedupe_key"
    )


def _on_cursor(connection: Connection, sql: str, params: list[Any]) -> list[Any]:
    """Run `sql` on the driver's cursor of `connection` and return its rows; a driver's error
    becomes SQLAlchemy's (`DBAPIError.instance`: OperationalError, IntegrityError, ...), the
    parameters hidden, and a lost connection is invalidated as SQLAlchemy would."""
    dialect = connection.dialect
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, driver, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


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
