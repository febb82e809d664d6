"""Acknowledge first, across processes: while webhooks keep arriving, the bot process holds back
its drain and bot runs until a lull (`Lull`), at most `HOLD_MAX` seconds in one go, so the web
process gets the cores first and a steady stream is still answered."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time

import pytest

from leaddesk.worker.dispatcher import ThreadDispatcher
from leaddesk.worker.local import HOLD_MAX, BotProcess, Lull
from store.events import LocalBus
from store.inbox import INBOX_KEY
from tests.webhooks.support import make_settings
from webhooks.notify import ReplyNotifier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_webhook_no_hold() -> None:
    assert Lull(monotonic=Clock()).holding() == 0.0


def test_runs_wait_for_a_lull_between_webhooks() -> None:
    clock = Clock()
    lull = Lull(lull=0.05, hold_max=0.5, run=0.25, monotonic=clock)
    lull.busy()
    assert abs(lull.holding() - 0.05) < 1e-9
    clock.now += 0.03
    lull.busy()  # another webhook: the lull starts again
    assert abs(lull.holding() - 0.05) < 1e-9
    clock.now += 0.049
    assert lull.holding() > 0
    clock.now += 0.002
    assert lull.holding() == 0.0
    assert lull.holds == 1


def test_a_steady_stream_holds_runs_back_at_most_hold_max_then_lets_them_run() -> None:
    clock = Clock()
    lull = Lull(lull=0.05, hold_max=0.5, run=0.25, monotonic=clock)
    started = clock.now
    held_until = None
    while clock.now - started < 2.0:
        lull.busy()
        if lull.holding() == 0.0 and held_until is None:
            held_until = clock.now - started
        clock.now += 0.01
    assert held_until is not None and 0.49 <= held_until <= 0.51
    # A capped hold is followed by `run` seconds of work, then the next webhook holds back again.
    assert lull.holds >= 2
    clock.now = started + 10.0
    lull.busy()  # after a lull: a new hold, from this webhook
    assert abs(lull.holding() - 0.05) < 1e-9


def test_the_dispatcher_holds_its_runs_while_webhooks_arrive_and_answers_within_the_cap() -> None:
    clock = Clock()
    lull = Lull(lull=0.05, hold_max=0.5, run=0.25, monotonic=clock)
    ran = threading.Event()
    dispatcher = ThreadDispatcher(lambda cid: ran.set(), threads=1)
    dispatcher.hold_with(lull.wait)
    dispatcher.start()
    try:
        lull.busy()
        dispatcher.submit(7)
        assert not ran.wait(0.3), "held back while webhooks arrive"
        for _ in range(60):  # a steady stream, 10 ms apart on the injected clock
            clock.now += 0.01
            lull.busy()
            if ran.wait(0.02):
                break
        assert ran.is_set(), "answered within the cap though the webhooks keep coming"
    finally:
        dispatcher.stop(timeout=5.0)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from leaddesk.worker.dispatcher import ThreadDispatcher
    from leaddesk.worker.local import serve_bot_process

    class Runtime:
        def __init__(self, bus, notifier):
            def answer(conversation_id):
                if conversation_id >= 0:
                    notifier.notify(conversation_id)
            self.dispatcher = ThreadDispatcher(answer, threads=2)
        def start(self):
            self.dispatcher.start()
        def stop(self, timeout=10.0):
            self.dispatcher.stop(timeout)

    serve_bot_process(int(sys.argv[-1]), Runtime)
    """
).format(root=ROOT)


def test_the_bot_process_answers_after_the_webhooks_within_its_cap() -> None:
    process = BotProcess(
        [sys.executable, "-c", CHILD], events=LocalBus(), notifier=(notifier := ReplyNotifier())
    )
    process.start(ready_timeout=20.0)
    try:
        # Without webhooks a conversation is answered at once.
        with notifier.watch(5) as watch:
            process.submit(5)
            assert watch.wait(10.0)
        # A stream of webhooks (longer than the cap) with a conversation to answer among them.
        answered_at: list[float] = []
        with notifier.watch(6) as watch:
            began = time.monotonic()
            # The stream is under way (its wake-ups are sent every few milliseconds by a thread
            # of their own) when the conversation comes.
            while time.monotonic() - began < 0.05:
                process.submit(INBOX_KEY)
                time.sleep(0.002)
            process.submit(6)
            deadline = began + 20.0
            while time.monotonic() < deadline:
                process.submit(INBOX_KEY)
                if watch.wait(0.01):
                    answered_at.append(time.monotonic())
                    break
        assert answered_at, "a steady stream of webhooks is still answered"
        # Not before the hold's cap: the child held the run back while the webhooks came.
        assert answered_at[0] - began >= HOLD_MAX * 0.9
    finally:
        process.stop(timeout=5.0)


def test_serve_holds_the_bot_back_on_postgresql_and_not_on_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leaddesk.cli import serve

    seen: list[bool] = []

    def record(_fd: int, _build: object, *, acknowledge_first: bool) -> int:
        seen.append(acknowledge_first)
        return 0

    monkeypatch.setattr(serve, "serve_bot_process", record)
    serve._run_bot_process(3, make_settings(database_url="sqlite:///x.db"))
    serve._run_bot_process(3, make_settings(database_url="postgresql://u@127.0.0.1:5432/d"))
    assert seen == [False, True]
