"""What the bot reads from the channel beyond the webhook, over real HTTP against the fake Graph
API and the fake OpenAI-compatible server: voice notes transcribed with LEADDESK_TRANSCRIBE=1
(media id -> URL -> bytes with the channel token, then /audio/transcriptions), and the Messenger
profile name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import DEFAULT_PROMPTS_DIR
from store.models import Lead, Message
from tests.bot.test_bot_llm import answer
from tests.conftest import set_quiet_window
from tests.fakes.fake_graph import FakeGraph
from tests.fakes.fake_openai import FakeOpenAI
from tests.webhooks import meta_payloads as mp
from tests.webhooks.support import make_settings, signed_post

WA_TOKEN = "wa-token-123"
PAGE_TOKEN = "page-token-456"
IG_TOKEN = "ig-token-789"
VOICE = b"OggS\x00\x02fake opus voice note"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(tokens={WA_TOKEN, PAGE_TOKEN, IG_TOKEN}).start()
    yield fake
    fake.stop()


@pytest.fixture
def serve(
    tmp_path: Path, graph: FakeGraph, fake_openai: FakeOpenAI
) -> Iterator[Callable[..., Any]]:
    from leaddesk.wiring import build_runtime

    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    set_quiet_window(prompts, 0)
    fake_openai.respond_with(lambda body: json.dumps(answer()))
    runtimes: list[Any] = []

    def build(**overrides: Any) -> Any:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
            prompts_dir=prompts,
            prompts_poll_seconds=0,
            broker_url=None,
            telegram_bot_token=None,
            meta_graph_url=graph.url,
            whatsapp_access_token=WA_TOKEN,
            whatsapp_phone_number_id=mp.PHONE_NUMBER_ID,
            messenger_page_access_token=PAGE_TOKEN,
            instagram_access_token=IG_TOKEN,
            openai_api_key="test-key",
            openai_base_url=fake_openai.base_url,
            **overrides,
        )
        runtime = build_runtime(settings)
        runtime.start()
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        runtime.stop(timeout=5)


def _voice_note(runtime: Any, media_id: str) -> None:
    body = mp.wa_body(
        mp.wa_change(
            contacts=[mp.wa_contact("15125550140", "Rosa")],
            messages=[
                mp.wa_message(
                    "audio",
                    wa_id="15125550140",
                    id=media_id,
                    voice=True,
                    mime_type="audio/ogg; codecs=opus",
                )
            ],
        )
    )
    response = signed_post(runtime.app.test_client(), "/webhooks/whatsapp", mp.dumps(body))
    assert response.status_code == 200
    assert runtime.dispatcher.wait_idle(timeout=15)


def _rows(runtime: Any) -> list[Message]:
    with runtime.session_factory() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
        session.expunge_all()
        return rows


def test_a_voice_note_is_fetched_transcribed_and_answered_as_text(
    serve, graph: FakeGraph, fake_openai: FakeOpenAI
) -> None:
    graph.media["media-voice-1"] = (VOICE, "audio/ogg")
    fake_openai.transcript = "Hi, how much is the Home package installed?"
    runtime = serve(transcribe=True)
    _voice_note(runtime, "media-voice-1")

    reads = [r for r in graph.requests if r.method == "GET"]
    assert [r.path.split("?")[0] for r in reads] == [
        "/v21.0/media-voice-1",
        "/media-files/media-voice-1",
    ]
    assert all(r.headers["Authorization"] == f"Bearer {WA_TOKEN}" for r in reads)
    [sent] = fake_openai.transcriptions
    assert sent["file"] == VOICE and sent["model"] == "whisper-1"
    assert sent["filename"].endswith(".ogg")

    voice, reply = [m for m in _rows(runtime) if m.direction == "in"], _rows(runtime)[-1]
    assert voice[0].kind == "audio" and voice[0].text == "[voice message]"  # the note itself
    assert voice[0].payload["transcript"]["text"] == fake_openai.transcript  # beside it, marked
    # The agent sees it beside the voice note.
    from store.agents import create_agent

    with runtime.session_factory.begin() as session:
        _agent, token = create_agent("Sam", session=session)
        lead_id = session.get(Message, voice[0].id).conversation.lead_id
    detail = (
        runtime.app.test_client()
        .get(f"/api/leads/{lead_id}", headers={"Authorization": f"Bearer {token}"})
        .get_json()
    )
    [shown] = [m for c in detail["conversations"] for m in c["messages"] if m["kind"] == "audio"]
    assert shown["transcript"] == fake_openai.transcript
    # The transcript was the customer's text for the model, and its answer went out.
    assert "how much is the Home package installed?" in fake_openai.user_prompt()
    # (out of opening hours the wall clock adds a note after it)
    assert reply.author == "bot" and reply.text.startswith(answer()["reply"])


def test_a_voice_note_that_cannot_be_fetched_gets_the_honest_answer(
    serve, graph: FakeGraph, fake_openai: FakeOpenAI
) -> None:
    runtime = serve(transcribe=True)
    _voice_note(runtime, "media-gone")  # the Graph API does not know it
    assert fake_openai.transcriptions == []
    reply = _rows(runtime)[-1]
    assert "can't listen to voice notes" in reply.text
    assert fake_openai.calls == 0  # no words: nothing for the model to answer


def test_without_leaddesk_transcribe_voice_notes_are_not_fetched(
    serve, graph: FakeGraph, fake_openai: FakeOpenAI
) -> None:
    graph.media["media-voice-2"] = (VOICE, "audio/ogg")
    runtime = serve(transcribe=False)
    _voice_note(runtime, "media-voice-2")
    assert [r for r in graph.requests if r.method == "GET"] == []
    assert fake_openai.transcriptions == []
    assert "can't listen to voice notes" in _rows(runtime)[-1].text


def test_a_messenger_customer_is_named_after_their_profile(serve, graph: FakeGraph) -> None:
    graph.profiles["psid-77"] = {"first_name": "Dana", "last_name": "Reyes"}
    runtime = serve()
    client = runtime.app.test_client()
    for text in ("Hi, do you install batteries?", "and EV chargers?"):
        body = mp.fb_body(mp.fb_text(text, sender="psid-77"))
        assert signed_post(client, "/webhooks/messenger", mp.dumps(body)).status_code == 200
        assert runtime.dispatcher.wait_idle(timeout=15)
    with runtime.session_factory() as session:
        [lead] = session.scalars(select(Lead)).all()
        assert lead.name == "Dana Reyes"
    profile_reads = [r for r in graph.requests if r.method == "GET" and "psid-77" in r.path]
    assert len(profile_reads) == 1  # once per customer, not once per message
    assert profile_reads[0].headers["Authorization"] == f"Bearer {PAGE_TOKEN}"


def test_a_profile_the_token_may_not_read_leaves_the_lead_nameless(serve, graph: FakeGraph) -> None:
    runtime = serve()
    body = mp.fb_body(mp.fb_text("Hello", sender="psid-private"))
    response = signed_post(runtime.app.test_client(), "/webhooks/messenger", mp.dumps(body))
    assert response.status_code == 200
    assert runtime.dispatcher.wait_idle(timeout=15)
    with runtime.session_factory() as session:
        [lead] = session.scalars(select(Lead)).all()
        assert lead.name is None
    assert any(m.author == "bot" for m in _rows(runtime))  # the customer was answered all the same


def test_an_instagram_customer_without_a_full_name_is_named_after_their_username(
    serve, graph: FakeGraph
) -> None:
    graph.profiles["igsid-5"] = {"username": "sunny.days.tx"}
    runtime = serve()
    body = mp.fb_body(mp.fb_text("hi! prices?", sender="igsid-5"), obj="instagram")
    response = signed_post(runtime.app.test_client(), "/webhooks/instagram", mp.dumps(body))
    assert response.status_code == 200
    assert runtime.dispatcher.wait_idle(timeout=15)
    with runtime.session_factory() as session:
        [lead] = session.scalars(select(Lead)).all()
        assert lead.name == "sunny.days.tx"
    [read] = [r for r in graph.requests if r.method == "GET"]
    assert "fields=name%2Cusername" in read.path or "fields=name,username" in read.path
    assert read.headers["Authorization"] == f"Bearer {IG_TOKEN}"
