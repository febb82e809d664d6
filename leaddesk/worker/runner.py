"""What a worker process runs: under the conversation's lock, replies an interrupted run left
behind, then the bot (`ConversationRunner`); for the inbox's key, the inbox's drain; the
per-process state it needs (`WorkerProcess`) and the Celery task that drives it (`register_tasks`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.logs import describe_error
from leaddesk.settings import Settings
from leaddesk.wiring import Runtime, build_runtime
from leaddesk.worker.celery_app import PROCESS_TASK, RETRY_DELAYS
from leaddesk.worker.locks import ConversationLocks, make_locks
from leaddesk.worker.sweeper import Sweeper, SweeperThread
from store.inbox import INBOX_KEY
from store.messages import in_conversation_workspace
from store.pending import has_pending, reading, undelivered_replies, waiting_workspace

log = logging.getLogger(__name__)

# Runs of one conversation per task while new messages keep arriving (each run may loop itself).
MAX_PASSES = 3
# Seconds one inbox task drains before it hands the worker back (the bot's tasks queued behind it
# run, and the inbox task comes back): under a steady stream the inbox is never empty.
DRAIN_SLICE = 2.0


class DueIn(Protocol):
    """`BotService.seconds_until_due`: seconds until a conversation's burst is due, read in
    `session` when given."""

    def __call__(self, conversation_id: int, *, session: Session | None = None) -> float: ...


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
        due_in: DueIn | None = None,
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

    def due_in(self, conversation_id: int, *, session: Session | None = None) -> float:
        """Seconds until the conversation's burst is due for an answer (0: now); read in `session`
        when given."""
        return self._due_in(conversation_id, session=session) if self._due_in is not None else 0.0

    def run(self, conversation_id: int, *, waiting: bool = False) -> str:
        """ "idle" (nothing pending), "busy" (another worker holds it), "done", "more" (messages
        keep arriving: submit again) or "later" (the customer is still typing: submit again once
        `due_in` has passed). `waiting`: the caller has just seen messages waiting."""
        if not waiting and not self.pending(conversation_id):
            return "idle"
        with self._locks.hold(conversation_id) as held:
            if not held:
                return "busy"
            # One read under the lock: replies a worker recorded but died before sending (they go
            # out first, in order), and whether the burst is due.
            with reading(self._session_factory) as session:
                leftovers = (
                    undelivered_replies(conversation_id, session=session)
                    if self._deliver is not None
                    else []
                )
                due = self.due_in(conversation_id, session=session)
            if leftovers and self._deliver is not None:
                log.info(
                    "conversation %s: delivering %d reply(ies) an interrupted run recorded",
                    conversation_id,
                    len(leftovers),
                )
                self._deliver(leftovers)
            for number in range(self._max_passes):
                if number > 0:
                    due = self.due_in(conversation_id)
                if due > 0:
                    return "later"
                self._process(conversation_id)
                # Messages stored while the bot ran (whose tasks found the lock taken) go in the
                # next pass now rather than after a round trip through the broker.
                if not self.pending(conversation_id):
                    return "done"
        return "more"


@dataclass
class WorkerState:
    """Everything one worker process needs, built once per process (after the fork)."""

    runtime: Runtime
    runner: ConversationRunner
    sweeper: SweeperThread | None
    pid: int

    def run(self, conversation_id: int) -> str:
        if conversation_id == INBOX_KEY:
            # Ingest the queued webhook events (one drain at a time across workers); the drain
            # submits the conversations it touched.
            report = self.runtime.inbox.drain(pause=lambda spent: spent >= DRAIN_SLICE)
            return "busy" if report.busy else ("more" if report.more else "done")
        # A task names only its conversation: the run (its pending messages, leftover replies,
        # quiet window, prompts) happens in the conversation's workspace, read with whether
        # anything waits.
        with reading(self.runtime.session_factory) as session:
            workspace_id = waiting_workspace(conversation_id, session=session)
        if workspace_id is None:
            return "idle"
        with in_conversation_workspace(
            conversation_id, session_factory=self.runtime.session_factory, known=workspace_id
        ):
            return self.runner.run(conversation_id, waiting=True)

    def due_in(self, conversation_id: int) -> float:
        """Seconds until the conversation's burst is due, by its workspace's quiet window."""
        with in_conversation_workspace(
            conversation_id, session_factory=self.runtime.session_factory
        ):
            return self.runner.due_in(conversation_id)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        self.runtime.outbox.close()
        self.runtime.engine.dispose()


class WorkerProcess:
    """This process's `WorkerState`, built on first use: each Celery pool process builds its own
    after the fork (never inherited connections). The Celery task reaches it through the closure
    `register_tasks` makes, so no module-level state is needed."""

    def __init__(self, settings: Settings, *, sweep: bool = True) -> None:
        self._settings = settings
        self._sweep = sweep
        self._lock = threading.Lock()
        self._state: WorkerState | None = None

    def current(self) -> WorkerState:
        with self._lock:
            if self._state is None or self._state.pid != os.getpid():
                self._state = build_worker(self._settings, sweep=self._sweep)
            return self._state

    def close(self) -> None:
        with self._lock:
            state, self._state = self._state, None
        if state is not None and state.pid == os.getpid():
            state.close()


def build_worker(
    settings: Settings, *, sweep: bool = True, runtime: Runtime | None = None
) -> WorkerState:
    """Assemble the bot, its outbox and the locks for this process, and start the sweeper."""
    if runtime is None:
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
                submit=runtime.dispatcher.resubmit,
                backlog=runtime.dispatcher.backlog,
                stale_after=timedelta(seconds=4 * interval),
                catch_up=runtime.catch_up,
            ),
            interval,
        )
        sweeper.start()
    return WorkerState(runtime=runtime, runner=runner, sweeper=sweeper, pid=os.getpid())


def register_tasks(app: Celery, process: WorkerProcess) -> None:
    """Register the task `leaddesk worker` runs on `app`; each run uses `process.current()`."""

    @app.task(name=PROCESS_TASK, bind=True, ignore_result=True, max_retries=None, acks_late=True)
    def process_conversation(task: Any, conversation_id: int, attempt: int = 0) -> str:
        conversation_id = int(conversation_id)
        try:
            worker = process.current()
            # Before looking for pending messages: a message stored after this is either seen by
            # this run or publishes a task of its own.
            worker.runtime.dispatcher.started(conversation_id)
            outcome = worker.run(conversation_id)
        except Exception as exc:  # any failure: retry with backoff, then the sweeper
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
            countdown = max(0.05, worker.due_in(conversation_id))
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
