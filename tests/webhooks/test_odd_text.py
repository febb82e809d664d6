"""Odd text at the edge: lone UTF-16 surrogates (a JSON "\\ud800" escape, or their raw UTF-8-style
bytes), NUL, overlong UTF-8 and decomposed accents, through the web chat API and a signed WhatsApp
batch, on SQLite and PostgreSQL. Cleaned and stored, or refused with a 4xx; never a 500."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Lead, Message
from tests.webhooks.meta_payloads import wa_body, wa_change, wa_contact, wa_message
from tests.webhooks.support import signed_post

LONE = "\ud800"
JOSE_NFD = "Jose\u0301"
JOSE_NFC = "Jos\u00e9"


def _texts(session_factory: sessionmaker[Session]) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(Message.text).order_by(Message.id)))


def _names(session_factory: sessionmaker[Session]) -> list[str | None]:
    with session_factory() as session:
        return list(session.scalars(select(Lead.name).order_by(Lead.id)))


def test_web_chat_cleans_lone_surrogates_nul_and_decomposed_accents(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    # json.dumps escapes the surrogate as \ud800: exactly what a browser's JSON.stringify sends.
    started = client.post(
        "/api/chat/sessions",
        data=json.dumps({"name": f"{JOSE_NFD} {LONE}x\x00"}),
        content_type="application/json",
    )
    assert started.status_code == 201, started.get_data(as_text=True)
    auth = {"Authorization": f"Bearer {started.get_json()['session']}"}
    sent = client.post(
        "/api/chat/messages",
        data=json.dumps({"text": f"{LONE}x and {JOSE_NFD}"}),
        content_type="application/json",
        headers=auth,
    )
    assert sent.status_code == 201, sent.get_data(as_text=True)
    assert _texts(session_factory) == [f"\ufffdx and {JOSE_NFC}"]
    assert _names(session_factory) == [f"{JOSE_NFC} \ufffdx"]
    polled = client.get("/api/chat/messages?after=0&wait=0", headers=auth)
    assert polled.status_code == 200
    assert [m["text"] for m in polled.get_json()["messages"]] == [f"\ufffdx and {JOSE_NFC}"]


def test_raw_surrogate_bytes_are_cleaned_and_overlong_utf8_is_refused(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    token = client.post("/api/chat/sessions", json={}).get_json()["session"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Python's JSON decoder lets UTF-8-encoded surrogate halves through (as a lone surrogate).
    raw = client.post("/api/chat/messages", data=b'{"text": "a\xed\xa0\x80b"}', headers=auth)
    assert raw.status_code == 201, raw.get_data(as_text=True)
    for overlong in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf"):
        refused = client.post(
            "/api/chat/messages", data=b'{"text": "a' + overlong + b'b"}', headers=auth
        )
        assert refused.status_code == 400 and refused.is_json, overlong
    assert _texts(session_factory) == ["a\ufffdb"]


def test_a_whatsapp_batch_with_a_lone_surrogate_stores_every_message(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    body = wa_body(
        wa_change(
            contacts=[
                wa_contact("16505551234", f"Sheena {LONE}"),
                wa_contact("16505559876", JOSE_NFD),
            ],
            messages=[
                wa_message("text", wa_id="16505551234", body=f"broken {LONE}x"),
                wa_message("text", wa_id="16505559876", body="a perfectly normal message"),
            ],
        )
    )
    response = signed_post(client, "/webhooks/whatsapp", json.dumps(body).encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert sorted(_texts(session_factory)) == ["a perfectly normal message", "broken \ufffdx"]
    assert sorted(n or "" for n in _names(session_factory)) == [JOSE_NFC, "Sheena \ufffd"]
    # A redelivery of the same batch is a duplicate, not an error.
    again = signed_post(client, "/webhooks/whatsapp", json.dumps(body).encode())
    assert again.status_code == 200 and len(_texts(session_factory)) == 2
