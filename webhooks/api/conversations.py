"""Conversation endpoints: an agent's reply to the customer, pausing and resuming the bot for a
lead.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import g, jsonify
from sqlalchemy import select

from bot import Outbox
from bot.takeover import send_agent_reply
from store.db import read_session
from store.domain.takeover import pause_by_agent, resume_by_agent
from store.domain.waiting import claim_on_reply
from store.models import Agent, Conversation, Lead, Message, as_utc
from webhooks.api import catalog, schemas
from webhooks.api import lead_edits as edits
from webhooks.api.base import endpoint, now
from webhooks.api.leads import _detail
from webhooks.api.serialize import agent_names, dump, message_out
from webhooks.app import ApiError, services

log = logging.getLogger(__name__)

TAG = "Conversations"


def outbox() -> Outbox:
    """The outbound path the channels set up."""
    return services().outbox


def send_reply(
    lead_id: int, text: str, agent: Agent, *, at: datetime, conversation_id: int | None = None
) -> tuple[dict[str, Any], datetime | None]:
    """Send `text` to the customer as `agent` in one conversation (by default the latest on a
    verified identity); the bot pauses for the takeover.
    """
    svc = services()
    with read_session(svc.session_factory) as session:
        lead = edits.load_lead(lead_id, agent, session=session, action="reply")
        lead_id = lead.id
        has_conversation = (
            session.scalars(select(Conversation.id).where(Conversation.lead_id == lead_id)).first()
            is not None
        )
        if (
            conversation_id is not None
            and session.scalars(
                select(Conversation.id).where(
                    Conversation.id == conversation_id, Conversation.lead_id == lead_id
                )
            ).first()
            is None
        ):
            raise ApiError(
                422,
                "validation_error",
                f"conversation_id: conversation {conversation_id} is not one of lead {lead_id}'s",
                "conversation_id",
            )
    if not has_conversation:
        raise ApiError(
            409,
            "no_conversation",
            f"lead {lead_id} has not written on any channel yet, so there is nobody to reply to",
        )
    # No transaction is held here: the send path records, sends and marks in its own short ones.
    try:
        result = send_agent_reply(
            lead_id,
            text,
            session_factory=svc.session_factory,
            outbox=outbox(),
            agent_id=agent.id,
            now=at,
            minutes=catalog.policy().takeover_minutes,
            conversation_id=conversation_id,
        )
    except (LookupError, ValueError) as exc:
        raise ApiError(409, "cannot_reply", str(exc) or "the reply could not be sent") from None
    with svc.session_factory.begin() as session:
        claim_on_reply(lead_id, agent.id, session=session, policy=catalog.policy())
    with read_session(svc.session_factory) as session:
        message = _sent_message(result, lead_id, agent.id, session=session)
        after = session.get(Lead, lead_id)
        paused_until = as_utc(after.ai_paused_until) if after is not None else None
        data = message_out(message, agent_names(session))
    return data, paused_until


def _sent_message(result: Any, lead_id: int, agent_id: int, *, session: Any) -> Message:
    message_id = (
        result
        if isinstance(result, int) and not isinstance(result, bool)
        else (getattr(result, "id", None) or getattr(result, "message_id", None))
    )
    message = session.get(Message, message_id) if isinstance(message_id, int) else None
    if message is None:
        inner = getattr(result, "message", None)
        if isinstance(inner, Message):
            message = session.get(Message, inner.id)
    if message is None:
        # The send path told us nothing usable: the agent's latest message on this lead is the one.
        message = session.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.lead_id == lead_id,
                Message.author == "agent",
                Message.agent_id == agent_id,
            )
            .order_by(Message.id.desc())
        ).first()
    if message is None:
        raise ApiError(409, "cannot_reply", "the reply could not be recorded")
    return message  # type: ignore[no-any-return]


@endpoint(
    "POST",
    "/leads/<int:lead_id>/reply",
    summary="Reply to the customer",
    tag=TAG,
    body=schemas.ReplyBody,
    response=schemas.ReplyOut,
    status=201,
    errors=(400, 401, 403, 404, 409, 422),
)
def reply(lead_id: int, body: schemas.ReplyBody) -> Any:
    """Send a message to the customer as the agent in one conversation: `conversation_id`, or by
    default the most recent one on a verified identity. The bot pauses for the takeover window
    (LEADDESK_TAKEOVER_MINUTES), renewed by each agent message."""
    data, paused_until = send_reply(
        lead_id, body.text, g.agent, at=now(), conversation_id=body.conversation_id
    )
    return jsonify(dump(schemas.ReplyOut, {"message": data, "ai_paused_until": paused_until})), 201


@endpoint(
    "POST",
    "/leads/<int:lead_id>/bot/pause",
    summary="Pause the bot for a lead",
    tag=TAG,
    body=schemas.PauseBody,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def pause(lead_id: int, body: schemas.PauseBody) -> Any:
    """The bot stops answering this lead for `minutes`, or until resumed; messages are still stored
    and scored.
    """
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        pause_by_agent(lead, g.agent, session=session, now=now(), minutes=body.minutes)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/bot/resume",
    summary="Resume the bot for a lead",
    tag=TAG,
    response=schemas.LeadDetail,
    errors=(401, 403, 404, 409),
)
def resume(lead_id: int) -> Any:
    """Lift a pause or stop; the bot's next message tells the customer they talk to an assistant
    again.
    """
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        resume_by_agent(lead, g.agent, session=session)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))
