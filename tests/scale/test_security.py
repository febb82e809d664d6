"""Security gaps the channel, API and copilot tests leave: what the logs say during a full round
trip (never a secret, a customer's words, phone or email, at INFO or above, also when the model and
the Graph API fail), a flood from one sender against the web chat limits, and forged webhooks
refused by a scaled-out server."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import load_settings
from store.models import Message
from tests.app_support import build_app
from tests.fakes.fake_graph import FakeGraph, Reply
from tests.fakes.fake_openai import FakeOpenAI, error, malformed
from tests.scale import harness
from tests.webhooks.support import RecordingDispatcher, make_settings
from webhooks.meta import signature_for
from webhooks.notify import ReplyNotifier
from webhooks.ratelimit import ChatLimits, Rate

SECRETS = {
    "META_APP_SECRET": "app-secret-7f3a9c",
    "META_VERIFY_TOKEN": "verify-token-51be",
    "WHATSAPP_ACCESS_TOKEN": "EAAG-whatsapp-token-d41d8",
    "MESSENGER_PAGE_ACCESS_TOKEN": "EAAG-page-token-98f0",
    "OPENAI_API_KEY": "sk-test-key-a1b2c3",
    "LEADDESK_SECRET_KEY": "flask-secret-77e1",
}
WA_PHONE = "16502530042"
CUSTOMER_WORDS = [
    "PURPLE-ELEPHANT-42",
    "ultramarine-walrus",
    "zelda.quux@example.org",
    "Zelda Quux",
]


@pytest.fixture
def outside_world() -> Iterator[tuple[FakeOpenAI, FakeGraph]]:
    llm = FakeOpenAI().start()
    graph = FakeGraph().start()
    yield llm, graph
    llm.close()
    graph.stop()


def test_secrets_and_customer_words_never_reach_the_logs(
    tmp_path: Path, outside_world: tuple[FakeOpenAI, FakeGraph], caplog: pytest.LogCaptureFixture
) -> None:
    from leaddesk.wiring import build_runtime

    llm, graph = outside_world
    # Things go wrong on the way, so that error paths log too: the model fails, answers garbage,
    # then works; the Graph API fails once with a 5xx (retried) and once with a 4xx (final).
    llm.script(
        error(500),
        error(500),
        malformed(),
        harness.FakeReply(content=json.dumps(harness.turn_answer({"messages": []}))),
    )
    llm.respond_with(lambda body: harness.FakeReply(content=json.dumps(harness.turn_answer(body))))
    graph.script(
        503,
        Reply(
            status=400,
            body={
                "error": {
                    "message": "(#131030) Recipient zelda.quux@example.org not allowed",
                    "code": 131030,
                }
            },
        ),
    )
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        broker_url=None,
        meta_app_secret=SECRETS["META_APP_SECRET"],
        meta_verify_token=SECRETS["META_VERIFY_TOKEN"],
        meta_app_id="555000111222333",
        whatsapp_access_token=SECRETS["WHATSAPP_ACCESS_TOKEN"],
        whatsapp_phone_number_id=harness.PHONE_NUMBER_ID,
        messenger_page_access_token=SECRETS["MESSENGER_PAGE_ACCESS_TOKEN"],
        meta_graph_url=graph.url,
        openai_api_key=SECRETS["OPENAI_API_KEY"],
        openai_base_url=llm.base_url,
        model="fake-model",
        llm_timeout=5,
        secret_key=SECRETS["LEADDESK_SECRET_KEY"],
        telegram_bot_token=None,
        log_level="DEBUG",
    )
    caplog.set_level(logging.DEBUG)
    for name in ("bot", "store", "webhooks", "copilot", "leaddesk"):
        # Whatever an earlier test in this process left set: everything these packages say is seen.
        caplog.set_level(logging.DEBUG, logger=name)
    runtime = build_runtime(settings)
    runtime.start()
    try:
        client = runtime.app.test_client()
        conversation = harness.Conversation(
            0,
            WA_PHONE,
            "Zelda Quux",
            [
                [
                    (
                        "wamid.sec.1",
                        "my plan is PURPLE-ELEPHANT-42, write to zelda.quux@example.org",
                    ),
                    ("wamid.sec.2", "or call +1 650 253 0042 about the ultramarine-walrus"),
                ]
            ],
        )
        for burst in (conversation.messages[:1], conversation.messages[1:]):
            body = harness.whatsapp_body(conversation, burst)
            signed = {
                "X-Hub-Signature-256": signature_for(body, SECRETS["META_APP_SECRET"]),
                "Content-Type": "application/json",
            }
            assert client.post("/webhooks/whatsapp", data=body, headers=signed).status_code == 200
        # Forged and odd requests are refused, and their refusals logged without what they carried.
        forged = harness.whatsapp_body(conversation, [("wamid.sec.3", "PURPLE-ELEPHANT-42 forged")])
        assert (
            client.post(
                "/webhooks/whatsapp",
                data=forged,
                headers={
                    "X-Hub-Signature-256": signature_for(forged, "guessed-secret"),
                    "Content-Type": "application/json",
                },
            ).status_code
            == 403
        )
        assert (
            client.get(
                "/webhooks/whatsapp",
                query_string={
                    "hub.mode": "subscribe",
                    "hub.verify_token": "guess",
                    "hub.challenge": "1",
                },
            ).status_code
            == 403
        )
        token = client.post(
            "/api/chat/sessions",
            json={"name": "Zelda Quux", "email": "zelda.quux@example.org", "phone": "+16502530042"},
        ).get_json()["session"]
        auth = {"Authorization": f"Bearer {token}"}
        assert (
            client.post(
                "/api/chat/messages",
                json={"text": "ultramarine-walrus PURPLE-ELEPHANT-42"},
                headers=auth,
            ).status_code
            == 201
        )
        assert (
            client.post("/api/chat/messages", json={"text": "x" * 5000}, headers=auth).status_code
            == 400
        )
        # Wait until both channels have been answered (the WhatsApp replies hit the Graph failures).
        deadline = time.monotonic() + 60
        while True:
            with runtime.session_factory() as session:
                left = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.direction == "in", Message.processed_at.is_(None))
                )
                sending = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(
                        Message.direction == "out",
                        Message.delivery_status.in_(("pending", "sending")),
                    )
                )
            if not left and not sending and graph.requests:
                break
            assert time.monotonic() < deadline, "the bot did not answer in time"
            time.sleep(0.1)
        assert llm.calls >= 3 and len(graph.requests) >= 2
    finally:
        runtime.stop()

    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert shown, "the round trip logged nothing at all"
    text = "\n".join(f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in shown)
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} appeared in the logs"
    for words in [*CUSTOMER_WORDS, WA_PHONE, "+16502530042", "650 253 0042"]:
        assert words not in text, f"customer data {words!r} appeared in the logs:\n{text[-3000:]}"
    # The failures did happen and were logged (without the data): the test saw the error paths.
    loggers = {
        name: (
            logging.getLogger(name).disabled,
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in ("bot", "bot.nodes", "leaddesk")
    }
    assert any("offline engine" in r.getMessage() for r in shown), (
        loggers,
        logging.getLogger().level,
        sorted({r.name for r in caplog.records}),
    )
    assert any(r.name.startswith("webhooks") and r.levelno >= logging.WARNING for r in shown)


# -- a flood from one sender -----------------------------------------------------------------------


@pytest.fixture
def flood_app(session_factory: sessionmaker[Session]) -> Flask:
    limits = ChatLimits(
        session_messages=Rate(burst=5, per_minute=6),
        ip_messages=Rate(burst=20, per_minute=12),
        ip_sessions=Rate(burst=4, per_minute=2),
    )
    app = build_app(
        make_settings(),
        session_factory,
        dispatcher=RecordingDispatcher(),
        notifier=ReplyNotifier(),
        chat_limits=limits,
    )
    app.testing = True
    return app


def test_a_flood_from_one_sender_is_held_to_its_limits(
    flood_app: Flask, session_factory: sessionmaker[Session]
) -> None:
    tokens = []
    for _ in range(10):
        response = flood_app.test_client().post("/api/chat/sessions")
        if response.status_code == 201:
            tokens.append(response.get_json()["session"])
        else:
            assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert len(tokens) == 4, "one address gets its burst of sessions, then waits"

    codes: list[int] = []
    lock = threading.Lock()
    started = time.monotonic()

    def flood(token: str) -> None:
        client = flood_app.test_client()
        for n in range(40):
            status = client.post(
                "/api/chat/messages",
                json={"text": f"spam {n}"},
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
            with lock:
                codes.append(status)

    threads = [threading.Thread(target=flood, args=(token,)) for token in tokens for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    accepted = codes.count(201)
    assert set(codes) <= {201, 429}, "never an error, only a clear 429"
    # Per session 5 at once (+6 a minute); the address as a whole 20 at once (+12 a minute).
    assert accepted <= min(4 * (5 + 6 * elapsed / 60) + 1, 20 + 12 * elapsed / 60 + 1)
    assert accepted >= 5, "the limits must not lock out a sender entirely"
    with session_factory() as session:
        stored = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert stored == accepted, "every refused message left no trace, every accepted one is stored"


# -- a scaled-out server refuses forgeries ---------------------------------------------------------


def test_web_processes_behind_one_port_all_check_signatures(services: None, tmp_path: Path) -> None:
    graph = harness.ScaleGraph().start()
    cluster = harness.Cluster(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        redis_db=15,
        graph_url=graph.url,
        llm_url=None,
        log_dir=tmp_path,
    )
    try:
        cluster.start_web(processes=2, threads=4)
        import httpx

        conversation = harness.build_scenario(1, 1, seed=3)[0]
        body = harness.whatsapp_body(conversation, conversation.messages)
        with httpx.Client(base_url=cluster.web_url or "") as client:
            for _ in range(10):  # new connections land on either process
                forged = client.post(
                    "/webhooks/whatsapp",
                    content=body,
                    headers={
                        "X-Hub-Signature-256": signature_for(body, "not-the-secret"),
                        "Connection": "close",
                    },
                )
                unsigned = client.post(
                    "/webhooks/whatsapp", content=body, headers={"Connection": "close"}
                )
                assert forged.status_code == unsigned.status_code == 403
            assert (
                client.get(
                    "/webhooks/whatsapp",
                    params={
                        "hub.mode": "subscribe",
                        "hub.verify_token": "x",
                        "hub.challenge": "42",
                    },
                ).status_code
                == 403
            )
            answer = client.get(
                "/webhooks/whatsapp",
                params={
                    "hub.mode": "subscribe",
                    "hub.verify_token": harness.VERIFY_TOKEN,
                    "hub.challenge": "42",
                },
            )
            assert answer.status_code == 200 and answer.text == "42"
        from store import make_engine

        engine = make_engine(cluster.database_url)
        try:
            assert harness.progress(engine)[0] == 0, "a forged webhook stored something"
        finally:
            engine.dispose()
    finally:
        cluster.stop()
        graph.stop()
