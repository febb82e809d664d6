"""Working a lead: notes, assignment to agents, notifications, score history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from store.domain.errors import Invalid
from store.leads import batch_row, record_audit, update_lead
from store.models import (
    NOTE_CATEGORIES,
    Agent,
    AuditEvent,
    Lead,
    Note,
    Notification,
    ScoreEvent,
    utcnow,
)
from store.tenancy import current_workspace, in_workspace
from store.text import clean_text


def add_note(
    lead: Lead,
    text: str,
    *,
    session: Session,
    category: str = "General",
    agent: Agent | None = None,
    author: str | None = None,
) -> Note:
    """Add a note to a lead (audited).

    `category` must be one of NOTE_CATEGORIES (case-insensitive).
    """
    text = clean_text(text or "").strip()
    if not text:
        raise Invalid("a note needs some text", field="text")
    matches = [c for c in NOTE_CATEGORIES if c.lower() == (category or "General").strip().lower()]
    if not matches:
        raise Invalid(
            f"note category must be one of: {', '.join(NOTE_CATEGORIES)}", field="category"
        )
    note = Note(
        lead_id=lead.id,
        agent_id=agent.id if agent else None,
        author=author or (agent.name if agent else "system"),
        category=matches[0],
        text=text[:10000],
        created_at=utcnow(),
    )
    session.add(note)
    session.flush()
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="agent" if agent else (author or "system"),
        action="note",
        field="notes",
        new=note.category,
        agent_id=agent.id if agent else None,
    )
    return note


def list_notes(lead_id: int, *, session: Session) -> list[Note]:
    return list(session.scalars(select(Note).where(Note.lead_id == lead_id).order_by(Note.id)))


def _open_leads_by_agent(terminal_statuses: Sequence[str]) -> Any:
    """(assigned_agent_id, count) of the open (not archived, not merged, not terminal) leads."""
    query = (
        select(Lead.assigned_agent_id, func.count().label("open_leads"))
        .where(
            Lead.assigned_agent_id.is_not(None),
            Lead.archived.is_(False),
            Lead.merged_into_id.is_(None),
        )
        .group_by(Lead.assigned_agent_id)
    )
    if terminal_statuses:
        query = query.where(Lead.status.not_in(list(terminal_statuses)))
    return query


def open_lead_counts(*, session: Session, terminal_statuses: Sequence[str] = ()) -> dict[int, int]:
    """How many open (not archived, not merged, not terminal) leads each agent holds."""
    rows = session.execute(_open_leads_by_agent(terminal_statuses))
    # The query already leaves out unassigned leads; the test only narrows the type.
    return {agent_id: count for agent_id, count in rows if agent_id is not None}


@dataclass(frozen=True)
class TeamMember:
    """An active agent of the workspace in force, its role there and how many open leads it
    holds."""

    agent: Agent
    role: str
    open_leads: int

    @property
    def has_room(self) -> bool:
        return self.open_leads < self.agent.capacity


def active_team(*, session: Session, terminal_statuses: Sequence[str] = ()) -> list[TeamMember]:
    """Every active agent of the workspace in force, in id order, with its role and open leads
    (`open_lead_counts`'s count): one statement, for a turn that picks an agent and, finding
    none, tells the admins."""
    rows = session.execute(_team_statement(tuple(terminal_statuses), current_workspace()))
    return [TeamMember(agent, role or "", int(count)) for agent, role, count in rows]


@lru_cache(maxsize=256)
def _team_statement(terminal_statuses: tuple[str, ...], workspace_id: int) -> Any:
    """`active_team`'s statement, built once per terminal statuses and workspace (an agent's role
    is its membership's in the workspace in force when the statement is built): a turn that
    changes a status runs it without building it, and its cache key is worked out once."""
    load = _open_leads_by_agent(terminal_statuses).subquery()
    with in_workspace(workspace_id):
        return (
            select(Agent, Agent.role, func.coalesce(load.c.open_leads, 0))
            .outerjoin(load, load.c.assigned_agent_id == Agent.id)
            .where(Agent.active.is_(True))
            .order_by(Agent.id)
            # Its role comes in the row: the memberships load only if something asks.
            .options(lazyload(Agent.memberships))
        )


def next_available_agent(
    *,
    session: Session,
    terminal_statuses: Sequence[str] = (),
    team: Sequence[TeamMember] | None = None,
) -> Agent | None:
    """The active agent under capacity with the fewest open leads; ties go round-robin.

    Round-robin: among the tied agents, the one whose most recent assignment is oldest (read only
    when there is a tie). `team`: `active_team` as the caller has just read it.
    """
    if team is None:
        team = active_team(session=session, terminal_statuses=terminal_statuses)
    free = [member for member in team if member.has_room]
    if not free:
        return None
    fewest = min(member.open_leads for member in free)
    tied = [member.agent for member in free if member.open_leads == fewest]
    if len(tied) == 1:
        return tied[0]
    last_assigned = _last_assignment_times(session, [a.id for a in tied])
    epoch = datetime.min.replace(tzinfo=utcnow().tzinfo)
    return min(tied, key=lambda a: (last_assigned.get(a.id) or epoch, a.id))


def _last_assignment_times(session: Session, agent_ids: list[int]) -> dict[int, datetime]:
    rows = session.execute(
        select(AuditEvent.new_value, func.max(AuditEvent.created_at))
        .where(
            AuditEvent.field == "assigned_agent_id",
            AuditEvent.new_value.in_([str(i) for i in agent_ids]),
        )
        .group_by(AuditEvent.new_value)
    )
    return {int(value): at for value, at in rows if value is not None}


def assign_lead(
    lead: Lead,
    agent: Agent | None,
    *,
    session: Session,
    actor: str,
    by_agent: Agent | None = None,
) -> bool:
    """Assign (or with None, unassign) a lead; audited. Returns whether anything changed."""
    if agent is not None and not agent.active:
        raise Invalid(f"agent {agent.name} is disabled", code="agent_disabled", field="agent_id")
    changed = update_lead(
        lead,
        {"assigned_agent_id": agent.id if agent else None},
        session=session,
        actor=actor,
        agent_id=by_agent.id if by_agent else None,
    )
    return bool(changed)


def notify(
    agent: Agent,
    lead: Lead | None,
    text: str,
    *,
    session: Session,
    kind: str = "status",
    deliver_after: datetime | None = None,
) -> Notification:
    notification = Notification(
        agent_id=agent.id,
        lead_id=lead.id if lead else None,
        kind=kind,
        text=text,
        read=False,
        deliver_after=deliver_after,
        created_at=utcnow(),
    )
    session.add(notification)
    session.flush()
    return notification


def unread_notifications(
    agent_id: int, *, session: Session, now: datetime | None = None
) -> list[Notification]:
    """The agent's unread notifications that are due, newest first.

    Notifications queued out of hours wait until they are due.
    """
    now = now or utcnow()
    query = (
        select(Notification)
        .where(Notification.agent_id == agent_id, Notification.read.is_(False))
        .where((Notification.deliver_after.is_(None)) | (Notification.deliver_after <= now))
        .order_by(Notification.id.desc())
    )
    return list(session.scalars(query))


def mark_read(notification_ids: Sequence[int], agent_id: int, *, session: Session) -> int:
    count = 0
    for notification in session.scalars(
        select(Notification).where(
            Notification.id.in_(list(notification_ids)), Notification.agent_id == agent_id
        )
    ):
        if not notification.read:
            notification.read = True
            count += 1
    return count


def record_score(
    lead: Lead,
    score: int,
    factors: list[dict[str, Any]],
    *,
    session: Session,
    message_id: int | None = None,
    engine: str = "offline",
    actor: str = "bot",
    unscored: bool = False,
) -> ScoreEvent | None:
    """Store a score update with its factors; a second update for the same message is ignored.

    Factors are dicts `{"factor", "points", "evidence"}`; the score is clamped to 0..100.
    `unscored`: the caller knows the message has no score yet (the bot, which has just claimed
    it), so nothing is read and the event is written with the caller's next flush, or with the
    rows of its `batched_audit` block. Returns the event added to the session; None when the
    update is ignored, or goes with the block's rows (no object is made for it).
    """
    score = max(0, min(100, int(score)))
    if (
        not unscored
        and message_id is not None
        and session.scalars(select(ScoreEvent).where(ScoreEvent.message_id == message_id)).first()
    ):
        return None
    row = {
        "lead_id": lead.id,
        "message_id": message_id,
        "previous_score": lead.score,
        "score": score,
        "factors": factors,
        "engine": engine,
        "created_at": utcnow(),
        "workspace_id": current_workspace(),
    }
    event = None
    # Inside `batched_audit` (the bot's turn) the event is written with the audit rows.
    if not (unscored and batch_row(session, ScoreEvent.__tablename__, row)):
        event = ScoreEvent(**row)
        session.add(event)
    update_lead(lead, {"score": score, "score_factors": factors}, session=session, actor=actor)
    if not unscored:
        session.flush()
    return event


def score_history(lead_id: int, *, session: Session) -> list[ScoreEvent]:
    return list(
        session.scalars(
            select(ScoreEvent).where(ScoreEvent.lead_id == lead_id).order_by(ScoreEvent.id)
        )
    )


def audit_trail(lead_id: int, *, session: Session, limit: int = 500) -> list[Any]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.lead_id == lead_id)
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )
