"""The Telegram front end through python-telegram-bot against a fake Bot API on 127.0.0.1: updates
in through long polling (or the webhook), sendMessage calls out."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from copilot.telegram import (
    BackgroundBot,
    build_application,
    deliver_notifications,
    webhook_options,
)
from leaddesk.settings import load_settings
from store.leads import get_lead
from store.models import Agent, Notification
from store.work import notify
from tests.conftest import SHARED_FIXTURES
from tests.fakes.fake_telegram import FakeTelegram

TOKEN = "123456:TEST-token"
SARAH_TG = 5550001
STRANGER_TG = 5550999


@pytest.fixture
def telegram():  # type: ignore[no-untyped-def]
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


def settings_for(telegram: FakeTelegram, **extra: Any):  # type: ignore[no-untyped-def]
    return load_settings(telegram_bot_token=TOKEN, telegram_api_url=telegram.url, **extra)


class RunningBot(BackgroundBot):
    """The Application polling the fake Bot API (briefly, so that the test ends fast)."""

    def __init__(self, application: Any, *, webhook: dict[str, Any] | None = None):
        super().__init__(application, webhook=webhook, poll_timeout=1)

    def __enter__(self) -> RunningBot:
        assert self.start(timeout=15), f"the bot did not start: {self.error!r}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        assert not self._thread.is_alive(), "the bot did not stop"


@pytest.fixture
def bot(telegram, copilot, sf, clock):  # type: ignore[no-untyped-def]
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=None,
    )
    with RunningBot(application) as running:
        yield running


def texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m["text"] for m in telegram.sent(chat_id)]


def test_a_stranger_gets_one_polite_refusal_and_nothing_else(world, telegram, bot, sf) -> None:
    lead = world.lead("Dana Smith", score=90)
    for text in ("/hot", f"summarise lead {lead}", "/start", "/start WRONG-CODE1"):
        telegram.push_text(user_id=STRANGER_TG, text=text)
    sent = telegram.wait_for_sent(lambda m: m["chat_id"] == STRANGER_TG, count=4)
    assert all("Dana" not in m["text"] and "#" not in m["text"] for m in sent)
    assert sent[0]["text"].startswith("Sorry, this is the private assistant of a sales team.")
    assert sent[1]["text"] == sent[0]["text"] == sent[2]["text"]
    assert "link code is not valid" in sent[3]["text"]
    with sf() as session:
        assert (
            session.scalars(select(Agent).where(Agent.telegram_user_id == STRANGER_TG)).first()
            is None
        )


def test_start_with_a_code_links_the_agent_once(world, telegram, bot, sf) -> None:
    sarah = world.agent("Sarah Connor")
    code = world.link_code(sarah)
    telegram.push_text(user_id=SARAH_TG, text=f"/start {code.lower()}")
    [welcome] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
    assert welcome["text"].startswith("Linked! You are Sarah Connor")
    with sf() as session:
        agent = session.get(Agent, sarah)
        assert agent.telegram_user_id == SARAH_TG and agent.link_code_hash is None
    telegram.push_text(user_id=STRANGER_TG, text=f"/start {code}")  # the code is used up
    [refused] = telegram.wait_for_sent(lambda m: m["chat_id"] == STRANGER_TG)
    assert "not valid" in refused["text"]


def test_a_linked_agent_asks_in_plain_words_and_slash_commands(world, telegram, bot) -> None:
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    lead = world.lead("Dana <Smith> & Co", score=88, agent=sarah)
    telegram.push_text(user_id=SARAH_TG, text="/hot")
    [listing] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
    assert listing["parse_mode"] == "HTML"
    assert listing["text"] == (
        "<b>Hot leads — 1 in all, page 1 of 1:</b>\n"
        f"#{lead} Dana &lt;Smith&gt; &amp; Co · New · score 88 · web · Sarah"
    )
    telegram.push_text(user_id=SARAH_TG, text=f"is lead {lead} hot?")
    telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=2)
    assert texts(telegram, SARAH_TG)[1].startswith(
        f"<b>Yes, #{lead} Dana &lt;Smith&gt; &amp; Co is hot.</b>"
    )
    assert telegram.calls_to("sendChatAction")


def test_confirmations_come_with_buttons_and_a_press_applies_them(world, telegram, bot) -> None:
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    lead = world.lead("Dana Smith", agent=sarah)
    telegram.push_text(user_id=SARAH_TG, text=f"/status {lead} Converted")
    [question] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
    buttons = question["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["Yes", "No"]
    assert buttons[0]["callback_data"].startswith("c:") and buttons[0]["callback_data"].endswith(
        ":yes"
    )
    assert world.get(lead).status == "New"
    telegram.push_callback(user_id=SARAH_TG, data=buttons[0]["callback_data"], message=question)
    telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=2)
    assert (
        texts(telegram, SARAH_TG)[1] == f"<b>#{lead} Dana Smith: status New → Converted. "
        "The lead is now read-only (an admin can reopen it).</b>"
    )
    assert world.get(lead).status == "Converted"
    assert telegram.calls_to("answerCallbackQuery")
    assert telegram.calls_to("editMessageReplyMarkup")  # the buttons are gone
    # Pressing the old button again changes nothing.
    telegram.push_callback(user_id=SARAH_TG, data=buttons[0]["callback_data"], message=question)
    telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=3)
    assert "already answered" in texts(telegram, SARAH_TG)[2]


def test_a_stranger_pressing_a_button_is_refused(world, telegram, bot) -> None:
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    lead = world.lead("Dana Smith", agent=sarah)
    telegram.push_text(user_id=SARAH_TG, text=f"/archive {lead}")
    [question] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
    data = question["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    telegram.push_callback(user_id=STRANGER_TG, data=data, message=question)
    alert = telegram.wait_for(lambda: telegram.calls_to("answerCallbackQuery"))[0]
    assert alert.params["show_alert"] is True and "private assistant" in alert.params["text"]
    assert not world.get(lead).archived


def test_long_answers_are_split_under_telegrams_limit(world, telegram, sf, prompts, clock) -> None:
    from langchain_core.messages import AIMessage

    from tests.copilot.conftest import make_copilot
    from tests.copilot.test_copilot_model import scripted

    world.agent("Sarah", telegram=SARAH_TG)
    long_answer = "\n".join(
        f"{i:04d} <Dana> & co: call back" for i in range(400)
    )  # ~11,000 characters
    copilot = make_copilot(sf, prompts, clock, model=scripted(AIMessage(long_answer)))
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=None,
    )
    with RunningBot(application):
        telegram.push_text(user_id=SARAH_TG, text="tell me everything")
        sent = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=3)
        telegram.wait_for(lambda: "0399" in telegram.sent(SARAH_TG)[-1]["text"])
    parts = [m["text"] for m in telegram.sent(SARAH_TG)]
    assert len(parts) >= 3 and all(len(p) < 4096 for p in parts)
    import html

    joined = "\n".join(html.unescape(p.replace("<b>", "").replace("</b>", "")) for p in parts)
    assert joined == long_answer
    assert sent


def test_group_chats_are_ignored(world, telegram, bot) -> None:
    world.agent("Sarah", telegram=SARAH_TG)
    telegram.push_text(user_id=SARAH_TG, text="/hot", chat_type="group", chat_id=-100200)
    telegram.push_text(user_id=SARAH_TG, text="/help")
    telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
    assert telegram.sent(-100200) == []


def test_shared_telegram_fixtures_from_strangers_get_at_most_a_refusal(telegram, bot) -> None:
    folder: Path = SHARED_FIXTURES / "telegram"
    if not folder.is_dir():
        pytest.skip(f"shared fixtures not found at {folder}")
    from telegram import Update

    pushed = 0
    for path in sorted(folder.glob("*.json")):
        update = json.loads(path.read_text())
        update.setdefault("update_id", 1)
        try:
            # Some samples predate fields today's Bot API always sends; Telegram would not send
            # those.
            Update.de_json(update, None)
        except (TypeError, KeyError, ValueError):
            continue
        update.pop("update_id", None)
        telegram.push_update(update)
        pushed += 1
    telegram.push_text(user_id=STRANGER_TG, text="ping")  # processed after all of them
    telegram.wait_for_sent(lambda m: m["chat_id"] == STRANGER_TG)
    for message in telegram.sent():
        assert (
            message["text"].startswith("Sorry, this is the private assistant")
            or "I read text only" in message["text"]
        )
    assert pushed > 10


def _notify(world, agent_id: int, lead_id: int | None, text: str, **kwargs: Any) -> int:  # type: ignore[no-untyped-def]
    with world.sf.begin() as session:
        lead = get_lead(lead_id, session=session) if lead_id else None
        return notify(session.get(Agent, agent_id), lead, text, session=session, **kwargs).id


def test_a_notification_reaches_the_linked_agent_with_buttons(
    world, telegram, copilot, sf, clock
) -> None:
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    lead = world.lead(
        "Dana Smith",
        says=("How much for 10 panels?",),
        channel="whatsapp",
        phone="+14155552671",
        agent=sarah,
        score=82,
        status="Follow Up",
        ago=timedelta(minutes=5),
    )
    notification = _notify(world, sarah, lead, "Dana Smith needs a human: Follow Up")
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=0.05,
    )
    with RunningBot(application):
        [sent] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
        assert sent["text"] == (
            "<b>🔔 Dana Smith needs a human: Follow Up</b>\n"
            f"Lead #{lead} Dana Smith · Follow Up · score 82\n"
            'Last message (whatsapp, 5 min ago): "How much for 10 panels?"'
        )
        buttons = sent["reply_markup"]["inline_keyboard"][0]
        assert [(b["text"], b["callback_data"]) for b in buttons] == [
            ("Open summary", f"n:sum:{lead}"),
            ("Take over", f"n:take:{lead}"),
        ]
        with sf() as session:
            assert session.get(Notification, notification).delivered_at == clock()
        # "Take over" goes through the copilot (permissions and all).
        telegram.push_callback(user_id=SARAH_TG, data=f"n:take:{lead}", message=sent)
        telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=2)
        assert texts(telegram, SARAH_TG)[1].startswith(
            f"<b>You have #{lead} Dana Smith: the bot stays quiet"
        )
        telegram.push_callback(user_id=SARAH_TG, data=f"n:sum:{lead}", message=sent)
        telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=3)
        assert texts(telegram, SARAH_TG)[2].startswith(f"<b>Lead #{lead} Dana Smith</b>")
    assert (
        len([m for m in telegram.sent(SARAH_TG) if m["text"].startswith("<b>🔔")]) == 1
    )  # never twice


def test_notification_delivery_waits_for_its_time_skips_unlinked_agents_and_retries(
    world, telegram, copilot, sf, clock
) -> None:
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    mike = world.agent("Mike")  # not linked: his notifications wait (he reads them in the console)
    later = _notify(
        world, sarah, None, "Queued for the morning", deliver_after=clock() + timedelta(hours=8)
    )
    now = _notify(world, sarah, None, "Right away")
    unlinked = _notify(world, mike, None, "For Mike")
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=None,
    )

    async def round_() -> int:
        async with application:
            return await deliver_notifications(application.bot, session_factory=sf, clock=clock)

    telegram.fail_sends = 1
    assert asyncio.run(round_()) == 0  # Telegram answered 502: released for the next round
    with sf() as session:
        assert session.get(Notification, now).delivered_at is None
    assert asyncio.run(round_()) == 1
    assert [m["text"] for m in telegram.sent(SARAH_TG)][-1] == "<b>🔔 Right away</b>"
    assert asyncio.run(round_()) == 0
    clock.advance(hours=8)
    assert asyncio.run(round_()) == 1
    with sf() as session:
        assert session.get(Notification, later).delivered_at == clock()
        assert session.get(Notification, unlinked).delivered_at is None


def test_webhook_mode_checks_telegrams_secret_token(world, telegram, copilot, sf, clock) -> None:
    import socket

    world.agent("Sarah", telegram=SARAH_TG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(
        telegram,
        telegram_webhook_url="https://bot.example.com/telegram/hook",
        telegram_webhook_secret="s3cret-token",
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
    )
    options = webhook_options(settings)
    assert options["url_path"] == "telegram/hook" and options["secret_token"] == "s3cret-token"
    application = build_application(
        settings=settings, copilot=copilot, session_factory=sf, clock=clock, notify_every=None
    )
    update = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "date": 0,
            "text": "/help",
            "chat": {"id": SARAH_TG, "type": "private"},
            "from": {"id": SARAH_TG, "is_bot": False, "first_name": "S"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    with RunningBot(application, webhook=options):
        [registered] = telegram.calls_to("setWebhook")
        assert registered.params["url"] == "https://bot.example.com/telegram/hook"
        assert registered.params["secret_token"] == "s3cret-token"
        url = f"http://127.0.0.1:{port}/telegram/hook"
        assert httpx.post(url, json=update).status_code == 403
        assert (
            httpx.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            ).status_code
            == 403
        )
        assert telegram.sent() == []
        ok = httpx.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
        )
        assert ok.status_code == 200
        [reply] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
        assert "copilot" in reply["text"]


def test_an_unreachable_telegram_is_retried_without_stopping_the_server(copilot, sf, clock) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here
    settings = load_settings(telegram_bot_token=TOKEN, telegram_api_url=f"http://127.0.0.1:{port}")
    runner = BackgroundBot(
        build_application(
            settings=settings, copilot=copilot, session_factory=sf, clock=clock, notify_every=None
        ),
        max_retry_delay=0.1,
    )
    assert runner.start(timeout=15) is False
    assert not runner.running and runner.error is not None
    runner.stop()
    assert not runner._thread.is_alive()


def test_a_rejected_token_switches_the_telegram_copilot_off(telegram, copilot, sf, clock) -> None:
    telegram.reject_token = True
    runner = BackgroundBot(
        build_application(
            settings=settings_for(telegram),
            copilot=copilot,
            session_factory=sf,
            clock=clock,
            notify_every=None,
        )
    )
    assert runner.start(timeout=15) is False
    runner._thread.join(5)
    assert not runner._thread.is_alive()


def test_without_a_token_the_application_is_not_built(copilot, sf) -> None:
    from copilot.telegram import TelegramNotConfigured

    with pytest.raises(TelegramNotConfigured):
        build_application(
            settings=load_settings(telegram_bot_token=None), copilot=copilot, session_factory=sf
        )


def test_leaddesk_serve_runs_the_telegram_copilot_and_the_http_endpoint(telegram, tmp_path) -> None:
    from leaddesk.wiring import build_runtime
    from store.agents import create_agent

    settings = settings_for(telegram, database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}")
    runtime = build_runtime(settings)
    try:
        with runtime.session_factory.begin() as session:
            agent, token = create_agent("Sarah", session=session)
            agent.telegram_user_id = SARAH_TG
        runtime.start()
        telegram.push_text(user_id=SARAH_TG, text="/hot")
        [reply] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
        assert reply["text"] == "<b>Hot leads: none.</b>"
        response = runtime.app.test_client().post(
            "/api/copilot", json={"message": "/hot"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.get_json() == {"reply": "Hot leads: none.", "pending_confirmation": None}
    finally:
        runtime.stop()
    assert not runtime.telegram.running
    assert (tmp_path / "leaddesk-copilot.sqlite").exists()


def test_the_bot_token_never_reaches_the_logs_of_a_running_server(telegram, tmp_path) -> None:
    """`leaddesk serve` with TELEGRAM_BOT_TOKEN polls the Bot API every second; at DEBUG, nothing it
    logs (third-party HTTP clients included) carries the token."""
    from tests.webhooks.support import ServeProcess

    secret_token = "987654321:AAH-leaddesk-Secret_token-x1y2z3"
    server = ServeProcess(
        f"sqlite:///{tmp_path / 'leaddesk.db'}",
        TELEGRAM_BOT_TOKEN=secret_token,
        TELEGRAM_API_URL=telegram.url,
        LEADDESK_LOG_LEVEL="DEBUG",
    ).start()
    try:
        telegram.push_text(user_id=STRANGER_TG, text="/hot")
        [refusal] = telegram.wait_for_sent(lambda m: m["chat_id"] == STRANGER_TG, timeout=30)
        assert refusal["text"].startswith("Sorry")
        # Let several polls go by: each is a Bot API request whose URL carries the token.
        time.sleep(2)
    finally:
        server.stop()
    log = server.log()
    assert "DEBUG" in log and "copilot" in log  # the log was as verbose as it gets
    assert secret_token not in log
    assert secret_token.split(":")[1] not in log
