"""The web chat API: sessions, messages, long polling, limits, privacy between sessions, the widget
files."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.worker.dispatcher import ThreadDispatcher
from store.messages import pending_messages, record_outbound
from store.models import Conversation, Lead, Message, utcnow
from tests.webhooks.support import RecordingDispatcher, make_settings
from webhooks.notify import ReplyNotifier
from webhooks.outbound import ChannelOutbox
from webhooks.ratelimit import ChatLimits, Rate


@pytest.fixture
def session_factory(sqlite_engine: Any) -> sessionmaker[Session]:
    """The chat API is backend-neutral (the store's tests cover both): SQLite keeps these fast."""
    from store import make_session_factory

    return make_session_factory(sqlite_engine)


def start(client: FlaskClient, **known: Any) -> dict[str, str]:
    response = (
        client.post("/api/chat/sessions", json=known)
        if known
        else client.post("/api/chat/sessions")
    )
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['session']}"}


def say(client: FlaskClient, auth: dict[str, str], text: str, **extra: Any) -> Any:
    return client.post("/api/chat/messages", json={"text": text, **extra}, headers=auth)


def history(
    client: FlaskClient, auth: dict[str, str], after: int = 0, wait: float = 0
) -> list[dict[str, Any]]:
    response = client.get(f"/api/chat/messages?after={after}&wait={wait}", headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]  # type: ignore[no-any-return]


class EchoBot:
    """Stands in for the bot: answers every pending message of a conversation with one reply."""

    def __init__(
        self, session_factory: sessionmaker[Session], outbox: ChannelOutbox, delay: float = 0.0
    ) -> None:
        self.session_factory = session_factory
        self.outbox = outbox
        self.delay = delay

    def __call__(self, conversation_id: int) -> None:
        time.sleep(self.delay)
        with self.session_factory.begin() as session:
            pending = pending_messages(conversation_id, session=session)
            if not pending:
                return
            for message in pending:
                message.processed_at = utcnow()
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None
            reply = record_outbound(
                conversation,
                "You said: " + " / ".join(m.text for m in pending),
                session=session,
                external_id=pending[-1].external_id,
                idempotency_key=f"reply-{pending[-1].id}",
            )
            reply_id = reply.id
        self.outbox.deliver([reply_id])


@pytest.fixture
def live(
    make_app: Callable[..., Flask], session_factory: sessionmaker[Session]
) -> Iterator[tuple[Flask, ThreadDispatcher]]:
    """An app with a real worker pool, outbox and notifier, answered by `EchoBot`."""
    settings = make_settings()
    notifier = ReplyNotifier()
    outbox = ChannelOutbox(session_factory=session_factory, settings=settings, notifier=notifier)
    pool = ThreadDispatcher(EchoBot(session_factory, outbox, delay=0.2), threads=2)
    app = make_app(settings, dispatcher=pool, notifier=notifier, outbox=outbox)
    pool.start()
    yield app, pool
    pool.stop()
    outbox.close()


def test_round_trip_with_long_poll(live: tuple[Flask, ThreadDispatcher]) -> None:
    app, _pool = live
    client = app.test_client()
    auth = start(client)
    sent = say(client, auth, "Do you have this in blue?")
    assert sent.status_code == 201
    my_id = sent.get_json()["id"]
    started = time.monotonic()
    got = history(client, auth, after=my_id, wait=10)
    assert time.monotonic() - started < 5, "the reply wakes the long poll"
    assert [(m["author"], m["text"]) for m in got] == [
        ("bot", "You said: Do you have this in blue?")
    ]
    # "Reloading" the page: the whole history comes back.
    everything = history(client, auth)
    assert [m["author"] for m in everything] == ["customer", "bot"]
    assert everything[0]["id"] == my_id and everything[0]["at"]


def test_long_poll_returns_empty_when_nothing_comes(client: FlaskClient) -> None:
    auth = start(client)
    started = time.monotonic()
    assert history(client, auth, wait=0.3) == []
    assert 0.25 <= time.monotonic() - started < 3


def test_session_with_known_visitor_creates_the_lead(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    start(client, name="Dana Fox", email="Dana@Example.COM", phone="(415) 555-0132")
    with session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.name, lead.email, lead.phone) == (
            "Dana Fox",
            "Dana@example.com",
            "+14155550132",
        )


