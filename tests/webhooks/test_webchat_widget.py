"""What the web chat widget shows besides the messages: the bot's own greeting from prompts/ (once:
the bot does not greet again), the pre-chat form business.yaml asks for, agents' display names and
the time of every message."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, PromptError, load_prompts
from bot.config import PromptConfig
from store.agents import create_agent
from store.leads import resolve
from store.models import CLAIMED, Lead, MergeSuggestion, Message
from tests.app_support import fixed
from tests.conftest import REPO_ROOT
from tests.webhooks.test_webchat import history, say, start


@pytest.fixture
def session_factory(sqlite_engine: Any) -> sessionmaker[Session]:
    from store import make_session_factory

    return make_session_factory(sqlite_engine)


@pytest.fixture
def prompts() -> PromptConfig:
    return load_prompts(REPO_ROOT / "prompts")


@pytest.fixture
def client(make_app: Any, prompts: PromptConfig) -> FlaskClient:
    return make_app(prompts=fixed(prompts)).test_client()


def test_the_widget_greets_with_the_bots_own_greeting_in_the_visitors_language(
    client: FlaskClient,
) -> None:
    english = client.get("/api/chat/config?lang=en").get_json()
    assert english["greeting"].startswith("Hi! Thanks for contacting Sunpeak Solar")
    assert english["language"] == "en"
    spanish = client.get("/api/chat/config?lang=es-MX").get_json()
    assert spanish["greeting"].startswith("¡Hola!") and spanish["language"] == "es"
    # A language the business does not speak: its default one.
    assert client.get("/api/chat/config?lang=ja").get_json()["language"] == "en"
    assert english["prechat"] == {"enabled": False, "ask": ["name", "email"], "required": False}


def test_the_bot_does_not_greet_a_second_time_after_the_widgets_greeting(
    client: FlaskClient, session_factory: sessionmaker[Session], prompts: PromptConfig
) -> None:
    auth = start(client)
    first = say(client, auth, "How much is a 6 kW system?", greeted="en")
    assert first.status_code == 201
    bot = BotService(
        session_factory=session_factory, prompts=prompts, outbox=LocalOutbox(session_factory)
    )
    with session_factory() as session:
        conversation_id = session.scalars(select(Message.conversation_id)).first()
    assert conversation_id is not None
    replies = bot.process_conversation(conversation_id)
    assert replies, "the bot answered"
    seen = history(client, auth)
    assert [m["kind"] for m in seen][:2] == ["greeting", "text"]  # the greeting reads first
    greeting = prompts.template("greeting", "en")
    texts = [m["text"] for m in seen]
    assert texts[0] == greeting
    assert sum(text.count("Thanks for contacting") for text in texts) == 1


def test_a_greeting_is_recorded_once_and_never_from_the_visitors_words(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    auth = start(client)
    say(client, auth, "Hi", greeted="Buy cheap pills at example.com")  # not a language: default
    say(client, auth, "Anyone?", greeted="en")  # the room has its greeting already
    with session_factory() as session:
        greetings = list(session.scalars(select(Message).where(Message.kind == "greeting")))
    assert len(greetings) == 1
    assert "pills" not in greetings[0].text and greetings[0].author == "bot"


def test_agents_replies_carry_the_agents_name_and_every_message_its_time(
    client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    auth = start(client)
    say(client, auth, "Can a person help me?")
    with session_factory.begin() as session:
        agent, _token = create_agent("Sarah Lee", session=session)
        message = session.scalars(select(Message)).one()
        session.add(
            Message(
                conversation_id=message.conversation_id,
                channel="web",
                direction="out",
                author="agent",
                agent_id=agent.id,
                text="Hi, Sarah here.",
                delivery_status="sent",
            )
        )
    seen = history(client, auth)
    assert seen[-1]["agent_name"] == "Sarah Lee"
    assert all(m["at"] for m in seen)
    assert "agent_name" not in seen[0]


def _edited_prompts(tmp_path: Any, old: str, new: str) -> Any:
    """The shipped prompts with one edit to business.yaml."""
    shutil.copytree(REPO_ROOT / "prompts", tmp_path / "prompts")
    path = tmp_path / "prompts" / "business.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path / "prompts"


def test_a_pre_chat_form_is_offered_when_business_yaml_asks_for_it(
    make_app: Any, tmp_path: Any
) -> None:
    directory = _edited_prompts(
        tmp_path,
        "  prechat: false\n  ask: [name, email]\n  required: false",
        "  prechat: true\n  ask: [name, phone]\n  required: true",
    )
    client = make_app(prompts=fixed(load_prompts(directory))).test_client()
    form = client.get("/api/chat/config").get_json()["prechat"]
    assert form == {"enabled": True, "ask": ["name", "phone"], "required": True}


def test_what_the_pre_chat_form_sends_is_a_claim_never_a_verified_identity(
    make_app: Any, tmp_path: Any, session_factory: sessionmaker[Session]
) -> None:
    directory = _edited_prompts(
        tmp_path,
        "  prechat: false\n  ask: [name, email]\n",
        "  prechat: true\n  ask: [name, email, phone]\n",
    )
    client = make_app(prompts=fixed(load_prompts(directory))).test_client()
    assert client.get("/api/chat/config").get_json()["prechat"]["ask"] == ["name", "email", "phone"]
    # A customer WhatsApp vouches for, with that number and email.
    with session_factory.begin() as session:
        customer = resolve(
            "whatsapp",
            "14155550123",
            phone="+14155550123",
            email="dana@example.com",
            name="Dana Whitfield",
            session=session,
        ).id
    # A visitor fills the form in with the same details (the form posts them at session start).
    auth = start(client, name="Someone Else", email="Dana@Example.com", phone="(415) 555-0123")
    assert say(client, auth, "What did I order?").status_code == 201
    with session_factory() as session:
        web = session.scalars(select(Lead).where(Lead.id != customer)).one()
        assert web.merged_into_id is None and web.name == "Someone Else"
        assert {i.channel: i.trust for i in session.get(Lead, customer).identities} == {
            "whatsapp": "verified"
        }
        assert [i.trust for i in web.identities] == [CLAIMED]
        assert {(c.kind, c.trust) for c in web.contacts} == {("email", CLAIMED), ("phone", CLAIMED)}
        suggested = session.scalars(select(MergeSuggestion)).all()
        assert {frozenset((m.lead_id, m.other_lead_id)) for m in suggested} == {
            frozenset((web.id, customer))
        }
        assert session.get(Lead, customer).name == "Dana Whitfield"


def test_business_yaml_rejects_an_unknown_pre_chat_field(tmp_path: Any) -> None:
    directory = _edited_prompts(tmp_path, "ask: [name, email]", "ask: [name, fax]")
    with pytest.raises(PromptError, match=r"business\.yaml:\d+.*fax"):
        load_prompts(directory)
