"""Bursts on the running server: people type several messages in a row and the bot answers once,
after they stop (business.yaml `quiet_window`), across restarts, without delaying an agent."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.worker.dispatcher import Later, ThreadDispatcher
from store.models import Message
from tests.conftest import set_quiet_window
from tests.webhooks import meta_payloads as mp
from tests.webhooks.support import make_settings, signed_post

WINDOW = 1.5  # seconds: short enough for a test, far longer than the gaps between messages (a
# request can take a few hundred milliseconds on a loaded machine)


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target, ignore=shutil.ignore_patterns("eval"))
    set_quiet_window(target, WINDOW)
    return target


@pytest.fixture
def make_runtime(tmp_path: Path, prompts_dir: Path) -> Iterator[Callable[[], Any]]:
    """Servers on one SQLite file (a second one is the same server after a restart)."""
    from leaddesk.wiring import build_runtime

    started: list[Any] = []

    def build() -> Any:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
            prompts_dir=prompts_dir,
            prompts_poll_seconds=0,
            broker_url=None,
            telegram_bot_token=None,
            worker_threads=2,
        )
        runtime = build_runtime(settings)
        started.append(runtime)
        return runtime

    yield build
    for runtime in started:
        runtime.stop(timeout=5)


def _messages(runtime: Any) -> list[Message]:
    with runtime.session_factory() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
        session.expunge_all()
        return rows


def _bot_replies(runtime: Any) -> list[Message]:
    return [m for m in _messages(runtime) if m.author == "bot"]


def _wait_idle(runtime: Any, timeout: float = 15.0) -> None:
    assert runtime.dispatcher.wait_idle(timeout=timeout), runtime.dispatcher.health()


def _wait_until_waiting(runtime: Any, timeout: float = 15.0) -> None:
    """Until the dispatcher holds a conversation for its quiet window."""
    deadline = time.monotonic() + timeout
    while runtime.dispatcher.health()["waiting"] != 1:
        assert time.monotonic() < deadline, runtime.dispatcher.health()
        time.sleep(0.01)


def _chat(client: Any) -> dict[str, str]:
    session = client.post("/api/chat/sessions", json={}).get_json()["session"]
    return {"Authorization": f"Bearer {session}"}


def test_four_web_chat_messages_20_ms_apart_get_one_reply(make_runtime) -> None:
    runtime = make_runtime()
    runtime.start()
    client = runtime.app.test_client()
    auth = _chat(client)
    texts = ["hi", "how much is the Home 6.5 kW package?", "with a battery", "in Austin"]
    for text in texts:
        response = client.post("/api/chat/messages", json={"text": text}, headers=auth)
        assert response.status_code == 201
        time.sleep(0.02)
    # Right after the burst the bot is still waiting for the customer to finish.
    assert _bot_replies(runtime) == []
    assert runtime.dispatcher.health()["waiting"] == 1
    _wait_idle(runtime)
    [reply] = _bot_replies(runtime)
    assert "12,400" in reply.text  # it read the whole burst, not only "hi"
    customer = [m for m in _messages(runtime) if m.author == "customer"]
    assert [m.text for m in customer] == texts
    assert all(m.processed_at is not None for m in customer)
    last = max(m.created_at for m in customer)
    assert (reply.created_at - last).total_seconds() >= WINDOW * 0.9


def test_three_whatsapp_webhooks_a_moment_apart_get_one_reply(make_runtime) -> None:
    runtime = make_runtime()
    runtime.start()
    client = runtime.app.test_client()
    for body in ("Hola", "¿cuánto cuesta el paquete Home 6.5 kW?", "con batería"):
        response = signed_post(client, "/webhooks/whatsapp", mp.dumps(mp.wa_text(body)))
        assert response.status_code == 200
        time.sleep(0.05)
    _wait_idle(runtime)
    replies = _bot_replies(runtime)
    assert len(replies) == 1
    assert len([m for m in _messages(runtime) if m.author == "customer"]) == 3


def test_a_burst_interrupted_by_a_restart_is_answered_once_after_it(make_runtime) -> None:
    first = make_runtime()
    first.start()
    client = first.app.test_client()
    auth = _chat(client)
    client.post("/api/chat/messages", json={"text": "hello"}, headers=auth)
    client.post("/api/chat/messages", json={"text": "do you install batteries?"}, headers=auth)
    first.stop(timeout=5)  # the server goes down inside the quiet window
    assert _bot_replies(first) == []

    second = make_runtime()
    second.start()  # picks up the stored burst
    _wait_idle(second)
    client = second.app.test_client()
    client.post("/api/chat/messages", json={"text": "thanks"}, headers=auth)
    _wait_idle(second)
    replies = _bot_replies(second)
    assert len(replies) == 2  # the burst from before the restart, then "thanks"
    customer = [m for m in _messages(second) if m.author == "customer"]
    assert all(m.processed_at is not None for m in customer)


def test_an_agent_reply_is_never_held_back_by_the_quiet_window(
    make_runtime, prompts_dir: Path
) -> None:
    from store.agents import create_agent

    # A quiet window no request could outlast: the agent's reply must be out while the bot is
    # still waiting for the customer to finish, however slow the machine.
    set_quiet_window(prompts_dir, 60)
    runtime = make_runtime()
    runtime.start()
    client = runtime.app.test_client()
    with runtime.session_factory.begin() as session:
        _agent, token = create_agent("Sam", session=session)
    auth = _chat(client)
    client.post("/api/chat/messages", json={"text": "is anyone there?"}, headers=auth)
    _wait_until_waiting(runtime)
    [customer] = [m for m in _messages(runtime) if m.author == "customer"]
    with runtime.session_factory() as session:
        lead_id = session.get(Message, customer.id).conversation.lead_id
    response = client.post(
        f"/api/leads/{lead_id}/reply",
        json={"text": "Hi, Sam here. How can I help?"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()
    agent = [m for m in _messages(runtime) if m.author == "agent"]
    assert len(agent) == 1 and agent[0].delivery_status == "sent"
    assert runtime.dispatcher.health()["waiting"] == 1  # the bot is still in the quiet window
    runtime.stop(timeout=5)

    # The window over (a restart on a window of 0 runs the stored burst at once): the human took
    # over, so the bot stays quiet for the customer's waiting message.
    set_quiet_window(prompts_dir, 0)
    after = make_runtime()
    after.start()
    _wait_idle(after)
    assert _bot_replies(after) == []
    [customer] = [m for m in _messages(after) if m.author == "customer"]
    assert customer.processed_at is not None


def test_the_dispatcher_runs_a_conversation_again_when_it_is_due() -> None:
    runs: list[tuple[int, float]] = []
    due = {"at": time.monotonic() + 0.3}

    def handler(conversation_id: int) -> Any:
        runs.append((conversation_id, time.monotonic()))
        wait = due["at"] - time.monotonic()
        return Later(wait) if wait > 0 else None

    dispatcher = ThreadDispatcher(handler, threads=1)
    dispatcher.start()
    try:
        dispatcher.submit(7)
        time.sleep(0.05)
        assert dispatcher.health()["waiting"] == 1 and not dispatcher.idle()
        assert dispatcher.wait_idle(timeout=5)
        assert runs[-1][1] >= due["at"]
        assert len(runs) == 2  # once too early, once when due: no busy polling in between
        # A new submit while waiting runs it at once (fresh messages), and it waits again.
        due["at"] = time.monotonic() + 0.3
        dispatcher.submit(7)
        time.sleep(0.05)
        dispatcher.submit(7)
        assert dispatcher.wait_idle(timeout=5)
        assert runs[-1][1] >= due["at"]
        assert dispatcher.health()["failures"] == 0
    finally:
        dispatcher.stop()
