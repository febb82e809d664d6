"""`leaddesk serve` (no broker) with its bot in a process of its own, killed at the worst moments:
webhooks are still acknowledged while it is down and answered once it is back, and a bot process
killed in the middle of draining a backlog loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from store import make_engine, make_session_factory, upgrade
from store.models import Conversation, Inbox, Message
from tests.fakes.fake_graph import FakeGraph
from tests.webhooks.meta_payloads import PHONE_NUMBER_ID, wa_text
from tests.webhooks.support import ServeProcess
from tests.webhooks.test_serve import http, post_webhook, wait_for


@pytest.fixture
def graph() -> Any:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


def _serve(url: str, graph: FakeGraph) -> ServeProcess:
    return ServeProcess(
        url,
        META_GRAPH_URL=graph.url,
        WHATSAPP_ACCESS_TOKEN="wa-token",
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
    ).start()


def _bot_pid(server: ServeProcess) -> int:
    assert server.url is not None
    _, health = http("GET", f"{server.url}/healthz")
    pid = health["workers"]["process"]["pid"]
    assert isinstance(pid, int) and pid != server.process.pid
    return pid


def test_a_webhook_is_acknowledged_while_the_bot_process_is_down_and_answered_once_it_is_back(
    tmp_path: Path, graph: FakeGraph
) -> None:
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    session_factory = make_session_factory(engine)
    server = _serve(url, graph)
    try:
        assert server.url is not None
        first = _bot_pid(server)
        # On SQLite the bot process runs at a lower CPU priority by default.
        web = os.getpriority(os.PRIO_PROCESS, server.process.pid)
        assert os.getpriority(os.PRIO_PROCESS, first) == min(19, web + 10)
        os.kill(first, signal.SIGKILL)
        # Acknowledged at once, stored before its 200, with nobody to answer it yet.
        started = time.monotonic()
        assert post_webhook(server.url, wa_text("Hi, are you open?", wa_id="14155550100")) == 200
        assert time.monotonic() - started < 5
        with session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Inbox)) == 1
        wait_for(lambda: len(graph.requests) == 1, what="the reply", server=server)
        assert _bot_pid(server) != first
        _, health = http("GET", f"{server.url}/healthz")
        assert health["workers"]["process"]["restarts"] == 1
        time.sleep(1.5)  # nothing more goes out
    finally:
        assert server.stop() == 0, server.log()
    with session_factory() as session:
        messages = list(session.scalars(select(Message).order_by(Message.id)))
    assert [(m.direction, m.author) for m in messages] == [("in", "customer"), ("out", "bot")]
    assert messages[0].processed_at is not None and messages[1].delivery_status == "sent"
    assert len(graph.requests) == 1
    assert "bot process" in server.log() and "exited with code" in server.log()
    engine.dispose()


def test_a_bot_process_killed_in_the_middle_of_a_drain_loses_and_duplicates_nothing(
    tmp_path: Path, graph: FakeGraph
) -> None:
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    session_factory = make_session_factory(engine)
    customers = [f"1415555{n:04d}" for n in range(12)]
    count = 120
    server = _serve(url, graph)
    try:
        assert server.url is not None
        pid = _bot_pid(server)
        for n in range(count):
            wa_id = customers[n % len(customers)]
            status = post_webhook(server.url, wa_text(f"message {n}", wa_id=wa_id, mid=f"m{n}"))
            assert status == 200

        def drained() -> int:
            with session_factory() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(Inbox)
                        .where(Inbox.processed_at.is_not(None))
                    )
                    or 0
                )

        wait_for(lambda: drained() > 0, timeout=30, what="the drain to begin", server=server)
        os.kill(pid, signal.SIGKILL)
        at_kill = drained()
        assert at_kill < count, "the bot process was killed in the middle of the drain"

        def settled() -> bool:
            with session_factory() as session:
                stored = session.scalar(
                    select(func.count()).select_from(Message).where(Message.direction == "in")
                )
                waiting = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.direction == "in", Message.processed_at.is_(None))
                )
                unsent = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.direction == "out", Message.delivery_status.in_(["pending"]))
                )
            return stored == count and waiting == 0 and unsent == 0

        wait_for(settled, timeout=120, what="everything to be answered", server=server)
    finally:
        assert server.stop() == 0, server.log()
    with session_factory() as session:
        inbound = list(
            session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        )
        conversations = list(session.scalars(select(Conversation)))
        bot = list(session.scalars(select(Message).where(Message.author == "bot")))
    # Every message once, in its conversation's order of arrival.
    assert sorted(m.channel_message_id for m in inbound) == sorted(f"m{n}" for n in range(count))
    assert len(conversations) == len(customers)
    for conversation in conversations:
        mine = [m for m in inbound if m.conversation_id == conversation.id]
        numbers = [int(str(m.channel_message_id)[1:]) for m in mine]
        assert numbers == sorted(numbers)
        replies = [m for m in bot if m.conversation_id == conversation.id]
        assert replies and max(r.id for r in replies) > max(m.id for m in mine), "answered"
    # Nothing sent twice: one Graph API call per reply the store recorded as sent.
    sent = [m for m in bot if m.delivery_status == "sent"]
    assert len(graph.requests) == len(sent)
    engine.dispose()


def test_the_bot_process_runs_at_the_niceness_set_above_the_web_process(
    tmp_path: Path, graph: FakeGraph
) -> None:
    """LEADDESK_BOT_NICE: where the two processes share the cores, the webhooks' acknowledgements
    come first (also in a bot process started again after a crash)."""
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    server = ServeProcess(
        url,
        META_GRAPH_URL=graph.url,
        WHATSAPP_ACCESS_TOKEN="wa-token",
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        LEADDESK_BOT_NICE="5",
    ).start()
    try:
        web = os.getpriority(os.PRIO_PROCESS, server.process.pid)
        first = _bot_pid(server)
        assert os.getpriority(os.PRIO_PROCESS, first) == min(19, web + 5)
        os.kill(first, signal.SIGKILL)
        assert server.url is not None

        def restarted() -> bool:
            _, health = http("GET", f"{server.url}/healthz")
            pid = health["workers"]["process"]["pid"]
            return isinstance(pid, int) and pid != first

        wait_for(restarted, what="a new bot process", server=server)
        again = _bot_pid(server)
        # It lowers its own priority as it starts.
        wait_for(
            lambda: os.getpriority(os.PRIO_PROCESS, again) == min(19, web + 5),
            timeout=30,
            what="the new bot process's niceness",
            server=server,
        )
        threads = Path(f"/proc/{again}/task")
        if threads.is_dir():  # Linux: every thread of it
            for thread in threads.iterdir():
                assert os.getpriority(os.PRIO_PROCESS, int(thread.name)) == min(19, web + 5)
        assert post_webhook(server.url, wa_text("Hi, are you open?", wa_id="14155550100")) == 200
        wait_for(lambda: len(graph.requests) == 1, what="the reply", server=server)
    finally:
        assert server.stop() == 0, server.log()
