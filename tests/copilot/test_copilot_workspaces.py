"""The copilot in workspaces: over HTTP it works in the request's workspace, in Telegram in the
agent's only one or the one chosen with /workspace; its answers only ever see that workspace."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from copilot.telegram import build_application
from leaddesk.settings import load_settings
from store.agents import create_agent
from store.domain.team import add_member
from store.leads import get_lead
from store.models import Agent
from store.tenancy import in_workspace
from store.work import notify
from store.workspaces import create_workspace
from tests.app_support import build_app
from tests.copilot.test_telegram import SARAH_TG, RunningBot, settings_for, texts
from tests.fakes.fake_telegram import FakeTelegram

PHONE = "+14155550100"


@dataclass
class Two:
    b: int
    ada: int  # admin in the first workspace, agent in beta
    ada_token: str
    carl_token: str  # an agent of the first workspace only
    a_lead: int
    b_lead: int


@pytest.fixture
def two(world, sf) -> Two:  # type: ignore[no-untyped-def]
    with sf.begin() as session:
        b = create_workspace("beta", "Beta Ltd", session=session).id
        ada, ada_token = create_agent("Ada", email="ada@example.com", role="admin", session=session)
        ada.telegram_user_id = SARAH_TG
        ada_id = ada.id
        _carl, carl_token = create_agent("Carl", session=session)
    a_lead = world.lead("Alpha Dana", phone=PHONE, score=88)
    with in_workspace(b):
        with sf.begin() as session:
            add_member("ada@example.com", "agent", session=session)
        b_lead = world.lead("Zebra Dana", phone=PHONE, score=91)
    return Two(b, ada_id, ada_token, carl_token, a_lead, b_lead)


@pytest.fixture
def client(sf, copilot):  # type: ignore[no-untyped-def]
    app = build_app(load_settings(database_url="sqlite://"), sf, copilot=copilot)
    return app.test_client()


def ask(client, token: str, message: str, workspace: str | None = None, thread: str = "t"):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    if workspace is not None:
        headers["X-Leaddesk-Workspace"] = workspace
    return client.post("/api/copilot", json={"message": message, "thread": thread}, headers=headers)


def test_over_http_the_copilot_answers_from_the_requests_workspace_only(client, two) -> None:  # type: ignore[no-untyped-def]
    hot_b = ask(client, two.ada_token, "/hot", "beta").get_json()["reply"]
    assert f"#{two.b_lead} Zebra Dana" in hot_b and "Alpha" not in hot_b
    hot_a = ask(client, two.ada_token, "/hot", "default").get_json()["reply"]
    assert f"#{two.a_lead} Alpha Dana" in hot_a and "Zebra" not in hot_a
    # The same phone names a different lead in each.
    by_phone = ask(client, two.ada_token, f"summarise {PHONE}", "beta").get_json()["reply"]
    assert "Zebra Dana" in by_phone and "Alpha" not in by_phone
    other = ask(client, two.ada_token, f"summarise lead {two.a_lead}", "beta").get_json()
    assert other["reply"] == f"There is no lead #{two.a_lead}."
    # Several workspaces and none named: the request is refused before the copilot runs.
    assert ask(client, two.ada_token, "/hot").status_code == 400
    # Someone of the first workspace cannot ask about beta's.
    assert ask(client, two.carl_token, "/hot", "beta").status_code == 403
    carl = ask(client, two.carl_token, f"summarise lead {two.b_lead}").get_json()["reply"]
    assert carl == f"There is no lead #{two.b_lead}."


def test_a_thread_of_one_workspace_is_not_continued_in_another(client, two, world) -> None:  # type: ignore[no-untyped-def]
    asked = ask(client, two.ada_token, f"archive {two.a_lead}", "default", thread="room")
    assert asked.get_json()["pending_confirmation"] is not None
    elsewhere = ask(client, two.ada_token, "yes", "beta", thread="room").get_json()
    assert elsewhere["reply"] == "There is nothing waiting for a yes or no right now."
    assert not world.get(two.a_lead).archived
    done = ask(client, two.ada_token, "yes", "default", thread="room").get_json()
    assert done["pending_confirmation"] is None
    assert world.get(two.a_lead).archived


@pytest.fixture
def telegram():  # type: ignore[no-untyped-def]
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


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


def say(telegram: FakeTelegram, text: str, count: int) -> str:
    telegram.push_text(user_id=SARAH_TG, text=text)
    telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=count)
    return texts(telegram, SARAH_TG)[count - 1]


def test_in_telegram_the_agent_chooses_a_workspace_and_the_copilot_stays_in_it(  # type: ignore[no-untyped-def]
    telegram, bot, two
) -> None:
    first = say(telegram, "/hot", 1)
    assert first.startswith("You work in several workspaces: choose one first.")
    assert "default: Default (admin)" in first and "beta: Beta Ltd (agent)" in first
    assert "Dana" not in first
    assert "You do not work in a workspace 'nowhere'" in say(telegram, "/workspace nowhere", 2)
    assert say(telegram, "/workspace beta", 3) == "Now working in Beta Ltd. Ask me about its leads."
    hot = say(telegram, "/hot", 4)
    assert f"#{two.b_lead} Zebra Dana" in hot and "Alpha" not in hot
    listing = say(telegram, "/workspace", 5)
    assert "beta: Beta Ltd (agent) ← now" in listing
    say(telegram, "/workspace default", 6)
    hot = say(telegram, "/hot", 7)
    assert f"#{two.a_lead} Alpha Dana" in hot and "Zebra" not in hot


def test_a_notification_of_another_workspace_is_delivered_and_its_buttons_work_there(  # type: ignore[no-untyped-def]
    telegram, copilot, sf, clock, two
) -> None:
    with in_workspace(two.b), sf.begin() as session:
        notify(
            session.get(Agent, two.ada),
            get_lead(two.b_lead, session=session),
            "Zebra Dana needs a human",
            session=session,
        )
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=0.05,
    )
    with RunningBot(application):
        [sent] = telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG)
        assert sent["text"].startswith("<b>🔔 Zebra Dana needs a human</b>")
        buttons = sent["reply_markup"]["inline_keyboard"][0]
        assert buttons[0]["callback_data"] == f"n:sum:{two.b_lead}:{two.b}"
        # Her copilot has no workspace chosen: the button works in the notification's.
        telegram.push_callback(user_id=SARAH_TG, data=buttons[0]["callback_data"], message=sent)
        telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=2)
        assert texts(telegram, SARAH_TG)[1].startswith(f"<b>Lead #{two.b_lead} Zebra Dana</b>")
        # A made-up button naming another lead in the first workspace finds nothing of beta.
        telegram.push_callback(user_id=SARAH_TG, data=f"n:sum:{two.b_lead}", message=sent)
        telegram.wait_for_sent(lambda m: m["chat_id"] == SARAH_TG, count=3)
        assert "Zebra" not in texts(telegram, SARAH_TG)[2]
