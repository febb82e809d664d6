"""The status tool: set a lead's status as a human (final statuses ask first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot import config as cfg
from copilot.access import CopilotError, check_visible
from copilot.schemas import StatusArgs
from copilot.tools.base import (
    NOTICES,
    Confirm,
    Result,
    ToolContext,
    find,
    label,
    policy,
    tidy,
    tool,
    writable,
)
from store.domain.status import change_status
from store.leads import get_lead
from store.models import Agent, Lead


def _final_status(ctx: ToolContext, args: dict[str, Any]) -> bool:
    """A final status asks by itself, with what will change (an unknown one: refused by itself)."""
    try:
        return cfg.canonical_status(
            ctx.prompts, str(args.get("status", ""))
        ) in cfg.terminal_statuses(ctx.prompts)
    except CopilotError:
        return True


def _describe(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"set {label(lead)} from {lead.status} to {args.get('status')}"


@tool(
    StatusArgs,
    "Set a lead's status (final statuses ask the agent to confirm).",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't change that status",
    asks_itself=_final_status,
    describe=_describe,
)
def set_status(
    ctx: ToolContext, agent: Agent, session: Session, args: StatusArgs
) -> Result | Confirm:
    found = writable(find(ctx, args.lead, agent, session))
    new = cfg.canonical_status(ctx.prompts, args.status)
    if found.status == new:
        return f"#{found.id} is already {new}.", {"focus_lead_id": found.id}
    lead_id, old = found.id, found.status
    if new not in cfg.terminal_statuses(ctx.prompts):
        return apply_status(ctx, agent, session, lead_id, new)
    return Confirm(
        "set_status",
        f"Set #{lead_id} {found.name or '(no name)'} from {old} to {new}? {new} is a final status.",
        {"lead_ids": [lead_id], "status": new},
        apply=lambda me, s, _choice, _plan: apply_status(ctx, me, s, lead_id, new),
        declined=(f"Okay, #{lead_id} stays {old}.", {"focus_lead_id": lead_id}),
    )


def apply_status(
    ctx: ToolContext, agent: Agent, session: Session, lead_id: int, new: str
) -> Result:
    """Set the status as a human (`store.domain.status.change_status`: its lock, AI behaviour and
    action) and say what it did."""
    found = writable(check_visible(agent, get_lead(lead_id, session=session)))
    change = change_status(
        found, new, by=agent, session=session, policy=policy(ctx), now=ctx.clock(), notices=NOTICES
    )
    extra = ""
    if change.stopped:
        extra += " The bot stops answering this lead."
    elif change.paused_minutes is not None:
        extra += f" The bot pauses for {change.paused_minutes} minutes."
    if change.assigned_to is not None:
        extra += (
            " It is now assigned to you."
            if change.assigned_to.id == agent.id
            else f" Assigned to {change.assigned_to.name}."
        )
    if change.locked:
        extra += " The lead is now read-only (an admin can reopen it)."
    return tidy(
        f"#{found.id} {found.name or ''}: status {change.old_status} → {change.new_status}.{extra}"
    ), {"focus_lead_id": found.id}
