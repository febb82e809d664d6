"""Email to leads through a real SMTP server on 127.0.0.1 (aiosmtpd): what arrives, transient and
permanent failures, and no second send after a crash between the send and its record."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import SettingsError
from store import make_engine, make_session_factory, upgrade
from store.agents import create_agent
from store.domain.errors import Invalid, LeadLocked, NotAllowed
from store.domain.mail import EmailOff, EmailOutcome, send_email
from store.leads import resolve
from store.models import Agent, AuditEvent, Conversation, Lead, Message, utcnow
from store.pending import mark_interrupted_sends
from tests.fakes.fake_smtp import FakeSmtp, free_port, running_smtp
from tests.webhooks.support import make_settings
from webhooks.mail import EmailChannel, build_message, parse_message, parse_smtp_url
from webhooks.outbound import ChannelOutbox, channel_statuses

SENDER = "Acme Sales <sales@acme.test>"
REPO = Path(__file__).resolve().parents[2]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with running_smtp() as server:
        yield server


def make_outbox(
    session_factory: sessionmaker[Session], url: str, sleeps: Sleeps | None = None
) -> ChannelOutbox:
    settings = make_settings(smtp_url=url, email_from=SENDER)
    channel = EmailChannel(
        parse_smtp_url(url),
        sender=SENDER,
        timeout=3.0,
        retry_delays=(1.0, 2.0, 4.0),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return ChannelOutbox(session_factory=session_factory, settings=settings, email=channel)


def setup_lead(
    session_factory: sessionmaker[Session],
    *,
    email: str | None = "dana@example.com",
    owner: str | None = None,
) -> tuple[int, int]:
    """A lead (with `email`) and an agent who may email it; (lead id, agent id)."""
    with session_factory.begin() as session:
        agent, _ = create_agent("Sarah", session=session)
        lead = resolve("web", "visitor-1", email=email, name="Dana Reyes", session=session)
        if owner:
            other, _ = create_agent(owner, session=session)
            lead.assigned_agent_id = other.id
        return lead.id, agent.id


def send(
    session_factory: sessionmaker[Session],
    outbox: ChannelOutbox,
    lead_id: int,
    agent_id: int,
    subject: str = "Your quote",
    body: str = "Hi Dana,\n\nHere is the quote we talked about.\n",
    sender: str | None = SENDER,
) -> EmailOutcome:
    with session_factory() as session:
        agent = session.get_one(Agent, agent_id)
        session.expunge(agent)
    return send_email(
        lead_id,
        subject,
        body,
        by=agent,
        session_factory=session_factory,
        deliver=outbox.deliver,
        sender=sender,
    )


def test_sends_the_email_with_from_to_subject_and_message_id(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    outbox = make_outbox(session_factory, smtp.url)

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "sent" and result.error is None
    [received] = smtp.handler.received
    assert received.rcpt_tos == ["dana@example.com"]
    assert received.mail_from == "sales@acme.test"
    mail = received.parsed
    assert mail.sender == "sales@acme.test"
    assert mail.recipients == ("dana@example.com",)
    assert mail.subject == "Your quote"
    assert mail.text == "Hi Dana,\n\nHere is the quote we talked about."
    assert mail.message_id == result.header_message_id
    assert mail.message_id.startswith("<") and mail.message_id.endswith("@acme.test>")
    with session_factory() as session:
        message = session.get_one(Message, result.message_id)
        conversation = session.get_one(Conversation, message.conversation_id)
        assert (message.channel, message.direction, message.author) == ("email", "out", "agent")
        assert message.delivery_status == "sent"
        assert message.channel_message_id == mail.message_id
        assert message.agent_id == agent_id
        assert conversation.lead_id == lead_id and conversation.channel == "email"
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "email")).one()
        assert audit.lead_id == lead_id and audit.new_value == "Your quote"


def test_second_email_goes_in_the_same_conversation_with_a_new_message_id(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    outbox = make_outbox(session_factory, smtp.url)
    first = send(session_factory, outbox, lead_id, agent_id, subject="One")
    second = send(session_factory, outbox, lead_id, agent_id, subject="Two")
    assert first.header_message_id != second.header_message_id
    assert [r.parsed.subject for r in smtp.handler.received] == ["One", "Two"]
    with session_factory() as session:
        conversations = session.scalars(
            select(Conversation).where(Conversation.lead_id == lead_id)
        ).all()
        assert [c.channel for c in conversations].count("email") == 1


def test_a_transient_refusal_is_retried_with_backoff_then_sent(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    sleeps = Sleeps()
    outbox = make_outbox(session_factory, smtp.url, sleeps)
    smtp.handler.data_replies = ["451 4.3.0 Try again later"]

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "sent"
    assert smtp.handler.data_commands == 2
    assert len(smtp.handler.received) == 1
    assert sleeps == [1.0]


def test_connection_refused_is_retried_and_reported_when_it_lasts(
    session_factory: sessionmaker[Session],
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    sleeps = Sleeps()
    outbox = make_outbox(session_factory, f"smtp://127.0.0.1:{free_port()}", sleeps)

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "failed"
    assert result.error is not None
    assert "could not connect" in result.error and "gave up after 4 attempts" in result.error
    assert sleeps == [1.0, 2.0, 4.0]


def test_a_permanent_refusal_is_not_retried(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    sleeps = Sleeps()
    outbox = make_outbox(session_factory, smtp.url, sleeps)
    smtp.handler.data_replies = ["554 5.7.1 Message rejected as spam"]

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "failed"
    assert result.error is not None and "554" in result.error and "spam" in result.error
    assert smtp.handler.data_commands == 1 and smtp.handler.received == []
    assert sleeps == []


def test_a_refused_address_is_not_retried(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    sleeps = Sleeps()
    outbox = make_outbox(session_factory, smtp.url, sleeps)
    smtp.handler.rcpt_replies = {"dana@example.com": "550 5.1.1 No such user"}

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "failed"
    assert result.error is not None and "recipient" in result.error and "550" in result.error
    assert smtp.handler.data_commands == 0 and sleeps == []


def test_a_connection_lost_after_the_content_is_uncertain_and_not_retried(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    lead_id, agent_id = setup_lead(session_factory)
    sleeps = Sleeps()
    outbox = make_outbox(session_factory, smtp.url, sleeps)
    smtp.handler.data_replies = ["drop"]

    result = send(session_factory, outbox, lead_id, agent_id)

    assert result.status == "unknown"
    assert result.error is not None and "may or may not have been delivered" in result.error
    assert smtp.handler.data_commands == 1 and sleeps == []
    # Delivering it again (a retry, a restart's catch-up) sends nothing.
    outbox.deliver([result.message_id])
    outbox.resend_pending()
    assert smtp.handler.data_commands == 1


def test_no_second_send_after_a_crash_between_the_send_and_its_record(
    tmp_path: Path, smtp: FakeSmtp
) -> None:
    """The sending process dies while the server holds the message: the row stays "sending", is
    never sent again automatically, and is marked unknown (uncertain) by the sweep."""
    database = tmp_path / "crash.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    session_factory = make_session_factory(engine)
    lead_id, agent_id = setup_lead(session_factory)
    outbox = make_outbox(session_factory, smtp.url)
    # Record the send intent without delivering it: the child process delivers it.
    recorded: list[int] = []
    outcome = send_email_recorded_only(session_factory, lead_id, agent_id, recorded)
    assert outcome.status == "pending"

    script = textwrap.dedent(
        f"""
        from leaddesk.settings import load_settings
        from store import make_engine, make_session_factory
        from webhooks.mail import make_email_channel
        from webhooks.outbound import ChannelOutbox
        settings = load_settings(
            database_url="sqlite:///{database}", smtp_url="{smtp.url}", email_from="{SENDER}"
        )
        factory = make_session_factory(make_engine(settings.database_url))
        outbox = ChannelOutbox(
            session_factory=factory, settings=settings, email=make_email_channel(settings)
        )
        outbox.deliver([{recorded[0]}])
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)

    def crash() -> None:  # the content arrived; the sender dies before it hears "250"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

    smtp.handler.on_data = crash
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.returncode == -signal.SIGKILL
    smtp.handler.on_data = None
    # The server's thread records the message after `crash` returns: let it finish the command.
    settled = time.monotonic() + 5
    while not smtp.handler.received and time.monotonic() < settled:
        time.sleep(0.02)
    assert len(smtp.handler.received) == 1

    with session_factory() as session:
        assert session.get_one(Message, recorded[0]).delivery_status == "sending"
    # A restart's catch-up and a second delivery attempt send nothing.
    outbox.resend_pending()
    outbox.deliver(recorded)
    with session_factory.begin() as session:
        marked = mark_interrupted_sends(utcnow() + timedelta(seconds=1), session=session)
    assert marked == 1
    with session_factory() as session:
        message = session.get_one(Message, recorded[0])
        assert message.delivery_status == "unknown"
        assert message.error is not None and "not sent again automatically" in message.error
    assert len(smtp.handler.received) == 1
    assert smtp.handler.received[0].parsed.message_id == outcome.header_message_id
    engine.dispose()


