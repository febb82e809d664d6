"""Who may see and change what.

Agents work their own and unassigned leads; admins every lead. A locked (converted) lead is
read-only until an admin reopens it: notes stay open to everyone who may see it, archiving to
admins. A former owner whose lead was merged away still reads the notes they wrote.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from store.domain.errors import LeadLocked, NotAllowed, NotFound
from store.leads import LeadNotFound, get_lead
from store.models import Agent, Lead, Note

LeadAction = Literal["note", "reply", "pause", "resume", "archive", "edit", "status", "assign"]

# What a locked lead still allows. Notes stay open to everyone who may see the lead (they record,
# they change nothing); archiving is housekeeping an admin may do. Everything else speaks to the
# customer or changes the lead (replies, pausing or resuming the bot, edits, status, assignment)
# and waits until an admin reopens it.
_ALLOWED_WHEN_LOCKED: dict[str, bool] = {"note": False, "archive": True}  # action -> admins only


def is_admin(agent: Agent) -> bool:
    return agent.role == "admin"


def can_see(agent: Agent, lead: Lead) -> bool:
    """Agents see their own and unassigned leads; admins every lead."""
    return is_admin(agent) or lead.assigned_agent_id in (None, agent.id)


def visible_clause(agent: Agent) -> ColumnElement[bool]:
    """`can_see` as a SQL condition on `Lead`, for queries over many leads."""
    if is_admin(agent):
        return true()
    return or_(Lead.assigned_agent_id == agent.id, Lead.assigned_agent_id.is_(None))


def check_visible(agent: Agent, lead: Lead) -> Lead:
    """The lead, or `NotAllowed` when it is another agent's."""
    if not can_see(agent, lead):
        raise NotAllowed(f"lead {lead.id} is assigned to another agent")
    return lead


def check_admin(agent: Agent, what: str) -> None:
    """`NotAllowed` unless `agent` is an admin; `what` completes "only an admin can …"."""
    if not is_admin(agent):
        raise NotAllowed(f"only an admin can {what}")


def check_unlocked(lead: Lead, action: LeadAction, *, admin: bool) -> None:
    """The one rule for locked leads: `LeadLocked` when `action` is not allowed on this lead for
    this agent (`admin`)."""
    if not lead.locked:
        return
    admins_only = _ALLOWED_WHEN_LOCKED.get(action)
    if admins_only is False or (admins_only and admin):
        return
    raise LeadLocked(
        f"lead {lead.id} was converted and is read-only; an admin can reopen it (notes can still "
        "be added)"
    )


def check_writable(agent: Agent, lead: Lead, action: LeadAction = "edit") -> Lead:
    """The lead, if `agent` may see it and its lock allows `action` for them."""
    check_visible(agent, lead)
    check_unlocked(lead, action, admin=is_admin(agent))
    return lead


def visible_lead(
    lead_id: int, agent: Agent, *, session: Session, action: LeadAction | None = None
) -> Lead:
    """The lead `lead_id` names (following merges) if `agent` may see it; with `action`, also
    refuse what its lock forbids. `NotFound`, `NotAllowed` or `LeadLocked` otherwise."""
    try:
        lead = get_lead(lead_id, session=session)
    except LeadNotFound:
        raise NotFound(f"no lead with id {lead_id}") from None
    check_visible(agent, lead)
    if action is not None:
        check_unlocked(lead, action, admin=is_admin(agent))
    return lead


def has_own_notes(agent: Agent, lead: Lead, *, session: Session) -> bool:
    return (
        session.scalars(
            select(Note.id).where(Note.lead_id == lead.id, Note.agent_id == agent.id).limit(1)
        ).first()
        is not None
    )


def may_read_notes(agent: Agent, lead: Lead, *, session: Session) -> bool:
    """Whether the agent reads any of the lead's notes: with access to the lead, or as a former
    owner whose lead was merged into it (then only their own, see `visible_notes`)."""
    return can_see(agent, lead) or has_own_notes(agent, lead, session=session)


def visible_notes(agent: Agent, lead: Lead, *, session: Session) -> list[Note]:
    """The lead's notes this agent may read: all with access to the lead, else their own."""
    query = select(Note).where(Note.lead_id == lead.id).order_by(Note.id)
    if not can_see(agent, lead):
        query = query.where(Note.agent_id == agent.id)
    return list(session.scalars(query))
