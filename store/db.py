"""Engines, sessions and schema upgrades for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from store.tenancy import scope_sessions

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
READ_ONLY_OPTION = "leaddesk_read_only"
# How long a SQLite writer waits for its turn, then for the lock itself (seconds).
SQLITE_WRITE_TIMEOUT = 30.0
# A pooled server connection idle for longer than this (seconds) is pinged before it is handed
# out again; one given back a moment ago is not (see `ping_idle_connections`).
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "leaddesk_idle_since"

T = TypeVar("T")


def insert_for(dialect: str) -> Callable[..., Any]:
    """The INSERT construct of a dialect the store runs on, the one that says ON CONFLICT:
    PostgreSQL's, else SQLite's."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent writers.

    A SQLite file also gets `synchronous=NORMAL` (safe with WAL) and one writer queue per engine
    (`queue_sqlite_writers`), so every process that writes (server, worker, CLI) hands the write
    lock over in arrival order instead of racing in SQLite's busy handler.
    """
    # A failed statement's error (which handlers log) must not carry its parameters: customer
    # messages, names and phone numbers.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", 30)
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        in_memory = url in ("sqlite://", "sqlite:///:memory:")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself so that BEGIN IMMEDIATE below takes the write lock.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_WRITE_TIMEOUT * 1000)}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            if connection.get_execution_options().get(READ_ONLY_OPTION):
                # A reader (export, list) must not hold the write lock: WAL gives it a snapshot.
                connection.exec_driver_sql("BEGIN")
                return
            # Writers queue on the lock up front instead of failing to upgrade a read lock later.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        if not in_memory:
            # An in-memory database is one shared connection (StaticPool): nothing to queue for.
            queue_sqlite_writers(engine)
        return engine
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: Engine, idle: float | None = None) -> None:
    """Check a pooled connection with a round trip before handing it out, when it has been idle
    for more than `idle` seconds (`PING_AFTER_IDLE` unless given): one that the server dropped
    meanwhile (a restart, a failover, an idle timeout) is replaced by a new one, invisibly to the
    caller.

    The pool's own `pool_pre_ping` pays that round trip at every check-out, which in a busy worker
    (several short transactions per message, each checking a connection out) was a statement in
    every transaction. A connection given back a moment ago was working then; should the server
    drop it in that moment, the statement using it fails as any statement fails on a lost
    connection (the pool is then renewed whole, and the work is retried as any failed work is:
    a run's messages stay unprocessed, a webhook answered 503 is delivered again).
    """
    idle = PING_AFTER_IDLE if idle is None else idle
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # none: a new connection
        if since is None or time.monotonic() - since <= idle:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool drops it (and every connection older than it) and connects again.
                raise InvalidatePoolError(str(exc)) from exc
            raise


def once_more_if_disconnected(work: Callable[[], T]) -> T:
    """Run `work` (a short transaction of its own), and run it once more when its connection
    turned out to be dropped by the server: a connection given back a moment ago is handed out
    without a ping (`ping_idle_connections`), so a restart or a failover in that moment fails the
    statement, and the pool is renewed. For writes that must not be left to a later retry of the
    whole job, and whose second run does the same as the first (an UPDATE to given values)."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("the database connection was dropped; writing again on a new one")
        return work()


class TurnQueue:
    """A first-come, first-served lock that any thread may release (turns are handed over)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False


class FileTurn:
    """The write turn between processes: an exclusive `flock` on a file beside the database,
    taken through a gate (the lock of a second file) so that processes take it in turns.

    SQLite's own busy handler sleeps with growing back-off (up to 100 ms at a time) while another
    process writes, so a webhook could wait far longer than the transaction it waits for; a lock
    taken here is handed over within a couple of milliseconds of its release. A `flock` is not
    handed over, though: a process that releases it and wants it again at once (a drain working
    through a backlog) takes it back before the waiting one looks again, transaction after
    transaction. So a process waits for the turn holding the gate, and one wanting the turn
    again waits at the gate behind it: while one waits, the holder gets one more turn at most.
    Only one thread of a process asks at a time (its `TurnQueue` turn), and a process opens its
    own file descriptions (a forked child must not share its parent's locks).
    """

    def __init__(self, path: str) -> None:
        self._paths = (path, f"{path}-gate")
        self._fds: tuple[int, int] | None = None
        self._pid = 0
        self._probe: int | None = None
        self._probe_pid = 0

    def _descriptors(self) -> tuple[int, int]:
        if self._fds is None or self._pid != os.getpid():
            turn = os.open(self._paths[0], os.O_RDWR | os.O_CREAT, 0o600)
            try:
                gate = os.open(self._paths[1], os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                # The turn's file was there already but the gate cannot be made (a read-only
                # folder): not one descriptor left open per transaction.
                os.close(turn)
                raise
            self._fds, self._pid = (turn, gate), os.getpid()
        return self._fds

    def acquire(self, timeout: float) -> bool:
        """Wait for the lock up to `timeout` seconds (False: go on and let SQLite decide)."""
        try:
            turn, gate = self._descriptors()
        except OSError:
            return False  # a read-only folder: SQLite's own locking still applies
        deadline = time.monotonic() + timeout
        if not _lock_file(gate, deadline):
            return False
        try:
            return _lock_file(turn, deadline)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(gate, fcntl.LOCK_UN)

    def release(self) -> None:
        if self._fds is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                fcntl.flock(self._fds[0], fcntl.LOCK_UN)

    def someone_waits(self) -> bool:
        """Whether a writer waits for the turn now: it holds the gate while it waits. Looked at
        through a file description of its own (taking the gate through the one `acquire` uses
        and letting it go would let go of this process's own hold). A writer of this process
        waiting counts too."""
        if self._probe is None or self._probe_pid != os.getpid():
            try:
                self._probe = os.open(self._paths[1], os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return False
            self._probe_pid = os.getpid()
        try:
            fcntl.flock(self._probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        with contextlib.suppress(OSError):
            fcntl.flock(self._probe, fcntl.LOCK_UN)
        return False


def _lock_file(fd: int, deadline: float) -> bool:
    """Take an exclusive `flock` on `fd`, looking again with a growing pause (at most 2 ms)
    until `deadline` (False: not taken)."""
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        except OSError:
            return False


_TURN = "leaddesk_write_turn"
_FILE_TURN = "leaddesk_file_turn"
# Each queued engine's release of a turn, given the connection's `info`.
_QUEUED: weakref.WeakKeyDictionary[Engine, Callable[[dict[Any, Any]], None]] = (
    weakref.WeakKeyDictionary()
)
# Each queued file engine's look at whether a writer waits for the turn between processes.
_WAITING: weakref.WeakKeyDictionary[Engine, Callable[[], bool]] = weakref.WeakKeyDictionary()


def queue_sqlite_writers(engine: Engine, timeout: float = SQLITE_WRITE_TIMEOUT) -> None:
    """Let this engine's SQLite writers take turns in arrival order (once per engine).

    Every SQLite write transaction takes the database's write lock up front (BEGIN IMMEDIATE). A
    writer that finds it taken waits in SQLite's busy handler, which sleeps with growing back-off
    and can lose the race again and again: under a burst of webhooks some waited seconds while
    each transaction took a few milliseconds. Here the writers of one engine queue instead and
    each goes as soon as the connection before it is back in the pool (its COMMIT done). Readers
    (read snapshots) do not queue. Between processes (`leaddesk serve`'s web and bot processes,
    a CLI beside them) the thread whose turn it is then takes a `FileTurn` on a file beside the
    database. After `timeout` seconds a writer stops waiting for its turn and SQLite's own locking
    decides. `make_engine` calls this for every SQLite file; a second call on the same engine
    changes nothing.
    """
    if engine in _QUEUED:
        return
    turns = TurnQueue()
    database = engine.url.database
    between = FileTurn(f"{database}-writers") if database else None

    def take_turn(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if (
            statement.startswith("BEGIN IMMEDIATE")
            and not connection.info.get(_TURN)
            and turns.acquire(timeout)
        ):
            connection.info[_TURN] = True
            if between is not None and between.acquire(timeout):
                connection.info[_FILE_TURN] = True

    def release(info: dict[Any, Any]) -> None:
        if info.pop(_TURN, False):
            if info.pop(_FILE_TURN, False) and between is not None:
                between.release()
            turns.release()

    def end_turn(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        if record is not None:
            release(record.info)

    _QUEUED[engine] = release
    if between is not None:
        _WAITING[engine] = between.someone_waits
    event.listen(engine, "before_cursor_execute", take_turn)
    for name in ("checkin", "invalidate", "soft_invalidate", "detach"):
        event.listen(engine.pool, name, end_turn)


def writer_waiting(engine: Engine) -> bool:
    """Whether a writer of another process (or another thread of this one) waits for the SQLite
    file's write turn now (`FileTurn.someone_waits`): work that can wait gives way to it. False
    on an engine whose writers do not queue (PostgreSQL, an in-memory database)."""
    someone_waits = _WAITING.get(engine)
    return someone_waits is not None and someone_waits()


def end_write_turn(connection: Connection) -> None:
    """Give back the write turn of a connection kept out of the pool between its transactions,
    once its transaction has ended (COMMIT or ROLLBACK done); a pooled connection gives it back
    when it returns to the pool. Nothing to do on an engine whose writers do not queue."""
    release = _QUEUED.get(connection.engine)
    if release is not None:
        release(connection.info)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that see only the workspace in force (`store.tenancy`)."""
    return scope_sessions(sessionmaker(bind=engine, expire_on_commit=False))


@contextmanager
def read_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reading only: one consistent snapshot that never blocks writers.

    On SQLite the transaction starts with a deferred BEGIN instead of BEGIN IMMEDIATE (so a long
    export does not hold the write lock); on PostgreSQL it is a REPEATABLE READ, READ ONLY
    transaction. Nothing is committed: the transaction is rolled back at the end.
    """
    with session_factory() as session:
        bind = session.get_bind()
        options: dict[str, Any] = {READ_ONLY_OPTION: True}
        if bind.dialect.name == "postgresql":
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        session.connection(execution_options=options)
        try:
            yield session
        finally:
            session.rollback()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the only way the schema is created)."""
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        owned = True
    else:
        engine, owned = engine_or_url, False
    try:
        with engine.begin() as connection:
            config = alembic_config(engine.url.render_as_string(hide_password=False))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if owned:
            engine.dispose()


def ensure_schema(engine: Engine) -> bool:
    """Apply pending migrations if the database is behind; return whether anything was applied.

    Cheaper than `upgrade` when the schema is current (one query, and Alembic stays quiet).
    """
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(max(level, logging.WARNING))
    try:
        script = ScriptDirectory.from_config(
            alembic_config(engine.url.render_as_string(hide_password=False))
        )
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        if current == set(script.get_heads()):
            return False
        upgrade(engine)
    finally:
        alembic_log.setLevel(level)
    log.info("database schema brought up to date")
    return True
