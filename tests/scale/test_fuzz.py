"""Bad input, generated: every webhook parser and the web chat API fed malformed, truncated, huge
and wrongly-typed payloads (hypothesis) on SQLite and PostgreSQL. Never a 5xx, never a partial
write: a refused request stores nothing, an accepted one stores exactly what it reported."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import ChatSession, Identity, Lead, Message
from store.text import clean_text
from tests.app_support import build_app
from tests.webhooks.support import (
    APP_ID,
    RecordingDispatcher,
    make_settings,
    signed_post,
)
from webhooks.messenger import parse_messaging
from webhooks.notify import ReplyNotifier
from webhooks.ratelimit import ChatLimits, Rate
from webhooks.whatsapp import parse_whatsapp

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Any JSON value, with the awkward ones: NUL and control characters, lone UTF-16 surrogates (what a
# JSON "\ud800" escape decodes to), one word in several Unicode normalisation forms, huge and
# negative numbers, deep nesting.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
awkward_text = (
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
    | st.text(alphabet=st.characters(codec="utf-8") | surrogates, max_size=12)
    | st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "\ud800x",
            "x\udfff",
            "\udc00\ud800",
            "\ud83d\ude00",
            "Jose\u0301",
            "Jos\u00e9",
            "\u212b\u00c5A\u030a",
            "\ufb01le",
            "e\u0301\u0301\u0327",
            "\u202e",
            "🙂" * 3,
            "9" * 40,
            "-1",
            "1e309",
            "null",
            "<script>",
            "'; DROP TABLE",
        ]
    )
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | awkward_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(awkward_text, inner, max_size=3),
    max_leaves=12,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape (the simplest examples too), sometimes anything at all."""
    return st.integers(min_value=0, max_value=7).flatmap(
        lambda roll: json_values if roll == 7 else valid
    )


