"""Celery on a broker (Redis or RabbitMQ): the app's configuration and `CeleryDispatcher`, the
`Dispatcher` web processes use to publish "conversation N has new messages" as a task."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from leaddesk.logs import describe_error
from leaddesk.settings import Settings
from leaddesk.worker import redis_broker

log = logging.getLogger(__name__)

PROCESS_TASK = "leaddesk.process_conversation"
# Backoff after a failed run (database gone, model and fallback both failing...); after the last one
# the messages stay pending and the sweeper submits them again later.
RETRY_DELAYS: tuple[float, ...] = (1.0, 4.0, 15.0, 60.0)
# Unacknowledged tasks come back from Redis after this long (a worker machine vanished); it must
# exceed the longest task and the longest countdown. The sweeper usually gets there first.
VISIBILITY_TIMEOUT = 600


def _redis_for(url: str) -> redis.Redis | None:
    """A Redis client on the broker's database when the broker is Redis (else None)."""
    if not redis_broker.is_redis(url):
        return None
    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2)


def broker_label(url: str) -> str:
    """The broker URL without its password, for logs and /healthz."""
    return str(maybe_sanitize_url(url))


def make_celery(settings: Settings) -> Celery:
    """The Celery app on LEADDESK_BROKER_URL. Web processes only publish on it (by task name);
    `leaddesk worker` registers the task it runs (`leaddesk.worker.runner.register_tasks`)."""
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
        # On Redis, a worker whose acknowledgement failed in an outage goes on taking work after it.
        broker_transport=redis_broker.transport_for(settings.broker_url),
        # TLS for rediss:// (certificates verified, as the redis client does; ?ssl_cert_reqs= in
        # the URL decides otherwise), which kombu would infer from the scheme for its own transport.
        broker_use_ssl=redis_broker.tls_for(settings.broker_url),
        # Running tasks finish on connection loss; a task whose ack is lost runs again, harmlessly.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        # No remote control: no per-worker reply queues on the broker (and no name clashes there).
        worker_enable_remote_control=False,
        task_send_sent_event=False,
    )
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
        except Exception:  # a stale mark expires; the sweeper covers the gap
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
        except Exception:  # closing pools of a dead broker may fail; nothing to lose
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
                    # Every transport's channel (py-amqp's, kombu's virtual one for Redis) has
                    # queue_declare; the stubs' StdChannel base class does not declare it.
                    declared = connection.default_channel.queue_declare(  # type: ignore[attr-defined]
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
