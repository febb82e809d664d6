"""Load: 2 web processes and 2 workers on PostgreSQL and Redis take 5,000 signed WhatsApp messages
over 500 conversations, in bursts, with 10% of the webhooks delivered twice (some racing).
Afterwards every message is stored exactly once, each conversation's messages were processed in
order with one reply per burst, and no customer received a reply twice (the fake Graph API counts
what it accepted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from copilot.memory import MEMORY_SCHEMA
from tests.scale import harness

pytestmark = [pytest.mark.scale, pytest.mark.timeout(900)]

CONVERSATIONS = 500
MESSAGES = 5000


def test_thousands_of_messages_are_stored_once_answered_once_and_in_order(
    redis_db: int, tmp_path: Path
) -> None:
    with harness.running_stack(redis_db=redis_db, log_dir=tmp_path) as stack:
        cluster, engine, graph = stack.cluster, stack.engine, stack.graph
        cluster.start_web(processes=2)
        cluster.start_worker(concurrency=1)
        cluster.start_worker(concurrency=1)
        scenario = harness.build_scenario(CONVERSATIONS, MESSAGES, seed=8)
        load = harness.send_load(cluster.web_url or "", scenario, duplicate_share=0.1)
        assert not load.errors, load.errors[:5]
        assert load.duplicates >= 0.05 * load.deliveries, "the scenario must redeliver webhooks"
        harness.wait_caught_up(engine, MESSAGES, timeout=600)
        outcome = harness.verify(engine, scenario, graph, model_replies=True)
        assert not outcome.problems, outcome.problems[:20]
        assert outcome.inbound == MESSAGES
        # Bursts were coalesced (fewer replies than messages) yet every conversation was
        # answered.
        assert CONVERSATIONS <= outcome.replies < MESSAGES
        assert outcome.by_status == {"sent": outcome.replies}
        assert len(graph.accepted()) == outcome.replies
        with engine.connect() as conn:  # the copilot's memory lives in PostgreSQL too
            assert conn.execute(text(f"SELECT to_regclass('{MEMORY_SCHEMA}.checkpoints')")).scalar()
        logs = cluster.logs()
        assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:6000]
        assert not harness.leaks(logs, scenario), harness.leaks(logs, scenario)