def test_anonymous_session_becomes_a_lead_on_the_first_message(
    client: FlaskClient, session_factory: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    auth = start(client)
    with session_factory() as session:
        assert session.scalars(select(Lead)).first() is None
    response = say(client, auth, "Hi there")
    with session_factory() as session:
        message = session.scalars(select(Message)).one()
        assert (message.channel, message.direction, message.text) == ("web", "in", "Hi there")
        assert response.get_json() == {"id": message.id}
    assert dispatcher.submitted == [message.conversation_id]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"name": 42}, "name"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_session_details_are_validated(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/chat/sessions", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_session_body_must_be_json_when_given(client: FlaskClient) -> None:
    response = client.post(
        "/api/chat/sessions", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"


def test_messages_need_a_valid_session(client: FlaskClient) -> None:
    assert client.post("/api/chat/messages", json={"text": "hi"}).status_code == 401
    bad = {"Authorization": "Bearer wc_nope"}
    assert client.post("/api/chat/messages", json={"text": "hi"}, headers=bad).status_code == 401
    assert (
        client.get("/api/chat/messages", headers=bad).get_json()["error"]["code"] == "unauthorized"
    )


def test_message_text_is_validated(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    auth = start(client)
    too_long = say(client, auth, "x" * 2001)
    assert too_long.status_code == 400
    assert too_long.get_json()["error"]["code"] == "message_too_long"
    assert "2000" in too_long.get_json()["error"]["message"]
    assert say(client, auth, "   ").status_code == 400
    assert client.post("/api/chat/messages", json={"text": ["x"]}, headers=auth).status_code == 400
    assert (
        client.post(
            "/api/chat/messages", data="{bad", headers={**auth, "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert say(client, auth, "x" * 2000).status_code == 201
    with session_factory() as session:
        assert len(list(session.scalars(select(Message)))) == 1


def test_a_retried_send_with_the_same_client_id_is_stored_once(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    auth = start(client)
    first = say(client, auth, "hello", client_id="c-1")
    again = say(client, auth, "hello", client_id="c-1")
    assert first.status_code == 201 and again.status_code == 200
    assert first.get_json() == again.get_json()
    with session_factory() as session:
        assert len(list(session.scalars(select(Message)))) == 1


def test_query_arguments_are_validated(client: FlaskClient) -> None:
    auth = start(client)
    for query in ("after=abc", "after=-1", "wait=soon", "wait=-2", "wait=nan"):
        response = client.get(f"/api/chat/messages?{query}", headers=auth)
        assert response.status_code == 400, query


def test_per_session_rate_limit_answers_429(make_app: Callable[..., Flask]) -> None:
    limits = ChatLimits(session_messages=Rate(burst=3, per_minute=1))
    client = make_app(chat_limits=limits).test_client()
    auth = start(client)
    codes = [say(client, auth, f"message {i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    limited = say(client, auth, "again")
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    other = start(client)
    assert say(client, other, "another visitor is not limited").status_code == 201


def test_per_address_rate_limits_answer_429(make_app: Callable[..., Flask]) -> None:
    limits = ChatLimits(
        ip_messages=Rate(burst=2, per_minute=1), ip_sessions=Rate(burst=3, per_minute=1)
    )
    client = make_app(chat_limits=limits).test_client()
    sessions = [start(client) for _ in range(3)]
    assert client.post("/api/chat/sessions").status_code == 429
    assert [say(client, auth, "hi").status_code for auth in sessions] == [201, 201, 429]
    elsewhere = client.post("/api/chat/sessions", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert elsewhere.status_code == 201


def test_every_web_process_counts_the_limits_together_through_redis(
    make_app: Callable[..., Flask],
) -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    settings = make_settings(
        broker_url="redis://127.0.0.1:6379/14", broker_queue=f"chat-limits-{uuid.uuid4().hex[:8]}"
    )
    limits = ChatLimits(session_messages=Rate(burst=4, per_minute=1))
    first, second = (make_app(settings, chat_limits=limits).test_client() for _ in range(2))
    try:
        auth = start(first)
        clients = [second, first] * 3
        codes = [say(clients[i], auth, f"message {i}").status_code for i in range(5)]
        # Counted in each process alone, all five would have passed (two and three of four).
        assert codes == [201, 201, 201, 201, 429]
        assert say(first, auth, "again").status_code == 429
    finally:
        server = redis.Redis.from_url(str(settings.broker_url))
        for key in server.scan_iter(f"*{settings.broker_queue}*"):
            server.delete(key)
        server.close()


def test_sessions_claiming_one_email_stay_apart_with_a_suggestion_and_see_their_own_messages(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    from store.models import MergeSuggestion

    laptop = start(client, email="sam@example.com")
    phone = start(client, email="Sam@Example.com")
    say(client, laptop, "from the laptop")
    say(client, phone, "from the phone")
    with session_factory() as session:
        # An unsigned email is only claimed: two leads, and an agent decides whether they are one.
        assert len(list(session.scalars(select(Lead)))) == 2
        assert len(list(session.scalars(select(MergeSuggestion)))) == 1
    assert [m["text"] for m in history(client, laptop)] == ["from the laptop"]
    assert [m["text"] for m in history(client, phone)] == ["from the phone"]


def test_cors_lets_any_site_embed_the_widget(client: FlaskClient) -> None:
    preflight = client.options(
        "/api/chat/messages",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    created = client.post("/api/chat/sessions", headers={"Origin": "https://shop.example"})
    assert created.headers["Access-Control-Allow-Origin"] == "*"


def test_demo_page_embeds_the_widget(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<script src="/static/leaddesk-widget.js"' in html
    script = client.get("/static/leaddesk-widget.js")
    assert script.status_code == 200 and "javascript" in script.content_type
    assert b"/api/chat/messages" in script.data


def test_waiters_beyond_the_seat_count_are_answered_at_once(make_app: Callable[..., Flask]) -> None:
    app = make_app(chat_limits=ChatLimits(max_waiters=1))
    first, second = app.test_client(), app.test_client()
    holder_auth, other_auth = start(first), start(second)
    holder = threading.Thread(target=history, args=(first, holder_auth), kwargs={"wait": 2})
    holder.start()
    time.sleep(0.3)  # the only seat is taken
    started = time.monotonic()
    assert history(second, other_auth, wait=10) == []
    assert time.monotonic() - started < 1.0
    holder.join(5)
    started = time.monotonic()
    assert history(second, other_auth, wait=0.5) == []
    assert time.monotonic() - started >= 0.45, "with the seat free again, it waits"
