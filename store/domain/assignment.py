"""Who works a lead: assigning one lead, many at once, round-robin by capacity, moving an agent's
book; the new owner is told (unless they did it themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from store.domain.errors import Conflict, Invalid, NotAllowed
from store.domain.permissions import check_writable, is_admin
from store.domain.policy import Policy
from store.leads import get_lead
from store.models import Agent, Lead
from store.work import assign_lead, next_available_agent, notify

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL


def _lead_label(lead: Lead) -> str:
    return lead.name or f"lead {lead.id}"


@dataclass(frozen=True)
class Notices:
    """How a front end words the notifications a person's change sends (each keeps its voice)."""

    assigned: Callable[[Agent, Lead], str]  # (who assigned, the lead) -> text for the new owner
    status_set: Callable[[Agent, Lead, str], str]  # (who, the lead, the status) -> for the owner


NOTICES = Notices(
    assigned=lambda by, lead: f"{by.name} assigned {_lead_label(lead)} to you",
    status_set=lambda by, lead, status: f"{by.name} set {_lead_label(lead)} to {status}",
)


def find_assignee(agent_id: int | None, *, session: Session) -> Agent | None:
    """The active agent `agent_id` names (None: nobody), or `Invalid` (`unknown_agent`,
    `agent_disabled`)."""
    if agent_id is None:
        return None
    target = session.get(Agent, agent_id) if 0 < agent_id <= MAX_ID else None
    if target is None:
        raise Invalid(f"no agent with id {agent_id}", code="unknown_agent", field="agent_id")
    check_assignable(target)
    return target


def check_assignable(target: Agent | None) -> None:
    """`Invalid` (`agent_disabled`) when `target` is a disabled agent."""
    if target is not None and not target.active:
        raise Invalid(f"agent {target.name} is disabled", code="agent_disabled", field="agent_id")


def assign(
    lead: Lead,
    target: Agent | None,
    *,
    by: Agent,
    session: Session,
    notices: Notices = NOTICES,
) -> bool:
    """A person assigns `lead` to `target` (None: unassigns it) and the new owner is told, unless
    they did it themselves. Returns whether anything changed."""
    check_writable(by, lead, "assign")
    check_assignable(target)
    changed = assign_lead(lead, target, session=session, actor="agent", by_agent=by)
    if changed and target is not None and target.id != by.id:
        notify(target, lead, notices.assigned(by, lead), session=session, kind="assigned")
    return changed


def round_robin_agent(*, session: Session, policy: Policy) -> Agent:
    """The active agent under capacity with the fewest open leads (ties round-robin), or
    `Conflict` (`no_agent_available`)."""
    target = next_available_agent(session=session, terminal_statuses=policy.terminal_statuses)
    if target is None:
        raise Conflict(
            "every active agent is at capacity (or none is active)", code="no_agent_available"
        )
    return target


@dataclass
class BulkOutcome:
    """What a change to many leads did: counts, and the leads it skipped with why."""

    matched: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "matched": self.matched,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


LOCKED_SKIP = "converted (read-only)"


def bulk_assign(
    leads: Iterable[Lead],
    target: Agent | None,
    *,
    by: Agent,
    session: Session,
    policy: Policy,
    round_robin: bool = False,
    notices: Notices = NOTICES,
) -> BulkOutcome:
    """Assign each lead to `target`, or with `round_robin` each to the next available agent;
    locked leads are skipped."""
    outcome = BulkOutcome()
    check_assignable(target)
    for lead in leads:
        outcome.matched += 1
        if lead.locked:
            outcome.skipped.append({"id": lead.id, "reason": LOCKED_SKIP})
            continue
        chosen = round_robin_agent(session=session, policy=policy) if round_robin else target
        if assign(lead, chosen, by=by, session=session, notices=notices):
            outcome.changed += 1
            session.flush()  # the next round-robin pick counts this assignment
        else:
            outcome.unchanged += 1
    return outcome


def reassign_book(
    source: Agent,
    target: Agent | None,
    lead_ids: Iterable[int],
    *,
    by: Agent,
    session: Session,
) -> list[int]:
    """Move the listed leads that are still `source`'s to `target` (None: unassign them); locked
    leads move too, as part of the owner's book. Agents move their own book, admins anyone's.
    The new owner gets one notification. Returns the ids moved."""
    if source.id != by.id and not is_admin(by):
        raise NotAllowed(f"only an admin can move {source.name}'s leads")
    check_assignable(target)
    moved: list[int] = []
    for lead_id in lead_ids:
        lead = get_lead(lead_id, session=session)
        if lead.assigned_agent_id != source.id:
            continue  # changed hands meanwhile
        assign_lead(lead, target, session=session, actor="agent", by_agent=by)
        moved.append(lead.id)
    if target is not None and moved and target.id != by.id:
        notify(
            target,
            None,
            f"{by.name} moved {len(moved)} of {source.name}'s leads to you.",
            session=session,
            kind="assigned",
        )
    return moved
