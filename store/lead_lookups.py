"""Read-only lookups over leads and their messages that lists and analyses need beyond
`store.query`: leads by email, name labels for fuzzy matching, follow-ups due, leads awaiting a
reply, status changes in a period, message counts, and every id a filter selects (bulk actions).

Like every repository module: keyword-only `session`, no commits (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from store.models import AuditEvent, Conversation, Lead, Message, Note
from store.query import LeadQuery, build_lead_query


def last_customer_message(lead_id: int, *, session: Session) -> Message | None:
    return session.scalars(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.lead_id == lead_id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    ).first()


def message_counts(lead_id: int, *, session: Session) -> dict[str, int]:
    """How many messages the lead's conversation on each channel holds."""
    rows = session.execute(
        select(Conversation.channel, func.count(Message.id))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Conversation.lead_id == lead_id)
        .group_by(Conversation.channel)
    )
    return dict(rows.all())


def lead_ids_matching(
    q: LeadQuery, *, session: Session, now: datetime | None = None, limit: int = 10000
) -> list[int]:
    """Every lead id `q` selects (no paging), for bulk actions; ordered by id."""
    stmt = build_lead_query(q, now=now).with_only_columns(Lead.id).order_by(Lead.id).limit(limit)
    return list(session.scalars(stmt))


def follow_up_leads(
    q: LeadQuery,
    *,
    session: Session,
    statuses: Sequence[str],
    since: datetime,
    exclude_statuses: Sequence[str] = (),
    now: datetime | None = None,
) -> list[Lead]:
    """Open leads of `q` waiting for a follow-up: in a follow-up status or with a Follow-up note,
    and not yet messaged by an agent since `since` (the start of the day). Best scores first."""
    stmt = build_lead_query(q, now=now).where(Lead.archived.is_(False))
    if exclude_statuses:
        stmt = stmt.where(Lead.status.not_in(list(exclude_statuses)))
    has_note = exists().where(Note.lead_id == Lead.id, Note.category == "Follow-up")
    wanted = or_(Lead.status.in_(list(statuses)), has_note) if statuses else has_note
    contacted_today = (
        exists()
        .where(Conversation.lead_id == Lead.id)
        .where(
            Message.conversation_id == Conversation.id,
            Message.author == "agent",
            Message.created_at >= since,
        )
    )
    stmt = (
        stmt.where(wanted, ~contacted_today)
        .order_by(Lead.score.desc(), Lead.id.desc())
        .limit(max(1, min(q.limit, 1000)))
        .offset(max(0, q.offset))
    )
    return list(session.scalars(stmt))


def count_follow_up_leads(
    q: LeadQuery,
    *,
    session: Session,
    statuses: Sequence[str],
    since: datetime,
    exclude_statuses: Sequence[str] = (),
    now: datetime | None = None,
) -> int:
    everything = replace(q, limit=1000, offset=0)
    return len(
        follow_up_leads(
            everything,
            session=session,
            statuses=statuses,
            since=since,
            exclude_statuses=exclude_statuses,
            now=now,
        )
    )


def leads_by_email(email: str, *, session: Session) -> list[Lead]:
    """Leads whose email matches regardless of case (live leads only)."""
    return list(
        session.scalars(
            select(Lead).where(
                func.lower(Lead.email) == email.strip().lower(), Lead.merged_into_id.is_(None)
            )
        )
    )


def lead_labels(
    *, session: Session, visible_to_agent_id: int | None = None
) -> list[tuple[int, str, str, bool, int]]:
    """(id, name, company, archived, score) of every lead not merged away (the leads an agent sees:
    their own and unassigned ones when `visible_to_agent_id` is set), for name matching."""
    stmt = select(Lead.id, Lead.name, Lead.company, Lead.archived, Lead.score).where(
        Lead.merged_into_id.is_(None)
    )
    if visible_to_agent_id is not None:
        stmt = stmt.where(
            or_(Lead.assigned_agent_id == visible_to_agent_id, Lead.assigned_agent_id.is_(None))
        )
    return [
        (lead_id, name or "", company or "", bool(archived), score or 0)
        for lead_id, name, company, archived, score in session.execute(stmt)
    ]


def status_changes(
    q: LeadQuery, *, session: Session, since: datetime, until: datetime, limit: int = 50
) -> list[tuple[int, str | None, str | None, str | None, datetime]]:
    """(lead id, lead name, old, new, when) of the status changes to leads of `q` in
    [since, until)."""
    leads = build_lead_query(replace(q, archived=None)).with_only_columns(Lead.id).subquery()
    stmt = (
        select(
            Lead.id,  # equals AuditEvent.lead_id through the join, and is never NULL
            Lead.name,
            AuditEvent.old_value,
            AuditEvent.new_value,
            AuditEvent.created_at,
        )
        .join(Lead, Lead.id == AuditEvent.lead_id)
        .where(
            AuditEvent.field == "status",
            AuditEvent.created_at >= since,
            AuditEvent.created_at < until,
            AuditEvent.lead_id.in_(select(leads.c.id)),
        )
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in session.execute(stmt)]


def leads_awaiting_reply(q: LeadQuery, *, session: Session, limit: int = 50) -> list[Lead]:
    """Open leads of `q` whose latest message is the customer's (nobody has answered it yet)."""
    last_id = (
        select(func.max(Message.id))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.lead_id == Lead.id)
        .correlate(Lead)
        .scalar_subquery()
    )
    stmt = (
        build_lead_query(q)
        .where(exists().where(Message.id == last_id, Message.author == "customer"))
        .order_by(Lead.score.desc(), Lead.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
