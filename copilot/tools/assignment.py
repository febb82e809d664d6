"""Tools that give leads to agents: one lead, or every open lead of one agent to another."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot.access import CopilotError, Denied, find_teammate
from copilot.schemas import AssignArgs, ReassignArgs
from copilot.tools.base import (
    NOTICES,
    Confirm,
    Result,
    ToolContext,
    find,
    label,
    tidy,
    tool,
    writable,
)
from store.domain.assignment import assign, reassign_book
from store.domain.errors import NotAllowed
from store.domain.permissions import is_admin
from store.lead_lookups import lead_ids_matching
from store.models import Agent, Lead
from store.query import LeadQuery


def _describe(args: dict[str, Any], lead: Lead, owner: Agent | None) -> str:
    return f"assign {label(lead)} to {owner.name if owner else 'nobody'}"


@tool(
    AssignArgs,
    "Assign one lead to an agent ('me' for yourself, 'nobody' to unassign).",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't assign that lead",
    gives_lead_to="agent",
    describe=_describe,
)
def assign_lead(ctx: ToolContext, agent: Agent, session: Session, args: AssignArgs) -> Result:
    found = writable(find(ctx, args.lead, agent, session))
    target = find_teammate(args.agent, agent, session=session)
    changed = assign(found, target, by=agent, session=session, notices=NOTICES)
    who = target.name if target else "nobody"
    if not changed:
        return f"#{found.id} is already assigned to {who}.", {"focus_lead_id": found.id}
    return tidy(f"Assigned #{found.id} {found.name or ''} to {who}."), {"focus_lead_id": found.id}


@tool(
    ReassignArgs,
    "Move all open leads of one agent to another (asks to confirm).",
    confirm="itself",
    changes_lead=True,
    could_not="I couldn't reassign those leads",
)
def reassign_leads(
    ctx: ToolContext, agent: Agent, session: Session, args: ReassignArgs
) -> Result | Confirm:
    source = find_teammate(args.from_agent, agent, session=session)
    target = find_teammate(args.to_agent, agent, session=session)
    if source is None:
        raise CopilotError("Whose leads should I move? Name an agent (or say 'my leads').")
    if source.id != agent.id and not is_admin(agent):
        raise Denied(f"Only an admin can move {source.name}'s leads; you can move your own.")
    if target is not None and target.id == source.id:
        raise CopilotError("That is the same agent.")
    ids = lead_ids_matching(LeadQuery(agent_id=source.id, archived=False), session=session)
    if not ids:
        return f"{source.name} has no open leads to move.", {}
    source_id, source_name = source.id, source.name
    target_id, target_name = (target.id, target.name) if target else (None, "nobody (unassigned)")
    preview = ", ".join(f"#{i}" for i in ids[:10]) + (" …" if len(ids) > 10 else "")

    def apply(me: Agent, s: Session, _choice: str, plan: dict[str, Any]) -> Result:
        owner = s.get(Agent, source_id)
        to = s.get(Agent, target_id) if target_id is not None else None
        if target_id is not None and (to is None or not to.active):
            raise CopilotError(f"{target_name} is no longer an active agent; nothing was moved.")
        shown = {int(i) for i in plan.get("lead_ids", ids)}
        # Only what was shown and still is the source's: leads that changed hands meanwhile stay.
        still = [
            i
            for i in lead_ids_matching(LeadQuery(agent_id=source_id, archived=False), session=s)
            if i in shown
        ]
        try:
            # Converted leads are read-only but still move with their owner's book.
            moved = reassign_book(owner, to, still, by=me, session=s) if owner is not None else []
        except NotAllowed:
            raise Denied(f"Only an admin can move {source_name}'s leads.") from None
        skipped = len(shown) - len(moved)
        tail = f" ({skipped} changed hands meanwhile and were left alone.)" if skipped else ""
        return f"Moved {len(moved)} lead(s) from {source_name} to {target_name}.{tail}", {}

    return Confirm(
        "reassign",
        f"Move {len(ids)} lead(s) from {source_name} to {target_name}? ({preview})",
        {"lead_ids": ids, "from_agent_id": source_id, "to_agent_id": target_id},
        apply=apply,
        declined=("Okay, nothing was moved.", {}),
    )
