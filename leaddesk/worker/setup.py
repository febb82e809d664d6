"""Bring the database up to date before processes use it: the schema and the copilot's memory,
one process at a time across machines (on PostgreSQL, under the set-up advisory lock)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from copilot import open_checkpointer
from leaddesk.settings import Settings
from leaddesk.worker.locks import LOCK_NAMESPACE, SETUP_LOCK_KEY
from store import ensure_schema, make_engine

log = logging.getLogger(__name__)


def prepare_shared_database(settings: Settings) -> None:
    """Migrate the store and set up the copilot's memory once, before several processes start (each
    would otherwise race the others creating the same tables). Raises OperationalError when
    unreachable."""
    engine = make_engine(settings.database_url)
    try:
        prepare_database(engine, settings)
    finally:
        engine.dispose()


def prepare_database(engine: Engine, settings: Settings, *, memory: bool = True) -> None:
    """Bring the schema (and, with `memory`, the copilot memory's tables) up to date; on PostgreSQL
    one process at a time, under the set-up advisory lock, so that machines starting together
    take turns. Call it before this process opens any other transaction.

    The copilot memory's set-up builds indexes CONCURRENTLY, which waits for every transaction
    open in the database. A process waiting for the lock therefore must not wait inside a
    transaction (`SELECT pg_advisory_lock` does: its statement is a transaction), or the two wait
    for each other forever where PostgreSQL cannot see it. So the lock is taken on an autocommit
    connection of its own by polling `pg_try_advisory_lock`, each try a statement of a moment.
    """
    with _setup_lock(engine):
        ensure_schema(engine)
        if memory:
            with open_checkpointer(settings.database_url, memory_file=settings.copilot_memory_path):
                pass


SETUP_POLL_SECONDS = 0.2


@contextmanager
def _setup_lock(engine: Engine) -> Iterator[None]:
    """Hold the set-up advisory lock (PostgreSQL; nothing to hold elsewhere) for the block."""
    if engine.dialect.name != "postgresql":
        yield
        return
    args = {"ns": LOCK_NAMESPACE, "key": SETUP_LOCK_KEY}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        waited_since = time.monotonic()
        told = False
        while not connection.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), args).scalar():
            if not told and time.monotonic() - waited_since > 5.0:
                log.info("waiting for another process to finish setting up the database")
                told = True
            time.sleep(SETUP_POLL_SECONDS * random.uniform(0.5, 1.5))
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), args)
            except DBAPIError:
                # The connection died, and PostgreSQL released the lock with it.
                connection.invalidate()
