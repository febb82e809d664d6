"""Sending email to a lead: the one rule every front end (console, API, copilot) calls.

An agent may email a lead they may see (and whose lock allows speaking to the customer) that has an
email address, when email is set up. The send intent is recorded first, in the lead's email
conversation, as an outbound message "pending" under a new unique Message-ID (`channel_message_id`)
and committed; only then does the outbox claim it ("sending") and hand it to the SMTP server. A
message is therefore sent at most once by the system: a crash between the server's answer and
recording it leaves the row "sending", later marked "unknown" (`store.pending`), never resent by
itself; the agent may send it again on purpose (`resend_email`, a new message with a new id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import make_msgid, parseaddr

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.contacts import try_normalize_email
from store.domain.errors import Conflict, Invalid, NotFound
from store.domain.permissions import visible_lead
from store.leads import record_audit
from store.messages import record_outbound
from store.models import Agent, Conversation, Lead, Message

EMAIL_CHANNEL = "email"
MAX_SUBJECT = 200
MAX_BODY = 20_000
# Delivery states an agent may send again from (a resend is a new message).
RESENDABLE = ("failed", "unknown")


class EmailOff(Conflict):
    """Email is not set up (LEADDESK_SMTP_URL / LEADDESK_EMAIL_FROM)."""

    default_code = "email_not_configured"


@dataclass(frozen=True)
class EmailOutcome:
    """One email as the agent sees it after the send: its message row's id, the lead, where it
    went, and the delivery state ("sent", "failed", "unknown", or "pending"/"sending" while the
    outbox still works on it) with the error, if any."""

    message_id: int
    lead_id: int
    to: str
    subject: str
    status: str
    error: str | None
    header_message_id: str

    @property
    def sent(self) -> bool:
        return self.status == "sent"


def email_conversation(lead: Lead, *, session: Session) -> Conversation:
    """The lead's email conversation, created the first time (one per lead: a unique index)."""
    query = select(Conversation).where(
        Conversation.lead_id == lead.id, Conversation.channel == EMAIL_CHANNEL
    )
    existing = session.scalars(query).first()
    if existing is not None:
        return existing
    conversation = Conversation(lead_id=lead.id, channel=EMAIL_CHANNEL)
    try:
        with session.begin_nested():
            session.add(conversation)
            session.flush()
    except IntegrityError:
        return session.scalars(query).one()
    return conversation


def check_draft(subject: str, body: str) -> tuple[str, str]:
    """The subject (one line) and body, trimmed; `Invalid` naming the field at fault."""
    subject = " ".join((subject or "").split())
    body = (body or "").strip()
    if not subject:
        raise Invalid("the email needs a subject", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise Invalid(f"the subject is longer than {MAX_SUBJECT} characters", field="subject")
    if not body:
        raise Invalid("the email is empty", field="body")
    if len(body) > MAX_BODY:
        raise Invalid(f"the email is longer than {MAX_BODY} characters", field="body")
    return subject, body


def record_email(
    lead_id: int,
    subject: str,
    body: str,
    *,
    by: Agent,
    session: Session,
    sender: str | None,
) -> Message:
    """Record the send intent of one email from `by` to the lead (pending, with a new Message-ID
    on the sender's domain). `EmailOff` when email is not set up (`sender` None); `NotFound`,
    `NotAllowed`, `LeadLocked` from the lead's permissions; `Invalid` for a lead without a valid
    address or a bad subject or body. The caller commits, then hands the message to the outbox."""
    if not sender:
        raise EmailOff(
            "email is not set up: set LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM to send email"
        )
    lead = visible_lead(lead_id, by, session=session, action="reply")
    address = try_normalize_email(lead.email)
    if address is None:
        raise Invalid(f"lead {lead.id} has no valid email address", field="email")
    subject, body = check_draft(subject, body)
    conversation = email_conversation(lead, session=session)
    message = record_outbound(
        conversation,
        body,
        session=session,
        author="agent",
        agent_id=by.id,
        external_id=address,
        kind="email",
        delivery_status="pending",
    )
    domain = parseaddr(sender)[1].rpartition("@")[2] or "leaddesk.invalid"
    message.channel_message_id = make_msgid(domain=domain)
    message.payload = {"subject": subject, "to_name": lead.name or ""}
    session.flush()
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="agent",
        agent_id=by.id,
        action="email",
        field="email",
        new=subject,
    )
    return message


def resendable(message_id: int, lead_id: int, *, by: Agent, session: Session) -> Message:
    """An email of the lead whose send failed or whose outcome is unknown, to send again."""
    lead = visible_lead(lead_id, by, session=session, action="reply")
    message = session.get(Message, message_id)
    conversation = session.get(Conversation, message.conversation_id) if message else None
    if (
        message is None
        or message.channel != EMAIL_CHANNEL
        or conversation is None
        or conversation.lead_id != lead.id
    ):
        raise NotFound(f"no email {message_id} on lead {lead.id}")
    if message.delivery_status not in RESENDABLE:
        raise Conflict(
            f"email {message_id} is {message.delivery_status}; only a failed or uncertain email "
            "can be sent again",
            code="not_resendable",
        )
    return message


def outcome(message_id: int, *, session: Session) -> EmailOutcome:
    """The email's delivery state as it stands."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no email {message_id}")
    conversation = session.get(Conversation, message.conversation_id)
    payload = message.payload or {}
    return EmailOutcome(
        message_id=message.id,
        lead_id=conversation.lead_id if conversation else 0,
        to=message.external_id or "",
        subject=str(payload.get("subject") or ""),
        status=message.delivery_status or "pending",
        error=message.error,
        header_message_id=message.channel_message_id or "",
    )


def send_email(
    lead_id: int,
    subject: str,
    body: str,
    *,
    by: Agent,
    session_factory: sessionmaker[Session],
    deliver: Callable[[list[int]], None],
    sender: str | None,
    resend_of: int | None = None,
) -> EmailOutcome:
    """Record (and commit) one email, hand it to the outbox (`deliver`), and say how it went.

    With `resend_of`, the subject and body are those of that failed or uncertain email of the lead
    (a new message under a new Message-ID)."""
    with session_factory.begin() as session:
        if resend_of is not None:
            previous = resendable(resend_of, lead_id, by=by, session=session)
            subject = str((previous.payload or {}).get("subject") or "")
            body = previous.text
        message = record_email(lead_id, subject, body, by=by, session=session, sender=sender)
        message_id = message.id
    deliver([message_id])
    with session_factory() as session:
        return outcome(message_id, session=session)
