"""Wake-ups for long-polling web chat clients: the outbox signals a conversation when a reply is
recorded.

Only conversations somebody is waiting on are tracked, so memory stays bounded. A missed signal
(e.g. the reply was recorded by a worker in another process) costs at most one poll interval,
because waiters also re-read the store periodically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReplyNotifier:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[int, int] = {}
        self._watchers: dict[int, int] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def notify(self, conversation_id: int) -> None:
        with self._cond:
            if conversation_id in self._watchers:
                self._versions[conversation_id] = self._versions.get(conversation_id, 0) + 1
                self._cond.notify_all()

    @contextmanager
    def watch(self, conversation_id: int) -> Iterator[Watch]:
        """Register interest before reading the store, so a reply recorded in between is not
        missed."""
        with self._cond:
            self._watchers[conversation_id] = self._watchers.get(conversation_id, 0) + 1
            self._versions.setdefault(conversation_id, 0)
        try:
            yield Watch(self, conversation_id)
        finally:
            with self._cond:
                left = self._watchers.get(conversation_id, 1) - 1
                if left <= 0:
                    self._watchers.pop(conversation_id, None)
                    self._versions.pop(conversation_id, None)
                else:
                    self._watchers[conversation_id] = left

    def close(self) -> None:
        """Release every waiter (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Watch:
    def __init__(self, notifier: ReplyNotifier, conversation_id: int) -> None:
        self._notifier = notifier
        self._conversation_id = conversation_id
        with notifier._cond:
            self._seen = notifier._versions.get(conversation_id, 0)

    def wait(self, timeout: float) -> bool:
        """Block until the conversation is signalled (True) or `timeout` seconds pass (False)."""
        notifier = self._notifier
        with notifier._cond:
            signalled = notifier._cond.wait_for(
                lambda: (
                    notifier._closed
                    or notifier._versions.get(self._conversation_id, 0) != self._seen
                ),
                timeout,
            )
            self._seen = notifier._versions.get(self._conversation_id, 0)
            return bool(signalled) and not notifier._closed
