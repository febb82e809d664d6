"""PostgreSQL connections are checked before use when they sat idle, not at every check-out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from store import make_engine
from store.db import PING_AFTER_IDLE

pytestmark = pytest.mark.postgres


@contextmanager
def _engines(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    """An engine with one pooled connection, and an administrator's engine to cut it."""
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        yield engine, admin
    finally:
        engine.dispose()
        admin.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _cut(admin: Engine, pid: int) -> None:
    """Drop the server side of connection `pid` (as a restart or a failover does) and wait until
    it is gone."""
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        deadline = time.monotonic() + 10
        while connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one():
            assert time.monotonic() < deadline, "the backend never went away"
            time.sleep(0.02)


def test_a_connection_dropped_while_idle_is_replaced_before_anyone_uses_it(
    postgres_url: str,
) -> None:
    with _engines(postgres_url) as (engine, admin):
        first = _backend(engine)
        given_back = time.monotonic()
        _cut(admin, first)
        time.sleep(max(0.0, PING_AFTER_IDLE + 0.2 - (time.monotonic() - given_back)))

        # Checked before it is handed out: the caller gets a new connection, no error.
        second = _backend(engine)
        assert second != first
        assert _backend(engine) == second


def test_a_connection_given_back_a_moment_ago_is_used_without_a_round_trip_first(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping in a busy loop: should the server drop the connection in that moment, the statement
    fails once (as a statement in flight would) and the pool is renewed for the next one."""
    monkeypatch.setattr("store.db.PING_AFTER_IDLE", 60.0)  # "a moment", however slow the machine
    with _engines(postgres_url) as (engine, admin):
        first = _backend(engine)
        _cut(admin, first)

        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert _backend(engine) != first
