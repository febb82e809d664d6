"""The worker tier: Celery on a broker (Redis or RabbitMQ) behind the same `Dispatcher` interface.

With LEADDESK_BROKER_URL set, web processes only store events and publish "conversation N has new
messages" (`CeleryDispatcher`); `leaddesk worker` processes run the bot. The store stays the source
of truth and the broker only carries hints, so nothing is lost when the broker loses messages:

- tasks are acknowledged late and rejected back to the queue when a worker process dies
  (at-least-once); the bot's effects are idempotent (messages are claimed in the transaction that
  records the one reply, whose idempotency key is the last message id), so a repeated task never
  answers or scores twice;
- two workers never process one conversation at once: a PostgreSQL advisory lock keyed by the
  conversation id (on SQLite, which lives on one machine, a byte-range file lock beside the
  database); a task that finds the lock taken is re-queued with a short countdown, and the holder
  re-checks for pending messages before letting go, so a burst is answered together; a reply an
  interrupted run recorded but never handed over goes out first;
- a sweeper in every worker (one at a time across the cluster) re-submits conversations whose
  messages have waited too long while the queue is empty (a broker restart without persistence, a
  publish that failed while the broker was down, a worker machine that vanished), and marks sends
  interrupted by a crash as "unknown" instead of sending them again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, and_, exists, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import Settings
from store.db import read_session
from store.models import Message, utcnow

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

PROCESS_TASK = "leaddesk.process_conversation"
# Backoff after a failed run (database gone, model and fallback both failing...); after the last one
# the messages stay pending and the sweeper submits them again later.
RETRY_DELAYS: tuple[float, ...] = (1.0, 4.0, 15.0, 60.0)
# Runs of one conversation per task while new messages keep arriving (each run may loop itself).
MAX_PASSES = 3
# A send claimed ("sending") this long ago is not in progress any more: the process died mid-send.
# The channel outbox gives up on one send after about a minute (timeouts, retries and backoff).
SEND_INTERRUPTED_AFTER = timedelta(minutes=5)
# Unacknowledged tasks come back from Redis after this long (a worker machine vanished); it must
# exceed the longest task and the longest countdown. The sweeper usually gets there first.
VISIBILITY_TIMEOUT = 600
# Advisory-lock namespace ("LD"): the first key of pg_try_advisory_lock(int, int).
LOCK_NAMESPACE = 0x4C44
SWEEP_LOCK_KEY = 0  # conversation ids start at 1
SETUP_LOCK_KEY = -1


def _redis_for(url: str) -> Any:
    """A Redis client on the broker's database when the broker is Redis (else None)."""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2)


def broker_label(url: str) -> str:
    """The broker URL without its password, for logs and /healthz."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def describe_error(exc: BaseException) -> str:
    """A one-line description that never carries SQL parameters (message bodies) into the logs."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__} ({type(exc.orig).__name__})"
    return type(exc).__name__


# -- the Celery app --------------------------------------------------------------------------------


