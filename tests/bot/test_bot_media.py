"""Media from the channels, as their adapters store it: a voice note gets an honest answer in the
customer's language, a file is acknowledged and kept for the agent, a caption is read as text, a
sticker or a reaction alone gets no reply, a location is acknowledged."""

from __future__ import annotations

from typing import Any

from bot.media import customer_text
from store.models import Message
from tests.bot.support import Chat
from tests.webhooks import meta_payloads as mp
from webhooks.messenger import parse_messaging
from webhooks.whatsapp import parse_whatsapp

WA = "15125550111"


def _whatsapp(chat: Chat, kind: str, **content: Any) -> list[Any]:
    body = mp.wa_body(
        mp.wa_change(
            contacts=[mp.wa_contact(WA, "Rosa")],
            messages=[mp.wa_message(kind, wa_id=WA, **content)],
        )
    )
    [inbound] = parse_whatsapp(body).messages
    inbound.sent_at = chat.clock()
    replies = chat.service.handle(inbound)
    chat.clock.advance(minutes=1)
    return replies


def _texts(replies: list[Any]) -> list[str]:
    return [r.text for r in replies]


def test_a_voice_note_gets_an_honest_answer_in_the_customers_language(chat: Chat) -> None:
    [first] = _whatsapp(chat, "audio", id="media-1", voice=True, mime_type="audio/ogg")
    assert "can't listen to voice notes" in first.text
    assert "Thanks for your message" not in first.text
    chat.say("Hola, ¿hacéis instalaciones en Austin?", channel="whatsapp", sender=WA)
    chat.clock.advance(minutes=1)
    [spanish] = _whatsapp(chat, "audio", id="media-2", voice=True)
    assert spanish.text == "Aquí no puedo escuchar notas de voz; ¿podrías escribir tu pregunta?"
    assert spanish.language == "es"


def test_an_image_without_caption_is_acknowledged_and_kept_for_the_agent(chat: Chat) -> None:
    [reply] = _whatsapp(chat, "image", id="media-3", mime_type="image/jpeg")
    assert "saved it for our team" in reply.text
    assert "Thanks for your message" not in reply.text
    with chat.session_factory() as session:
        stored = session.query(Message).filter(Message.kind == "image").one()
        assert stored.payload["image"]["id"] == "media-3"  # what the agent opens
        assert stored.processed_at is not None


def test_a_caption_is_read_as_what_the_customer_wrote(chat: Chat) -> None:
    [reply] = _whatsapp(
        chat, "image", id="media-4", caption="How much is the Home 6.5 kW for a roof like this?"
    )
    assert "$12,400" in reply.text
    assert "saved it for our team" not in reply.text  # the caption was the point, not the file


def test_a_sticker_or_a_reaction_alone_gets_no_reply(chat: Chat) -> None:
    chat.say("Hi there", channel="whatsapp", sender=WA)
    chat.clock.advance(minutes=1)
    assert _whatsapp(chat, "sticker", id="media-5", animated=False) == []
    assert _whatsapp(chat, "reaction", message_id="wamid.x", emoji="😮") == []
    with chat.session_factory() as session:
        kinds = [m.kind for m in session.query(Message).filter(Message.direction == "in")]
        assert kinds == ["text", "sticker", "reaction"]  # stored all the same
        pending = session.query(Message).filter(Message.processed_at.is_(None)).count()
        assert pending == 0


def test_a_location_is_acknowledged(chat: Chat) -> None:
    [reply] = _whatsapp(
        chat, "location", latitude=30.27, longitude=-97.74, name="Home", address="Austin, TX"
    )
    assert "Thanks for sharing your location" in reply.text


def test_a_messenger_audio_attachment_and_text_in_one_burst_get_both_answered(
    chat: Chat,
) -> None:
    body = mp.fb_body(
        mp.fb_event(
            "psid-7",
            message={
                "mid": "m_audio_1",
                "attachments": [{"type": "audio", "payload": {"url": "https://cdn.example/a"}}],
            },
        )
    )
    [inbound] = parse_messaging(body, "messenger").messages
    chat.service.store(inbound)
    [reply] = chat.say("and how much is the Home package?", channel="messenger", sender="psid-7")
    assert "$12,400" in reply.text and "can't listen to voice notes" in reply.text


def test_customer_text_reads_captions_and_transcripts() -> None:
    assert customer_text("image", "[image] my roof") == "my roof"
    assert customer_text("document", "[document: bill.pdf] my bill") == "my bill"
    assert customer_text("document", "[document: bill.pdf]") == ""
    assert customer_text("audio", "[voice message]") == ""
    assert customer_text("audio", "[voice message]", {"transcript": {"text": "hola"}}) == "hola"
    assert customer_text("reaction", "[reacted] 😮") == ""
    assert customer_text("text", "[not a label] hi") == "[not a label] hi"
