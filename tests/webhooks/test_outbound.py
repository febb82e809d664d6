"""Sending replies through the Graph API (a fake on 127.0.0.1): retries, outcomes, the 24-hour
window."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, sessionmaker

from store.messages import Inbound, ingest, record_outbound
from store.models import Message
from tests.fakes.fake_graph import FakeGraph, Recorded, Reply
from tests.webhooks.support import Clock, make_settings
from webhooks.notify import ReplyNotifier
from webhooks.outbound import ChannelOutbox, channel_statuses, split_text

TOKENS = {
    "whatsapp_access_token": "wa-token",
    "whatsapp_phone_number_id": "106540352242922",
    "messenger_page_access_token": "page-token",
    "instagram_access_token": "ig-token",
}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_outbox(
    session_factory: sessionmaker[Session],
    graph: FakeGraph,
    clock: Clock,
    sleeps: Sleeps,
    notifier: ReplyNotifier | None = None,
    timeout: float = 2.0,
    **settings: Any,
) -> ChannelOutbox:
    merged = {**TOKENS, **settings}
    return ChannelOutbox(
        session_factory=session_factory,
        settings=make_settings(meta_graph_url=graph.url, **merged),
        notifier=notifier,
        clock=clock,
        sleep=sleeps,
        timeout=timeout,
        retry_delays=(0.5, 1.0, 2.0, 4.0),
    )


def reply_waiting(
    session_factory: sessionmaker[Session],
    clock: Clock,
    channel: str = "whatsapp",
    customer: str = "16505551234",
    text_: str = "Thanks! Our prices start at $49.",
    customer_wrote_ago: timedelta = timedelta(hours=1),
) -> int:
    """A customer message on `channel` and the bot's recorded (pending) reply to it; returns the
    reply id."""
    with session_factory.begin() as session:
        ingested = ingest(
            Inbound(
                channel=channel,
                external_id=customer,
                text="How much is it?",
                channel_message_id=f"in-{channel}-{customer}-{clock.now.timestamp()}",
                sent_at=clock.now - customer_wrote_ago,
            ),
            session=session,
        )
        ingested.message.processed_at = clock.now
        reply = record_outbound(ingested.conversation, text_, session=session, external_id=customer)
        return reply.id


def stored(session_factory: sessionmaker[Session], message_id: int) -> Message:
    with session_factory() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def test_whatsapp_reply_is_sent_with_the_documented_body(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    (request,) = graph.requests
    assert request.path == "/v21.0/106540352242922/messages"
    assert request.headers["Authorization"] == "Bearer wa-token"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "text",
        "text": {"preview_url": False, "body": "Thanks! Our prices start at $49."},
        "to": "16505551234",
    }
    message = stored(session_factory, reply)
    assert (message.delivery_status, message.error) == ("sent", None)
    assert message.channel_message_id.startswith("wamid.fake")


def test_server_errors_are_retried_with_exponential_backoff_until_sent(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    graph.script(500, 503)
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    assert len(graph.requests) == 3
    assert sleeps == [0.5, 1.0]
    assert stored(session_factory, reply).delivery_status == "sent"


def test_timeouts_and_dropped_connections_are_retried(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    graph.script(Reply(delay=1.0), Reply(drop=True))
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps, timeout=0.3).deliver([reply])
    assert len(graph.requests) == 3
    assert stored(session_factory, reply).delivery_status == "sent"


def test_client_errors_are_not_retried_and_the_error_is_stored(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    graph.script(
        Reply(
            status=400,
            body={"error": {"message": "(#131030) Recipient not in allowed list", "code": 131030}},
        )
    )
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    assert len(graph.requests) == 1 and sleeps == []
    message = stored(session_factory, reply)
    assert message.delivery_status == "failed"
    assert message.error == "HTTP 400: (#131030) Recipient not in allowed list"


def test_persistent_server_errors_end_as_failed(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    graph.script(*[502] * 5)
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    assert len(graph.requests) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    message = stored(session_factory, reply)
    assert message.delivery_status == "failed"
    assert "HTTP 502" in message.error and "gave up after 5 attempts" in message.error


def test_outside_the_24_hour_window_the_reply_is_withheld(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    reply = reply_waiting(session_factory, clock, customer_wrote_ago=timedelta(hours=24, minutes=1))
    inside = reply_waiting(
        session_factory,
        clock,
        channel="messenger",
        customer="42",
        customer_wrote_ago=timedelta(hours=23, minutes=59),
    )
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply, inside])
    message = stored(session_factory, reply)
    assert message.delivery_status == "withheld"
    assert "24-hour" in message.error
    assert [r.path for r in graph.requests] == ["/v21.0/me/messages"]
    assert stored(session_factory, inside).delivery_status == "sent"


def test_channel_without_token_is_receive_only(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    reply = reply_waiting(session_factory, clock, channel="instagram", customer="IGSID1")
    make_outbox(session_factory, graph, clock, sleeps, instagram_access_token=None).deliver([reply])
    assert graph.requests == []
    message = stored(session_factory, reply)
    assert message.delivery_status == "failed"
    assert (
        message.error
        == "receive-only: INSTAGRAM_ACCESS_TOKEN is not set, so replies cannot be sent"
    )


@pytest.mark.parametrize(
    ("channel", "token"), [("messenger", "page-token"), ("instagram", "ig-token")]
)
def test_messenger_and_instagram_use_the_send_api(
    session_factory: sessionmaker[Session],
    graph: FakeGraph,
    clock: Clock,
    sleeps: Sleeps,
    channel: str,
    token: str,
) -> None:
    reply = reply_waiting(session_factory, clock, channel=channel, customer="PSID9")
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    (request,) = graph.requests
    assert request.path == "/v21.0/me/messages"
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert request.json == {
        "recipient": {"id": "PSID9"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks! Our prices start at $49."},
    }
    message = stored(session_factory, reply)
    assert message.delivery_status == "sent" and message.channel_message_id.startswith("m_fake")


def test_whatsapp_user_known_only_by_bsuid_is_sent_to_as_recipient(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    reply = reply_waiting(session_factory, clock, customer="US.13491208655302741918")
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    body = graph.requests[0].json
    assert body["recipient"] == "US.13491208655302741918" and "to" not in body


def test_long_replies_are_sent_in_parts(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    long_text = " ".join(["word"] * 700)  # 3499 characters, Messenger allows 2000 per message
    reply = reply_waiting(
        session_factory, clock, channel="messenger", customer="42", text_=long_text
    )
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    sent = [r.json["message"]["text"] for r in graph.requests]
    assert len(sent) == 2 and all(len(part) <= 2000 for part in sent)
    assert " ".join(sent) == long_text
    assert split_text("abc", 2) == ["ab", "c"]


def test_delivery_is_idempotent_even_when_two_workers_race(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    graph.script(Reply(delay=0.3))
    reply = reply_waiting(session_factory, clock)
    outbox = make_outbox(session_factory, graph, clock, sleeps)
    threads = [threading.Thread(target=outbox.deliver, args=([reply],)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    outbox.deliver([reply])
    assert len(graph.requests) == 1
    assert stored(session_factory, reply).delivery_status == "sent"


def test_no_database_transaction_is_held_during_the_http_call(
    sqlite_engine: Any, graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    from store import make_session_factory

    session_factory = make_session_factory(sqlite_engine)
    writes: list[str] = []

    def write_while_sending(_request: Recorded) -> None:
        # SQLite transactions take the write lock: a lock held by the outbox would make this wait.
        connection = sqlite3.connect(sqlite_engine.url.database, timeout=0.2, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE leads SET name = 'written during send'")
            connection.execute("COMMIT")
            writes.append("ok")
        finally:
            connection.close()

    graph.on_request = write_while_sending
    reply = reply_waiting(session_factory, clock)
    make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
    assert writes == ["ok"]
    assert stored(session_factory, reply).delivery_status == "sent"


def test_web_replies_are_marked_sent_and_wake_the_widget(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    notifier = ReplyNotifier()
    reply = reply_waiting(session_factory, clock, channel="web", customer="web-abc")
    conversation_id = stored(session_factory, reply).conversation_id
    with notifier.watch(conversation_id) as watch:
        make_outbox(session_factory, graph, clock, sleeps, notifier=notifier).deliver([reply])
        assert watch.wait(0.5) is True
    assert graph.requests == []
    assert stored(session_factory, reply).delivery_status == "sent"


def test_resend_pending_delivers_replies_left_behind(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    first = reply_waiting(session_factory, clock)
    second = reply_waiting(session_factory, clock, channel="messenger", customer="42")
    outbox = make_outbox(session_factory, graph, clock, sleeps)
    assert outbox.resend_pending() == 2
    assert outbox.resend_pending() == 0
    assert {stored(session_factory, m).delivery_status for m in (first, second)} == {"sent"}
    with session_factory() as session:
        assert (
            session.scalars(select(Message).where(Message.delivery_status == "pending")).first()
            is None
        )


def test_channel_statuses_summary() -> None:
    summary = {
        s.channel: s.state
        for s in channel_statuses(make_settings(**{**TOKENS, "instagram_access_token": None}))
    }
    assert summary == {
        "web": "ready",
        "whatsapp": "ready",
        "messenger": "ready",
        "instagram": "receive-only",
        "email": "off",
    }
    off = {s.channel: s.state for s in channel_statuses(make_settings(meta_verify_token=None))}
    assert off == {
        "web": "ready",
        "whatsapp": "off",
        "messenger": "off",
        "instagram": "off",
        "email": "off",
    }


def test_a_reply_is_read_once_and_claimed_once_before_it_is_sent(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    """Which reply, in which workspace, to whom and whether the 24-hour window is open: one
    statement; then the claim that keeps a second delivery from sending it again."""
    outbox = make_outbox(session_factory, graph, clock, sleeps)
    outbox.deliver([reply_waiting(session_factory, clock, customer="16505550000")])
    # (The workspace's channel settings are now known for a few seconds: not read again.)
    reply = reply_waiting(session_factory, clock)
    statements: list[str] = []
    engine = session_factory.kw["bind"]
    at_send: list[list[str]] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        word = statement.split(None, 1)[0].upper()
        if word not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(word)

    graph.on_request = lambda _request: at_send.append(list(statements))
    event.listen(engine, "before_cursor_execute", count)
    try:
        outbox.deliver([reply])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert at_send == [["SELECT", "UPDATE"]]
    assert statements == ["SELECT", "UPDATE", "UPDATE"]  # and the outcome
    assert stored(session_factory, reply).delivery_status == "sent"


def test_a_channel_id_already_on_another_message_keeps_the_outcome_and_says_so(
    session_factory: sessionmaker[Session], graph: FakeGraph, clock: Clock, sleeps: Sleeps
) -> None:
    outbox = make_outbox(session_factory, graph, clock, sleeps)
    first = reply_waiting(session_factory, clock)
    outbox.deliver([first])
    taken = stored(session_factory, first).channel_message_id
    second = reply_waiting(session_factory, clock, customer="16505550000")
    graph.script(Reply(body={"messaging_product": "whatsapp", "messages": [{"id": taken}]}))
    outbox.deliver([second])
    message = stored(session_factory, second)
    assert (message.delivery_status, message.error) == ("sent", f"sent as {taken}")
    assert message.channel_message_id != taken
    # Delivered once: a second delivery finds nothing pending and sends nothing.
    outbox.deliver([second])
    assert len(graph.requests) == 2


@pytest.mark.postgres
@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_a_reply_sent_while_the_server_drops_the_connections_is_still_recorded_sent(
    db_engine: Any,
    postgres_url: str,
    graph: FakeGraph,
    clock: Clock,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart or failover while the message is on its way: the claim's connection, given back
    a moment ago, is handed out again for the outcome without a ping and fails; the outcome is
    written again on a new connection instead of leaving the sent message "sending" for good."""
    from store import make_engine, make_session_factory

    monkeypatch.setattr("store.db.PING_AFTER_IDLE", 60.0)  # "a moment", however slow the machine
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    session_factory = make_session_factory(engine)
    cut: list[int] = []

    def drop_every_connection(_request: Recorded) -> None:
        with admin.connect() as connection:
            others = "datname = current_database() AND pid <> pg_backend_pid()"
            pids = connection.execute(text(f"SELECT pid FROM pg_stat_activity WHERE {others}"))
            for pid in pids.scalars():
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                cut.append(pid)
            while connection.execute(
                text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")
            ).scalar_one():
                time.sleep(0.02)

    try:
        reply = reply_waiting(session_factory, clock)
        graph.on_request = drop_every_connection
        make_outbox(session_factory, graph, clock, sleeps).deliver([reply])
        assert cut, "the outbox's connection was cut while sending"
        message = stored(session_factory, reply)
        assert (message.delivery_status, message.error) == ("sent", None)
        assert message.channel_message_id
        assert len(graph.requests) == 1  # sent once
    finally:
        engine.dispose()
        admin.dispose()
