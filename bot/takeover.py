"""Sending an agent's reply to the customer: which conversation and recipient it goes to, and
the send itself (recorded, the bot quiet for the takeover window, then handed to the outbox).

The takeover rules themselves (the window, pause, stop, resume) are `store.domain.takeover`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox import Outbox, Reply
from store import identity as rules
from store.domain.takeover import human_took_over
from store.leads import get_lead
from store.messages import record_outbound
from store.models import Conversation, Lead, Message

log = logging.getLogger(__name__)


class NoConversation(LookupError):
    """The lead has never written on any channel, so there is nowhere to send a reply."""


def latest_conversation(lead: Lead, *, session: Session) -> Conversation | None:
    """The conversation the customer used last (by their latest message; else any activity)."""
    for inbound_only in (True, False):
        query = (
            select(Message.conversation_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.lead_id == lead.id)
        )
        if inbound_only:
            query = query.where(Message.direction == "in")
        conversation_id = session.scalars(query.order_by(Message.id.desc()).limit(1)).first()
        if conversation_id is not None:
            return session.get(Conversation, conversation_id)
    return session.scalars(
        select(Conversation).where(Conversation.lead_id == lead.id).order_by(Conversation.id.desc())
    ).first()


def recipient_of(conversation: Conversation, *, session: Session) -> str | None:
    """The customer's id on the conversation's channel (who a reply goes to): the last sender in
    this conversation, else the identity it is with."""
    external_id = session.scalars(
        select(Message.external_id)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.external_id.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if external_id:
        return external_id
    if conversation.identity is not None:
        return conversation.identity.external_id
    lead = session.get(Lead, conversation.lead_id)
    if lead is None:
        return None
    for identity in lead.identities:
        if identity.channel == conversation.channel:
            return identity.external_id
    return None


def send_agent_reply(
    lead_id: int,
    text: str,
    *,
    session_factory: sessionmaker[Session],
    outbox: Outbox | None,
    agent_id: int | None,
    now: datetime,
    minutes: int,
    idempotency_key: str | None = None,
    conversation_id: int | None = None,
) -> Reply:
    """Record an agent's message in one conversation of the lead (`conversation_id`, or the latest
    on a verified identity: `store.identity.reply_conversation`), pause the bot for the takeover
    window, commit, then hand the message to the outbox."""
    text = (text or "").strip()
    if not text:
        raise ValueError("the message is empty")
    with session_factory.begin() as session:
        lead = get_lead(lead_id, session=session)
        conversation = rules.reply_conversation(
            lead, session=session, conversation_id=conversation_id
        )
        if conversation is None:
            raise NoConversation(f"lead {lead.id} has no conversation to reply to")
        recipient = recipient_of(conversation, session=session)
        message = record_outbound(
            conversation,
            text[:4000],
            session=session,
            author="agent",
            agent_id=agent_id,
            idempotency_key=idempotency_key,
            external_id=recipient,
            delivery_status="pending",
        )
        human_took_over(lead, session=session, now=now, minutes=minutes, agent_id=agent_id)
        reply = Reply(
            message_id=message.id,
            lead_id=lead.id,
            conversation_id=conversation.id,
            channel=conversation.channel,
            external_id=recipient,
            text=message.text,
        )
    if outbox is not None:
        outbox.deliver([reply.message_id])
    return reply
