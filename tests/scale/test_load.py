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


WORKSPACES = (
    ("default", harness.PHONE_NUMBER_ID),
    ("acme", "206540352242922"),
    ("zest", "306540352242922"),
)


def test_three_workspaces_at_once_keep_their_customers_apart_and_answer_from_their_own_numbers(
    redis_db: int, tmp_path: Path
) -> None:
    """The same load over three businesses on one install: the same 100 customers write to each
    business's WhatsApp number. Each business gets its own lead for each customer, every message
    lands in the workspace its number belongs to, and every reply goes out from that number with
    that workspace's own token."""
    conversations, messages = 300, 3000
    secret = "scale-secret-key-for-channel-credentials"
    with harness.running_stack(redis_db=redis_db, log_dir=tmp_path) as stack:
        cluster, engine, graph = stack.cluster, stack.engine, stack.graph
        cluster.extra_env["LEADDESK_SECRET_KEY"] = secret
        tokens = {harness.PHONE_NUMBER_ID: harness.GRAPH_TOKEN}
        for slug, account in WORKSPACES[1:]:
            tokens[account] = f"token-of-{slug}"
            harness.run_cli(cluster, "workspaces", "add", slug, "--name", slug.title())
            harness.run_cli(
                cluster,
                "workspaces",
                "channel",
                slug,
                "set",
                "whatsapp",
                "--account",
                account,
                "--token",
                tokens[account],
            )
        with engine.connect() as conn:
            ids = dict(conn.execute(text("SELECT slug, id FROM workspaces")).all())
        accounts = {ids[slug]: account for slug, account in WORKSPACES}
        cluster.start_web(processes=2)
        cluster.start_worker(concurrency=1)
        cluster.start_worker(concurrency=1)
        scenario = harness.build_scenario(
            conversations, messages, seed=12, accounts=tuple(a for _, a in WORKSPACES)
        )
        load = harness.send_load(cluster.web_url or "", scenario, duplicate_share=0.1)
        assert not load.errors, load.errors[:5]
        harness.wait_caught_up(engine, messages, timeout=600)
        outcome = harness.verify(engine, scenario, graph, model_replies=True, accounts=accounts)
        assert not outcome.problems, outcome.problems[:20]
        assert outcome.inbound == messages
        assert conversations <= outcome.replies < messages

        expected = {wamid: c.account for c in scenario for wamid, _ in c.messages}
        with engine.connect() as conn:
            stored = conn.execute(
                text(
                    "SELECT m.channel_message_id, m.workspace_id, c.workspace_id, l.workspace_id "
                    "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                    "JOIN leads l ON l.id = c.lead_id WHERE m.direction = 'in'"
                )
            ).all()
            leads = conn.execute(
                text("SELECT workspace_id, phone, count(*) FROM leads GROUP BY workspace_id, phone")
            ).all()
        misplaced = [
            wamid
            for wamid, message_ws, conversation_ws, lead_ws in stored
            if accounts[message_ws] != expected[wamid]
            or not message_ws == conversation_ws == lead_ws
        ]
        assert not misplaced, misplaced[:5]
        # One lead per customer in each business, the same 100 customers in all three.
        per_workspace: dict[int, set[str]] = {}
        for workspace_id, phone, count in leads:
            assert count == 1, (workspace_id, phone, count)
            per_workspace.setdefault(workspace_id, set()).add(phone)
        assert set(per_workspace) == set(accounts)
        assert len({frozenset(phones) for phones in per_workspace.values()}) == 1
        assert len(next(iter(per_workspace.values()))) == conversations // len(WORKSPACES)
        # Every reply left from its workspace's number with that workspace's token.
        sends = graph.accepted_sends()
        assert len(sends) == outcome.replies
        assert all(tokens.get(account) == token for account, token, *_ in sends), {
            (account, token) for account, token, *_ in sends
        } - set(tokens.items())
        logs = cluster.logs()
        assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:6000]
        assert not harness.leaks(logs, scenario), harness.leaks(logs, scenario)
        assert not any(token in logs for token in tokens.values())
