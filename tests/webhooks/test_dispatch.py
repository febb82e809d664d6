"""The in-process job dispatcher: one run per conversation at a time, bursts coalesced, retries,
recovery."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from leaddesk.worker.dispatcher import Dispatcher, ThreadDispatcher


class Handler:
    """Records runs; can block a conversation's run until released, or fail a number of times."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.active: Counter[int] = Counter()
        self.max_active: Counter[int] = Counter()
        self.total_active = 0
        self.max_total_active = 0
        self.block: dict[int, threading.Event] = {}
        self.started: dict[int, threading.Event] = {}
        self.failures: Counter[int] = Counter()
        self.lock = threading.Lock()

    def __call__(self, conversation_id: int) -> None:
        with self.lock:
            self.active[conversation_id] += 1
            self.total_active += 1
            self.max_active[conversation_id] = max(
                self.max_active[conversation_id], self.active[conversation_id]
            )
            self.max_total_active = max(self.max_total_active, self.total_active)
            self.runs.append(conversation_id)
        try:
            if conversation_id in self.started:
                self.started[conversation_id].set()
            if conversation_id in self.block:
                assert self.block[conversation_id].wait(10)
            with self.lock:
                if self.failures[conversation_id] > 0:
                    self.failures[conversation_id] -= 1
                    raise RuntimeError("the model timed out")
        finally:
            with self.lock:
                self.active[conversation_id] -= 1
                self.total_active -= 1


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def pool(handler: Handler) -> Iterator[ThreadDispatcher]:
    dispatcher = ThreadDispatcher(handler, threads=3, retry_delays=(0.01, 0.02, 0.04))
    dispatcher.start()
    yield dispatcher
    dispatcher.stop(timeout=5)


def test_it_implements_the_dispatcher_interface(pool: ThreadDispatcher) -> None:
    assert isinstance(pool, Dispatcher)


def test_submitted_conversations_are_processed(pool: ThreadDispatcher, handler: Handler) -> None:
    for conversation_id in (1, 2, 3):
        pool.submit(conversation_id)
    assert pool.wait_idle(5)
    assert sorted(handler.runs) == [1, 2, 3]
    assert pool.health()["processed"] == 3


def test_a_burst_during_a_run_is_coalesced_into_one_next_run(
    pool: ThreadDispatcher, handler: Handler
) -> None:
    handler.block[7] = threading.Event()
    handler.started[7] = threading.Event()
    pool.submit(7)
    assert handler.started[7].wait(5)
    for _ in range(5):
        pool.submit(7)  # five more messages arrive while the first one is being answered
    del handler.started[7]
    handler.block[7].set()
    assert pool.wait_idle(5)
    assert handler.runs == [7, 7]
    assert handler.max_active[7] == 1


def test_one_conversation_never_runs_twice_at_once_while_others_run_in_parallel(
    pool: ThreadDispatcher, handler: Handler
) -> None:
    release = threading.Event()
    handler.block[1] = release
    handler.block[2] = release
    handler.started[1] = threading.Event()
    handler.started[2] = threading.Event()
    pool.submit(1)
    pool.submit(2)
    assert handler.started[1].wait(5) and handler.started[2].wait(5)
    assert handler.max_total_active == 2
    for _ in range(20):
        pool.submit(1)
        pool.submit(2)
    release.set()
    assert pool.wait_idle(5)
    assert handler.max_active[1] == 1 and handler.max_active[2] == 1
    assert Counter(handler.runs) == Counter({1: 2, 2: 2})


def test_failed_runs_are_retried_with_backoff(pool: ThreadDispatcher, handler: Handler) -> None:
    handler.failures[4] = 2
    pool.submit(4)
    deadline = time.monotonic() + 5
    while handler.runs.count(4) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.wait_idle(5)
    assert handler.runs == [4, 4, 4]
    health = pool.health()
    assert (health["failures"], health["processed"], health["given_up"]) == (2, 1, 0)


def test_after_the_last_retry_it_gives_up_until_the_next_submit(
    pool: ThreadDispatcher, handler: Handler
) -> None:
    handler.failures[5] = 10
    pool.submit(5)
    deadline = time.monotonic() + 5
    while pool.health()["given_up"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.wait_idle(5)
    assert handler.runs == [5, 5, 5, 5]
    handler.failures[5] = 0
    pool.submit(5)
    assert pool.wait_idle(5)
    assert handler.runs.count(5) == 5


def test_start_recovers_conversations_with_pending_messages(handler: Handler) -> None:
    dispatcher = ThreadDispatcher(handler, threads=2, pending=lambda: [11, 12])
    dispatcher.start()
    try:
        assert dispatcher.wait_idle(5)
        assert sorted(handler.runs) == [11, 12]
    finally:
        dispatcher.stop()


def test_stop_finishes_runs_in_progress_and_reports_stopped(handler: Handler) -> None:
    dispatcher = ThreadDispatcher(handler, threads=2)
    dispatcher.start()
    assert dispatcher.health()["status"] == "ok"
    handler.block[9] = threading.Event()
    handler.started[9] = threading.Event()
    dispatcher.submit(9)
    assert handler.started[9].wait(5)
    threading.Timer(0.1, handler.block[9].set).start()
    dispatcher.stop(timeout=5)
    assert handler.runs == [9]
    health = dispatcher.health()
    assert health["status"] == "stopped" and health["alive"] == 0
    dispatcher.submit(10)  # after stop: left pending in the store, not run
    time.sleep(0.05)
    assert handler.runs == [9]


def test_retry_waits_on_the_injected_clock(handler: Handler) -> None:
    now = [100.0]
    dispatcher = ThreadDispatcher(
        handler, threads=1, retry_delays=(30.0,), monotonic=lambda: now[0]
    )
    dispatcher.start()
    try:
        handler.failures[3] = 1
        dispatcher.submit(3)
        deadline = time.monotonic() + 5
        while dispatcher.health()["retrying"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert handler.runs == [3], "the retry waits for 30 clock seconds"
        now[0] += 31
        assert dispatcher.wait_idle(5)
        assert handler.runs == [3, 3]
    finally:
        dispatcher.stop()


def test_a_new_submit_skips_the_retry_wait(handler: Handler) -> None:
    now = [0.0]
    dispatcher = ThreadDispatcher(
        handler, threads=1, retry_delays=(3600.0,), monotonic=lambda: now[0]
    )
    dispatcher.start()
    try:
        handler.failures[8] = 1
        dispatcher.submit(8)
        deadline = time.monotonic() + 5
        while dispatcher.health()["retrying"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        dispatcher.submit(8)  # a fresh message: no reason to wait an hour
        assert dispatcher.wait_idle(5)
        assert handler.runs == [8, 8]
    finally:
        dispatcher.stop()


def test_the_backlog_counts_conversations_waiting_for_a_thread(handler: Handler) -> None:
    dispatcher = ThreadDispatcher(handler, threads=1)
    assert dispatcher.backlog() == 0
    dispatcher.submit(1)
    dispatcher.resubmit(2)  # the sweeper's way in: the same queue
    dispatcher.submit(1)  # already queued: still one job
    dispatcher.started(1)  # nothing to clear here: the queue itself coalesces
    assert dispatcher.backlog() == 2
    dispatcher.start()
    try:
        assert dispatcher.wait_idle(5)
        assert dispatcher.backlog() == 0
        assert sorted(handler.runs) == [1, 2]
    finally:
        dispatcher.stop(timeout=5)
