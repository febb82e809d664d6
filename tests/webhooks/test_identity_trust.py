"""Identity trust end to end, over HTTP: signed WhatsApp webhooks, the web chat API and the REST
API with several agents' tokens, the offline bot answering every stored message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from store.agents import create_agent
from store.models import Conversation, Lead, Message, Notification
from tests.webhooks.meta_payloads import (
    PAGE_ID,
    PHONE_NUMBER_ID,
    dumps,
    fb_body,
    fb_text,
    wa_body,
    wa_change,
    wa_contact,
    wa_message,
)
from tests.webhooks.support import Clock, make_settings, signed_post
from webhooks.webchat import identity_hash

WEBCHAT_SECRET = "site-secret-for-tests"
VICTIM_WA = "14155550102"
VICTIM_PHONE = "+14155550102"
PRIVATE = ("12 Elm Street", "order 4471")


class InlineDispatcher:
    """Answers a conversation as soon as it is handed over (after the storing transaction)."""

    def __init__(self, bot: BotService) -> None:
        self.bot = bot

    def submit(self, conversation_id: int) -> None:
        self.bot.process_conversation(conversation_id)

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "kind": "inline"}


@dataclass
class Desk:
    app: Flask
    client: FlaskClient
    session_factory: sessionmaker[Session]
    clock: Clock

    # -- people ---------------------------------------------------------------------------------

    def agent(self, name: str, role: str = "agent") -> tuple[int, dict[str, str]]:
        with self.session_factory.begin() as session:
            agent, token = create_agent(name, session=session, role=role)
            return agent.id, {"Authorization": f"Bearer {token}"}

    def whatsapp(
        self,
        wa_id: str,
        text: str,
        name: str = "Dana Smith",
        phone_number_id: str = PHONE_NUMBER_ID,
    ) -> Any:
        change = wa_change(
            contacts=[wa_contact(wa_id, name)], messages=[wa_message(wa_id=wa_id, body=text)]
        )
        change["value"]["metadata"]["phone_number_id"] = phone_number_id
        response = signed_post(self.client, "/webhooks/whatsapp", dumps(wa_body(change)))
        assert response.status_code == 200, response.get_json()
        return response

    def visitor(self, **fields: Any) -> dict[str, str]:
        response = self.client.post("/api/chat/sessions", json=fields)
        assert response.status_code == 201, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['session']}"}

    def say(self, visitor: dict[str, str], text: str) -> None:
        response = self.client.post("/api/chat/messages", json={"text": text}, headers=visitor)
        assert response.status_code == 201, response.get_json()

    def seen_by(self, visitor: dict[str, str]) -> list[str]:
        response = self.client.get("/api/chat/messages", headers=visitor)
        return [m["text"] for m in response.get_json()["messages"]]

    # -- the store ------------------------------------------------------------------------------

    def lead_of(self, channel: str, external_id: str) -> Lead:
        from store.leads import find_identity, get_lead

        with self.session_factory() as session:
            identity = find_identity(channel, external_id, session=session)
            assert identity is not None
            return get_lead(identity.lead_id, session=session)

    def web_lead(self, visitor: dict[str, str]) -> Lead:
        from store.agents import hash_token
        from store.models import ChatSession

        token = visitor["Authorization"].split(" ", 1)[1]
        with self.session_factory() as session:
            row = session.scalars(
                select(ChatSession).where(ChatSession.token_hash == hash_token(token))
            ).one()
        return self.lead_of("web", row.external_id)

    def live_leads(self) -> list[Lead]:
        with self.session_factory() as session:
            return list(session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))))

    def outbound(self, channel: str) -> list[Message]:
        with self.session_factory() as session:
            return list(
                session.scalars(
                    select(Message)
                    .where(Message.channel == channel, Message.direction == "out")
                    .order_by(Message.id)
                )
            )

    def assign(self, lead_id: int, agent_id: int) -> None:
        with self.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            assert lead is not None
            lead.assigned_agent_id = agent_id


@pytest.fixture
def make_desk(
    session_factory: sessionmaker[Session], make_app: Callable[..., Flask]
) -> Callable[..., Desk]:
    def build(
        *, model: Any = None, secret: str | None = WEBCHAT_SECRET, page_id: str | None = None
    ) -> Desk:
        clock = Clock()
        prompts = load_prompts(DEFAULT_PROMPTS_DIR)
        outbox = LocalOutbox(session_factory)
        bot = BotService(
            session_factory=session_factory,
            prompts=lambda: prompts,
            outbox=outbox,
            clock=clock,
            model=model,
        )
        settings = make_settings(
            whatsapp_phone_number_id=PHONE_NUMBER_ID,
            webchat_secret=secret,
            messenger_page_id=page_id,
        )
        app = make_app(
            settings,
            dispatcher=InlineDispatcher(bot),
            outbox=outbox,
            clock=clock,
            prompts=lambda: prompts,
        )
        return Desk(app, app.test_client(), session_factory, clock)

    return build


@pytest.fixture
def desk(make_desk: Callable[..., Desk]) -> Desk:
    return make_desk()


def _texts(messages: list[Message]) -> str:
    return "\n".join(m.text for m in messages)


# ---- the attack stories ---------------------------------------------------------------------


def test_a_stranger_claiming_a_customers_email_and_phone_never_steps_into_their_conversation(
    desk: Desk,
) -> None:
    _, agent = desk.agent("Alex")
    _, admin = desk.agent("Ada", role="admin")
    desk.whatsapp(
        VICTIM_WA, "Hi, I'm Dana, email Jo.Smith@Example.com. My order 4471 goes to 12 Elm Street"
    )
    victim = desk.lead_of("whatsapp", VICTIM_WA)
    assert victim.email == "Jo.Smith@example.com"

    stranger = desk.visitor(email="jo.smith@example.com")
    desk.say(stranger, "hello, my number is +1 415 555 0102")
    web = desk.web_lead(stranger)
    assert web.id != victim.id and len(desk.live_leads()) == 2

    # Agents see the suggestion on both leads, with how each detail is known.
    shown = desk.client.get(f"/api/leads/{victim.id}", headers=agent).get_json()
    assert [s["other_lead_id"] for s in shown["merge_suggestions"]] == [web.id]
    assert shown["phone_trust"] == "verified"
    assert {i["channel"]: i["trust"] for i in shown["identities"]} == {"whatsapp": "verified"}
    other = desk.client.get(f"/api/leads/{web.id}", headers=agent).get_json()
    assert [s["other_lead_id"] for s in other["merge_suggestions"]] == [victim.id]
    assert "claimed on web chat" in other["merge_suggestions"][0]["reason"]
    assert {(c["kind"], c["trust"]) for c in other["contacts"]} == {
        ("email", "claimed"),
        ("phone", "claimed"),
    }

    desk.say(stranger, "I'm not interested, stop contacting me")
    with desk.session_factory() as session:
        real = session.get(Lead, victim.id)
        assert real is not None
        assert real.status == "New" and not real.ai_stopped
    # The agent's reply goes to the customer on WhatsApp, never to the web visitor.
    reply = desk.client.post(
        f"/api/leads/{victim.id}/reply", json={"text": "Your order ships"}, headers=agent
    )
    assert reply.status_code == 201
    assert reply.get_json()["message"]["channel"] == "whatsapp"
    assert "Your order ships" not in desk.seen_by(stranger)
    assert not any(secret in text for text in desk.seen_by(stranger) for secret in PRIVATE)

    # Even once an admin merges the two by mistake, each conversation stays a room of its own.
    merged = desk.client.post(
        f"/api/leads/{victim.id}/merge", json={"other_lead_id": web.id}, headers=admin
    )
    assert merged.status_code == 200, merged.get_json()
    rooms = {c["channel"]: c for c in merged.get_json()["conversations"]}
    assert rooms["web"]["trust"] == "claimed" and rooms["whatsapp"]["trust"] == "verified"
    desk.say(stranger, "stop contacting me, remove me")
    desk.say(stranger, "what was my order number and address again?")
    with desk.session_factory() as session:
        real = session.get(Lead, victim.id)
        assert real is not None and real.status == "New" and not real.ai_stopped
        web_room = session.get(Conversation, rooms["web"]["id"])
        assert web_room is not None and web_room.ai_stopped
    again = desk.client.post(
        f"/api/leads/{victim.id}/reply", json={"text": "Tracking: 88"}, headers=agent
    )
    assert again.get_json()["message"]["channel"] == "whatsapp"
    seen = desk.seen_by(stranger)
    assert "Tracking: 88" not in seen
    assert not any(secret in text for text in seen for secret in PRIVATE)
    # Once the agent's takeover window is over the bot answers on WhatsApp again: the stranger's
    # "stop" stopped only their own room.
    desk.clock.advance(hours=2)
    before = len(desk.outbound("whatsapp"))
    desk.whatsapp(VICTIM_WA, "Thanks! Do you also install on weekends?")
    assert len(desk.outbound("whatsapp")) > before
    # An agent who resumes the bot resumes it in every room of the lead.
    resumed = desk.client.post(f"/api/leads/{victim.id}/bot/resume", headers=agent).get_json()
    assert not any(c["ai_stopped"] for c in resumed["conversations"])


def test_with_a_model_the_prompt_for_a_stranger_never_holds_the_customers_messages(
    make_desk: Callable[..., Desk],
    fake_openai: Any,
) -> None:
    from leaddesk.llm import make_chat_model
    from leaddesk.settings import load_settings

    model = make_chat_model(
        load_settings(openai_api_key="test-key", openai_base_url=fake_openai.base_url)
    )
    desk = make_desk(model=model)
    _, admin = desk.agent("Ada", role="admin")
    desk.whatsapp(VICTIM_WA, "My order 4471 goes to 12 Elm Street")
    victim = desk.lead_of("whatsapp", VICTIM_WA)
    stranger = desk.visitor(phone="+1 415 555 0102")
    web = desk.web_lead(stranger)
    desk.client.post(f"/api/leads/{victim.id}/merge", json={"other_lead_id": web.id}, headers=admin)
    fake_openai.reset()
    desk.say(stranger, "remind me where my order goes?")
    assert fake_openai.calls >= 1
    prompt = str(fake_openai.requests[-1].messages)
    assert "remind me where my order goes" in prompt
    assert not any(secret in prompt for secret in PRIVATE)
    assert "Dana" not in prompt


def test_a_stranger_typing_another_agents_customers_phone_cannot_take_over_their_lead(
    desk: Desk,
) -> None:
    a_id, agent_a = desk.agent("Agent A")
    b_id, agent_b = desk.agent("Agent B")
    _, admin = desk.agent("Ada", role="admin")
    visitor = desk.visitor(name="Older web lead")
    older = desk.web_lead(visitor)
    desk.assign(older.id, a_id)
    desk.whatsapp(VICTIM_WA, "Hello, interested in the Home package")
    theirs = desk.lead_of("whatsapp", VICTIM_WA)
    desk.assign(theirs.id, b_id)
    note = desk.client.post(
        f"/api/leads/{theirs.id}/notes", json={"text": "B's private note"}, headers=agent_b
    )
    assert note.status_code == 201

    desk.say(visitor, "you can call me on +1 415 555 0102")

    assert desk.web_lead(visitor).id == older.id != theirs.id
    assert desk.client.get(f"/api/leads/{theirs.id}", headers=agent_b).status_code == 200
    assert desk.client.get(f"/api/leads/{theirs.id}", headers=agent_a).status_code == 403
    assert desk.client.get(f"/api/leads/{theirs.id}/notes", headers=agent_a).status_code == 403
    mine = desk.client.get(f"/api/leads/{older.id}", headers=agent_a).get_json()
    assert "B's private note" not in str(mine)
    assert [s["other_lead_id"] for s in mine["merge_suggestions"]] == [theirs.id]

    # Two agents' leads: only an admin may merge them.
    refused = desk.client.post(
        f"/api/leads/{older.id}/merge", json={"other_lead_id": theirs.id}, headers=agent_a
    )
    assert refused.status_code == 403
    assert (
        desk.client.post(
            f"/api/leads/{theirs.id}/merge", json={"other_lead_id": older.id}, headers=agent_b
        ).status_code
        == 403
    )
    merged = desk.client.post(
        f"/api/leads/{older.id}/merge", json={"other_lead_id": theirs.id}, headers=admin
    )
    assert merged.status_code == 200
    assert merged.get_json()["assigned_agent"]["id"] == a_id  # the survivor keeps its owner
    assert any(a["action"] == "merge" and a["field"] == "owner" for a in merged.get_json()["audit"])
    # B is told, and keeps reading (only) what they wrote.
    with desk.session_factory() as session:
        told = session.scalars(
            select(Notification).where(Notification.agent_id == b_id, Notification.kind == "merged")
        ).all()
        assert len(told) == 1
    notes = desk.client.get(f"/api/leads/{theirs.id}/notes", headers=agent_b)
    assert notes.status_code == 200
    assert [n["text"] for n in notes.get_json()["notes"]] == ["B's private note"]


# ---- verified evidence merges, claims suggest -----------------------------------------------


def test_a_verified_whatsapp_number_merges_with_the_lead_that_only_claimed_it(desk: Desk) -> None:
    _, agent = desk.agent("Alex")
    visitor = desk.visitor(name="Sam", phone="(415) 555-0102")
    claimed = desk.web_lead(visitor)
    assert claimed.phone == VICTIM_PHONE
    desk.whatsapp(VICTIM_WA, "Hi, it's Sam again from WhatsApp")
    lead = desk.lead_of("whatsapp", VICTIM_WA)
    assert lead.id == claimed.id and len(desk.live_leads()) == 1
    desk.say(visitor, "hello from the website")
    shown = desk.client.get(f"/api/leads/{lead.id}", headers=agent).get_json()
    assert shown["phone_trust"] == "verified"
    assert sorted(c["trust"] for c in shown["conversations"]) == ["claimed", "verified"]
    # The default reply goes to the verified conversation even though the web one wrote last.
    reply = desk.client.post(
        f"/api/leads/{lead.id}/reply", json={"text": "Hi Sam"}, headers=agent
    ).get_json()
    assert reply["message"]["channel"] == "whatsapp"
    web_room = next(c["id"] for c in shown["conversations"] if c["channel"] == "web")
    chosen = desk.client.post(
        f"/api/leads/{lead.id}/reply",
        json={"text": "Answering here", "conversation_id": web_room},
        headers=agent,
    )
    assert chosen.status_code == 201 and chosen.get_json()["message"]["channel"] == "web"
    assert "Answering here" in desk.seen_by(visitor)


def test_a_signed_web_identity_merges_with_the_whatsapp_lead_and_finds_it_again(
    desk: Desk,
) -> None:
    desk.whatsapp(VICTIM_WA, "Hello from WhatsApp")
    whatsapp = desk.lead_of("whatsapp", VICTIM_WA)
    signed = {
        "identity": VICTIM_PHONE,
        "identity_hash": identity_hash(VICTIM_PHONE, WEBCHAT_SECRET),
    }
    first = desk.visitor(**signed)
    desk.say(first, "hello from the site")
    assert desk.web_lead(first).id == whatsapp.id
    second = desk.visitor(**signed)  # a new tab, the same signed-in user
    desk.say(second, "me again")
    assert desk.web_lead(second).id == whatsapp.id
    with desk.session_factory() as session:
        rooms = session.scalars(
            select(Conversation).where(Conversation.lead_id == whatsapp.id)
        ).all()
        assert sorted(c.channel for c in rooms) == ["web", "whatsapp"]
    assert len(desk.live_leads()) == 1


def test_a_wrong_identity_hash_is_refused_and_without_the_secret_identities_are_claims(
    make_desk: Callable[..., Desk],
) -> None:
    desk = make_desk()
    bad = desk.client.post(
        "/api/chat/sessions", json={"identity": VICTIM_PHONE, "identity_hash": "0" * 64}
    )
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_identity_hash"
    missing = desk.client.post("/api/chat/sessions", json={"identity": "user-7"})
    assert missing.status_code == 400

    open_desk = make_desk(secret=None)
    open_desk.whatsapp(VICTIM_WA, "Hello from WhatsApp")
    unsigned = open_desk.visitor(
        identity=VICTIM_PHONE, identity_hash=identity_hash(VICTIM_PHONE, "guessed")
    )
    open_desk.say(unsigned, "hi")
    assert open_desk.web_lead(unsigned).id != open_desk.lead_of("whatsapp", VICTIM_WA).id


# ---- accepting suggestions ------------------------------------------------------------------


def test_a_suggestion_is_accepted_by_an_agent_with_access_to_both_and_refused_without(
    desk: Desk,
) -> None:
    a_id, agent_a = desk.agent("Agent A")
    b_id, _agent_b = desk.agent("Agent B")
    _, admin = desk.agent("Ada", role="admin")
    desk.whatsapp(VICTIM_WA, "Hello")
    whatsapp = desk.lead_of("whatsapp", VICTIM_WA)
    visitor = desk.visitor(phone=VICTIM_PHONE)
    desk.say(visitor, "hi there")
    web = desk.web_lead(visitor)

    # Nothing suggests these two are one person: an agent may not merge them, an admin may.
    desk.whatsapp("14155550177", "Someone else")
    stranger = desk.lead_of("whatsapp", "14155550177")
    no_hint = desk.client.post(
        f"/api/leads/{stranger.id}/merge", json={"other_lead_id": web.id}, headers=agent_a
    )
    assert no_hint.status_code == 403 and "suggest" in no_hint.get_json()["error"]["message"]

    desk.assign(web.id, b_id)
    without = desk.client.post(
        f"/api/leads/{whatsapp.id}/merge", json={"other_lead_id": web.id}, headers=agent_a
    )
    assert without.status_code == 403
    assert len(desk.live_leads()) == 3

    desk.assign(web.id, a_id)
    accepted = desk.client.post(
        f"/api/leads/{whatsapp.id}/merge", json={"other_lead_id": web.id}, headers=agent_a
    )
    assert accepted.status_code == 200
    body = accepted.get_json()
    assert body["id"] == whatsapp.id and body["merge_suggestions"] == []
    assert sorted(c["channel"] for c in body["conversations"]) == ["web", "whatsapp"]
    assert desk.client.get(f"/api/leads/{web.id}", headers=agent_a).get_json()["id"] == whatsapp.id
    by_admin = desk.client.post(
        f"/api/leads/{stranger.id}/merge", json={"other_lead_id": whatsapp.id}, headers=admin
    )
    assert by_admin.status_code == 200 and len(desk.live_leads()) == 1


def test_a_suggestion_is_dismissed_as_not_the_same_person_with_the_access_accepting_needs(
    desk: Desk,
) -> None:
    a_id, agent_a = desk.agent("Agent A")
    b_id, agent_b = desk.agent("Agent B")
    _, admin = desk.agent("Ada", role="admin")
    desk.whatsapp(VICTIM_WA, "Hello")
    whatsapp = desk.lead_of("whatsapp", VICTIM_WA)
    visitor = desk.visitor(phone=VICTIM_PHONE)
    desk.say(visitor, "hi there")
    web = desk.web_lead(visitor)
    listed = desk.client.get(f"/api/leads/{whatsapp.id}", headers=agent_a).get_json()
    (suggestion,) = listed["merge_suggestions"]
    path = f"/api/leads/{whatsapp.id}/merge-suggestions/{suggestion['id']}"

    # Access to both leads, as accepting needs; two agents' leads: only an admin decides.
    desk.assign(web.id, b_id)
    assert desk.client.delete(path, headers=agent_a).status_code == 403
    desk.assign(whatsapp.id, a_id)
    refused = desk.client.delete(path, headers=agent_a)
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]["message"]
    assert (
        desk.client.delete(
            f"/api/leads/{web.id}/merge-suggestions/{suggestion['id']}", headers=agent_b
        ).status_code
        == 403
    )
    missing = desk.client.delete(f"/api/leads/{whatsapp.id}/merge-suggestions/999", headers=admin)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"

    desk.assign(web.id, a_id)
    dismissed = desk.client.delete(path, headers=agent_a)
    assert dismissed.status_code == 200
    assert dismissed.get_json()["merge_suggestions"] == []
    assert any(
        a["action"] == "dismiss_merge" and a["old_value"] == str(web.id)
        for a in dismissed.get_json()["audit"]
    )
    other_side = desk.client.get(f"/api/leads/{web.id}", headers=agent_a).get_json()
    assert other_side["merge_suggestions"] == []
    assert any(a["action"] == "dismiss_merge" for a in other_side["audit"])
    assert desk.client.delete(path, headers=agent_a).status_code == 404  # already settled
    assert len(desk.live_leads()) == 2

    # "Not the same person" sticks: the visitor claiming the number again suggests nothing.
    desk.say(visitor, "my number is +1 415 555 0102")
    again = desk.client.get(f"/api/leads/{whatsapp.id}", headers=agent_a).get_json()
    assert again["merge_suggestions"] == []
    no_hint = desk.client.post(
        f"/api/leads/{whatsapp.id}/merge", json={"other_lead_id": web.id}, headers=agent_a
    )
    assert no_hint.status_code == 403  # an agent merges only on an open suggestion

    document = desk.client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/leads/{lead_id}/merge-suggestions/{suggestion_id}"]
    assert "delete" in operation


# ---- emails and our own numbers -------------------------------------------------------------


def test_emails_differing_only_in_case_are_one_lead_in_the_api(desk: Desk) -> None:
    _, agent = desk.agent("Alex")
    first = desk.client.post(
        "/api/leads", json={"name": "Jo", "email": "jo.smith@example.com"}, headers=agent
    )
    assert first.status_code == 201
    again = desk.client.post(
        "/api/leads", json={"name": "Jo", "email": "Jo.Smith@Example.com"}, headers=agent
    )
    assert again.status_code == 409


def test_emails_are_unique_whatever_their_case_in_the_database(
    session_factory: sessionmaker[Session],
) -> None:
    from sqlalchemy.exc import IntegrityError

    from store.models import utcnow

    def lead(email: str) -> Lead:
        return Lead(
            email=email,
            created_at=utcnow(),
            updated_at=utcnow(),
            score_factors=[],
            interests=[],
            objections=[],
            tags=[],
            custom_fields={},
        )

    with session_factory.begin() as session:
        session.add(lead("Jo.Smith@Example.com"))
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(lead("jo.smith@example.com"))


def test_a_webhook_for_another_number_or_page_is_acknowledged_and_ignored(
    make_desk: Callable[..., Desk],
    caplog: pytest.LogCaptureFixture,
) -> None:
    desk = make_desk(page_id=PAGE_ID)
    with caplog.at_level(logging.WARNING, logger="webhooks.meta"):
        answer = desk.whatsapp(VICTIM_WA, "hello", phone_number_id="999999999999")
        assert answer.get_json()["stored"] == 0
        other_page = fb_body(fb_text("hello", sender="psid-1"))
        other_page["entry"][0]["id"] = "111111111111"
        response = signed_post(desk.client, "/webhooks/messenger", dumps(other_page))
        assert response.status_code == 200 and response.get_json()["stored"] == 0
    assert desk.live_leads() == [] and desk.outbound("whatsapp") == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not ours" in r.getMessage() for r in warnings)
    ours = fb_body(fb_text("hello", sender="psid-1"))
    ours["entry"][0]["id"] = PAGE_ID
    assert signed_post(desk.client, "/webhooks/messenger", dumps(ours)).get_json()["stored"] == 1
