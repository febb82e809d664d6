"""The Meta webhook endpoints: handshake, signatures, storing whole batches once, statuses,
echoes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.domain.takeover import human_took_over
from store.leads import find_identity, get_lead
from store.messages import record_outbound
from store.models import Conversation, Identity, Lead, Message, utcnow
from tests.webhooks.meta_payloads import (
    dumps,
    fb_body,
    fb_echo,
    fb_event,
    fb_text,
    wa_body,
    wa_change,
    wa_contact,
    wa_message,
    wa_status,
    wa_text,
    wrap_fragment,
)
from tests.webhooks.support import (
    APP_ID,
    APP_SECRET,
    VERIFY_TOKEN,
    RecordingDispatcher,
    make_settings,
    signed_post,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
ROUTES = ["/webhooks/whatsapp", "/webhooks/messenger", "/webhooks/instagram"]


def message_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count(Message.id))) or 0)


def messages(session_factory: sessionmaker[Session]) -> list[Message]:
    with session_factory() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


# -- the GET handshake -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_verification_answers_the_challenge_only_for_our_token(
    client: FlaskClient, route: str
) -> None:
    ok = client.get(
        route,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444"
    wrong = client.get(
        route,
        query_string={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "verification_refused"
    mode = client.get(
        route,
        query_string={
            "hub.mode": "unsubscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1",
        },
    )
    assert mode.status_code == 403
    assert client.get(route).status_code == 403


def test_verification_is_refused_without_a_configured_token(make_app: Callable[..., Flask]) -> None:
    client = make_app(make_settings(meta_verify_token=None)).test_client()
    response = client.get(
        "/webhooks/whatsapp",
        query_string={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
    )
    assert response.status_code == 403
    assert "META_VERIFY_TOKEN" in response.get_json()["error"]["message"]


# -- signatures and bad bodies ---------------------------------------------------------------------


def test_signed_webhook_is_stored_and_dispatched(
    client: FlaskClient, session_factory: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    response = signed_post(
        client, "/webhooks/whatsapp", dumps(wa_text("Do you deliver on Sundays?"))
    )
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1
    (stored,) = messages(session_factory)
    assert (stored.direction, stored.author, stored.text, stored.processed_at) == (
        "in",
        "customer",
        "Do you deliver on Sundays?",
        None,
    )
    assert dispatcher.submitted == [stored.conversation_id]
    with session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.phone, lead.name) == ("+16505551234", "Sheena Nelson")


@pytest.mark.parametrize("route", ROUTES)
def test_missing_or_wrong_signature_is_refused_and_nothing_stored(
    client: FlaskClient, session_factory: sessionmaker[Session], route: str
) -> None:
    body = dumps(
        wa_text()
        if route.endswith("whatsapp")
        else fb_body(fb_text(), obj="instagram" if "insta" in route else "page")
    )
    for signature in (None, "", "sha256=" + "0" * 64, "sha1=abc", "garbage", "sha256=zz"):
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        response = client.post(route, data=body, headers=headers)
        assert response.status_code == 403, signature
        assert response.get_json()["error"]["code"] == "invalid_signature"
    assert message_count(session_factory) == 0
    assert signed_post(client, route, body).status_code == 200
    assert message_count(session_factory) == 1


def test_signature_of_another_body_or_secret_is_refused(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    body = dumps(wa_text("original"))
    assert signed_post(client, "/webhooks/whatsapp", body, secret="someone-else").status_code == 403
    from webhooks.meta import signature_for

    tampered = body.replace(b"original", b"tampered")
    assert (
        signed_post(
            client, "/webhooks/whatsapp", tampered, signature=signature_for(body, APP_SECRET)
        ).status_code
        == 403
    )
    assert message_count(session_factory) == 0


def test_unsigned_requests_are_accepted_only_without_an_app_secret(
    make_app: Callable[..., Flask], session_factory: sessionmaker[Session]
) -> None:
    client = make_app(make_settings(meta_app_secret=None)).test_client()
    response = client.post(
        "/webhooks/whatsapp", data=dumps(wa_text()), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert message_count(session_factory) == 1


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_malformed_json_is_a_clear_400_and_nothing_is_stored(
    client: FlaskClient, session_factory: sessionmaker[Session], body: bytes
) -> None:
    response = signed_post(client, "/webhooks/whatsapp", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert message_count(session_factory) == 0


def test_oversized_body_is_refused_with_413(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    big = dumps(wa_text("x" * (3 * 1024 * 1024)))
    response = signed_post(client, "/webhooks/whatsapp", big)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert message_count(session_factory) == 0


def test_more_than_1000_events_is_refused(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    many = [wa_message(body="hi") for _ in range(1001)]
    response = signed_post(client, "/webhooks/whatsapp", dumps(wa_body(wa_change(messages=many))))
    assert response.status_code == 413
    assert message_count(session_factory) == 0


# -- whole batches, once ---------------------------------------------------------------------------


def test_batch_with_several_entries_and_mixed_statuses_and_messages(
    client: FlaskClient, session_factory: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    # An earlier reply of ours that the batch reports on.
    signed_post(
        client, "/webhooks/whatsapp", dumps(wa_text("first", wa_id="16505550001", name="A"))
    )
    with session_factory.begin() as session:
        conversation = session.scalars(select(Conversation)).one()
        out = record_outbound(
            conversation,
            "our reply",
            session=session,
            external_id="16505550001",
            delivery_status="sent",
        )
        out.channel_message_id = "wamid.OURS"
    dispatcher.submitted.clear()
    body = wa_body(
        wa_change(
            contacts=[wa_contact("16505550001", "A")],
            messages=[
                wa_message(wa_id="16505550001", body="second"),
                wa_message(wa_id="16505550001", body="third"),
            ],
            statuses=[wa_status("wamid.OURS", "delivered")],
        ),
        wa_change(
            contacts=[wa_contact("16505550002", "B")],
            messages=[wa_message(wa_id="16505550002", body="hello")],
        ),
        wa_change(statuses=[wa_status("wamid.OURS", "read"), wa_status("wamid.UNKNOWN", "read")]),
        entries=3,
    )
    response = signed_post(client, "/webhooks/whatsapp", dumps(body))
    assert response.status_code == 200
    # "statuses": the reports queued in the inbox (the drain applies the two that name our message).
    assert response.get_json() == {"stored": 3, "duplicates": 0, "statuses": 3, "ignored": 0}
    stored = messages(session_factory)
    assert [m.text for m in stored if m.direction == "in"] == ["first", "second", "third", "hello"]
    assert [m.delivery_status for m in stored if m.direction == "out"] == ["read"]
    assert len(dispatcher.submitted) == 2 and len(set(dispatcher.submitted)) == 2


def test_duplicate_delivery_is_stored_once(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    body = dumps(wa_text("only once", mid="wamid.DUP"))
    first = signed_post(client, "/webhooks/whatsapp", body)
    second = signed_post(client, "/webhooks/whatsapp", body)
    assert first.get_json()["stored"] == 1
    assert second.status_code == 200 and second.get_json()["duplicates"] == 1
    assert message_count(session_factory) == 1


def test_racing_duplicate_deliveries_are_stored_once(
    make_app: Callable[..., Flask], session_factory: sessionmaker[Session]
) -> None:
    app = make_app()
    body = dumps(
        fb_body(*[fb_text(f"burst {i}", sender="777", mid=f"m_race{i}") for i in range(5)])
    )
    barrier = threading.Barrier(4)
    results: list[int] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        results.append(signed_post(client, "/webhooks/messenger", body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [200, 200, 200, 200]
    stored = messages(session_factory)
    assert sorted(m.text for m in stored) == [f"burst {i}" for i in range(5)]
    with session_factory() as session:
        assert session.scalar(select(func.count(Lead.id))) == 1


def test_whatsapp_bsuid_only_message_finds_the_lead_known_by_phone(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    both = wa_body(
        wa_change(
            contacts=[wa_contact("919745786257", "Muhsin", user_id="IN.2081978709342942")],
            messages=[wa_message(wa_id="919745786257", user_id="IN.2081978709342942", body="a")],
        )
    )
    only_bsuid = wa_body(
        wa_change(
            contacts=[wa_contact(None, "Muhsin", user_id="IN.2081978709342942")],
            messages=[wa_message(wa_id=None, user_id="IN.2081978709342942", body="b")],
        )
    )
    assert signed_post(client, "/webhooks/whatsapp", dumps(both)).status_code == 200
    assert signed_post(client, "/webhooks/whatsapp", dumps(only_bsuid)).status_code == 200
    with session_factory() as session:
        leads = list(session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))))
        assert len(leads) == 1 and leads[0].phone == "+919745786257"
        assert sorted(i.external_id for i in session.scalars(select(Identity))) == [
            "919745786257",
            "IN.2081978709342942",
        ]
        assert session.scalar(select(func.count(Conversation.id))) == 1


def test_bsuid_first_then_phone_merges_into_one_lead(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    only_bsuid = wa_body(
        wa_change(
            contacts=[wa_contact(None, "Ana", user_id="BR.777")],
            messages=[wa_message(wa_id=None, user_id="BR.777", body="first")],
        )
    )
    both = wa_body(
        wa_change(
            contacts=[wa_contact("5511987654321", "Ana", user_id="BR.777")],
            messages=[wa_message(wa_id="5511987654321", user_id="BR.777", body="second")],
        )
    )
    signed_post(client, "/webhooks/whatsapp", dumps(only_bsuid))
    signed_post(client, "/webhooks/whatsapp", dumps(both))
    with session_factory() as session:
        identity = find_identity("whatsapp", "BR.777", session=session)
        assert identity is not None
        lead = get_lead(identity.lead_id, session=session)
        assert lead.phone == "+5511987654321"
        conversations = list(
            session.scalars(select(Conversation).where(Conversation.lead_id == lead.id))
        )
        assert len(conversations) == 1
        texts = [
            m.text
            for m in session.scalars(
                select(Message)
                .where(Message.conversation_id == conversations[0].id)
                .order_by(Message.id)
            )
        ]
        assert texts == ["first", "second"]


# -- statuses on our outbound messages -------------------------------------------------------------


def _outbound(
    session_factory: sessionmaker[Session],
    channel: str,
    external_id: str,
    mid: str,
    status: str = "sent",
) -> int:
    with session_factory.begin() as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.channel == channel)
        ).first()
        assert conversation is not None
        message = record_outbound(
            conversation, "reply", session=session, external_id=external_id, delivery_status=status
        )
        message.channel_message_id = mid
        message.sent_at = utcnow() - timedelta(minutes=5)
        session.flush()
        return message.id


def _status_of(session_factory: sessionmaker[Session], message_id: int) -> tuple[str, Any]:
    with session_factory() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.delivery_status or "", message.error


def test_whatsapp_statuses_move_forward_only_and_failures_keep_the_error(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    signed_post(client, "/webhooks/whatsapp", dumps(wa_text()))
    first = _outbound(session_factory, "whatsapp", "16505551234", "wamid.R1")
    second = _outbound(session_factory, "whatsapp", "16505551234", "wamid.R2")
    for status in ("read", "delivered", "sent"):
        signed_post(
            client,
            "/webhooks/whatsapp",
            dumps(wa_body(wa_change(statuses=[wa_status("wamid.R1", status)]))),
        )
    assert _status_of(session_factory, first) == ("read", None)
    errors = [{"code": 131026, "title": "Message undeliverable"}]
    signed_post(
        client,
        "/webhooks/whatsapp",
        dumps(wa_body(wa_change(statuses=[wa_status("wamid.R2", "failed", errors=errors)]))),
    )
    assert _status_of(session_factory, second) == ("failed", "131026 Message undeliverable")


def test_messenger_delivery_and_read_watermarks_update_our_messages(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    signed_post(client, "/webhooks/messenger", dumps(fb_body(fb_text("hi", sender="42"))))
    older = _outbound(session_factory, "messenger", "42", "m_out1")
    signed_post(
        client,
        "/webhooks/messenger",
        dumps(fb_body(fb_event("42", delivery={"watermark": int(utcnow().timestamp() * 1000)}))),
    )
    assert _status_of(session_factory, older)[0] == "delivered"
    signed_post(
        client,
        "/webhooks/messenger",
        dumps(fb_body(fb_event("42", read={"watermark": int(utcnow().timestamp() * 1000)}))),
    )
    assert _status_of(session_factory, older)[0] == "read"


# -- human takeover from the native apps ----------------------------------------------------------


def test_foreign_echo_is_stored_as_agent_message_and_pauses_the_bot(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
    human_replies: list[int],
) -> None:
    signed_post(
        client, "/webhooks/messenger", dumps(fb_body(fb_text("I want a quote", sender="42")))
    )
    dispatcher.submitted.clear()
    response = signed_post(
        client,
        "/webhooks/messenger",
        dumps(
            fb_body(
                fb_echo("our own reply", customer="42", app_id=APP_ID),
                fb_echo("Hi, Anna here, I'll prepare it", customer="42", app_id="263902037430900"),
            )
        ),
    )
    assert response.get_json()["stored"] == 1
    agent_messages = [m for m in messages(session_factory) if m.author == "agent"]
    assert [m.text for m in agent_messages] == ["Hi, Anna here, I'll prepare it"]
    assert agent_messages[0].processed_at is not None
    with session_factory() as session:
        lead = session.scalars(select(Lead)).one()
    assert human_replies == [lead.id]
    assert dispatcher.submitted == []


def test_whatsapp_business_app_echo_pauses_the_bot(
    client: FlaskClient, session_factory: sessionmaker[Session], human_replies: list[int]
) -> None:
    signed_post(client, "/webhooks/whatsapp", dumps(wa_text("hello", wa_id="16505551234")))
    echo = {
        "from": "15550783881",
        "to": "16505551234",
        "id": "wamid.ECHO1",
        "timestamp": "1778579585",
        "type": "text",
        "text": {"body": "Anna from sales here"},
    }
    signed_post(
        client,
        "/webhooks/whatsapp",
        dumps(wa_body(wa_change(echoes=[echo], field="smb_message_echoes"))),
    )
    with session_factory() as session:
        lead = session.scalars(select(Lead)).one()
    assert human_replies == [lead.id]


# -- the shared corpus through the signed endpoints ------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared fixture corpus is absent ({SHARED})")
@pytest.mark.parametrize(
    ("channel", "obj"),
    [("whatsapp", "whatsapp_business_account"), ("messenger", "page"), ("instagram", "instagram")],
)
def test_every_shared_payload_is_acknowledged_and_stored(
    client: FlaskClient, session_factory: sessionmaker[Session], channel: str, obj: str
) -> None:
    from webhooks.messenger import parse_messaging
    from webhooks.whatsapp import parse_whatsapp

    for path in sorted((SHARED / channel).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        body = data if channel == "whatsapp" else wrap_fragment(data, obj)
        response = signed_post(client, f"/webhooks/{channel}", dumps(body))
        assert response.status_code == 200, (path.name, response.get_data(as_text=True))
        result = response.get_json()
        parsed = (
            parse_whatsapp(body)
            if channel == "whatsapp"
            else parse_messaging(body, channel, app_id=APP_ID)
        )
        assert result["stored"] + result["duplicates"] == len(parsed.messages), path.name
        assert result["ignored"] == len(parsed.ignored), path.name
    assert message_count(session_factory) > 0


def test_echo_from_the_page_inbox_pauses_the_real_bot(
    make_app: Callable[..., Flask], session_factory: sessionmaker[Session]
) -> None:
    from bot import BotService, load_prompts
    from leaddesk.settings import REPO_PROMPTS_DIR

    client = make_app(on_human_reply=human_took_over).test_client()  # the bot's own rule
    bot = BotService(session_factory=session_factory, prompts=load_prompts(REPO_PROMPTS_DIR))
    signed_post(
        client,
        "/webhooks/messenger",
        dumps(fb_body(fb_text("How much is a 5kW system?", sender="42"))),
    )
    with session_factory() as session:
        conversation_id = session.scalars(select(Conversation.id)).one()
    assert bot.process_conversation(conversation_id), "the bot answers before anyone takes over"
    signed_post(
        client,
        "/webhooks/messenger",
        dumps(fb_body(fb_echo("Hi, Anna here!", customer="42", app_id="263902037430900"))),
    )
    with session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.ai_paused_until is not None and lead.ai_paused_until > utcnow() + timedelta(
            minutes=55
        )
    signed_post(
        client, "/webhooks/messenger", dumps(fb_body(fb_text("Great, thanks Anna", sender="42")))
    )
    assert bot.process_conversation(conversation_id) == [], "while paused, the bot stays quiet"
    authors = [m.author for m in messages(session_factory)]
    assert authors == ["customer", "bot", "agent", "customer"]
