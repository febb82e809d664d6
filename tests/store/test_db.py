"""SQLite engines from `store.make_engine`: WAL, the pragmas, and one queue for the writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text, update

from store import make_engine, make_session_factory, read_session, upgrade
from store.models import Lead


@pytest.fixture
def file_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'desk.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_a_sqlite_file_is_in_wal_with_normal_sync_and_a_busy_timeout(file_engine: Engine) -> None:
    assert _pragma(file_engine, "journal_mode") == "wal"
    assert _pragma(file_engine, "synchronous") == 1  # NORMAL
    assert _pragma(file_engine, "busy_timeout") == 30000
    assert _pragma(file_engine, "foreign_keys") == 1


def test_an_in_memory_database_keeps_its_journal() -> None:
    engine = make_engine("sqlite://")
    try:
        assert _pragma(engine, "journal_mode") == "memory"
        assert _pragma(engine, "busy_timeout") == 30000
    finally:
        engine.dispose()


def test_writers_in_many_threads_never_meet_a_locked_database(tmp_path: Path) -> None:
    # A short busy timeout: without the writer queue, threads racing in SQLite's busy handler
    # for 0.2 s fail with "database is locked"; with it they take turns and all commit.
    short = make_engine(f"sqlite:///{tmp_path / 'busy.db'}", connect_args={"timeout": 0.2})

    @event.listens_for(short, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=200")

    upgrade(short)
    session_factory = make_session_factory(short)
    with session_factory.begin() as session:
        session.add(
            Lead(
                name="counter",
                score=0,
                score_factors=[],
                interests=[],
                objections=[],
                tags=[],
                custom_fields={},
            )
        )
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                with session_factory.begin() as session:
                    session.execute(update(Lead).values(score=Lead.score + 1))
                    session.execute(text("SELECT count(*) FROM leads"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        with read_session(session_factory) as session:
            assert session.scalar(select(func.sum(Lead.score))) == 8 * 20
    finally:
        short.dispose()
