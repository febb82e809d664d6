"""The copilot's per-chat memory: a LangGraph checkpointer on a SQLite file by default, in
PostgreSQL when DATABASE_URL is PostgreSQL (needs the `postgres` extra)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MEMORY_SCHEMA = "leaddesk_copilot"


class MemoryUnavailable(RuntimeError):
    """The memory store cannot be opened (missing extra, unreachable database)."""


def memory_path(database_url: str, configured: Path | None = None) -> str:
    """Where the SQLite memory lives: the configured file, else beside a SQLite database file."""
    if configured is not None:
        return str(configured)
    url = make_url(database_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite":
        return "leaddesk-copilot.sqlite"
    if database in ("", ":memory:"):
        return ":memory:"  # a throwaway database gets throwaway memory
    path = Path(database)
    return str(path.with_name(f"{path.stem}-copilot.sqlite"))


@contextmanager
def open_checkpointer(database_url: str, *, memory_file: Path | None = None) -> Iterator[Any]:
    """Open (and set up) the checkpointer for as long as the `with` block runs."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql" and memory_file is None:
        try:
            # The `postgres` extra is optional: imported only when PostgreSQL is used.
            from langgraph.checkpoint.postgres import PostgresSaver  # noqa: PLC0415 - optional extra
            from psycopg.rows import dict_row  # noqa: PLC0415 - optional extra
            from psycopg_pool import ConnectionPool  # noqa: PLC0415 - optional extra
        except ImportError:
            raise MemoryUnavailable(
                "the copilot's PostgreSQL memory needs the postgres extra: "
                "pip install 'leaddesk[postgres]'"
            ) from None
        import psycopg  # noqa: PLC0415 - optional extra, present once the imports above worked

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        # The memory lives in a schema of its own, apart from the store's tables and migrations.
        try:
            with psycopg.connect(conninfo, autocommit=True) as setup_conn:
                setup_conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MEMORY_SCHEMA}")
        except psycopg.Error as exc:
            raise MemoryUnavailable(
                f"cannot open the copilot's memory in PostgreSQL: {exc}"
            ) from None
        pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=4,
            open=True,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "options": f"-c search_path={MEMORY_SCHEMA}",
            },
        )
        try:
            # The pool's type says tuple rows; `row_factory` in its kwargs makes them dicts.
            pg_saver = PostgresSaver(pool)  # type: ignore[arg-type]
            pg_saver.setup()
            yield pg_saver
        finally:
            pool.close()
        return
    path = memory_path(database_url, memory_file)
    # The saver serialises access with its own lock, so one connection serves every thread.
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # Chat memory is not the system of record: a power cut may lose the last turn, never the
        # store.
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        log.debug("copilot memory in %s", path)
        yield saver
    finally:
        conn.close()


def forget_old_checkpoints(checkpointer: Any, thread_id: str) -> None:
    """Keep only a thread's latest checkpoint: it holds the whole chat state (messages, pending
    question), so older ones are history nobody reads and would grow the memory without bound."""
    if isinstance(checkpointer, SqliteSaver):
        with checkpointer.cursor() as cur:
            # Checkpoint ids are time-ordered (uuid6), which is how the saver finds the latest one.
            cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id NOT IN ("
                "SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
                " GROUP BY checkpoint_ns)",
                (thread_id, thread_id),
            )
            cur.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id NOT IN ("
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?)",
                (thread_id, thread_id),
            )
        return
    # Savers without pruning (e.g. the in-memory saver of the tests) keep their history.
    with contextlib.suppress(NotImplementedError):
        checkpointer.prune([thread_id], strategy="keep_latest")
