"""Faults during a run: a worker's pool process SIGKILLed in the middle of a conversation, every
PostgreSQL connection cut (pg_terminate_backend), Redis stopped for a few seconds (losing every
queued task: it keeps nothing on disk), and a whole worker (main process and pool) SIGKILLed and
replaced; meanwhile the fake model fails a share of requests (5xx, answers slower than the client's
timeout, broken JSON, JSON that does not fit) and the fake Graph API fails a share of sends (5xx,
dropped connections). Afterwards nothing is lost or duplicated, the system has caught up, and every
burst got exactly one reply (the model's or the offline fallback's), none sent twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.scale import harness

pytestmark = [pytest.mark.scale, pytest.mark.timeout(900)]

CONVERSATIONS = 120
MESSAGES = 960


def _wait_stored(engine, count: int, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while harness.progress(engine)[0] < count:
        assert time.monotonic() < deadline, (
            f"fewer than {count} messages stored after {timeout:.0f}s"
        )
        time.sleep(0.1)


def test_killed_workers_cut_connections_and_a_broker_outage_lose_and_duplicate_nothing(
    redis_db: int, tmp_path: Path
) -> None:
    with harness.running_stack(
        redis_db=redis_db,
        log_dir=tmp_path,
        graph=harness.ScaleGraph(fail_share=0.06, drop_share=0.03),
        llm=harness.start_llm(fail_share=0.15, slow_seconds=2.5),
    ) as stack:
        cluster, engine, graph = stack.cluster, stack.engine, stack.graph
        cluster.start_web(processes=2)
        doomed = cluster.start_worker(concurrency=1)
        cluster.start_worker(concurrency=1)
        scenario = harness.build_scenario(CONVERSATIONS, MESSAGES, seed=21)
        result: dict[str, harness.LoadReport] = {}
        # The sender pauses before its webhook MESSAGES / 2 (of about MESSAGES / 1.2) until Redis
        # is down: the outage must meet incoming webhooks even where the workers lag far behind.
        hold = harness.Hold(after=MESSAGES // 2)
        sender = threading.Thread(
            target=lambda: result.update(
                load=harness.send_load(
                    cluster.web_url or "",
                    scenario,
                    threads=16,
                    burst_gap=(0.2, 1.0),
                    hold=hold,
                )
            ),
            daemon=True,
        )
        sender.start()

        # 1. A pool process dies mid-task: its task goes back to the queue (acks late,
        # rejected    on worker loss) and runs again without answering twice.
        _wait_stored(engine, MESSAGES // 8)
        kills = 0
        for _attempt in range(20):
            # Kill only a pool process that has finished starting (it logs loading the prompts,
            # as the worker's main process did once before it): one killed while it starts has
            # no task yet, and killing each replacement as it starts would never hit a task.
            _wait_logged(doomed, "loaded prompts", kills + 2, timeout=15.0)
            time.sleep(0.5)
            children = doomed.descendants()
            if children:
                os.kill(children[0], signal.SIGKILL)
                kills += 1
            time.sleep(1.0)
            if "WorkerLostError" in doomed.log():
                break
        assert "WorkerLostError" in doomed.log(), "the pool process was never killed mid-task"

        # 2. PostgreSQL drops every connection (as in a restart or failover), twice.
        _wait_stored(engine, MESSAGES // 3)
        assert harness.terminate_backends(engine) > 0
        time.sleep(1.5)
        harness.terminate_backends(engine)

        # 3. Redis goes away for a few seconds and comes back empty, while webhooks still come:
        # the held sender goes on as soon as it is down, so the web processes meet the outage.
        assert hold.reached.wait(timeout=300), "the sender never reached its hold"
        try:
            harness.stop_redis()
            hold.release.set()
            time.sleep(4.0)
        finally:
            hold.release.set()
            harness.start_redis()

        # 4. A whole worker machine vanishes; a new one starts.
        _wait_stored(engine, (MESSAGES * 2) // 3)
        doomed.kill()
        cluster.start_worker(concurrency=1)

        sender.join(timeout=600)
        assert not sender.is_alive(), "the load never finished"
        load = result["load"]
        assert not load.errors, load.errors[:5]
        harness.wait_caught_up(engine, MESSAGES, timeout=300)
        outcome = harness.verify(engine, scenario, graph, model_replies=False)
        assert not outcome.problems, outcome.problems[:20]
        assert outcome.inbound == MESSAGES

        # The faults really happened and were survived.
        logs = cluster.logs()
        assert not harness.leaks(logs, scenario), harness.leaks(logs, scenario)
        assert graph.fake.requests and len(graph.accepted()) < len(graph.fake.requests)
        assert "the offline engine answers" in logs, "no model failure was ever met"
        assert "could not publish conversation" in logs, "the broker outage was never felt"
        assert "submitted again" in logs, "the sweeper never had to resubmit lost work"
        # Replies cut off by the SIGKILLs are never re-sent blindly: at most the one send.
        assert outcome.by_status.get("sent", 0) >= outcome.replies - 2


def _wait_logged(proc: harness.Proc, text: str, times: int, *, timeout: float) -> None:
    """Wait until `text` appears `times` times in the process's log (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    while proc.log().count(text) < times and time.monotonic() < deadline:
        time.sleep(0.1)
