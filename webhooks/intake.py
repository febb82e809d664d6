"""Storing what a webhook carried: every inbound message once (dedupe by the unique index), human
replies echoed from native apps (which pause the bot), and delivery reports on the messages we sent.

The Meta webhooks only put their events in the inbox (`queue_batch`, one insert, before the 200);
`InboxDrain` ingests them later, oldest first, in bounded batches of one transaction each, and hands
the conversations that now need the bot to the dispatcher. `store_batch` ingests a parsed batch
directly in one transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import db as store_db
from store import identity as rules
from store import inbox
from store.contacts import try_normalize_phone
from store.domain.takeover import human_took_over
from store.inbox import InboxEvent
from store.leads import (
    KnownSender,
    find_identity,
    get_lead,
    join_conversations,
    known_senders,
    merge_leads,
    rehomings,
    settled_sender,
)
from store.messages import Inbound, Ingested, ingest, ingest_known
from store.models import VERIFIED, Conversation, Identity, Lead, Message, as_utc, utcnow
from store.tenancy import in_workspace
from webhooks.events import DELIVERY_RANK, ParsedBatch, StatusUpdate

log = logging.getLogger(__name__)

HumanReplyHook = Callable[..., Any]
# Processed inbox rows are kept this long (a redelivery within it is recognised at the inbox).
KEEP_PROCESSED = timedelta(days=7)
# The bot waits for the inbox to be drained (looking again every SETTLE_STEP seconds) while its
# oldest event is older than SETTLE_FROM (younger ones are in flight: the quiet window covers them)
# and younger than SETTLE_LIMIT (a longer backlog does not hold answers back).
SETTLE_FROM = timedelta(seconds=1)
SETTLE_LIMIT = timedelta(seconds=30)
SETTLE_STEP = 1.0


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    agent_replies: int = 0
    touched: list[int] = field(default_factory=list)  # conversations with pending customer messages


# -- the request: into the inbox ---------------------------------------------------------------


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _load(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.fromisoformat(value["$dt"])
    return value


def inbound_event(inbound: Inbound) -> dict[str, Any]:
    # The fields as they are (payload and extra are JSON already): cheaper than dataclasses.asdict.
    return {k: _dump(v) for k, v in vars(inbound).items()}


def status_event(status: StatusUpdate) -> dict[str, Any]:
    return {k: _dump(v) for k, v in vars(status).items()}


def _inbox_events(batches: Sequence[ParsedBatch], now: datetime) -> list[InboxEvent]:
    events: list[InboxEvent] = []
    for batch in batches:
        workspace_id = batch.workspace_id
        events += [
            InboxEvent(
                m.channel,
                "echo" if m.author == "agent" else "message",
                m.channel_message_id,
                inbound_event(m),
                now,
                workspace_id,
            )
            for m in batch.messages
        ]
        events += [
            InboxEvent(s.channel, "status", None, status_event(s), now, workspace_id)
            for s in batch.statuses
        ]
    return events


def _queued(batches: Sequence[ParsedBatch], new: int) -> StoreResult:
    """What the webhook answers, given how many of its keyed messages were new."""
    messages = [m for batch in batches for m in batch.messages]
    with_key = sum(1 for m in messages if m.channel_message_id)
    stored = new + (len(messages) - with_key)
    return StoreResult(
        stored=stored,
        duplicates=len(messages) - stored,
        statuses=sum(len(batch.statuses) for batch in batches),
    )


def _batches(batch: ParsedBatch | Sequence[ParsedBatch]) -> list[ParsedBatch]:
    return [batch] if isinstance(batch, ParsedBatch) else list(batch)


def queue_batch(
    batch: ParsedBatch | Sequence[ParsedBatch], *, engine: Engine, now: datetime
) -> StoreResult:
    """Put every event of the batch (or batches: one per workspace) in the inbox in one
    transaction (a redelivered message is dropped by the unique index); nothing else happens
    before the 200."""
    batches = _batches(batch)
    with engine.begin() as connection:
        new = inbox.enqueue(_inbox_events(batches, now), connection=connection, now=now)
    return _queued(batches, len(new))


@dataclass
class _Waiting:
    batches: list[ParsedBatch]
    events: list[InboxEvent]
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # this request writes groups (its own among them)
    finished: bool = False  # its events were written, or failed (`error`)
    result: StoreResult | None = None
    error: BaseException | None = None


def _not_committed(reason: Exception) -> OperationalError:
    """What a request whose events the inbox writer did not commit raises (a 503)."""
    return OperationalError("inbox writer", {}, reason)


class InboxWriter:
    """Group commit for the webhooks: the batches of concurrent requests go into the inbox in one
    transaction (one multi-row insert, one commit); each request waits until its events are
    committed before its 200.

    Under load the transaction's fixed cost (the statement's set-up, the commit; on SQLite the
    write lock's turn) is paid once per group instead of once per request. The requests write the
    groups themselves (leader and followers): a request that finds fewer than `writers` writing
    writes the group it belongs to, with everything queued ahead of it; those arriving meanwhile
    wait, and when it is done the first of them writes the next group. No thread is handed the
    work, so a request that waits for nobody is written by its own thread at once. A writer's
    connection is kept for the next group while it was used a moment ago (no check-out from the
    pool per group; on SQLite it gives its write turn back after each commit, see
    `store.db.end_write_turn`). One request writes at a time unless `writers` says otherwise:
    SQLite has one write lock, and on PostgreSQL (where the insert runs as its own transaction,
    autocommit: one round trip, no BEGIN or COMMIT) a second writer side by side cost more of the
    web process's CPU under load than it saved (`benchmarks/README.md`). A group whose transaction
    fails is written again one request at a time, so one bad batch fails alone (its request
    answers 503 and the channel delivers it again).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        writers: int = 1,
        max_events: int = 1000,
        timeout: float = 60.0,
    ) -> None:
        postgres = engine.dialect.name == "postgresql"
        self._engine = engine
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else None
        )
        self._max_writers = writers
        self._max_events = max_events
        self._timeout = timeout
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writers = 0  # requests writing groups now
        # The connections writers keep between groups, each with when it was last used (at most
        # `writers` of them, held while webhooks come).
        self._kept: list[tuple[Connection, float]] = []
        self.groups = 0  # transactions written (for tests and benchmarks)

    def queue(self, batch: ParsedBatch | Sequence[ParsedBatch], *, now: datetime) -> StoreResult:
        """Store the events of the batch (or batches: one per workspace) with the others waiting
        now and return once committed; raises the database's error when they could not be
        stored."""
        batches = _batches(batch)
        waiting = _Waiting(batches, _inbox_events(batches, now))
        if not waiting.events:
            return _queued(batches, 0)
        with self._cond:
            self._queue.append(waiting)
            if self._writers < self._max_writers:
                self._writers += 1
                waiting.leads = True
        if not waiting.leads:
            self._follow(waiting)
        if waiting.leads:
            self._lead(waiting)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.result is not None
        return waiting.result

    def _follow(self, waiting: _Waiting) -> None:
        """Wait until a writer has stored the request's events or handed it the writing."""
        if waiting.woken.wait(self._timeout):
            return
        with self._cond:
            if waiting.leads or waiting.finished:
                return
            if waiting in self._queue:  # nobody took it: nothing of it is written
                self._queue.remove(waiting)
        raise _not_committed(TimeoutError("no commit in time"))

    def _lead(self, mine: _Waiting) -> None:
        """Write groups from the head of the queue until `mine` is among the written; then hand
        the writing to the first request still waiting."""
        mine.woken.clear()  # it woke a follower made writer; from now on it means "written"
        try:
            while not mine.finished:
                with self._cond:
                    group = self._take()
                if group:
                    self._write(group)
                elif not mine.woken.wait(self._timeout):
                    # Another writer took it in its group, and has not committed in time.
                    raise _not_committed(TimeoutError("no commit in time"))
        finally:
            with self._cond:
                self._writers -= 1
                for item in self._queue:
                    if self._writers >= self._max_writers:
                        break
                    if not item.leads:
                        self._writers += 1
                        item.leads = True
                        item.woken.set()

    def _take(self) -> list[_Waiting]:
        """The next group: the queue's head, up to `max_events` events (at least one request)."""
        group: list[_Waiting] = []
        count = 0
        while self._queue and (not group or count + len(self._queue[0].events) <= self._max_events):
            item = self._queue.pop(0)
            group.append(item)
            count += len(item.events)
        return group

    def _write(self, group: list[_Waiting]) -> None:
        """Commit the group, or each of its requests alone when that fails; then wake them."""
        try:
            try:
                self._commit(group)
            except Exception:  # noqa: BLE001 - each batch is tried alone below
                if len(group) == 1:
                    group[0].error = sys.exc_info()[1]
                else:
                    for item in group:
                        try:
                            self._commit([item])
                        except Exception as exc:  # noqa: BLE001 - the request answers 503
                            item.error = exc
        finally:
            for item in group:
                if item.result is None and item.error is None:  # interrupted: not stored
                    item.error = _not_committed(RuntimeError("interrupted"))
                item.finished = True
                item.woken.set()

    def _borrow(self) -> Connection:
        """A connection a writer used a moment ago (no check-out from the pool), else one from
        the pool, which checks a connection that sat idle. Kept ones idle longer than
        `store.db.PING_AFTER_IDLE` go back to the pool."""
        stale: list[Connection] = []
        found: Connection | None = None
        with self._cond:
            while self._kept and found is None:
                connection, since = self._kept.pop()
                if time.monotonic() - since <= store_db.PING_AFTER_IDLE:
                    found = connection
                else:
                    stale.append(connection)
        for connection in stale:
            with contextlib.suppress(Exception):
                connection.close()
        if found is not None:
            return found
        return (self._autocommit or self._engine).connect()

    def _commit(self, group: list[_Waiting]) -> None:
        events = [event for item in group for event in item.events]
        now = events[0].received_at or utcnow()
        connection = self._borrow()
        try:
            if self._autocommit is not None:
                # One statement, atomic on its own: the insert is the transaction.
                new = inbox.enqueue(events, connection=connection, now=now)
            else:
                try:
                    with connection.begin():  # SQLite: BEGIN IMMEDIATE takes the write turn
                        new = inbox.enqueue(events, connection=connection, now=now)
                finally:
                    # Kept out of the pool, the connection gives its turn back itself.
                    store_db.end_write_turn(connection)
        except Exception:
            # The others kept may have gone with it (a restart cuts every connection): the retry
            # and the next groups take connections from the pool, which checks them.
            with self._cond:
                dropped, self._kept = [connection, *(kept for kept, _ in self._kept)], []
            for each in dropped:
                with contextlib.suppress(Exception):
                    each.invalidate()
                with contextlib.suppress(Exception):
                    each.close()
            raise
        with self._cond:
            self._kept.append((connection, time.monotonic()))
            self.groups += 1
        # A key new in this group counts for the first request that carried it.
        fresh = Counter(new)
        for item in group:
            count = 0
            for event in item.events:
                if event.kind == "status" or not event.dedupe_key:
                    continue
                key = (event.channel, event.dedupe_key)
                if fresh[key] > 0:
                    fresh[key] -= 1
                    count += 1
            item.result = _queued(item.batches, count)


