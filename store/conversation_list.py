"""The console inbox's list: the conversations an agent may see, newest activity first, with the
last message, how many of the customer's messages the agent has not read, and whether the customer
waits for a reply; and the agent's read marks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.domain.permissions import is_admin, visible_clause
from store.models import Agent, Conversation, ConversationRead, Lead, Message, utcnow

Tab = Literal["mine", "unassigned", "all", "waiting"]
TABS: tuple[Tab, ...] = ("mine", "unassigned", "all", "waiting")
PAGE = 50
# Unread counts above this are shown as "99+".
UNREAD_CAP = 99


@dataclass(frozen=True)
class ConversationRow:
    conversation_id: int
    channel: str
    lead_id: int
    lead_name: str | None
    status: str
    score: int
    assigned_agent_id: int | None
    last_message_id: int
    last_text: str
    last_author: str
    last_at: datetime
    unread: int

    @property
    def waiting(self) -> bool:
        """The customer spoke last: they wait for an answer."""
        return self.last_author == "customer"


def _tab_clause(agent: Agent, tab: Tab) -> ColumnElement[bool]:
    if tab == "mine":
        return Lead.assigned_agent_id == agent.id
    if tab == "unassigned":
        return Lead.assigned_agent_id.is_(None)
    return true()


def conversation_rows(
    agent: Agent,
    tab: Tab = "mine",
    *,
    session: Session,
    limit: int = PAGE,
    only: Sequence[int] | None = None,
) -> list[ConversationRow]:
    """The agent's conversations on `tab`, newest activity first (`only`: just these ids)."""
    last_id = (
        select(func.max(Message.id))
        .where(Message.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )
    read_upto = (
        select(ConversationRead.last_read_message_id)
        .where(
            ConversationRead.conversation_id == Conversation.id,
            ConversationRead.agent_id == agent.id,
        )
        .correlate(Conversation)
        .scalar_subquery()
    )
    # Counted up to the cap: a long unread conversation costs no more than a short one.
    unread_ids = (
        select(Message.id)
        .where(
            Message.conversation_id == Conversation.id,
            Message.direction == "in",
            Message.author == "customer",
            Message.id > func.coalesce(read_upto, 0),
        )
        .correlate(Conversation)
        .limit(UNREAD_CAP + 1)
        .subquery()
    )
    unread = select(func.count()).select_from(unread_ids).scalar_subquery()
    latest = (
        select(Conversation.id, last_id.label("last_id"), unread.label("unread"))
        .join(Lead, Lead.id == Conversation.lead_id)
        .where(
            Lead.merged_into_id.is_(None),
            Lead.archived.is_(False),
            visible_clause(agent),
            _tab_clause(agent, tab),
        )
        .subquery()
    )
    query = (
        select(Conversation, Lead, Message, latest.c.unread)
        .join(latest, latest.c.id == Conversation.id)
        .join(Lead, Lead.id == Conversation.lead_id)
        .join(Message, Message.id == latest.c.last_id)
        .order_by(latest.c.last_id.desc())
        .limit(limit)
    )
    if tab == "waiting":
        query = query.where(Message.author == "customer")
    if only is not None:
        query = query.where(Conversation.id.in_(list(only)))
    rows = []
    for conversation, lead, message, count in session.execute(query):
        rows.append(
            ConversationRow(
                conversation_id=conversation.id,
                channel=conversation.channel,
                lead_id=lead.id,
                lead_name=lead.name,
                status=lead.status,
                score=lead.score,
                assigned_agent_id=lead.assigned_agent_id,
                last_message_id=message.id,
                last_text=message.text or f"[{message.kind}]",
                last_author=message.author,
                last_at=message.sent_at,
                unread=int(count or 0),
            )
        )
    return rows


def unread_conversations(agent: Agent, *, session: Session, scan: int = 200) -> int:
    """How many of the agent's most recent visible conversations have unread customer messages
    (mine and unassigned ones; an admin's own and unassigned ones too)."""
    rows = conversation_rows(agent, "all", session=session, limit=scan)
    return sum(1 for row in rows if row.unread and row.assigned_agent_id in (None, agent.id))


def mark_read(agent_id: int, conversation_id: int, *, session: Session) -> None:
    """Record that the agent has read the conversation up to its newest message."""
    newest = session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
    )
    if newest is None:
        return
    now = utcnow()
    moved = session.execute(
        update(ConversationRead)
        .where(
            ConversationRead.agent_id == agent_id,
            ConversationRead.conversation_id == conversation_id,
        )
        .values(
            last_read_message_id=func.max(ConversationRead.last_read_message_id, newest)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(ConversationRead.last_read_message_id, newest),
            read_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0):
        return
    try:
        with session.begin_nested():
            session.add(
                ConversationRead(
                    agent_id=agent_id,
                    conversation_id=conversation_id,
                    last_read_message_id=newest,
                    read_at=now,
                )
            )
    except IntegrityError:  # read at the same moment in another tab
        pass


def tab_for(value: str | None, agent: Agent) -> Tab:
    """The tab asked for, when it exists for this agent ("all" is the admins'); else "mine"."""
    if value in TABS and (value != "all" or is_admin(agent)):
        return value
    return "mine"
