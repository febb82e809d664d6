"""What happened in the store, as a stream the console follows live: a message stored, a lead
created, a status, assignment or bot-pause change (the lead's, or one conversation's), a
notification (and, from the web widget, a customer typing).

Events come from the store itself: `watch(session_factory, bus)` collects them from every flush
and publishes them only after the transaction commits, so no front end has to remember to announce
its changes and a rolled-back change is never announced. `LocalBus` serves one process; `RedisBus`
(a Redis stream on the broker) lets several web and worker processes share one stream. Each event
has an id a client can resume from (`Last-Event-ID`); a client whose id is too old or from another
run is told to `reset` (reload what it shows).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import redis
from sqlalchemy import event, inspect
from sqlalchemy.orm import InstanceState, Session, SessionTransaction, sessionmaker

from store.models import Conversation, Lead, Message, Notification
from store.tenancy import FIRST_WORKSPACE, current_workspace

log = logging.getLogger(__name__)

EventKind = Literal["message", "lead", "notification", "typing", "reset"]

# Lead fields whose change the console shows at once.
WATCHED_LEAD_FIELDS = ("status", "assigned_agent_id", "ai_paused_until", "ai_stopped", "score")
# A conversation's own bot pause or stop (the lead's other rooms keep theirs).
WATCHED_CONVERSATION_FIELDS = ("ai_paused_until", "ai_stopped")
_PENDING = "leaddesk_events"


@dataclass(frozen=True)
class StoreEvent:
    """One thing that happened. `lead_id`/`conversation_id` say where (the reader checks who may
    see it); `agent_id` addresses an event to one agent (a notification); `workspace_id` is the
    workspace it happened in (a console follows only its own)."""

    kind: EventKind
    lead_id: int | None = None
    conversation_id: int | None = None
    agent_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    # By default the workspace in force where the event is made (a customer typing in a chat).
    workspace_id: int = field(default_factory=current_workspace)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StoreEvent:
        return cls(
            kind=value["kind"],
            lead_id=value.get("lead_id"),
            conversation_id=value.get("conversation_id"),
            agent_id=value.get("agent_id"),
            data=dict(value.get("data") or {}),
            id=str(value.get("id") or ""),
            workspace_id=int(value.get("workspace_id") or FIRST_WORKSPACE),
        )


class EventBus(Protocol):
    """Where events are published and read back in order."""

    def publish(self, events: Sequence[StoreEvent]) -> None:
        """Append the events to the stream (ids are given here)."""

    def read(self, after: str | None, *, timeout: float) -> list[StoreEvent]:
        """Events after `after` (None: only new ones), waiting up to `timeout` seconds for one.

        A `reset` event comes first when `after` is unknown (too old, or from another run)."""

    def last_id(self) -> str:
        """The id of the newest event ("" when there is none): where a new reader starts."""


class LocalBus:
    """The stream of one process: a ring buffer of the last `keep` events."""

    def __init__(self, keep: int = 2000) -> None:
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)
        self._events: deque[StoreEvent] = deque(maxlen=keep)
        self._changed = threading.Condition()

    def publish(self, events: Sequence[StoreEvent]) -> None:
        if not events:
            return
        with self._changed:
            for item in events:
                self._events.append(_with_id(item, f"{self._run}-{next(self._counter)}"))
            self._changed.notify_all()

    def last_id(self) -> str:
        with self._changed:
            return self._events[-1].id if self._events else f"{self._run}-0"

    def read(self, after: str | None, *, timeout: float) -> list[StoreEvent]:
        deadline = time.monotonic() + timeout
        with self._changed:
            position = self._position(after)
            if position is None:
                return [StoreEvent("reset", id=self._events[-1].id if self._events else "")]
            while True:
                fresh = [e for e in self._events if _sequence(e.id) > position]
                remaining = deadline - time.monotonic()
                if fresh or remaining <= 0:
                    return fresh
                self._changed.wait(remaining)

    def _position(self, after: str | None) -> int | None:
        """The sequence number to read after, or None when `after` cannot be resumed from."""
        newest = _sequence(self._events[-1].id) if self._events else 0
        if after is None or after == "":
            return newest
        run, _, number = after.partition("-")
        if run != self._run or not number.isdigit() or int(number) > newest:
            return None
        oldest = _sequence(self._events[0].id) if self._events else 1
        if int(number) < oldest - 1:
            return None  # fell out of the buffer: some events are lost to this reader
        return int(number)


class RedisBus:
    """The stream shared by every process on the broker: a capped Redis stream."""

    def __init__(self, url: str, *, key: str = "leaddesk:events", keep: int = 10000) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=3)
        self._key, self._keep = key, keep

    def publish(self, events: Sequence[StoreEvent]) -> None:
        if not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for item in events:
            body = json.dumps(item.as_json(), separators=(",", ":"), default=str)
            pipe.xadd(self._key, {"e": body}, maxlen=self._keep, approximate=True)
        try:
            pipe.execute()
        except redis.RedisError:
            # Live updates are a convenience: the change itself is committed, pages show it.
            log.warning("could not publish %d live event(s) to Redis", len(events), exc_info=True)

    def last_id(self) -> str:
        entries = self._redis.xrevrange(self._key, count=1)
        return _text(entries[0][0]) if entries else "0-0"

    def read(self, after: str | None, *, timeout: float) -> list[StoreEvent]:
        start = after or self.last_id()
        if after:
            oldest = self._redis.xrange(self._key, count=1)
            if not _redis_id_ok(after) or (oldest and _older(after, _text(oldest[0][0]))):
                return [StoreEvent("reset", id=self.last_id())]
        answer: Any = self._redis.xread({self._key: start}, block=max(1, int(timeout * 1000)))
        events: list[StoreEvent] = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                raw = fields.get(b"e") or fields.get("e")
                if raw is None:
                    continue
                events.append(_with_id(StoreEvent.from_json(json.loads(raw)), _text(entry_id)))
        return events


def watch(session_factory: sessionmaker[Session], bus: EventBus) -> None:
    """Publish the events of every transaction of `session_factory`'s sessions once it commits."""
    event.listen(session_factory, "after_flush", _collect)
    event.listen(session_factory, "after_commit", lambda session: _publish(session, bus))
    event.listen(session_factory, "after_rollback", _forget)
    event.listen(session_factory, "after_soft_rollback", _forget_savepoint)


