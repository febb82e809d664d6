"""Humans take over: an agent's message pauses the bot for the takeover window; agents resume it.

Used by the bot itself, the copilot, the REST API and Meta echoes of replies sent from the native
apps. Repository-style functions take a keyword-only session and never commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox import Outbox, Reply
from store import identity as rules
from store.leads import get_lead, update_lead
from store.messages import record_outbound
from store.models import Conversation, Lead, Message

log = logging.getLogger(__name__)

TAKEOVER_REASON = "human takeover"


class NoConversation(LookupError):
    """The lead has never written on any channel, so there is nowhere to send a reply."""


def is_ai_paused(lead: Lead, now: datetime) -> bool:
    """Whether the bot must stay quiet for this lead right now."""
    return bool(lead.ai_stopped) or (
        lead.ai_paused_until is not None and lead.ai_paused_until > now
    )


def human_took_over(
    lead: Lead, *, session: Session, now: datetime, minutes: int, agent_id: Optional[int] = None
) -> bool:
    """Pause the bot for `minutes` from `now` after a human message. Each human message renews the
    window; a stop or a longer pause is never shortened. Returns whether anything changed."""
    if lead.ai_stopped:
        return False
    until = now + timedelta(minutes=minutes)
    if lead.ai_paused_until is not None and lead.ai_paused_until >= until:
        return False
    changed = update_lead(
        lead,
        {"ai_paused_until": until, "ai_pause_reason": TAKEOVER_REASON},
        session=session,
        actor="agent" if agent_id else "system",
        agent_id=agent_id,
    )
    log.info("bot paused for lead %s until %s: a human replied", lead.id, until.isoformat())
    return bool(changed)


def pause_bot(
    lead: Lead,
    *,
    session: Session,
    actor: str,
    now: datetime,
    minutes: Optional[int] = None,
    agent_id: Optional[int] = None,
    reason: str = "paused by an agent",
) -> bool:
    """Pause the bot for `minutes`, or stop it until a human resumes it when `minutes` is None."""
    if minutes is None:
        changes: dict[str, object] = {"ai_stopped": True, "ai_pause_reason": reason}
    else:
        until = now + timedelta(minutes=minutes)
        if lead.ai_stopped or (lead.ai_paused_until is not None and lead.ai_paused_until >= until):
            return False
        changes = {"ai_paused_until": until, "ai_pause_reason": reason}
    return bool(update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id))


def resume_bot(lead: Lead, *, session: Session, actor: str, agent_id: Optional[int] = None) -> bool:
    """Let the bot talk again, in every conversation of the lead (a stop or pause said in one of
    them included); its next message tells the customer they talk to an assistant."""
    rooms = list(session.scalars(select(Conversation).where(
        Conversation.lead_id == lead.id,
        (Conversation.ai_stopped.is_(True)) | (Conversation.ai_paused_until.is_not(None)),
    )))
    for room in rooms:
        room.ai_stopped = False
        room.ai_paused_until = None
    was_quiet = bool(lead.ai_stopped) or lead.ai_paused_until is not None or bool(rooms)
    changes: dict[str, object] = {
        "ai_stopped": False,
        "ai_paused_until": None,
        "ai_pause_reason": None,
    }
    if was_quiet:
        changes["ai_resume_notice_due"] = True
    return bool(update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id))


def latest_conversation(lead: Lead, *, session: Session) -> Optional[Conversation]:
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


def recipient_of(conversation: Conversation, *, session: Session) -> Optional[str]:
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
    outbox: Optional[Outbox],
    agent_id: Optional[int],
    now: datetime,
    minutes: int,
    idempotency_key: Optional[str] = None,
    conversation_id: Optional[int] = None,
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
