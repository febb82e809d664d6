"""Email endpoints: an agent emails a lead (`store.domain.mail`), or sends a failed or uncertain
email again."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from store.db import read_session
from store.domain.mail import EmailOutcome, send_email
from store.models import Message
from webhooks.api import schemas
from webhooks.api.base import endpoint
from webhooks.api.serialize import agent_names, dump, message_out
from webhooks.app import ApiError, services

TAG = "Email"


def email_sender() -> str | None:
    """The From address when email is set up (LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM)."""
    settings = services().settings
    return settings.email_from if settings.email_configured else None


def email_out(result: EmailOutcome) -> dict[str, Any]:
    svc = services()
    with read_session(svc.session_factory) as session:
        message = session.get(Message, result.message_id)
        if message is None:  # deleted with its lead in between
            raise ApiError(404, "not_found", f"no email {result.message_id}")
        data = message_out(message, agent_names(session))
    return dump(
        schemas.EmailOut,
        {
            "message": data,
            "to": result.to,
            "subject": result.subject,
            "message_id_header": result.header_message_id,
            "delivery_status": result.status,
            "error": result.error,
        },
    )


def _check_id(value: int, what: str) -> None:
    if value < 1 or value > schemas.MAX_ID:
        raise ApiError(404, "not_found", f"no {what} with id {value}")


@endpoint(
    "POST",
    "/leads/<int:lead_id>/emails",
    summary="Email the lead",
    tag=TAG,
    body=schemas.EmailBody,
    response=schemas.EmailOut,
    status=201,
    errors=(400, 401, 403, 404, 409, 422),
)
def send(lead_id: int, body: schemas.EmailBody) -> Any:
    """Send a plain-text email to the lead's address from LEADDESK_EMAIL_FROM. It is recorded
    first (under a new Message-ID) and shows in the lead's timeline on the email channel with its
    delivery state; transient failures are retried with backoff. 409 `email_not_configured` when
    email is not set up; 422 when the lead has no email address."""
    _check_id(lead_id, "lead")
    result = send_email(
        lead_id,
        body.subject,
        body.body,
        by=g.agent,
        session_factory=services().session_factory,
        deliver=services().outbox.deliver,
        sender=email_sender(),
    )
    return jsonify(email_out(result)), 201


@endpoint(
    "POST",
    "/leads/<int:lead_id>/emails/<int:message_id>/resend",
    summary="Send a failed or uncertain email again",
    tag=TAG,
    response=schemas.EmailOut,
    status=201,
    errors=(401, 403, 404, 409),
)
def resend(lead_id: int, message_id: int) -> Any:
    """Send the subject and body of an email whose send failed or whose outcome is unknown again,
    as a new email (a new Message-ID). An uncertain email may already have arrived: this is the
    agent's choice, never made automatically."""
    _check_id(lead_id, "lead")
    _check_id(message_id, "email")
    result = send_email(
        lead_id,
        "",
        "",
        by=g.agent,
        session_factory=services().session_factory,
        deliver=services().outbox.deliver,
        sender=email_sender(),
        resend_of=message_id,
    )
    return jsonify(email_out(result)), 201