def shape(
    required: dict[str, st.SearchStrategy[Any]] | None = None, **optional: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object whose fields each have the documented type most of the time."""
    return st.fixed_dictionaries(
        {k: either(v) for k, v in (required or {}).items()},
        optional={k: either(v) for k, v in optional.items()},
    )


digits = st.text(alphabet=string.digits, min_size=1, max_size=18)
phones = st.from_regex(r"1650253[0-9]{4}", fullmatch=True) | digits
ids = (
    st.text(alphabet=string.ascii_letters + string.digits + ".:_-=", min_size=1, max_size=300)
    | awkward_text
)
timestamps = (
    st.integers(min_value=1_600_000_000, max_value=1_900_000_000)
    | st.integers(min_value=-1, max_value=2**41)
    | awkward_text
)
bodies = st.text(max_size=3000) | awkward_text

wa_message = shape(
    {
        "from": phones,
        "id": ids,
        "type": st.sampled_from(
            [
                "text",
                "text",
                "image",
                "location",
                "interactive",
                "button",
                "reaction",
                "sticker",
                "unsupported",
            ]
        ),
        "text": shape({"body": bodies}),
    },
    from_user_id=ids,
    timestamp=timestamps,
    interactive=shape(
        {"type": st.sampled_from(["button_reply", "list_reply", "nfm_reply"])},
        button_reply=shape(id=ids, title=awkward_text),
        nfm_reply=shape(response_json=awkward_text),
    ),
    location=shape(
        latitude=st.floats(allow_nan=False), longitude=st.floats(allow_nan=False), name=awkward_text
    ),
    reaction=shape(message_id=ids, emoji=awkward_text),
    context=shape(id=ids, **{"from": digits}),
)
wa_value = shape(
    {"messages": st.lists(wa_message, max_size=4)},
    messaging_product=st.just("whatsapp"),
    metadata=shape(phone_number_id=digits),
    contacts=st.lists(
        shape({"wa_id": phones}, user_id=ids, profile=shape(name=awkward_text)), max_size=3
    ),
    statuses=st.lists(
        shape(
            {"id": ids, "status": st.sampled_from(["sent", "delivered", "read", "failed", "x"])},
            timestamp=timestamps,
            recipient_id=digits,
            errors=st.lists(shape(code=st.integers(), title=awkward_text), max_size=2),
        ),
        max_size=3,
    ),
    message_echoes=st.lists(wa_message, max_size=2),
)
whatsapp_payloads = shape(
    {
        "object": st.just("whatsapp_business_account"),
        "entry": st.lists(
            shape(
                {
                    "changes": st.lists(
                        shape(
                            {
                                "field": st.sampled_from(["messages", "smb_message_echoes"]),
                                "value": wa_value,
                            }
                        ),
                        min_size=1,
                        max_size=3,
                    )
                },
                id=ids,
            ),
            min_size=1,
            max_size=3,
        ),
    }
)

messaging_event = shape(
    {"sender": shape({"id": ids}), "recipient": shape({"id": ids}), "timestamp": timestamps},
    message=shape(
        {"mid": ids, "text": bodies},
        is_echo=st.booleans(),
        app_id=st.just(APP_ID) | ids,
        quick_reply=shape(payload=awkward_text),
        attachments=st.lists(
            shape(
                {"type": st.sampled_from(["image", "audio", "file", "location"])},
                payload=shape(url=awkward_text, title=awkward_text),
            ),
            max_size=2,
        ),
    ),
    postback=shape(title=awkward_text, payload=awkward_text, mid=ids),
    delivery=shape(mids=st.lists(ids, max_size=2), watermark=timestamps),
    read=shape(watermark=timestamps),
    reaction=shape(mid=ids, action=awkward_text, emoji=awkward_text),
)


def messaging_payloads(channel: str) -> st.SearchStrategy[dict[str, Any]]:
    return shape(
        {
            "object": st.just("page" if channel == "messenger" else "instagram"),
            "entry": st.lists(
                shape(
                    {"messaging": st.lists(messaging_event, min_size=1, max_size=4)},
                    id=ids,
                    time=timestamps,
                    standby=st.lists(messaging_event, max_size=2),
                ),
                min_size=1,
                max_size=3,
            ),
        }
    )


# Overlong UTF-8 ("/" in two, three and four bytes, and the like): invalid, never decoded.
OVERLONG = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xc0\x80"]


def encodings(payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """The payload as JSON (surrogates escaped as \\ud800 or written as their raw 3-byte form),
    cut short, with broken or overlong bytes, or not a JSON object at all."""
    as_json = st.tuples(payloads, st.booleans()).map(
        lambda pair: json.dumps(pair[0], ensure_ascii=pair[1]).encode("utf-8", "surrogatepass")
    )
    truncated = st.tuples(as_json, st.floats(min_value=0.0, max_value=1.0)).map(
        lambda pair: pair[0][: int(len(pair[0]) * pair[1])]
    )
    broken = st.tuples(as_json, st.binary(min_size=1, max_size=8)).map(
        lambda pair: pair[0][:-1] + pair[1]
    )
    overlong = st.tuples(as_json, st.sampled_from(OVERLONG), st.floats(0.0, 1.0)).map(
        lambda t: t[0][: int(len(t[0]) * t[2])] + t[1] + t[0][int(len(t[0]) * t[2]) :]
    )
    others = st.one_of(
        truncated,
        broken,
        overlong,
        json_values.map(lambda v: json.dumps(v).encode()),
        json_values.map(
            lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        st.binary(max_size=200),
    )
    return st.integers(min_value=0, max_value=3).flatmap(
        lambda roll: others if roll == 3 else as_json
    )


# -- the app ---------------------------------------------------------------------------------------


@pytest.fixture
def app(session_factory: sessionmaker[Session]) -> Flask:
    # Generous limits: this is about input handling, not rate limiting (tested elsewhere).
    loose = Rate(burst=100_000, per_minute=100_000)
    limits = ChatLimits(
        session_messages=loose,
        ip_messages=loose,
        ip_sessions=loose,
        session_polls=loose,
        max_wait=0.05,
        poll_interval=0.01,
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


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def counts(session_factory: sessionmaker[Session]) -> dict[str, int]:
    with session_factory() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Message, Lead, Identity, ChatSession)
        }


def assert_clean_store(session_factory: sessionmaker[Session]) -> None:
    """Whatever was stored is clean text: no NUL, no lone surrogate, in NFC."""
    with session_factory() as session:
        texts = [*session.scalars(select(Message.text)), *session.scalars(select(Lead.name))]
    for text in texts:
        if text is not None:
            assert clean_text(text) == text, ascii(text)


def check_webhook(
    client: FlaskClient, session_factory: sessionmaker[Session], path: str, body: bytes
) -> None:
    before = counts(session_factory)
    response = signed_post(client, path, body)
    after = counts(session_factory)
    assert response.status_code < 500, (
        response.status_code,
        response.get_data(as_text=True)[:500],
        body[:300],
    )
    assert response.is_json, "every answer under /webhooks is JSON"
    if response.status_code != 200:
        event(f"refused {response.status_code}")
        assert after == before, (
            f"refused with {response.status_code} but the store changed: {before} -> {after}"
        )
        assert "error" in response.get_json()
        return
    report = response.get_json()
    event(f"stored {min(report['stored'], 3)}+" if report["stored"] else "nothing stored")
    new_messages = after["messages"] - before["messages"]
    # Everything reported stored is there, and nothing else: no half-stored batch.
    assert new_messages == report["stored"], (report, before, after)
    assert_clean_store(session_factory)


# -- the webhooks ----------------------------------------------------------------------------------


@FUZZ
@given(body=encodings(whatsapp_payloads))
def test_whatsapp_webhook_survives_any_body(
    client: FlaskClient, session_factory: sessionmaker[Session], body: bytes
) -> None:
    check_webhook(client, session_factory, "/webhooks/whatsapp", body)


@FUZZ
@given(data=st.data(), channel=st.sampled_from(["messenger", "instagram"]))
def test_messenger_and_instagram_webhooks_survive_any_body(
    client: FlaskClient, session_factory: sessionmaker[Session], data: st.DataObject, channel: str
) -> None:
    body = data.draw(encodings(messaging_payloads(channel)))
    check_webhook(client, session_factory, f"/webhooks/{channel}", body)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    payload=json_values
    | whatsapp_payloads
    | messaging_payloads("messenger")
    | messaging_payloads("instagram")
)
def test_parsers_never_raise(payload: Any) -> None:
    """The parsers alone, on anything JSON can carry: they report what they skipped instead of
    raising."""
    for batch in (
        parse_whatsapp(payload),
        parse_messaging(payload, "messenger", app_id=APP_ID),
        parse_messaging(payload, "instagram", app_id=APP_ID),
    ):
        for inbound in batch.messages:
            assert isinstance(inbound.external_id, str) and inbound.external_id
            assert isinstance(inbound.text, str)
            assert inbound.channel_message_id is None or isinstance(inbound.channel_message_id, str)


@pytest.mark.parametrize(
    "path", ["/webhooks/whatsapp", "/webhooks/messenger", "/webhooks/instagram"]
)
def test_huge_and_deep_bodies_get_a_clear_4xx(
    client: FlaskClient, session_factory: sessionmaker[Session], path: str
) -> None:
    before = counts(session_factory)
    huge = json.dumps(
        {"object": "page", "entry": [{"id": "1", "messaging": [], "pad": "x" * (3 * 1024 * 1024)}]}
    )
    deep = "[" * 100_000 + "]" * 100_000
    if path.endswith("whatsapp"):
        many = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messages": [
                                        {
                                            "from": "16505550000",
                                            "id": f"wamid.{i}",
                                            "type": "text",
                                            "text": {"body": "x"},
                                        }
                                        for i in range(1001)
                                    ]
                                },
                            }
                        ]
                    }
                ],
            }
        )
    else:
        many = json.dumps(
            {
                "object": "page" if path.endswith("messenger") else "instagram",
                "entry": [
                    {
                        "id": "1",
                        "time": 1700000000000,
                        "messaging": [
                            {
                                "sender": {"id": "2"},
                                "recipient": {"id": "1"},
                                "timestamp": 1700000000000,
                                "message": {"mid": f"m.{i}", "text": "x"},
                            }
                            for i in range(1001)
                        ],
                    }
                ],
            }
        )
    for body in (huge, deep, many):
        response = signed_post(client, path, body.encode())
        assert 400 <= response.status_code < 500, response.status_code
        assert response.is_json
    assert counts(session_factory) == before


# -- the web chat API ------------------------------------------------------------------------------

contact_fields = shape(
    name=awkward_text | st.text(max_size=400),
    email=awkward_text | st.emails(),
    phone=awkward_text | st.from_regex(r"\+?[0-9 ()-]{4,20}", fullmatch=True),
)


@FUZZ
@given(
    body=encodings(contact_fields),
    content_type=st.sampled_from(["application/json", "text/plain", None]),
)
def test_chat_session_start_survives_any_body(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    body: bytes,
    content_type: str | None,
) -> None:
    before = counts(session_factory)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/chat/sessions", data=body, headers=headers)
    after = counts(session_factory)
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json
    if response.status_code == 201:
        assert after["chat_sessions"] == before["chat_sessions"] + 1
        assert_clean_store(session_factory)
    else:
        assert after == before


message_bodies = shape({"text": awkward_text | st.text(min_size=1, max_size=2500)}, client_id=ids)


def query(**params: str) -> str:
    return urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in params.items()})


@FUZZ
@given(
    body=encodings(message_bodies), after=awkward_text | st.integers().map(str), wait=awkward_text
)
def test_chat_messages_survive_any_body_and_query(
    client: FlaskClient, session_factory: sessionmaker[Session], body: bytes, after: str, wait: str
) -> None:
    token = client.post("/api/chat/sessions", json={}).get_json()["session"]
    auth = {"Authorization": f"Bearer {token}"}
    before = counts(session_factory)
    response = client.post(
        "/api/chat/messages", data=body, headers={**auth, "Content-Type": "application/json"}
    )
    after_counts = counts(session_factory)
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json
    stored = after_counts["messages"] - before["messages"]
    if response.status_code in (200, 201):
        assert stored <= 1 and response.get_json()["id"]
        assert_clean_store(session_factory)
    else:
        assert after_counts == before
    # Polling with odd parameters (no waiting: the fuzzer must stay fast); a URL carries bytes, so
    # a surrogate goes as its raw 3-byte form.
    polled = client.get(
        "/api/chat/messages", query_string=query(after=after, wait="0"), headers=auth
    )
    assert polled.status_code < 500 and polled.is_json
    odd = client.get(
        "/api/chat/messages", query_string=query(after="0", wait=wait[:20]), headers=auth
    )
    assert odd.status_code < 500 and odd.is_json


@FUZZ
@given(
    token=awkward_text | st.text(alphabet=string.printable, max_size=300),
    scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  "]),
)
def test_chat_api_refuses_any_wrong_token_cleanly(
    client: FlaskClient, token: str, scheme: str
) -> None:
    # Header values cannot carry line breaks (the HTTP client refuses them, as any would).
    header = (
        "".join(ch for ch in scheme + token if ch not in "\r\n")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )
    response = client.post(
        "/api/chat/messages", json={"text": "hello"}, headers={"Authorization": header}
    )
    assert response.status_code == 401 and response.is_json
