"""The channel adapters: every documented payload shape, and every payload of the shared corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.webhooks.meta_payloads import (
    fb_body,
    fb_echo,
    fb_event,
    fb_text,
    wa_body,
    wa_change,
    wa_contact,
    wa_message,
    wa_status,
    wrap_fragment,
)
from webhooks.events import parse_timestamp
from webhooks.messenger import parse_messaging
from webhooks.whatsapp import parse_whatsapp

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the shared fixture corpus is absent ({SHARED})"
)


def corpus(channel: str) -> list[Path]:
    folder = SHARED / channel
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# -- WhatsApp --------------------------------------------------------------------------------------


def test_whatsapp_text_uses_wa_id_as_phone_and_profile_name() -> None:
    body = wa_body(
        wa_change(
            contacts=[wa_contact("16505551234", "Sheena Nelson")],
            messages=[
                wa_message(
                    "text",
                    wa_id="16505551234",
                    mid="wamid.A",
                    ts=1749416383,
                    body="Does it come in another color?",
                )
            ],
        )
    )
    batch = parse_whatsapp(body)
    (message,) = batch.messages
    assert message.channel == "whatsapp"
    assert message.external_id == "16505551234"
    assert message.phone == "+16505551234"
    assert message.name == "Sheena Nelson"
    assert (message.kind, message.text) == ("text", "Does it come in another color?")
    assert message.channel_message_id == "wamid.A"
    assert message.sent_at == parse_timestamp(1749416383)
    assert message.author == "customer"


def test_whatsapp_user_without_phone_is_identified_by_bsuid() -> None:
    body = wa_body(
        wa_change(
            contacts=[wa_contact(None, "Muhsin", user_id="IN.2081978709342942")],
            messages=[
                wa_message("text", wa_id=None, user_id="IN.2081978709342942", body="bsuid only")
            ],
        )
    )
    (message,) = parse_whatsapp(body).messages
    assert message.external_id == "IN.2081978709342942"
    assert message.phone is None
    assert message.name == "Muhsin"


def test_whatsapp_phone_and_bsuid_keeps_the_bsuid_as_alias() -> None:
    body = wa_body(
        wa_change(
            contacts=[wa_contact("919745786257", "Muhsin", user_id="IN.2081978709342942")],
            messages=[wa_message("text", wa_id="919745786257", user_id="IN.2081978709342942")],
        )
    )
    (message,) = parse_whatsapp(body).messages
    assert message.external_id == "919745786257"
    assert message.extra["aliases"] == ["IN.2081978709342942"]


@pytest.mark.parametrize(
    ("kind", "content", "expected_kind", "expected_text"),
    [
        (
            "image",
            {"id": "1", "mime_type": "image/jpeg", "caption": "Check out my product!"},
            "image",
            "[image] Check out my product!",
        ),
        ("video", {"id": "1", "mime_type": "video/mp4"}, "video", "[video]"),
        ("audio", {"id": "1", "voice": True}, "audio", "[voice message]"),
        (
            "document",
            {"id": "1", "filename": "quote.pdf", "caption": "my quote"},
            "document",
            "[document: quote.pdf] my quote",
        ),
        ("sticker", {"id": "1", "animated": False}, "sticker", "[sticker]"),
        (
            "location",
            {"latitude": 37.46, "longitude": -122.21, "name": "Facebook HQ"},
            "location",
            "[location] Facebook HQ (37.46, -122.21)",
        ),
        (
            "contacts",
            [
                {
                    "name": {"formatted_name": "Chandler Bing"},
                    "phones": [{"phone": "+1 555-555-5555"}],
                }
            ],
            "contacts",
            "[shared contact] Chandler Bing +1 555-555-5555",
        ),
        (
            "reaction",
            {"message_id": "wamid.X", "emoji": "\U0001f44d"},
            "reaction",
            "[reacted] \U0001f44d",
        ),
        ("reaction", {"message_id": "wamid.X"}, "reaction", "[removed a reaction]"),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}},
            "button_reply",
            "Yes please",
        ),
        (
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "m", "title": "Medium", "description": "10 seats"},
            },
            "list_reply",
            "Medium (10 seats)",
        ),
        (
            "interactive",
            {
                "type": "nfm_reply",
                "nfm_reply": {
                    "name": "flow",
                    "body": "Sent",
                    "response_json": '{"flow_token": "t", "size": "L"}',
                },
            },
            "flow_reply",
            "[form submitted] size: L",
        ),
        ("button", {"payload": "cb", "text": "Talk to sales"}, "button_reply", "Talk to sales"),
        (
            "order",
            {
                "catalog_id": "1",
                "product_items": [
                    {
                        "product_retailer_id": "SKU1",
                        "quantity": 2,
                        "item_price": 30,
                        "currency": "USD",
                    }
                ],
            },
            "order",
            "[order] 2 x SKU1 (30 USD)",
        ),
        ("unsupported", {"type": "poll"}, "unsupported", "[unsupported message] poll"),
        ("hologram", {"x": 1}, "unsupported", "[unsupported message] hologram"),
    ],
)
def test_whatsapp_message_kinds_get_a_readable_text(
    kind: str, content: object, expected_kind: str, expected_text: str
) -> None:
    message = wa_message(kind)
    message[kind] = content
    (inbound,) = parse_whatsapp(
        wa_body(wa_change(contacts=[wa_contact()], messages=[message]))
    ).messages
    assert (inbound.kind, inbound.text) == (expected_kind, expected_text)


def test_whatsapp_batch_reads_every_entry_change_message_and_status() -> None:
    body = wa_body(
        wa_change(
            contacts=[wa_contact("16505550001", "A")],
            messages=[
                wa_message(wa_id="16505550001", body="one"),
                wa_message(wa_id="16505550001", body="two"),
            ],
        ),
        wa_change(statuses=[wa_status("wamid.OUT1", "delivered"), wa_status("wamid.OUT2", "read")]),
        wa_change(
            contacts=[wa_contact("16505550002", "B")],
            messages=[wa_message(wa_id="16505550002", body="three")],
        ),
        wa_change(field="message_template_status_update"),
        entries=3,
    )
    batch = parse_whatsapp(body)
    assert [m.text for m in batch.messages] == ["one", "two", "three"]
    assert [(s.channel_message_id, s.status) for s in batch.statuses] == [
        ("wamid.OUT1", "delivered"),
        ("wamid.OUT2", "read"),
    ]
    assert len(batch.ignored) == 1


def test_whatsapp_failed_status_carries_the_error() -> None:
    errors = [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "error_data": {"details": "More than 24 hours have passed"},
        }
    ]
    (status,) = parse_whatsapp(
        wa_body(wa_change(statuses=[wa_status("wamid.Z", "failed", errors=errors)]))
    ).statuses
    assert status.status == "failed"
    assert status.error == "131047 Re-engagement message: More than 24 hours have passed"


def test_whatsapp_business_app_echo_is_an_agent_message_to_the_customer() -> None:
    echo = {
        "from": "15550783881",
        "to": "16505551234",
        "id": "wamid.ECHO",
        "timestamp": "1778579585",
        "type": "text",
        "text": {"body": "Hi, Anna from sales here"},
    }
    (message,) = parse_whatsapp(
        wa_body(wa_change(echoes=[echo], field="smb_message_echoes"))
    ).messages
    assert message.author == "agent"
    assert message.external_id == "16505551234"
    assert message.text == "Hi, Anna from sales here"


def test_whatsapp_on_premises_shape_without_envelope() -> None:
    body = {
        "contacts": [wa_contact("2423423243", "Sojan")],
        "messages": [wa_message("text", wa_id="2423423243", body="Test")],
    }
    (message,) = parse_whatsapp(body).messages
    assert (message.external_id, message.text, message.name) == ("2423423243", "Test", "Sojan")


def test_whatsapp_message_without_id_gets_a_stable_fallback_id() -> None:
    message = wa_message(body="no id here")
    del message["id"]
    first = parse_whatsapp(wa_body(wa_change(messages=[message]))).messages[0].channel_message_id
    again = (
        parse_whatsapp(wa_body(wa_change(messages=[dict(message)]))).messages[0].channel_message_id
    )
    assert first and first == again


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": {}},
        {"entry": [None, 3, {"changes": "x"}, {"changes": [None, {"value": []}]}]},
    ],
)
def test_whatsapp_odd_bodies_are_skipped_not_crashed(body: object) -> None:
    batch = parse_whatsapp(body)
    assert batch.messages == [] and batch.statuses == []


# -- Messenger / Instagram -------------------------------------------------------------------------


def test_messenger_text_and_quick_reply() -> None:
    batch = parse_messaging(
        fb_body(
            fb_text("Hello", sender="42", mid="m_1"),
            fb_text("Pricing", sender="42", quick_reply={"payload": "PRICING"}),
        ),
        "messenger",
        app_id="1",
    )
    assert [(m.external_id, m.kind, m.text) for m in batch.messages] == [
        ("42", "text", "Hello"),
        ("42", "quick_reply", "Pricing"),
    ]
    assert batch.messages[0].channel_message_id == "m_1"


def test_messenger_postback_reaction_referral_and_attachments() -> None:
    events = [
        fb_event("42", postback={"title": "Get Started", "payload": "GET_STARTED", "mid": "m_pb"}),
        fb_event("42", reaction={"mid": "m_1", "action": "react", "emoji": "\u2764"}),
        fb_event("42", referral={"ref": "spring-sale", "source": "ADS", "type": "OPEN_THREAD"}),
        fb_event(
            "42",
            message={"mid": "m_img", "attachments": [{"type": "image", "payload": {"url": "u"}}]},
        ),
        fb_event(
            "42",
            message={
                "mid": "m_loc",
                "attachments": [
                    {"type": "location", "payload": {"coordinates": {"lat": 1.5, "long": 2.5}}}
                ],
            },
        ),
    ]
    batch = parse_messaging(fb_body(*events), "messenger", app_id="1")
    assert [(m.kind, m.text) for m in batch.messages] == [
        ("postback", "Get Started"),
        ("reaction", "[reacted] \u2764"),
        ("referral", "[opened the conversation] from ads (ref spring-sale)"),
        ("image", "[image]"),
        ("location", "[location] 1.5, 2.5"),
    ]
    # Events without their own id still get one that a redelivery reproduces.
    again = parse_messaging(fb_body(*events), "messenger", app_id="1")
    assert [m.channel_message_id for m in batch.messages] == [
        m.channel_message_id for m in again.messages
    ]


def test_messenger_delivery_and_read_reports() -> None:
    batch = parse_messaging(
        fb_body(
            fb_event("42", delivery={"mids": ["m_out1"], "watermark": 1458668856253}),
            fb_event("42", read={"watermark": 1458668856253}),
        ),
        "messenger",
        app_id="1",
    )
    assert [(s.status, s.channel_message_id, s.recipient) for s in batch.statuses] == [
        ("delivered", "m_out1", "42"),
        ("delivered", None, "42"),
        ("read", None, "42"),
    ]
    assert batch.statuses[1].watermark == parse_timestamp(1458668856253)


def test_echoes_from_another_app_are_human_replies_and_ours_are_skipped() -> None:
    batch = parse_messaging(
        fb_body(
            fb_echo("our bot's own reply", customer="42", app_id="1"),
            fb_echo("Hi, this is Anna", customer="42", app_id="263902037430900"),
            fb_echo("sent from the Instagram app", customer="42"),
        ),
        "messenger",
        app_id="1",
    )
    assert [(m.author, m.external_id, m.text) for m in batch.messages] == [
        ("agent", "42", "Hi, this is Anna"),
        ("agent", "42", "sent from the Instagram app"),
    ]
    assert "our own echo" in batch.ignored


def test_without_app_id_echoes_are_not_taken_for_a_takeover() -> None:
    batch = parse_messaging(
        fb_body(fb_echo("anything", app_id="263902037430900")), "messenger", app_id=None
    )
    assert batch.messages == []


def test_instagram_uses_the_same_events() -> None:
    batch = parse_messaging(
        fb_body(fb_text("hi from insta", sender="IGSID1"), obj="instagram"), "instagram", app_id="1"
    )
    (message,) = batch.messages
    assert (message.channel, message.external_id, message.text) == (
        "instagram",
        "IGSID1",
        "hi from insta",
    )
    assert message.channel_message_id


def test_messaging_rejects_another_platforms_object() -> None:
    batch = parse_messaging(fb_body(fb_text("x"), obj="instagram"), "messenger", app_id="1")
    assert batch.messages == [] and batch.ignored


# -- the shared corpus -----------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("path", corpus("whatsapp"), ids=lambda p: p.name)
def test_shared_whatsapp_payloads_parse(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    batch = parse_whatsapp(data)
    assert batch.event_count >= 1, (
        "every payload is either stored, a status or a skipped event with a reason"
    )
    for message in batch.messages:
        assert message.channel_message_id and message.external_id and message.kind
        assert message.text, f"{message.kind} has a readable text"
        if message.phone:
            assert message.phone.startswith("+") and message.phone[1:].isdigit()
    raw_messages = [
        m
        for e in data.get("entry", [])
        if isinstance(data.get("entry"), list)
        for c in e.get("changes", [])
        for m in c.get("value", {}).get("messages", [])
    ]
    readable = [m for m in raw_messages if m.get("type") not in ("system", "revoke")]
    assert len(batch.messages) >= len(readable)


@needs_shared
@pytest.mark.parametrize("path", corpus("messenger") + corpus("instagram"), ids=lambda p: p.name)
def test_shared_messaging_payloads_parse(path: Path) -> None:
    channel = path.parent.name
    body = wrap_fragment(
        json.loads(path.read_text(encoding="utf-8")),
        "page" if channel == "messenger" else "instagram",
    )
    batch = parse_messaging(body, channel, app_id="1")
    assert batch.event_count >= 1
    for message in batch.messages:
        assert message.channel == channel and message.channel_message_id and message.external_id
        assert message.text


@needs_shared
def test_shared_corpus_known_cases() -> None:
    """Spot checks that the corpus' notable cases come out right."""

    def whatsapp(name: str):  # type: ignore[no-untyped-def]
        return parse_whatsapp(json.loads((SHARED / "whatsapp" / name).read_text(encoding="utf-8")))

    bsuid = whatsapp("chatwoot_cloud_text_bsuid_only_no_phone.json").messages[0]
    assert (bsuid.external_id, bsuid.phone) == ("IN.2081978709342942", None)
    conflicting = whatsapp("chatwoot_cloud_text_conflicting_identifiers.json").messages[0]
    assert conflicting.external_id == "971501234567" and conflicting.extra["aliases"] == [
        "AE.QACONFLICT"
    ]
    echo = whatsapp("chatwoot_cloud_smb_message_echo_text.json").messages[0]
    assert (echo.author, echo.external_id) == ("agent", "919745786257")
    failed = whatsapp("pywa_message_status_failed.json").statuses[0]
    assert failed.status == "failed" and "130472" in (failed.error or "")
    batch = whatsapp("chatwoot_cloud_batch_text_plus_system_event.json")
    assert [m.text for m in batch.messages] == ["Message delivered with the lifecycle event"]
    echo_standby = parse_messaging(
        json.loads(
            (SHARED / "messenger" / "metadocs_message_echoes_standby_template.json").read_text()
        ),
        "messenger",
        app_id="<APPID>",
    )
    assert echo_standby.messages == [] and "our own echo" in echo_standby.ignored
