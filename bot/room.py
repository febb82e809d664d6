"""What one conversation may know of its lead: the whole lead when it is the lead's only
conversation, else only the facts this conversation supplied; its recent messages, and its
standing among the lead's conversations (`store.identity`'s rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from bot.media import customer_text
from bot.state import BotState, LeadSnapshot, Room, WindowMessage
from store import identity as rules
from store.domain.takeover import is_ai_paused
from store.messages import MessageFields, conversation_messages
from store.models import ContactDetail, Conversation, Identity, Lead, Message


def is_room_paused(conversation: Conversation, now: datetime) -> bool:
    """Whether the bot is stopped or paused in this conversation only."""
    return bool(conversation.ai_stopped) or (
        conversation.ai_paused_until is not None and conversation.ai_paused_until > now
    )


def lead_snapshot(lead: Lead) -> LeadSnapshot:
    return LeadSnapshot(
        id=lead.id,
        name=lead.name,
        company=lead.company,
        email=lead.email,
        phone=lead.phone,
        status=lead.status,
        score=lead.score,
        tags=list(lead.tags or []),
        interests=list(lead.interests or []),
        objections=list(lead.objections or []),
        summary=lead.summary,
        assigned_agent_id=lead.assigned_agent_id,
        ai_stopped=bool(lead.ai_stopped),
        ai_paused_until=lead.ai_paused_until,
        ai_pause_reason=lead.ai_pause_reason,
        ai_resume_notice_due=bool(lead.ai_resume_notice_due),
        phone_asks=lead.phone_asks,
        phone_declined=bool(lead.phone_declined),
        last_reply_asked_phone=bool(lead.last_reply_asked_phone),
        locked=bool(lead.locked),
    )


def _window(messages: Sequence[MessageFields]) -> list[WindowMessage]:
    """The conversation's own recent messages: never another conversation's, whatever the lead is
    merged from."""
    return [
        WindowMessage(
            id=m.id,
            author=m.author,
            # A caption or transcript is what the customer said; a bare "[image]" says what came.
            text=(customer_text(m.kind, m.text, m.payload) or m.text or "")
            if m.author == "customer"
            else m.text or "",
            channel=m.channel,
            sent_at=m.sent_at,
        )
        for m in messages
    ]


def _has_spoken(conversation_id: int, session: Session) -> bool:
    """Whether the business (bot or human) ever wrote in this conversation (one greeting per
    room)."""
    return bool(session.scalar(_spoken_statement(), {"conversation_id": conversation_id}))


@cache
def _spoken_statement() -> Any:
    """`_has_spoken`'s statement, built once (its cache key is then worked out once too)."""
    return select(
        exists().where(
            Message.conversation_id == bindparam("conversation_id"), Message.direction == "out"
        )
    )


def _room_snapshot(lead: Lead, conversation: Conversation, session: Session) -> LeadSnapshot:
    """The lead as one of several conversations may see it: only the facts this conversation
    supplied (its identity's name, the phone and email said in it), never another room's."""
    root = conversation.identity_id
    identities = (
        list(
            session.scalars(
                select(Identity).where((Identity.id == root) | (Identity.alias_of_id == root))
            )
        )
        if root is not None
        else []
    )
    ids = [i.id for i in identities]
    said = (
        {
            (c.kind): c.value
            for c in session.scalars(
                select(ContactDetail)
                .where(ContactDetail.lead_id == lead.id, ContactDetail.identity_id.in_(ids))
                .order_by(ContactDetail.id)
            )
        }
        if ids
        else {}
    )
    return replace(
        lead_snapshot(lead),
        name=next((i.display_name for i in identities if i.display_name), None),
        phone=said.get("phone"),
        email=said.get("email"),
        interests=[],
        objections=[],
        summary=conversation.summary,
    )


def room_view(
    conversation: Conversation, session: Session, window_size: int, now: datetime
) -> BotState:
    """What a turn in this conversation may know and do: its lead (as this room may see it), its
    recent messages, whether the business spoke in it, and its standing among the lead's rooms."""
    standing = rules.load_standing(conversation.id, session=session)
    if standing is None:
        raise LookupError(f"no conversation with id {conversation.id}")
    window = conversation_messages(conversation.id, session=session, limit=window_size)
    return standing_view(standing, window, session, now, window_size=window_size)


def standing_view(
    standing: rules.Standing,
    window: Sequence[MessageFields],
    session: Session,
    now: datetime,
    *,
    window_size: int,
    external_id: str | None = None,
) -> BotState:
    """`room_view` from what the turn already loaded: the conversation's standing and its last
    `window_size` messages (oldest first). Reads more only for a room among several, or a long
    conversation whose window shows no message of the business."""
    conversation, lead = standing.conversation, standing.lead
    snapshot = (
        lead_snapshot(lead) if standing.alone else _room_snapshot(lead, conversation, session)
    )
    paused = is_room_paused(conversation, now)
    greeted: bool | None
    if any(m.direction == "out" for m in window):
        greeted = True
    elif paused or is_ai_paused(lead, now):
        greeted = None  # the bot is quiet: the turn drafts no reply to greet in
    else:
        # A window shorter than asked for is the whole conversation.
        greeted = len(window) >= window_size > 0 and _has_spoken(conversation.id, session)
    return {
        "lead": snapshot,
        "window": _window(window),
        "room": Room(
            alone=standing.alone,
            speaks_for_lead=standing.speaks_for_lead,
            paused=paused,
            channel=conversation.channel,
            external_id=external_id,
            greeted=greeted,
            summary=conversation.summary,
            language=conversation.language,
        ),
    }
