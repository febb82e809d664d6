"""Job dispatch: hands "this conversation has new messages" to the workers that run the bot.

`Dispatcher` is the interface every dispatcher implements (the web layer only submits; the worker
tier also resubmits, clears marks and reads the backlog); `ThreadDispatcher` is the default, a
pool of in-process worker threads; `leaddesk.worker.celery_app.CeleryDispatcher` publishes Celery
tasks instead.

Guarantees of `ThreadDispatcher`:
- one conversation is never processed by two workers at once, and its runs happen in order;
- messages that arrive while a conversation is being processed are coalesced into one next run
  (the handler processes everything pending, so a burst gets one reply);
- a failing run is logged and retried with exponential backoff; after the last attempt the
  messages stay pending in the store and are picked up by the next submit or the next start;
- `start()` resubmits every conversation the store still has pending messages for;
- a handler that answers `Later(seconds)` (the customer is still typing) is run again after that
  long, or at once when the conversation is submitted again;
- a `deferred` key (the inbox: `store.inbox.INBOX_KEY`) runs "acknowledge first": after a lull of
  `lull` seconds without submits, or at the latest `max_delay` seconds after the first one, so a
  stream of webhooks is not slowed by the work it hands over.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Handler = Callable[[int], Any]


@dataclass(frozen=True)
class Later:
    """What a handler returns when the conversation is not due yet: run it again in `seconds`."""

    seconds: float


@runtime_checkable
class Dispatcher(Protocol):
    """What the web layer and the worker tier need from job dispatch."""

    def submit(self, conversation_id: int) -> None:
        """Ask for the conversation's pending messages to be processed (soon, at least once)."""

    def resubmit(self, conversation_id: int) -> None:
        """Submit even if the conversation looks queued already (the sweeper: that job was lost)."""

    def started(self, conversation_id: int) -> None:
        """A job for the conversation starts: later submits must hand over work again."""

    def backlog(self) -> int | None:
        """Jobs waiting to start, or None when nobody can tell (an unreachable broker)."""

    def start(self) -> None:
        """Start the workers and pick up work left pending by an earlier run."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work and wait (up to `timeout` seconds) for runs in progress."""

    def health(self) -> dict[str, Any]:
        """A small report for GET /healthz; `status` is "ok" when work is being processed."""


class ThreadDispatcher:
    """A pool of worker threads with per-conversation serialisation and burst coalescing."""

    def __init__(
        self,
        handler: Handler,
        threads: int = 4,
        *,
        pending: Callable[[], Sequence[int]] | None = None,
        retry_delays: Sequence[float] = (1.0, 4.0, 15.0, 60.0),
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "leaddesk-worker",
        deferred: Mapping[int, tuple[float, float]] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("a dispatcher needs at least one thread")
        self._handler = handler
        self._thread_count = threads
        self._pending = pending
        self._retry_delays = tuple(retry_delays)
        self._monotonic = monotonic
        self._name = name
        self._cond = threading.Condition()
        self._ready: deque[int] = deque()
        self._delayed: list[tuple[float, int, int]] = []  # (due, sequence, conversation_id)
        self._sequence = 0
        self._queued: set[int] = set()  # in _ready or _delayed
        self._running: set[int] = set()
        self._dirty: set[int] = set()  # submitted again while running
        self._attempts: dict[int, int] = {}
        self._waiting: set[int] = set()  # in _delayed because the handler said Later
        self._deferred = dict(deferred or {})  # key: (lull, max_delay)
        self._deferring: dict[int, tuple[float, float]] = {}  # key: (due, first submit)
        self._last_submit: dict[int, float] = {}  # deferred key: when it was last submitted
        self._gate: Callable[[], Any] | None = None
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False
        self._processed = 0
        self._failures = 0
        self._given_up = 0

    # -- the interface ------------------------------------------------------------------------

    def submit(self, conversation_id: int) -> None:
        with self._cond:
            if self._stopping:
                # The messages are stored; the next start picks them up.
                return
            if conversation_id in self._deferred:
                # Also while its job runs: a drain gives way to webhooks only while they come.
                self._last_submit[conversation_id] = self._monotonic()
            if conversation_id in self._running:
                self._dirty.add(conversation_id)
                return
            if conversation_id in self._deferred:
                # Not even when it said Later: under load, the time between runs is the point.
                if conversation_id not in self._waiting:
                    self._defer(conversation_id)
                return
            if conversation_id in self._queued:
                self._promote(conversation_id)
                return
            self._queued.add(conversation_id)
            self._ready.append(conversation_id)
            self._cond.notify()

    def resubmit(self, conversation_id: int) -> None:
        """The same as `submit`: a queued conversation here is never lost."""
        self.submit(conversation_id)

    def started(self, conversation_id: int) -> None:
        """Nothing to clear: `submit` looks at the queue itself."""

    def backlog(self) -> int | None:
        """Conversations waiting for a worker thread (now or after a delay)."""
        with self._cond:
            return len(self._queued)

    def start(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
            self._stopping = False
            for index in range(self._thread_count):
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{index + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self.recover()

    def recover(self) -> int:
        """Submit every conversation the store still has pending messages for; returns how many."""
        if self._pending is None:
            return 0
        try:
            conversation_ids = list(self._pending())
        except Exception:  # a failed recovery must not stop the server from starting
            log.exception("could not list conversations with pending messages")
            return 0
        for conversation_id in conversation_ids:
            self.submit(conversation_id)
        if conversation_ids:
            log.info(
                "picked up %d conversation(s) with unprocessed messages", len(conversation_ids)
            )
        return len(conversation_ids)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning(
                "%d worker(s) still busy at shutdown; their messages stay pending", len(alive)
            )
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._started = bool(self._threads)

    def health(self) -> dict[str, Any]:
        with self._cond:
            alive = sum(1 for t in self._threads if t.is_alive())
            if not self._started or self._stopping:
                status = "stopped"
            elif alive < self._thread_count:
                status = "degraded"
            else:
                status = "ok"
            return {
                "status": status,
                "kind": "threads",
                "threads": self._thread_count,
                "alive": alive,
                "queued": len(self._ready),
                "retrying": len(self._delayed) - len(self._waiting),
                "waiting": len(self._waiting) + len(self._deferring),
                "running": len(self._running),
                "processed": self._processed,
                "failures": self._failures,
                "given_up": self._given_up,
            }

    def idle(self) -> bool:
        """True when nothing is queued, running or waiting for a retry (for tests and shutdown)."""
        with self._cond:
            return not (self._ready or self._delayed or self._running or self._deferring)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()

    # -- the workers --------------------------------------------------------------------------

    def _promote(self, conversation_id: int) -> None:
        """Make a conversation waiting on a retry ready now: a new submit means fresh messages."""
        for index, (_due, _seq, cid) in enumerate(self._delayed):
            if cid == conversation_id:
                self._delayed.pop(index)
                self._waiting.discard(conversation_id)
                heapq.heapify(self._delayed)
                self._ready.append(conversation_id)
                self._cond.notify()
                return

    def hold_with(self, gate: Callable[[], Any]) -> None:
        """Call `gate()` in a worker before each run: it may block for a while to let other work
        go first (the bot process while its web process acknowledges webhooks)."""
        self._gate = gate

    def seconds_since_submit(self, key: int) -> float:
        """How long ago a deferred key was last submitted (infinity: never)."""
        with self._cond:
            last = self._last_submit.get(key)
        return float("inf") if last is None else self._monotonic() - last

    def _defer(self, key: int) -> None:
        """Run `key` after a lull, or `max_delay` after its first submit at the latest."""
        if key in self._queued and key not in self._deferring:
            return  # ready already
        lull, max_delay = self._deferred[key]
        now = self._monotonic()
        _due, first = self._deferring.get(key, (now, now))
        self._deferring[key] = (min(now + lull, first + max_delay), first)
        if key not in self._queued:
            self._queued.add(key)
            self._cond.notify()

    def _next(self) -> int | None:
        """Block until a conversation is ready (or we are stopping: None)."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = self._monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _due, _seq, cid = heapq.heappop(self._delayed)
                    self._waiting.discard(cid)
                    self._ready.append(cid)
                for key, (due, _first) in list(self._deferring.items()):
                    if due <= now:
                        del self._deferring[key]
                        self._ready.append(key)
                if self._ready:
                    conversation_id = self._ready.popleft()
                    self._queued.discard(conversation_id)
                    self._running.add(conversation_id)
                    return conversation_id
                timeout = None
                dues = [due for due, _first in self._deferring.values()]
                if self._delayed:
                    dues.append(self._delayed[0][0])
                if dues:
                    timeout = max(0.0, min(dues) - now)
                    if self._monotonic is not time.monotonic:
                        # An injected (test) clock does not advance with real time: look again soon.
                        timeout = min(timeout, 0.05)
                self._cond.wait(timeout)

    def _work(self) -> None:
        while True:
            conversation_id = self._next()
            if conversation_id is None:
                return
            ok = True
            later = 0.0
            try:
                if self._gate is not None:
                    self._gate()
                result = self._handler(conversation_id)
                if isinstance(result, Later):
                    later = max(0.0, float(result.seconds))
            except Exception:  # one bad conversation must not kill the worker
                ok = False
                log.exception("processing conversation %s failed", conversation_id)
            self._finish(conversation_id, ok, later)

    def _finish(self, conversation_id: int, ok: bool, later: float = 0.0) -> None:
        with self._cond:
            self._running.discard(conversation_id)
            again = conversation_id in self._dirty
            self._dirty.discard(conversation_id)
            if ok and later > 0 and not again and not self._stopping:
                # Not due yet (the customer is still typing): look again when it is. The messages
                # are stored, so a restart meanwhile loses nothing.
                self._sequence += 1
                heapq.heappush(
                    self._delayed, (self._monotonic() + later, self._sequence, conversation_id)
                )
                self._queued.add(conversation_id)
                self._waiting.add(conversation_id)
                self._cond.notify()
                return
            if ok:
                self._processed += 1
                self._attempts.pop(conversation_id, None)
            else:
                self._failures += 1
                attempt = self._attempts.get(conversation_id, 0)
                if attempt < len(self._retry_delays):
                    self._attempts[conversation_id] = attempt + 1
                    if not again and not self._stopping:
                        delay = self._retry_delays[attempt]
                        self._sequence += 1
                        heapq.heappush(
                            self._delayed,
                            (self._monotonic() + delay, self._sequence, conversation_id),
                        )
                        self._queued.add(conversation_id)
                        self._cond.notify()
                        log.info(
                            "conversation %s will be retried in %.1fs (attempt %d)",
                            conversation_id,
                            delay,
                            attempt + 2,
                        )
                        return
                else:
                    self._attempts.pop(conversation_id, None)
                    self._given_up += 1
                    log.error(
                        "giving up on conversation %s for now; its messages stay pending until "
                        "its next message, a sweep or a restart",
                        conversation_id,
                    )
            if again and not self._stopping and conversation_id in self._deferred:
                self._defer(conversation_id)
            elif again and not self._stopping:
                self._queued.add(conversation_id)
                self._ready.append(conversation_id)
                self._cond.notify()
