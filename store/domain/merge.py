"""Merging leads by hand and settling merge suggestions: who may decide about two leads.

An admin merges any two leads. An agent needs access to both, neither locked, not two different
agents' leads, and (to merge) an open suggestion that they are one person. The survivor keeps its
owner; the other owner is told and keeps reading the notes they wrote (`store.identity.on_merge`).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from store import identity
from store.domain.errors import NotAllowed, NotFound
from store.domain.permissions import can_see, is_admin
from store.leads import merge_leads
from store.models import Agent, Lead, utcnow

log = logging.getLogger(__name__)


def _check_pair(agent: Agent, target: Lead, other: Lead, verb: str) -> None:
    """`NotAllowed` unless `agent` may decide about these two leads together (merge them, or
    dismiss a suggestion that they are one person)."""
    if is_admin(agent):
        return
    if identity.different_owners(target, other):
        raise NotAllowed(
            f"#{target.id} and #{other.id} belong to two different agents; only an admin can "
            f"{verb} them"
        )
    if not (can_see(agent, target) and can_see(agent, other)):
        hidden = other if can_see(agent, target) else target
        raise NotAllowed(
            f"this needs access to both leads, and #{hidden.id} is assigned to another agent"
        )
    if target.locked or other.locked:
        locked = target if target.locked else other
        raise NotAllowed(f"#{locked.id} was converted and is read-only; an admin can {verb} it")


def check_merge(agent: Agent, target: Lead, other: Lead, *, session: Session) -> None:
    """`NotAllowed` unless `agent` may merge `other` into `target`."""
    if target.id == other.id:
        raise NotAllowed(f"#{target.id} and #{other.id} are already one lead")
    _check_pair(agent, target, other, "merge")
    if is_admin(agent):
        return
    if not any(
        s.other_lead_id == other.id for s in identity.open_suggestions(target, session=session)
    ):
        raise NotAllowed(
            f"nothing suggests #{other.id} and #{target.id} are one person; only an admin can "
            "merge two leads without a suggestion"
        )


def merge_by_hand(
    agent: Agent, target: Lead, other: Lead, *, session: Session, reason: str | None = None
) -> Lead:
    """Merge `other` into `target` for `agent` after `check_merge`; returns the survivor."""
    check_merge(agent, target, other, session=session)
    return merge_leads(
        target,
        other,
        session=session,
        actor="agent",
        agent_id=agent.id,
        into=target,
        reason=reason or "merged by hand",
    )


def dismiss_suggestion(agent: Agent, lead: Lead, suggestion_id: int, *, session: Session) -> Lead:
    """Settle an open merge suggestion on `lead` as "not the same person", for `agent`, who needs
    the access accepting it would need; audited on both leads. Returns the other lead.

    `NotFound` when `lead` has no such open suggestion, `NotAllowed` when `agent` may not decide
    about the two leads. A dismissed pair is not suggested again."""
    suggestion = next(
        (s for s in identity.open_suggestions(lead, session=session) if s.id == suggestion_id),
        None,
    )
    if suggestion is None:
        raise NotFound(f"lead #{lead.id} has no open merge suggestion {suggestion_id}")
    other = session.get(Lead, suggestion.other_lead_id)
    assert other is not None  # open_suggestions lists living leads only
    _check_pair(agent, lead, other, "decide about")
    identity.dismiss_between(lead, other, session=session, agent_id=agent.id, now=utcnow())
    log.info(
        "merge suggestion between leads %s and %s dismissed by agent %s",
        lead.id,
        other.id,
        agent.id,
    )
    return other
