"""The console's "Send email" form on the lead page and in the inbox, against a real SMTP server on
127.0.0.1: sent, failed (shown), uncertain (shown, sent again only on request), and hidden when
email is not set up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import load_settings
from tests.api.conftest import Clock, World
from tests.app_support import build_app, fixed
from tests.console.conftest import Console
from tests.fakes.fake_smtp import FakeSmtp, running_smtp
from webhooks.mail import EmailChannel, parse_smtp_url
from webhooks.outbound import ChannelOutbox

SENDER = "sales@acme.test"


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with running_smtp() as server:
        yield server


@pytest.fixture
def app(
    session_factory: sessionmaker[Session],
    clock: Clock,
    prompts: Any,
    smtp: FakeSmtp,
    tmp_path: Any,
) -> Flask:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}", smtp_url=smtp.url, email_from=SENDER
    )
    outbox = ChannelOutbox(
        session_factory=session_factory,
        settings=settings,
        email=EmailChannel(parse_smtp_url(smtp.url), sender=SENDER, sleep=lambda _: None),
    )
    app = build_app(settings, session_factory, prompts=fixed(prompts), clock=clock, outbox=outbox)
    app.testing = True
    return app


def _signed_in(app: Flask, world: World) -> Console:
    world.agent("Sarah", email="sarah@example.com", password="correct horse")
    console = Console(app.test_client())
    assert console.login(email="sarah@example.com", password="correct horse").status_code == 302
    return console


def test_the_lead_page_sends_an_email_and_shows_it_in_the_timeline(
    app: Flask, world: World, smtp: FakeSmtp
) -> None:
    sarah = _signed_in(app, world)
    lead = world.lead("Dana", email="dana@example.com")
    page = sarah.get(f"/console/leads/{lead}").text
    assert 'id="email-form"' in page and "Send email to dana@example.com" in page
    response = sarah.post(
        f"/console/leads/{lead}/email", {"subject": "Your quote", "body": "Here it is, Dana."}
    )
    assert response.status_code == 302
    page = sarah.get(response.headers["Location"]).text
    assert "Email sent to dana@example.com." in page
    assert '<strong class="subject">Your quote</strong>' in page
    assert "Here it is, Dana." in page
    assert [r.parsed.subject for r in smtp.handler.received] == ["Your quote"]


def test_a_failure_is_shown_and_an_uncertain_email_is_sent_again_only_on_request(
    app: Flask, world: World, smtp: FakeSmtp
) -> None:
    sarah = _signed_in(app, world)
    lead = world.lead("Dana", email="dana@example.com")
    smtp.handler.data_replies = ["550 5.1.1 Mailbox unavailable", "drop"]
    failed = sarah.post(f"/console/leads/{lead}/email", {"subject": "One", "body": "First"})
    page = sarah.get(failed.headers["Location"]).text
    assert "was not sent" in page and "550 5.1.1 Mailbox unavailable" in page
    unsure = sarah.post(f"/console/leads/{lead}/email", {"subject": "Two", "body": "Second"})
    page = sarah.get(unsure.headers["Location"]).text
    assert "may or may not have arrived" in page
    assert "uncertain: the connection to the SMTP server broke" in page
    assert page.count("Send again") == 2
    assert smtp.handler.data_commands == 2
    resend = page.split("/email/")[2].split("/resend")[0]
    again = sarah.post(f"/console/leads/{lead}/email/{resend}/resend")
    page = sarah.get(again.headers["Location"]).text
    assert "Email sent to dana@example.com." in page
    assert [r.parsed.subject for r in smtp.handler.received] == ["Two"]


def test_the_inbox_reply_box_sends_email_and_comes_back(
    app: Flask, world: World, smtp: FakeSmtp
) -> None:
    sarah = _signed_in(app, world)
    lead = world.lead("Dana", channel="web", email="dana@example.com")
    world.customer_message(lead, "Can you email me the brochure?")
    room = world.conversation_of(lead, "web")
    pane = sarah.get(f"/console/inbox?tab=unassigned&c={room}").text
    assert 'id="email-form"' in pane
    # The form comes back to this conversation of the inbox.
    assert '<input type="hidden" name="back" value="inbox">' in pane
    assert f'<input type="hidden" name="conversation_id" value="{room}">' in pane
    response = sarah.post(
        f"/console/leads/{lead}/email",
        {
            "subject": "Brochure",
            "body": "Attached below.",
            "back": "inbox",
            "conversation_id": str(room),
        },
    )
    assert response.headers["Location"].endswith(f"/console/inbox?c={room}")
    assert len(smtp.handler.received) == 1


def test_without_smtp_the_form_is_hidden_and_a_post_is_refused(
    session_factory: sessionmaker[Session], clock: Clock, prompts: Any, tmp_path: Any
) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    app = build_app(settings, session_factory, prompts=fixed(prompts), clock=clock)
    app.testing = True
    world = World(app, session_factory, clock)
    sarah = _signed_in(app, world)
    lead = world.lead("Dana", email="dana@example.com")
    assert 'id="email-form"' not in sarah.get(f"/console/leads/{lead}").text
    response = sarah.post(f"/console/leads/{lead}/email", {"subject": "Hi", "body": "Hello"})
    assert "email is not set up" in sarah.get(response.headers["Location"]).text
