"""The bot's own process under `leaddesk serve` (no broker): `BotProcess` starts it, hands it the
submits, publishes the live events and reply wake-ups it relays, reports its health, and starts
another one when it dies. The child here is a real process running `serve_bot_process` around a
small runtime that echoes each submit back as a store event and a reply wake-up."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from leaddesk.worker.local import INBOX_WAKE_SECONDS, BotProcess, InboxWakeUps
from store.events import LocalBus, StoreEvent
from store.inbox import INBOX_KEY
from webhooks.notify import ReplyNotifier

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from leaddesk.worker.local import serve_bot_process
    from store.events import StoreEvent

    class Dispatcher:
        def __init__(self, bus, notifier):
            self.bus, self.notifier = bus, notifier
        def submit(self, conversation_id):
            self.bus.publish([StoreEvent("message", conversation_id=conversation_id,
                                         data={{"pid": os.getpid()}})])
            self.notifier.notify(conversation_id)
        def health(self):
            return {{"status": "ok", "kind": "threads", "processed": 7}}

    class Runtime:
        def __init__(self, bus, notifier):
            self.dispatcher = Dispatcher(bus, notifier)
            self.bus = bus
        def start(self):
            self.bus.publish([StoreEvent("lead", lead_id=1, data={{"started": os.getpid()}})])
        def stop(self, timeout=10.0):
            pass

    serve_bot_process(int(sys.argv[-1]), Runtime)
    """
).format(root=ROOT)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def bot() -> Iterator[tuple[BotProcess, LocalBus, ReplyNotifier]]:
    bus, notifier = LocalBus(), ReplyNotifier()
    process = BotProcess([sys.executable, "-c", CHILD], events=bus, notifier=notifier)
    process.start(ready_timeout=20.0)
    try:
        yield process, bus, notifier
    finally:
        process.stop(timeout=5.0)


def events_after(bus: LocalBus, after: str) -> list[StoreEvent]:
    return bus.read(after, timeout=0.0)


def test_submits_reach_the_bot_process_and_its_events_and_wake_ups_reach_the_web_process(
    bot: tuple[BotProcess, LocalBus, ReplyNotifier],
) -> None:
    process, bus, notifier = bot
    assert process.health()["process"]["ready"] is True
    start = bus.last_id()
    with notifier.watch(41) as watch:
        process.submit(41)
        assert watch.wait(10.0), "the reply wake-up crosses to the web process"
    seen = wait_until(
        lambda: [e for e in events_after(bus, start) if e.kind == "message"], what="the event"
    )
    assert seen[0].conversation_id == 41 and seen[0].data == {"pid": process.pid}
    # The child's workers, as it reports them, with the process beside them.
    health = wait_until(lambda: process.health().get("processed") == 7 and process.health())
    assert health["status"] == "ok" and health["kind"] == "threads"
    assert health["process"]["alive"] and health["process"]["restarts"] == 0


def test_a_stream_of_webhooks_wakes_the_bot_process_with_a_few_lines(
    bot: tuple[BotProcess, LocalBus, ReplyNotifier],
) -> None:
    """Each stored webhook submits the inbox; the bot process is told a few times, not once per
    webhook, and once more for webhooks after a pause."""
    process, bus, _notifier = bot
    start = bus.last_id()

    def inbox_wake_ups() -> list[StoreEvent]:
        return [e for e in events_after(bus, start) if e.conversation_id == INBOX_KEY]

    for _ in range(500):
        process.submit(INBOX_KEY)
    wait_until(inbox_wake_ups, what="the inbox's wake-up")
    time.sleep(0.2)
    told = len(inbox_wake_ups())
    assert 1 <= told <= 50
    time.sleep(0.1)
    process.submit(INBOX_KEY)  # a webhook after a pause is told again
    wait_until(lambda: len(inbox_wake_ups()) > told, what="the next wake-up")
    # Other submits (a web chat's conversation) go at once, each of them.
    for conversation_id in (5, 6, 7):
        process.submit(conversation_id)
    wait_until(
        lambda: {5, 6, 7} <= {e.conversation_id for e in events_after(bus, start)},
        what="each conversation's submit",
    )


def test_every_inbox_wake_up_is_followed_by_a_line_sent_after_it() -> None:
    """Whatever the moment a webhook raises the flag, a line is sent after it, so the bot
    process always learns of the last webhook stored; lines are at least the interval apart."""
    sent: list[float] = []
    wake_ups = InboxWakeUps(lambda: sent.append(time.monotonic()))
    wake_ups.start()
    last_wake: list[float] = []
    try:

        def webhooks() -> None:
            for number in range(300):
                last_wake.append(time.monotonic())
                wake_ups.wake()
                if number % 7 == 0:
                    time.sleep(0.0005)

        threads = [threading.Thread(target=webhooks) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: sent and sent[-1] >= max(last_wake), 5.0, "a line after the last")
    finally:
        wake_ups.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert all(gap >= INBOX_WAKE_SECONDS * 0.9 for gap in gaps)


def test_a_bot_process_that_dies_is_started_again_and_takes_submits(
    bot: tuple[BotProcess, LocalBus, ReplyNotifier],
) -> None:
    process, bus, _notifier = bot
    first = process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # Down: the health says so (webhooks are still acknowledged; the next child picks them up).
    wait_until(lambda: process.health()["status"] == "degraded", what="the health to see it")
    second = wait_until(
        lambda: process.pid != first and process.health()["process"]["ready"] and process.pid,
        what="a new bot process",
    )
    assert process.health()["process"]["restarts"] == 1
    start = bus.last_id()
    process.submit(9)
    seen = wait_until(
        lambda: [e for e in events_after(bus, start) if e.kind == "message"], what="the event"
    )
    assert seen[0].data == {"pid": second}


def test_stopping_stops_the_bot_process_and_it_is_not_started_again(
    bot: tuple[BotProcess, LocalBus, ReplyNotifier],
) -> None:
    process, _bus, _notifier = bot
    pid = process.pid
    assert pid is not None
    process.stop(timeout=5.0)
    wait_until(lambda: not _alive(pid), what="the child to exit")
    time.sleep(0.6)  # longer than the supervisor's check interval
    assert process.pid is None and process.health()["status"] == "stopped"
    process.submit(3)  # nobody to hand it to: stored work waits for the next start


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == 0
