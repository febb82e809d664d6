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

from kombu.transport import redis as kombu_redis

TRANSPORT = f"{__name__}:Transport"


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