def make_celery(settings: Settings) -> Celery:
    """The Celery app on LEADDESK_BROKER_URL with the task the workers run."""
    from celery import Celery

    if not settings.broker_url:
        raise ValueError("LEADDESK_BROKER_URL is not set")
    app = Celery("leaddesk", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Its own queue name, so that several deployments (or test runs) can share one broker.
        task_default_queue=settings.broker_queue,
        # At least once: acknowledge after the run, and put the task back when its process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A worker takes one task at a time, so a slow conversation does not hold others hostage.
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        # A webhook publishes after storing; while the broker is down it must not hang, the sweeper
        # submits the work later.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        # Running tasks finish on connection loss; a task whose ack is lost runs again, harmlessly.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        # No remote control: no per-worker reply queues on the broker (and no name clashes there).
        worker_enable_remote_control=False,
        task_send_sent_event=False,
    )

    @app.task(name=PROCESS_TASK, bind=True, ignore_result=True, max_retries=None, acks_late=True)
    def process_conversation(task: Any, conversation_id: int, attempt: int = 0) -> str:
        conversation_id = int(conversation_id)
        try:
            worker = current_worker(settings)
            # Before looking for pending messages: a message stored after this is either seen by
            # this run or publishes a task of its own.
            getattr(worker.runtime.dispatcher, "started", lambda _cid: None)(conversation_id)
            outcome = worker.run(conversation_id)
        except Exception as exc:  # noqa: BLE001 - any failure: retry with backoff, then the sweeper
            log.debug("conversation %s failed", conversation_id, exc_info=True)
            if attempt >= len(RETRY_DELAYS):
                log.error(
                    "conversation %s failed %d times (%s); its messages stay pending and the "
                    "sweeper submits them again",
                    conversation_id,
                    attempt + 1,
                    describe_error(exc),
                )
                return "given_up"
            delay = RETRY_DELAYS[attempt]
            log.warning(
                "conversation %s failed (%s); retry %d in %.0fs",
                conversation_id,
                describe_error(exc),
                attempt + 1,
                delay,
            )
            raise task.retry(
                kwargs={"conversation_id": conversation_id, "attempt": attempt + 1}, countdown=delay
            ) from None
        if outcome == "later":
            # The customer is still typing: come back when the quiet window has passed.
            countdown = max(0.05, worker.runner.due_in(conversation_id))
            raise task.retry(
                kwargs={"conversation_id": conversation_id, "attempt": attempt}, countdown=countdown
            )
        if outcome in ("busy", "more"):
            # Another worker holds the conversation (it will see these messages too, or this task
            # does when it comes back), or new messages kept coming: look again shortly.
            retries = int(task.request.retries or 0)
            countdown = min(3.0, 0.25 * 2 ** min(retries, 4)) * (0.75 + random.random() / 2)
            raise task.retry(
                kwargs={"conversation_id": conversation_id, "attempt": attempt}, countdown=countdown
            )
        return outcome

    return app


class CeleryDispatcher:
    """`Dispatcher` for web processes: publishes a task per submit; the workers do the rest.

    On Redis, a submit for a conversation whose task is still waiting in the queue publishes
    nothing: a key marks "queued" and the task clears it when it starts, before it looks for pending
    messages, so whatever was stored before the mark was seen is in that run. (A burst of ten
    messages is one task instead of ten.) The mark expires by itself, and the sweeper publishes
    regardless of it."""

    def __init__(
        self, app: Celery, *, label: str = "", health_ttl: float = 5.0, mark_ttl: int = 600
    ) -> None:
        self._app = app
        self._queue = str(app.conf.task_default_queue)
        self._mark_prefix = f"{self._queue}:queued:"
        self._label = label or broker_label(str(app.conf.broker_url))
        self._health_ttl = health_ttl
        self._mark_ttl = mark_ttl
        self._marks = _redis_for(str(app.conf.broker_url))
        self._lock = threading.Lock()
        self._published = 0
        self._coalesced = 0
        self._failures = 0
        self._last_error: str | None = None
        self._checked: tuple[float, bool, str | None] = (float("-inf"), False, None)
        self._stopped = False

    def submit(self, conversation_id: int, *, force: bool = False) -> None:
        conversation_id = int(conversation_id)
        marked = False
        if self._marks is not None and not force:
            try:
                marked = bool(
                    self._marks.set(
                        self._mark_prefix + str(conversation_id), 1, nx=True, ex=self._mark_ttl
                    )
                )
            except Exception:  # noqa: BLE001 - without the mark, publish anyway (at worst a spare task)
                marked = True
            if not marked:
                with self._lock:
                    self._coalesced += 1
                return
        try:
            self._app.send_task(PROCESS_TASK, args=[conversation_id], queue=self._queue)
        except Exception as exc:  # noqa: BLE001 - the messages are stored; the sweeper submits them later
            if marked:
                self.started(conversation_id)
            with self._lock:
                self._failures += 1
                self._last_error = describe_error(exc)
            log.warning(
                "could not publish conversation %s to the broker (%s); a worker's sweeper "
                "picks it up once the broker is back",
                conversation_id,
                describe_error(exc),
            )
            return
        with self._lock:
            self._published += 1

    def resubmit(self, conversation_id: int) -> None:
        """Publish even if a task looks queued (the sweeper: that task was lost)."""
        self.submit(conversation_id, force=True)

    def started(self, conversation_id: int) -> None:
        """A task for the conversation starts: later submits must publish again."""
        if self._marks is None:
            return
        try:
            self._marks.delete(self._mark_prefix + str(int(conversation_id)))
        except Exception:  # noqa: BLE001 - a stale mark expires; the sweeper covers the gap
            log.debug(
                "could not clear the queued mark of conversation %s", conversation_id, exc_info=True
            )

    def start(self) -> None:
        self._stopped = False
        reachable, error = self._ping()
        if reachable:
            log.info(
                "jobs go to the broker at %s; `leaddesk worker` processes run the bot", self._label
            )
        else:
            log.warning(
                "the broker at %s is not reachable (%s); messages are stored and answered once it "
                "is back",
                self._label,
                error,
            )

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped = True
        try:
            if self._marks is not None:
                self._marks.close()
            self._app.close()
        except Exception:  # noqa: BLE001 - closing pools of a dead broker may fail; nothing to lose
            log.debug("closing the broker connections failed", exc_info=True)

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            checked_at, reachable, error = self._checked
        if now - checked_at > self._health_ttl:
            reachable, error = self._ping()
            with self._lock:
                self._checked = (now, reachable, error)
        with self._lock:
            status = "stopped" if self._stopped else ("ok" if reachable else "degraded")
            report: dict[str, Any] = {
                "status": status,
                "kind": "celery",
                "broker": self._label,
                "reachable": reachable,
                "published": self._published,
                "coalesced": self._coalesced,
                "publish_failures": self._failures,
            }
            if error:
                report["error"] = error
            elif self._last_error and not reachable:
                report["error"] = self._last_error
        return report

    def backlog(self) -> int | None:
        """Tasks waiting in the queue, or None when the broker cannot be asked."""
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                try:
                    declared = connection.default_channel.queue_declare(
                        queue=self._queue, passive=True
                    )
                except connection.channel_errors:
                    return 0  # no queue at all (e.g. a broker that restarted empty)
                return int(declared.message_count)
        except Exception:  # noqa: BLE001 - unreachable: nobody can tell
            return None

    def _ping(self) -> tuple[bool, str | None]:
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return False, describe_error(exc)
        return True, None


# -- shared set-up ---------------------------------------------------------------------------------


def prepare_shared_database(settings: Settings) -> None:
    """Migrate the store and set up the copilot's memory once, before several processes start (each
    would otherwise race the others creating the same tables). Raises OperationalError when
    unreachable."""
    from store import make_engine

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
    from copilot import open_checkpointer
    from store import ensure_schema

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


# -- per-conversation locks -----------------------------------------------------------------------


class ConversationLocks(Protocol):
    """Mutual exclusion per conversation across worker processes (and machines, on PostgreSQL)."""

    def hold(self, key: int) -> Any:
        """A context manager yielding True when this process now holds `key`, False when another
        does."""


class PostgresLocks:
    """Session-level advisory locks on a dedicated connection, released at the end (or by PostgreSQL
    itself when the process or its connection dies)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def hold(self, key: int) -> Iterator[bool]:
        connection = self._engine.connect()
        try:
            held = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": int(key)},
                ).scalar()
            )
            # Out of the transaction at once: the lock lives with the session, not the transaction,
            # and an idle-in-transaction connection would hold back vacuum.
            connection.commit()
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
                connection.commit()
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
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
                except (BlockingIOError, PermissionError):
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, key)
            else:
                yield True
        finally:
            with shared.guard:
                shared.held.discard(key)


def make_locks(engine: Engine) -> ConversationLocks:
    """Advisory locks on PostgreSQL; file locks beside a SQLite file (in-memory: thread locks)."""
    if engine.dialect.name == "postgresql":
        return PostgresLocks(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLocks(Path(database + ".locks"))
    return FileLocks(None)


# -- running a conversation -----------------------------------------------------------------------


def reading(session_factory: sessionmaker[Session]) -> Any:
    """A session for a read: on SQLite a snapshot that does not take the write lock (every other
    transaction there does); on PostgreSQL a plain one (fewer round trips than a read-only one)."""
    bind = session_factory.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return read_session(session_factory)
    return session_factory()


def has_pending(conversation_id: int, *, session: Session) -> bool:
    """Inbound messages the bot has not processed, or replies recorded but never handed to the
    channel."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Message.conversation_id == conversation_id,
                    or_(
                        and_(Message.direction == "in", Message.processed_at.is_(None)),
                        and_(Message.direction == "out", Message.delivery_status == "pending"),
                    ),
                )
            )
        )
    )


def undelivered_replies(conversation_id: int, *, session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "out",
                Message.delivery_status == "pending",
            )
            .order_by(Message.id)
        )
    )