def events_of(objects: Iterable[Any], *, new: bool) -> list[StoreEvent]:
    """The events a flush of `objects` makes (`new`: they were inserted)."""
    found: list[StoreEvent] = []
    for item in objects:
        if isinstance(item, Message) and new:
            found.append(
                StoreEvent(
                    "message",
                    conversation_id=item.conversation_id,
                    data={
                        "message_id": item.id,
                        "direction": item.direction,
                        "author": item.author,
                        "channel": item.channel,
                    },
                    workspace_id=_workspace_of(item),
                )
            )
        elif isinstance(item, Lead):
            if new:
                found.append(
                    StoreEvent(
                        "lead",
                        lead_id=item.id,
                        data={"created": True},
                        workspace_id=_workspace_of(item),
                    )
                )
                continue
            changed = _changed_fields(item, WATCHED_LEAD_FIELDS)
            if changed:
                found.append(
                    StoreEvent(
                        "lead",
                        lead_id=item.id,
                        data={"changed": changed},
                        workspace_id=_workspace_of(item),
                    )
                )
        elif isinstance(item, Conversation) and not new:
            changed = _changed_fields(item, WATCHED_CONVERSATION_FIELDS)
            if changed:
                found.append(
                    StoreEvent(
                        "lead",
                        lead_id=item.lead_id,
                        conversation_id=item.id,
                        data={"changed": changed},
                        workspace_id=_workspace_of(item),
                    )
                )
        elif isinstance(item, Notification) and new:
            found.append(
                StoreEvent(
                    "notification",
                    lead_id=item.lead_id,
                    agent_id=item.agent_id,
                    data={"notification_id": item.id},
                    workspace_id=_workspace_of(item),
                )
            )
    return found


# An event, the row it is about, and the savepoint of an `inserted` row (None for a flushed one).
_Pending = tuple[StoreEvent, Any, "SessionTransaction | None"]


def inserted(session: Session, objects: Iterable[Any]) -> None:
    """Announce rows written by a statement of their own (an INSERT ... RETURNING, which no flush
    sees) with the transaction's other events.

    Such a row is loaded, not added, so a savepoint rolled back around it does not take it out of
    the session: its events remember the savepoint they were written in and leave with it.
    """
    pending: list[_Pending] = session.info.setdefault(_PENDING, [])
    savepoint = session.get_nested_transaction()
    for item in objects:
        pending.extend((found, item, savepoint) for found in events_of([item], new=True))


def _collect(session: Session, _context: Any) -> None:
    pending: list[_Pending] = session.info.setdefault(_PENDING, [])
    for new, objects in ((True, list(session.new)), (False, list(session.dirty))):
        for item in objects:
            pending.extend((found, item, None) for found in events_of([item], new=new))


def _publish(session: Session, bus: EventBus) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint: the events wait for the whole transaction
    pending: list[_Pending] = session.info.pop(_PENDING, None) or []
    # A flushed row inserted inside a savepoint that was rolled back left the session with it;
    # an `inserted` one was dropped when its savepoint rolled back (`_forget_savepoint`).
    events = [
        found
        for found, item, savepoint in pending
        if savepoint is not None or inspect(item).persistent
    ]
    if not events:
        return
    try:
        bus.publish(events)
    except Exception:  # a live update must never undo or fail a committed change
        log.warning("could not publish %d live event(s)", len(events), exc_info=True)


def _forget(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_PENDING, None)


def _forget_savepoint(session: Session, previous: SessionTransaction) -> None:
    """Drop the events of rows `inserted` inside a savepoint (or one within it) rolled back."""
    if not previous.nested:
        return
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending:
        pending[:] = [entry for entry in pending if not _within(entry[2], previous)]


def _within(savepoint: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is outer:
            return True
        savepoint = savepoint.parent
    return False


def _workspace_of(row: Lead | Conversation | Message | Notification) -> int:
    """The row's workspace (stamped at insert; before the flush, the one in force)."""
    value = row.workspace_id
    return int(value) if value is not None else current_workspace()


def _changed_fields(row: Lead | Conversation, watched: Sequence[str]) -> list[str]:
    state: InstanceState[Any] = inspect(row)
    return [name for name in watched if state.attrs[name].history.has_changes()]


def _with_id(item: StoreEvent, event_id: str) -> StoreEvent:
    return StoreEvent(
        item.kind,
        item.lead_id,
        item.conversation_id,
        item.agent_id,
        item.data,
        event_id,
        item.workspace_id,
    )


def _sequence(event_id: str) -> int:
    number = event_id.rpartition("-")[2]
    return int(number) if number.isdigit() else 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_id_ok(value: str) -> bool:
    left, _, right = value.partition("-")
    return left.isdigit() and right.isdigit()


def _older(first: str, second: str) -> bool:
    """Whether stream id `first` comes before `second` (the oldest kept: events may be lost)."""
    a = tuple(int(part) for part in first.split("-"))
    b = tuple(int(part) for part in second.split("-"))
    return a < b
