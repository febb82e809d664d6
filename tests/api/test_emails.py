"""POST /api/leads/<id>/emails (and .../resend) against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import load_settings
from tests.api.conftest import Clock, Prompts, World, default_prompts
from tests.app_support import build_app, fixed
from tests.fakes.fake_smtp import FakeSmtp, running_smtp
from webhooks.mail import EmailChannel, parse_smtp_url
from webhooks.outbound import ChannelOutbox

SENDER = "sales@acme.test"


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with running_smtp() as server:
        yield server


@pytest.fixture
def app(
    session_factory: sessionmaker[Session],
    clock: Clock,
    prompts: Prompts,
    smtp: FakeSmtp,
    tmp_path: Any,
) -> Flask:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        smtp_url=smtp.url,
        email_from=SENDER,
    )
    outbox = ChannelOutbox(
        session_factory=session_factory,
        settings=settings,
        email=EmailChannel(
            parse_smtp_url(smtp.url), sender=SENDER, timeout=3.0, sleep=lambda _: None
        ),
    )
    app = build_app(settings, session_factory, prompts=fixed(prompts), clock=clock, outbox=outbox)
    app.testing = True
    return app


def test_an_agent_emails_a_lead_and_sees_it_in_the_timeline(
    world: World, team: dict[str, Any], smtp: FakeSmtp
) -> None:
    lead = world.lead("Dana", email="dana@example.com", agent_id=team["sarah_id"])
    response = team["sarah"].post(
        f"/api/leads/{lead}/emails", json={"subject": "Your quote", "body": "Here it is."}
    )
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["delivery_status"] == "sent" and data["error"] is None
    assert data["to"] == "dana@example.com" and data["subject"] == "Your quote"
    assert data["message"]["channel"] == "email" and data["message"]["text"] == "Here it is."
    [received] = smtp.handler.received
    assert received.parsed.message_id == data["message_id_header"]
    detail = team["sarah"].get(f"/api/leads/{lead}").get_json()
    [conversation] = [c for c in detail["conversations"] if c["channel"] == "email"]
    emails = conversation["messages"]
    assert [(m["direction"], m["delivery_status"]) for m in emails] == [("out", "sent")]


def test_a_failed_email_is_reported_and_can_be_sent_again(
    world: World, team: dict[str, Any], smtp: FakeSmtp
) -> None:
    lead = world.lead("Dana", email="dana@example.com")
    smtp.handler.data_replies = ["550 5.7.1 Relaying denied"]
    first = team["sarah"].post(
        f"/api/leads/{lead}/emails", json={"subject": "Hello", "body": "Hi Dana"}
    )
    assert first.status_code == 201
    failed = first.get_json()
    assert failed["delivery_status"] == "failed" and "550" in failed["error"]
    again = team["sarah"].post(f"/api/leads/{lead}/emails/{failed['message']['id']}/resend")
    assert again.status_code == 201
    sent = again.get_json()
    assert sent["delivery_status"] == "sent" and sent["subject"] == "Hello"
    assert sent["message_id_header"] != failed["message_id_header"]
    assert len(smtp.handler.received) == 1
    # A sent email is not sent again.
    twice = team["sarah"].post(f"/api/leads/{lead}/emails/{sent['message']['id']}/resend")
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "not_resendable"


def test_permissions_and_bad_input(world: World, team: dict[str, Any], smtp: FakeSmtp) -> None:
    mikes = world.lead("Mike's", email="m@example.com", agent_id=team["mike_id"])
    body = {"subject": "Hi", "body": "Hello"}
    assert team["sarah"].post(f"/api/leads/{mikes}/emails", json=body).status_code == 403
    assert team["sarah"].post("/api/leads/999999/emails", json=body).status_code == 404
    assert world.anonymous().post(f"/api/leads/{mikes}/emails", json=body).status_code == 401
    mine = world.lead("Mine", email="me@example.com")
    bad = team["sarah"].post(f"/api/leads/{mine}/emails", json={"subject": "", "body": "x"})
    assert bad.status_code in (400, 422) and bad.get_json()["error"]["field"] == "subject"
    extra = team["sarah"].post(f"/api/leads/{mine}/emails", json={**body, "cc": "x@y.z"})
    assert extra.status_code in (400, 422)
    no_json = team["sarah"].post(f"/api/leads/{mine}/emails", data="x")
    assert no_json.status_code == 400
    nobody = world.lead("No address")
    missing = team["sarah"].post(f"/api/leads/{nobody}/emails", json=body)
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "email"
    other = team["sarah"].post(f"/api/leads/{mine}/emails/123456/resend")
    assert other.status_code == 404
    assert smtp.handler.data_commands == 0


def test_without_smtp_the_api_says_so(
    session_factory: sessionmaker[Session], clock: Clock, tmp_path: Any
) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    app = build_app(settings, session_factory, prompts=fixed(default_prompts()), clock=clock)
    app.testing = True
    world = World(app, session_factory, clock)
    _, sarah = world.agent("Sarah")
    lead = world.lead("Dana", email="dana@example.com")
    response = sarah.post(f"/api/leads/{lead}/emails", json={"subject": "Hi", "body": "Hello"})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "email_not_configured" and "LEADDESK_SMTP_URL" in error["message"]