class ConversationRunner:
    """What one task does: under the conversation's lock, hand over replies an interrupted run
    recorded but never sent, then run the bot, coalescing messages that arrive meanwhile."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        process: Callable[[int], Any],
        deliver: Callable[[list[int]], None] | None,
        locks: ConversationLocks,
        max_passes: int = MAX_PASSES,
        due_in: Callable[[int], float] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._process = process
        self._due_in = due_in
        self._deliver = deliver
        self._locks = locks
        self._max_passes = max_passes

    def pending(self, conversation_id: int) -> bool:
        with reading(self._session_factory) as session:
            return has_pending(conversation_id, session=session)

    def due_in(self, conversation_id: int) -> float:
        """Seconds until the conversation's burst is due for an answer (0: now)."""
        return self._due_in(conversation_id) if self._due_in is not None else 0.0

    def run(self, conversation_id: int) -> str:
        """ "idle" (nothing pending), "busy" (another worker holds it), "done", "more" (messages
        keep arriving: submit again) or "later" (the customer is still typing: submit again once
        `due_in` has passed)."""
        if not self.pending(conversation_id):
            return "idle"
        with self._locks.hold(conversation_id) as held:
            if not held:
                return "busy"
            if self._deliver is not None:
                # A worker died between recording a reply and sending it: it goes out first, in
                # order.
                with reading(self._session_factory) as session:
                    leftovers = undelivered_replies(conversation_id, session=session)
                if leftovers:
                    log.info(
                        "conversation %s: delivering %d reply(ies) an interrupted run recorded",
                        conversation_id,
                        len(leftovers),
                    )
                    self._deliver(leftovers)
            for _ in range(self._max_passes):
                if self.due_in(conversation_id) > 0:
                    return "later"
                self._process(conversation_id)
                # Messages stored while the bot ran (whose tasks found the lock taken) go in the
                # next pass now rather than after a round trip through the broker.
                if not self.pending(conversation_id):
                    return "done"
        return "more"


# -- the sweeper -----------------------------------------------------------------------------------


@dataclass
class SweepReport:
    skipped: bool = False  # another process is sweeping
    resubmitted: list[int] = field(default_factory=list)
    interrupted: int = 0


class Sweeper:
    """Finds work the broker lost and sends it round again; one sweeper at a time across workers.

    A conversation is submitted again when a customer message or a recorded reply has waited longer
    than `stale_after` while the queue is empty (the broker restarted without persistence, a publish
    failed while it was down, a worker machine vanished with its unacknowledged task). While tasks
    are queued, old messages are most likely among them: a busy system is not sent more work. Sends
    cut off by a crash are marked "unknown" after `interrupted_after`.
    """

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        locks: ConversationLocks,
        submit: Callable[[int], None],
        backlog: Callable[[], int | None] | None = None,
        stale_after: timedelta = timedelta(seconds=60),
        interrupted_after: timedelta = SEND_INTERRUPTED_AFTER,
        clock: Callable[[], datetime] = utcnow,
        limit: int = 1000,
    ) -> None:
        self._session_factory = session_factory
        self._locks = locks
        self._submit = submit
        self._backlog = backlog
        self._stale_after = stale_after
        self._interrupted_after = interrupted_after
        self._clock = clock
        self._limit = limit
        self._recent: dict[int, datetime] = {}

    def sweep(self) -> SweepReport:
        with self._locks.hold(SWEEP_LOCK_KEY) as held:
            if not held:
                return SweepReport(skipped=True)
            now = self._clock()
            report = SweepReport()
            report.interrupted = mark_interrupted_sends(
                self._session_factory, now - self._interrupted_after
            )
            report.resubmitted = self._resubmit(now)
        if report.resubmitted or report.interrupted:
            log.info(
                "sweep: %d conversation(s) submitted again, %d send(s) interrupted by a crash "
                "marked unknown",
                len(report.resubmitted),
                report.interrupted,
            )
        return report

    def stale_conversations(self, now: datetime) -> list[int]:
        cutoff = now - self._stale_after
        waiting = or_(
            and_(Message.direction == "in", Message.processed_at.is_(None)),
            and_(Message.direction == "out", Message.delivery_status == "pending"),
        )
        with reading(self._session_factory) as session:
            return list(
                session.scalars(
                    select(Message.conversation_id)
                    .where(waiting)
                    .group_by(Message.conversation_id)
                    .having(func.min(Message.created_at) <= cutoff)
                    .order_by(func.min(Message.created_at))
                    .limit(self._limit)
                )
            )

    def _resubmit(self, now: datetime) -> list[int]:
        queued = self._backlog() if self._backlog is not None else 0
        if queued is None or queued > 0:
            # The broker is unreachable (publishing would fail too), or work is still queued.
            return []
        rows = self.stale_conversations(now)
        # Not again within one stale period: the first resubmission may still be queued.
        cutoff = now - self._stale_after
        self._recent = {cid: at for cid, at in self._recent.items() if at > cutoff}
        submitted = []
        for conversation_id in rows:
            if conversation_id in self._recent:
                continue
            self._submit(conversation_id)
            self._recent[conversation_id] = now
            submitted.append(conversation_id)
        return submitted