# -- the drain: from the inbox into the store ------------------------------------------------


@dataclass
class DrainReport:
    busy: bool = False  # another drain holds the inbox
    more: bool = False  # gave way to other work with rows left
    result: StoreResult = field(default_factory=StoreResult)
    processed: int = 0
    failed: int = 0


class InboxDrain:
    """Ingests the inbox: claims unprocessed rows oldest first, `batch_size` at a time, each batch
    in one transaction (ingest, aliases, takeover on echoes, delivery statuses, mark processed),
    then submits the touched conversations. A crash before the commit re-runs the batch (`ingest`
    dedupes); an event that fails is retried on the next drain and set aside after
    `store.inbox.MAX_ATTEMPTS`. `hold` (the worker tier's lock) keeps it to one drain at a time.
    """

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        region: str,
        takeover_minutes: int,
        clock: Callable[[], datetime],
        submit: Callable[[int], None],
        on_human_reply: HumanReplyHook | None = None,
        hold: Callable[[int], AbstractContextManager[bool]] | None = None,
        batch_size: int = 8,
        prune_every: float = 3600.0,
    ) -> None:
        self._session_factory = session_factory
        self._region = region
        self._takeover_minutes = takeover_minutes
        self._clock = clock
        self._submit = submit
        self._on_human_reply = on_human_reply
        self._hold = hold
        self._batch_size = batch_size
        self._prune_every = prune_every
        self._pruned_at = float("-inf")
        # How long the oldest event of the last batch had waited when the batch claimed it.
        self.lag = 0.0

    def drain(self, pause: Callable[[float], bool] | None = None) -> DrainReport:
        """Drain until the inbox is empty, or until `pause(seconds spent)` says to give way to
        other work (`more`: rows are left)."""
        report = DrainReport()
        holding = self._hold(inbox.INBOX_KEY) if self._hold is not None else nullcontext(True)
        with holding as held:
            if not held:
                report.busy = True
                return report
            started = time.monotonic()
            after_id = 0
            touched: dict[int, None] = {}
            try:
                while True:
                    after_id, count = self._drain_batch(after_id, report, touched)
                    if count < self._batch_size:
                        break
                    if pause is not None and pause(time.monotonic() - started):
                        report.more = True
                        break
            finally:
                # Once the whole stretch is in: a customer's messages spread over several batches
                # reach the bot together (one answer to the burst).
                report.result.touched = list(touched)
                for conversation_id in touched:
                    self._submit(conversation_id)
            self._prune()
        return report

    def _drain_batch(
        self, after_id: int, report: DrainReport, touched: dict[int, None]
    ) -> tuple[int, int]:
        # First the whole batch in one go: messages from settled senders stored by one statement,
        # no savepoint per row. Should any row fail, that attempt rolls back whole and the batch
        # runs again row by row, each in its own savepoint, so that the failing row is set aside
        # alone.
        result = StoreResult()
        batch_touched: dict[int, None] = {}  # counts once the batch is committed
        try:
            with self._session_factory.begin() as session:
                rows = inbox.claim(session=session, limit=self._batch_size, after_id=after_id)
                if not rows:
                    return after_id, 0
                oldest = as_utc(rows[0].received_at)
                self.lag = 0.0 if oldest is None else (self._clock() - oldest).total_seconds()
                self._apply_batch(rows, session, self._clock(), batch_touched, result)
                inbox.mark_processed([row.id for row in rows], session=session, now=self._clock())
        except OperationalError:
            raise  # the database's trouble (a deadlock, a lost connection), not an event's
        except Exception as exc:  # noqa: BLE001 - retried row by row: the failing row is logged there
            log.debug("inbox batch after %s failed whole (%s): row by row", after_id, exc)
            return self._drain_rows(after_id, report, touched)
        _merge(report.result, result)
        touched.update(batch_touched)
        report.processed += len(rows)
        return rows[-1].id, len(rows)

    def _apply_batch(
        self,
        rows: Sequence[Any],
        session: Session,
        now: datetime,
        touched: dict[int, None],
        result: StoreResult,
    ) -> None:
        """The batch's rows in order, each in the workspace its channel account routed it to."""
        for workspace_id, group in itertools.groupby(rows, key=lambda row: row.workspace_id):
            with in_workspace(workspace_id):
                self._apply_group(list(group), session, now, touched, result)

    def _apply_group(
        self,
        rows: Sequence[Any],
        session: Session,
        now: datetime,
        touched: dict[int, None],
        result: StoreResult,
    ) -> None:
        """Rows of one workspace in order; each run of customer messages from settled senders in one
        statement (`store.messages.ingest_known`), every other row as `_apply` does it.

        The senders of the rows ahead are read (one statement for all of them) before the first
        customer message, and again only when needed: all of them after any row that moved
        someone else's identity or conversation (a merge, joined conversations) or was not a
        plain customer message; before a row whose sender an earlier row registered or changed,
        the senders so written alone. A new customer's first row does not make the others'
        senders read again."""
        events = [{k: _load(v) for k, v in row.event.items()} for row in rows]
        senders = [(str(data.get("channel")), str(data.get("external_id"))) for data in events]
        plan: dict[int, KnownSender] = {}
        absent: set[int] = set()  # rows whose sender the plan read found unregistered
        stale = True  # the plan must be read before the next customer message
        changed: set[tuple[str, str]] = set()  # senders written by a row since the plan was read
        run: list[tuple[Inbound, KnownSender, datetime | None]] = []

        def store_run() -> None:
            for ingested in ingest_known(run, session=session):
                _counted(ingested, touched, result)
            run.clear()

        for index, (row, data) in enumerate(zip(rows, events, strict=True)):
            sender = senders[index]
            if row.kind != "status" and stale:
                plan, absent = self._settled(range(index, len(rows)), rows, events, session)
                stale = False
                changed.clear()
            elif row.kind != "status" and sender in changed:
                # The others' plan stands: nothing but these senders' own rows changed them.
                again = [i for i in range(index, len(rows)) if senders[i] in changed]
                for ahead in again:
                    plan.pop(ahead, None)
                    absent.discard(ahead)
                settled, unregistered = self._settled(again, rows, events, session)
                plan.update(settled)
                absent |= unregistered
                changed.clear()
            known = plan.get(index)
            if known is not None:
                run.append((Inbound(**data), known, row.received_at))
                continue
            store_run()
            before = rehomings(session)
            self._apply(row, session, now, touched, result, data=data, absent=index in absent)
            if row.kind == "status":
                continue
            if rehomings(session) != before or not _plain_customer_message(data):
                stale = True
            else:
                changed.add(sender)
        store_run()

    def _settled(
        self,
        indices: Iterable[int],
        rows: Sequence[Any],
        events: Sequence[dict[str, Any]],
        session: Session,
    ) -> tuple[dict[int, KnownSender], set[int]]:
        """Which of the rows at these indices are customer messages that `ingest_known` may
        store (a channel message id, no aliases, a settled sender), and which are such messages
        from a sender not registered yet (`ingest` registers it without a look of its own)."""
        wanted = {
            index: events[index]
            for index in indices
            if rows[index].kind != "status"
            and _plain_customer_message(events[index])
            and events[index].get("channel_message_id")
        }
        senders = known_senders(
            [(data["channel"], data["external_id"]) for data in wanted.values()], session=session
        )
        plan: dict[int, KnownSender] = {}
        absent: set[int] = set()
        for index, data in wanted.items():
            known = senders.get((data["channel"], data["external_id"]))
            if known is None:
                absent.add(index)
                continue
            phone = try_normalize_phone(data["phone"], self._region) if data.get("phone") else None
            if data.get("phone") and phone is None:
                continue
            if settled_sender(known, phone=phone, name=data.get("name"), region=self._region):
                plan[index] = known
        return plan, absent

    def _drain_rows(
        self, after_id: int, report: DrainReport, touched: dict[int, None]
    ) -> tuple[int, int]:
        batch_touched: dict[int, None] = {}  # counts once the batch is committed
        with self._session_factory.begin() as session:
            rows = inbox.claim(session=session, limit=self._batch_size, after_id=after_id)
            if not rows:
                return after_id, 0
            now = self._clock()
            done: list[int] = []
            failures: list[tuple[int, str]] = []
            for row in rows:
                try:
                    with session.begin_nested(), in_workspace(row.workspace_id):
                        self._apply(row, session, now, batch_touched, report.result)
                except OperationalError:
                    raise  # the database's trouble (a deadlock, a lost connection), not the event's
                except Exception as exc:  # one bad event must not block the rest
                    log.warning(
                        "inbox event %s (%s %s) failed (attempt %d): %s",
                        row.id,
                        row.channel,
                        row.kind,
                        row.attempts + 1,
                        type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                    failures.append((row.id, f"{type(exc).__name__}: {exc}"))
                    continue
                done.append(row.id)
            inbox.mark_processed(done, session=session, now=now)
            inbox.record_failures(failures, session=session)
        touched.update(batch_touched)
        report.processed += len(done)
        report.failed += len(failures)
        return rows[-1].id, len(rows)

    def _apply(
        self,
        row: Any,
        session: Session,
        now: datetime,
        touched: dict[int, None],
        result: StoreResult,
        *,
        data: dict[str, Any] | None = None,
        absent: bool = False,
    ) -> None:
        """One row: a delivery status, or an event `ingest` stores (`absent`: a customer message
        whose sender this transaction has just read unregistered)."""
        if data is None:
            data = {k: _load(v) for k, v in row.event.items()}
        if row.kind == "status":
            result.statuses += apply_status(StatusUpdate(**data), session=session)
            return
        _ingest_one(
            Inbound(**data),
            session=session,
            region=self._region,
            takeover_minutes=self._takeover_minutes,
            now=now,
            hook=self._on_human_reply,
            touched=touched,
            result=result,
            received_at=row.received_at,
            sender_absent=absent,
        )

    def settling(self) -> float:
        """Seconds the bot should wait before answering: while the drain lags behind the inbox
        (its oldest event waits longer than `SETTLE_FROM`), a customer's next message may be
        among the waiting events, and their burst is answered once, when it is in. A backlog
        older than `SETTLE_LIMIT` does not hold the bot back."""
        with store_db.read_session(self._session_factory) as session:  # never SQLite's write turn
            oldest = inbox.oldest_waiting(session=session)
        if oldest is None or not SETTLE_FROM < self._clock() - oldest <= SETTLE_LIMIT:
            return 0.0
        return SETTLE_STEP

    def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < self._prune_every:
            return
        self._pruned_at = time.monotonic()
        with self._session_factory.begin() as session:
            removed = inbox.prune(session=session, processed_before=self._clock() - KEEP_PROCESSED)
        if removed:
            log.info("inbox: %d processed event(s) older than a week pruned", removed)


def inbox_health(session_factory: sessionmaker[Session], clock: Callable[[], datetime]) -> Any:
    """A /healthz probe: the inbox's backlog and the events set aside."""

    def probe() -> dict[str, Any]:
        with session_factory() as session:
            waiting = inbox.backlog(session=session)
            aside = inbox.set_aside(session=session) if waiting.set_aside else []
        age = (clock() - waiting.oldest).total_seconds() if waiting.oldest else 0.0
        report: dict[str, Any] = {
            "status": "ok" if age < 60 and not waiting.set_aside else "degraded",
            "unprocessed": waiting.unprocessed,
            "oldest_seconds": round(max(0.0, age), 3),
            "set_aside": waiting.set_aside,
        }
        if aside:
            report["set_aside_events"] = aside
        return report

    return probe


# -- ingesting -------------------------------------------------------------------------------


def _plain_customer_message(data: dict[str, Any]) -> bool:
    """An inbox message event that a customer sent, with no other ids of theirs to link
    (aliases): not an echo of the business's own reply, not a link between identities."""
    from_customer = data.get("author", "customer") == "customer"
    return from_customer and not (data.get("extra") or {}).get("aliases")


def store_batch(
    batch: ParsedBatch,
    *,
    session_factory: sessionmaker[Session],
    region: str,
    takeover_minutes: int,
    now: datetime,
    on_human_reply: HumanReplyHook | None = None,
) -> StoreResult:
    """Store the batch in one transaction and return the conversations that now need the bot."""
    result = StoreResult()
    touched: dict[int, None] = {}
    entered = in_workspace(batch.workspace_id) if batch.workspace_id is not None else nullcontext()
    with entered, session_factory.begin() as session:
        for inbound in batch.messages:
            _ingest_one(
                inbound,
                session=session,
                region=region,
                takeover_minutes=takeover_minutes,
                now=now,
                hook=on_human_reply,
                touched=touched,
                result=result,
            )
        for status in batch.statuses:
            result.statuses += apply_status(status, session=session)
    result.touched = list(touched)
    return result


def _ingest_one(
    inbound: Inbound,
    *,
    session: Session,
    region: str,
    takeover_minutes: int,
    now: datetime,
    hook: HumanReplyHook | None,
    touched: dict[int, None],
    result: StoreResult,
    received_at: datetime | None = None,
    sender_absent: bool = False,
) -> None:
    # The message arrived when its webhook did: the bot's quiet window counts from there, so a
    # burst stays one burst however late the drain ingests it.
    ingested = ingest(
        inbound,
        session=session,
        region=region,
        received_at=received_at,
        sender_absent=sender_absent,
    )
    if ingested.duplicate:
        _counted(ingested, touched, result)
        return
    result.stored += 1
    lead, conversation_id = ingested.lead, ingested.message.conversation_id
    aliases = inbound.extra.get("aliases") or []
    if aliases:
        lead = _link_aliases(ingested, aliases, session=session)
        # Joining the alias's conversation may have moved the message.
        conversation_id = session.scalars(
            select(Message.conversation_id).where(Message.id == ingested.message.id)
        ).one()
    if inbound.author == "agent":
        result.agent_replies += 1
        _human_replied(lead, session=session, now=now, minutes=takeover_minutes, hook=hook)
    else:
        touched[conversation_id] = None


def _counted(ingested: Ingested, touched: dict[int, None], result: StoreResult) -> None:
    """Count a customer message stored (or met again) and note its conversation for the bot."""
    if ingested.duplicate:
        result.duplicates += 1
        # Still pending (stored by a delivery that was never dispatched): dispatch again.
        if ingested.message.direction == "in" and ingested.message.processed_at is None:
            touched[ingested.conversation.id] = None
        return
    result.stored += 1
    touched[ingested.message.conversation_id] = None


def _merge(into: StoreResult, result: StoreResult) -> None:
    into.stored += result.stored
    into.duplicates += result.duplicates
    into.statuses += result.statuses
    into.agent_replies += result.agent_replies


def _human_replied(
    lead: Lead, *, session: Session, now: datetime, minutes: int, hook: HumanReplyHook | None
) -> None:
    """A person answered from the native app: the bot steps back for the takeover window."""
    if hook is None:
        hook = human_took_over
    hook(lead, session=session, now=now, minutes=minutes)
    log.info("lead %s: a human replied from the native app; the bot is paused", lead.id)


def _link_aliases(ingested: Ingested, aliases: list[str], *, session: Session) -> Lead:
    """Record other ids of the same person on this channel (e.g. the WhatsApp BSUID beside the
    phone).

    The channel vouches for both, so the alias is verified and shares the conversation; an alias
    already owned by another lead means the two leads are one person: they are merged (when
    `store.identity` allows, else a merge is suggested).
    """
    lead = ingested.lead
    channel = ingested.message.channel
    root_id = ingested.conversation.identity_id
    for alias in aliases:
        identity = find_identity(channel, alias, session=session)
        if identity is None:
            try:
                with session.begin_nested():
                    session.add(
                        Identity(
                            lead_id=lead.id,
                            channel=channel,
                            external_id=alias,
                            display_name=lead.name,
                            trust=VERIFIED,
                            alias_of_id=root_id,
                            created_at=ingested.message.created_at,
                        )
                    )
                    session.flush()
                continue
            except IntegrityError:
                identity = find_identity(channel, alias, session=session)
                if identity is None:
                    continue
        owner = get_lead(identity.lead_id, session=session)
        if owner.id != lead.id and rules.may_merge_automatically(lead, owner):
            lead = merge_leads(lead, owner, session=session, actor="merge")
        if owner.id == lead.id:
            # One person's two ids on this channel: one conversation.
            if root_id is not None:
                root_id = join_conversations(identity, root_id, session=session)
        else:
            rules.suggest_merge(
                lead, owner, "phone", session=session, source=channel, claimed=False
            )
    return lead


def apply_status(status: StatusUpdate, *, session: Session) -> int:
    """Move our outbound messages forward (sent → delivered → read, or failed); never backwards."""
    lower = [
        name for name, rank in DELIVERY_RANK.items() if rank < DELIVERY_RANK.get(status.status, 99)
    ]
    if status.status == "failed":
        # A failure report after delivery or reading is stale; before that it is the outcome.
        lower = ["pending", "sending", "sent"]
    values: dict[str, Any] = {"delivery_status": status.status}
    if status.error:
        values["error"] = status.error[:2000]
    if status.channel_message_id:
        statement = (
            update(Message)
            .where(
                Message.channel == status.channel,
                Message.channel_message_id == status.channel_message_id,
                Message.direction == "out",
                Message.delivery_status.in_(lower),
            )
            .values(**values)
        )
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    if status.watermark is not None and status.recipient:
        conversation_ids = _conversations_of(status.channel, status.recipient, session=session)
        if not conversation_ids:
            return 0
        statement = (
            update(Message)
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == "out",
                Message.delivery_status.in_([s for s in lower if s not in ("pending", "sending")]),
                Message.sent_at <= status.watermark,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    return 0


def _conversations_of(channel: str, external_id: str, *, session: Session) -> list[int]:
    identity = find_identity(channel, external_id, session=session)
    if identity is None:
        return []
    root_id = identity.alias_of_id or identity.id
    return list(session.scalars(select(Conversation.id).where(Conversation.identity_id == root_id)))
