"""The bot's own process under `leaddesk serve` (no broker): `BotProcess` starts it, hands it the
submits, publishes the live events and reply wake-ups it relays, reports its health, and starts
another one when it dies. The child here is a real process running `serve_bot_process` around a
small runtime that echoes each submit back as a store event and a reply wake-up."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from leaddesk.worker.local import BotProcess
from store.events import LocalBus, StoreEvent
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
