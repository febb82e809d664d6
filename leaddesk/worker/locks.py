"""Mutual exclusion per conversation across worker processes: PostgreSQL advisory locks (across
machines) or, on SQLite, byte-range file locks beside the database (one machine)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

# Advisory-lock namespace ("LD"): the first key of pg_try_advisory_lock(int, int).
LOCK_NAMESPACE = 0x4C44
SWEEP_LOCK_KEY = 0  # conversation ids start at 1
SETUP_LOCK_KEY = -1


class ConversationLocks(Protocol):
    """Mutual exclusion per conversation across worker processes (and machines, on PostgreSQL)."""

    def hold(self, key: int) -> AbstractContextManager[bool]:
        """A context manager yielding True when this process now holds `key`, False when another
        does."""


class PostgresLocks:
    """Session-level advisory locks on a dedicated connection, released at the end (or by PostgreSQL
    itself when the process or its connection dies)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def hold(self, key: int) -> Iterator[bool]:
        # Outside any transaction (autocommit: one round trip each to lock and unlock): the lock
        # lives with the session, not a transaction, and an idle-in-transaction connection would
        # hold back vacuum.
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": int(key)},
                ).scalar()
            )
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if not held:
            connection.close()
            yield False
            return
        try:
            yield True
        finally:
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": int(key)},
                )
            except DBAPIError:
                # The connection died (and PostgreSQL released the lock with it): do not reuse it.
                connection.invalidate()
            finally:
                connection.close()


class _LockFile:
    """One process's handle on a lock file, shared by every `FileLocks` on that path: POSIX locks
    belong to the process, so two handles in one process would not exclude each other, and closing
    either would drop the other's locks."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.guard = threading.Lock()
        self.held: set[int] = set()
        self.fd: int | None = None
        self.pid = 0

    def descriptor(self) -> int | None:
        if self.path is None:
            return None
        if self.fd is None or self.pid != os.getpid():
            # A forked child inherits neither its parent's locks nor a usable handle: open again.
            # The fd is never closed while the process runs (that would drop all its locks).
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
            self.held = set()
        return self.fd


# Per process by necessity: POSIX locks belong to the process, so every FileLocks on one path must
# share one handle (see _LockFile).
_lock_files: dict[str | None, _LockFile] = {}
_lock_files_guard = threading.Lock()


class FileLocks:
    """For SQLite: POSIX byte-range locks on `<database>.locks` (byte N for conversation N) between
    the processes of this machine, and a set of held keys per process between its threads. The
    kernel drops a dead process's locks. Without a path (in-memory SQLite) only the threads exclude.
    """

    def __init__(self, path: Path | None) -> None:
        key = str(Path(path).resolve()) if path is not None else None
        with _lock_files_guard:
            shared = _lock_files.get(key)
            if shared is None:
                shared = _lock_files[key] = _LockFile(Path(key) if key else None)
        self._file: _LockFile = shared

    @contextmanager
    def hold(self, key: int) -> Iterator[bool]:
        key = int(key)
        shared = self._file
        with shared.guard:
            fd = shared.descriptor()
            taken = key not in shared.held
            if taken:
                shared.held.add(key)
        if not taken:
            yield False
            return
        try:
            if fd is not None:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _offset(key))
                except (BlockingIOError, PermissionError):
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, _offset(key))
            else:
                yield True
        finally:
            with shared.guard:
                shared.held.discard(key)


def _offset(key: int) -> int:
    """The byte locked for `key`: negative (reserved) keys far beyond any conversation id."""
    return key if key >= 0 else (1 << 62) + key


def make_locks(engine: Engine) -> ConversationLocks:
    """Advisory locks on PostgreSQL; file locks beside a SQLite file (in-memory: thread locks)."""
    if engine.dialect.name == "postgresql":
        return PostgresLocks(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLocks(Path(database + ".locks"))
    return FileLocks(None)