def mark_interrupted_sends(session_factory: sessionmaker[Session], claimed_before: datetime) -> int:
    """Mark sends claimed before `claimed_before` and never finished as "unknown": the process died
    between the HTTP call and recording its outcome, so the customer may or may not have the
    message. They are not sent again automatically (that could be a duplicate); an agent can look
    and resend."""
    with session_factory.begin() as session:
        result: Any = session.execute(
            update(Message)
            .where(
                Message.direction == "out",
                Message.delivery_status == "sending",
                Message.sent_at <= claimed_before,
            )
            .values(
                delivery_status="unknown",
                error="interrupted while sending (the process stopped before the channel's "
                "answer was recorded); not sent again automatically to avoid a duplicate",
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)


class SweeperThread:
    """Runs `Sweeper.sweep` every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, sweeper: Sweeper, interval: float) -> None:
        self._sweeper = sweeper
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leaddesk-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        # Spread the sweepers of many processes over the interval.
        if self._stop.wait(random.uniform(0.0, self._interval)):
            return
        while True:
            try:
                self._sweeper.sweep()
            except SQLAlchemyError as exc:
                log.warning(
                    "sweep failed (%s); trying again in %.0fs", describe_error(exc), self._interval
                )
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one failure
                log.exception("sweep failed")
            if self._stop.wait(self._interval):
                return


# -- the worker process ---------------------------------------------------------------------------


@dataclass
class WorkerState:
    """Everything one worker process needs, built once per process (after the fork)."""

    runtime: Any  # leaddesk.wiring.Runtime
    runner: ConversationRunner
    sweeper: SweeperThread | None
    pid: int

    def run(self, conversation_id: int) -> str:
        return self.runner.run(conversation_id)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        self.runtime.outbox.close()
        self.runtime.engine.dispose()


_state_lock = threading.Lock()
_state: WorkerState | None = None


def current_worker(settings: Settings, *, sweep: bool = True) -> WorkerState:
    """This process's worker state, built on first use (a forked child builds its own)."""
    global _state
    with _state_lock:
        if _state is None or _state.pid != os.getpid():
            _state = build_worker(settings, sweep=sweep)
        return _state


def close_worker() -> None:
    global _state
    with _state_lock:
        state, _state = _state, None
    if state is not None and state.pid == os.getpid():
        state.close()


def build_worker(settings: Settings, *, sweep: bool = True, runtime: Any = None) -> WorkerState:
    """Assemble the bot, its outbox and the locks for this process, and start the sweeper."""
    if runtime is None:
        from leaddesk.wiring import build_runtime

        runtime = build_runtime(settings)
    locks = make_locks(runtime.engine)
    runner = ConversationRunner(
        session_factory=runtime.session_factory,
        process=runtime.bot.process_conversation,
        deliver=runtime.outbox.deliver,
        locks=locks,
        due_in=runtime.bot.seconds_until_due,
    )
    sweeper = None
    if sweep:
        interval = settings.sweep_seconds
        sweeper = SweeperThread(
            Sweeper(
                session_factory=runtime.session_factory,
                locks=locks,
                submit=getattr(runtime.dispatcher, "resubmit", runtime.dispatcher.submit),
                backlog=getattr(runtime.dispatcher, "backlog", None),
                stale_after=timedelta(seconds=4 * interval),
            ),
            interval,
        )
        sweeper.start()
    return WorkerState(runtime=runtime, runner=runner, sweeper=sweeper, pid=os.getpid())
