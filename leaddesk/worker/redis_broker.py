"""kombu's Redis transport with one fault mended: a worker whose acknowledgement fails because Redis
went away must not stop taking work.

kombu acknowledges a message on Redis in two steps: it removes the message from Redis's "unacked"
index, then from the worker's own count of messages in hand. When the first step fails (Redis is
down), the second never happens. With our prefetch of one, the worker then holds a message it will
never finish, so it never asks Redis for work again: it does not notice the dropped connection,
does not reconnect, and runs nothing until it is restarted. (The same holds for a rejected task:
one whose retry could not be published.)

Here the worker forgets the message either way, and the error still goes up for Celery to log.
Where Redis kept the message, it stays in the "unacked" index and comes back after the visibility
timeout, to run again harmlessly (a run is idempotent). Where Redis lost it (a restart without
persistence), the sweeper submits the conversation again.
"""

from __future__ import annotations

import ssl
from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = f"{__name__}:Transport"


def is_redis(broker_url: str) -> bool:
    """Whether a broker URL names Redis (plain or TLS)."""
    return broker_url.startswith(("redis://", "rediss://"))


def transport_for(broker_url: str) -> str | None:
    """Celery's `broker_transport` for a broker URL: this transport on Redis, else the URL's own."""
    return TRANSPORT if is_redis(broker_url) else None


def tls_for(broker_url: str) -> dict[str, Any] | None:
    """Celery's `broker_use_ssl` for a broker URL: certificates verified on rediss:// (kombu infers
    TLS from the scheme only for its own transport); options in the URL's query still win."""
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED} if broker_url.startswith("rediss://") else None


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()  # type: ignore[attr-defined]
        finally:
            super(kombu_redis.QoS, self).ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            else:
                self._remove_from_indices(delivery_tag).execute()  # type: ignore[attr-defined]
        finally:
            super(kombu_redis.QoS, self).ack(delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel
