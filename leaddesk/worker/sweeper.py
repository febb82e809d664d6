"""The sweeper: finds work the broker lost (and sends cut off by a crash) and deals with it; one
sweeper at a time across the workers of a deployment, for every workspace (the periodic catch-up
runs once per active workspace, inside it)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.logs import describe_error
from leaddesk.worker.locks import SWEEP_LOCK_KEY, ConversationLocks
from store import inbox
from store.inbox import INBOX_KEY
from store.models import utcnow
from store.pending import mark_interrupted_sends, reading, stale_conversations
from store.tenancy import in_workspace
from store.workspaces import active_workspace_ids

log = logging.getLogger(__name__)

# A send claimed ("sending") this long ago is not in progress any more: the process died mid-send.
# The channel outbox gives up on one send after about a minute (timeouts, retries and backoff).
SEND_INTERRUPTED_AFTER = timedelta(minutes=5)


@dataclass
class SweepReport:
    skipped: bool = False  # another process is sweeping
    resubmitted: list[int] = field(default_factory=list)
    interrupted: int = 0
    pruned: int = 0  # processed inbox events older than `keep_inbox`


class Sweeper:
    """Finds work the broker lost and sends it round again; one sweeper at a time across workers.

    The inbox's drain is submitted again when an event has waited longer than `inbox_stale_after`
    (whatever the queue holds: the drain is one cheap job), and processed inbox events older than
    `keep_inbox` are deleted. A conversation is submitted again when a customer message or a
    recorded reply has waited longer than `stale_after` while the queue is empty (the broker
    restarted without persistence, a publish failed while it was down, a worker machine vanished
    with its unacknowledged task). While tasks are queued, old messages are most likely among them:
    a busy system is not sent more work. Sends cut off by a crash are marked "unknown" after
    `interrupted_after`.
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
        inbox_stale_after: timedelta = timedelta(seconds=5),
        keep_inbox: timedelta = timedelta(days=7),
        catch_up: Callable[[Session, datetime], object] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._locks = locks
        self._submit = submit
        self._backlog = backlog
        self._stale_after = stale_after
        self._interrupted_after = interrupted_after
        self._clock = clock
        self._limit = limit
        self._inbox_stale_after = inbox_stale_after
        self._keep_inbox = keep_inbox
        # Leads waiting for an agent take the room closed leads freed (store.domain.waiting).
        self._catch_up = catch_up
        self._recent: dict[int, datetime] = {}

    def sweep(self) -> SweepReport:
        with self._locks.hold(SWEEP_LOCK_KEY) as held:
            if not held:
                return SweepReport(skipped=True)
            now = self._clock()
            report = SweepReport()
            with self._session_factory.begin() as session:
                report.interrupted = mark_interrupted_sends(
                    now - self._interrupted_after, session=session, every_workspace=True
                )
                report.pruned = inbox.prune(
                    session=session, processed_before=now - self._keep_inbox
                )
                inbox_waits = inbox.has_work(
                    session=session, received_before=now - self._inbox_stale_after
                )
            if inbox_waits:
                # Webhook events acknowledged seconds ago and still not ingested: the drain's job
                # was lost (or its publish failed). Draining twice is harmless.
                self._submit(INBOX_KEY)
                report.resubmitted.append(INBOX_KEY)
            report.resubmitted += self._resubmit(now)
            if self._catch_up is not None:
                self._catch_up_each_workspace(now)
        if report.resubmitted or report.interrupted:
            log.info(
                "sweep: %d conversation(s) submitted again, %d send(s) interrupted by a crash "
                "marked unknown",
                len(report.resubmitted),
                report.interrupted,
            )
        return report

    def stale_conversations(self, now: datetime) -> list[int]:
        """Every workspace's (a conversation's job enters its workspace)."""
        with reading(self._session_factory) as session:
            return stale_conversations(
                now - self._stale_after, session=session, limit=self._limit, every_workspace=True
            )

    def _catch_up_each_workspace(self, now: datetime) -> None:
        # Each workspace in its own transaction: one whose catch-up fails (its prompts do not
        # validate, say) holds back no other.
        assert self._catch_up is not None
        with reading(self._session_factory) as session:
            workspace_ids = active_workspace_ids(session=session)
        for workspace_id in workspace_ids:
            try:
                with in_workspace(workspace_id), self._session_factory.begin() as session:
                    self._catch_up(session, now)
            except Exception:  # the next sweep tries again
                log.exception("the catch-up of workspace %s failed", workspace_id)

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
            except Exception:  # the sweeper must outlive any one failure
                log.exception("sweep failed")
            if self._stop.wait(self._interval):
                return