def send_email_recorded_only(
    session_factory: sessionmaker[Session], lead_id: int, agent_id: int, recorded: list[int]
) -> EmailOutcome:
    with session_factory() as session:
        agent = session.get_one(Agent, agent_id)
        session.expunge(agent)
    return send_email(
        lead_id,
        "Your quote",
        "Here it is.",
        by=agent,
        session_factory=session_factory,
        deliver=recorded.extend,
        sender=SENDER,
    )


def test_the_rules_refuse_before_anything_is_recorded(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    outbox = make_outbox(session_factory, smtp.url)
    lead_id, agent_id = setup_lead(session_factory, owner="Mike")
    with pytest.raises(NotAllowed):
        send(session_factory, outbox, lead_id, agent_id)
    with session_factory.begin() as session:
        lead = session.get_one(Lead, lead_id)
        lead.assigned_agent_id = None
        lead.locked = True
    with pytest.raises(LeadLocked):
        send(session_factory, outbox, lead_id, agent_id)
    with session_factory.begin() as session:
        session.get_one(Lead, lead_id).locked = False
    with pytest.raises(Invalid) as empty:
        send(session_factory, outbox, lead_id, agent_id, subject="  ")
    assert empty.value.field == "subject"
    with pytest.raises(EmailOff):
        send(session_factory, outbox, lead_id, agent_id, sender=None)
    with session_factory.begin() as session:
        session.get_one(Lead, lead_id).email = None
    with pytest.raises(Invalid) as no_address:
        send(session_factory, outbox, lead_id, agent_id)
    assert no_address.value.field == "email"
    with session_factory() as session:
        assert session.scalars(select(Message).where(Message.channel == "email")).all() == []
    assert smtp.handler.data_commands == 0


def test_an_agent_reply_never_goes_to_the_email_conversation(
    session_factory: sessionmaker[Session], smtp: FakeSmtp
) -> None:
    from store.identity import reply_conversation

    with session_factory.begin() as session:
        agent, _ = create_agent("Sarah", session=session)
        lead = Lead(name="Typed in", email="typed@example.com")
        session.add(lead)
        session.flush()
        lead_id, agent_id = lead.id, agent.id
    outbox = make_outbox(session_factory, smtp.url)
    assert send(session_factory, outbox, lead_id, agent_id).status == "sent"
    with session_factory() as session:
        assert reply_conversation(session.get_one(Lead, lead_id), session=session) is None


def test_smtp_settings_are_checked_at_start() -> None:
    with pytest.raises(SettingsError, match="LEADDESK_SMTP_URL"):
        make_settings(smtp_url="http://mail.example.com", email_from=SENDER)
    with pytest.raises(SettingsError, match="LEADDESK_SMTP_URL"):
        make_settings(smtp_url="smtp://user:pass@:25", email_from=SENDER)
    with pytest.raises(SettingsError, match="LEADDESK_EMAIL_FROM"):
        make_settings(smtp_url="smtp://mail.example.com")
    with pytest.raises(SettingsError, match="LEADDESK_EMAIL_FROM"):
        make_settings(smtp_url="smtp://mail.example.com", email_from="not an address")
    config = parse_smtp_url("smtps://me%40acme.test:p%3Ass@mail.acme.test")
    assert (config.scheme, config.host, config.port) == ("smtps", "mail.acme.test", 465)
    assert (config.username, config.password) == ("me@acme.test", "p:ss")
    assert "p:ss" not in repr(config)
    assert parse_smtp_url("smtp://mail.acme.test").port == 587
    statuses = {s.channel: s.state for s in channel_statuses(make_settings())}
    assert statuses["email"] == "off"
    ready = make_settings(smtp_url="smtp://mail.acme.test", email_from=SENDER)
    assert {s.channel: s.state for s in channel_statuses(ready)}["email"] == "ready"


def test_parse_message_reads_a_raw_reply() -> None:
    raw = (
        b"From: Dana <dana@example.com>\r\nTo: sales@acme.test\r\nSubject: Re: Your quote\r\n"
        b"Message-ID: <r1@example.com>\r\nIn-Reply-To: <q1@acme.test>\r\n\r\nLooks good!\r\n"
    )
    mail = parse_message(raw)
    assert (mail.sender, mail.subject, mail.in_reply_to) == (
        "dana@example.com",
        "Re: Your quote",
        "<q1@acme.test>",
    )
    assert mail.text == "Looks good!"


def test_smtp_upgrades_to_tls_with_starttls_when_offered(
    session_factory: sessionmaker[Session], certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with running_smtp(server_tls, require_starttls=True) as server:
        lead_id, agent_id = setup_lead(session_factory)
        channel = EmailChannel(
            parse_smtp_url(server.url), sender=SENDER, timeout=3.0, tls_context=client_tls
        )
        outbox = ChannelOutbox(
            session_factory=session_factory,
            settings=make_settings(smtp_url=server.url, email_from=SENDER),
            email=channel,
        )
        result = send(session_factory, outbox, lead_id, agent_id)
        assert result.status == "sent", result.error
        assert len(server.handler.received) == 1
        # A certificate the client does not trust is a permanent failure, not retried.
        untrusted = EmailChannel(
            parse_smtp_url(server.url), sender=SENDER, timeout=3.0, sleep=Sleeps()
        )
        outcome = untrusted.send(
            build_message(
                sender=SENDER,
                recipient="dana@example.com",
                subject="x",
                body="y",
                message_id="<t@acme.test>",
            )
        )
        assert not outcome.ok and outcome.attempts == 1
        assert outcome.error is not None and "TLS" in outcome.error
