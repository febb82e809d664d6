"""The status tool: set a lead's status as a human (final statuses ask first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.takeover import pause_bot
from copilot import config as cfg
from copilot.access import CopilotError, check_visible, is_admin
from copilot.schemas import StatusArgs
from copilot.tools.base import Confirm, Result, ToolContext, find, label, tidy, tool, writable
from store.leads import get_lead, record_audit, update_lead
from store.models import Agent, Lead
from store.work import assign_lead, next_available_agent, notify

CONVERTED = "Converted"  # the status that closes a sale and locks the lead, as in the REST API


def _final_status(ctx: ToolContext, args: dict[str, Any]) -> bool:
    """A final status asks by itself, with what will change (an unknown one is refused by itself)."""
    try:
        return cfg.canonical_status(ctx.prompts, str(args.get("status", ""))) in cfg.terminal_statuses(ctx.prompts)
    except CopilotError:
        return True


def _describe(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"set {label(lead)} from {lead.status} to {args.get('status')}"


@tool(StatusArgs, "Set a lead's status (final statuses ask the agent to confirm).",
      confirm="unasked", changes_lead=True, clarify_lead=True, could_not="I couldn't change that status",
      asks_itself=_final_status, describe=_describe)
def set_status(ctx: ToolContext, agent: Agent, session: Session, args: StatusArgs) -> Result | Confirm:
    found = writable(find(ctx, args.lead, agent, session))
    new = cfg.canonical_status(ctx.prompts, args.status)
    if found.status == new:
        return f"#{found.id} is already {new}.", {"focus_lead_id": found.id}
    lead_id, old = found.id, found.status
    if new not in cfg.terminal_statuses(ctx.prompts):
        return apply_status(ctx, agent, session, lead_id, new)
    return Confirm(
        "set_status", f"Set #{lead_id} {found.name or '(no name)'} from {old} to {new}? {new} is a final status.",
        {"lead_ids": [lead_id], "status": new},
        apply=lambda me, s, _choice, _plan: apply_status(ctx, me, s, lead_id, new),
        declined=(f"Okay, #{lead_id} stays {old}.", {"focus_lead_id": lead_id}))


def apply_status(ctx: ToolContext, agent: Agent, session: Session, lead_id: int, new: str) -> Result:
    """Set the status as a human, with the same rules as the REST API: any status may be set;
    Converted locks the lead; the status's AI behaviour applies; auto_assign gives an unassigned
    lead to the agent (an admin: to the next available agent); notify tells the owner."""
    found = writable(check_visible(agent, get_lead(lead_id, session=session)))
    old, now = found.status, ctx.clock()
    rule = cfg.status(ctx.prompts, new)
    changes: dict[str, Any] = {"status": new}
    converted = new.lower() == CONVERTED.lower()
    if converted:
        changes.update(locked=True, converted_at=now)
    update_lead(found, changes, session=session, actor="agent", agent_id=agent.id)
    if converted:
        record_audit(session=session, lead_id=found.id, actor="agent", action="convert", field="status",
                     new=new, agent_id=agent.id)
    extra = ""
    if rule is not None and rule.ai_behaviour == "stop":
        if pause_bot(found, session=session, actor="agent", now=now, minutes=None, agent_id=agent.id,
                     reason="status"):
            extra += " The bot stops answering this lead."
    elif rule is not None and rule.ai_behaviour == "pause":
        minutes = rule.pause_minutes or ctx.prompts.business.default_pause_minutes
        if pause_bot(found, session=session, actor="agent", now=now, minutes=minutes, agent_id=agent.id,
                     reason="status"):
            extra += f" The bot pauses for {minutes} minutes."
    if rule is not None and rule.action == "auto_assign" and found.assigned_agent_id is None:
        target = agent if not is_admin(agent) else next_available_agent(
            session=session, terminal_statuses=cfg.terminal_statuses(ctx.prompts))
        if target is not None:
            assign_lead(found, target, session=session, actor="agent", by_agent=agent)
            extra += " It is now assigned to you." if target.id == agent.id else f" Assigned to {target.name}."
            if target.id != agent.id:
                notify(target, found, f"{agent.name} assigned you {found.name or 'a lead'} (#{found.id}).",
                       session=session, kind="assigned")
    elif rule is not None and rule.action == "notify" and not rule.terminal \
            and found.assigned_agent_id not in (None, agent.id):
        owner = session.get(Agent, found.assigned_agent_id)
        if owner is not None and owner.active:
            notify(owner, found, f"{agent.name} set {found.name or f'lead {found.id}'} to {new}.",
                   session=session, kind="status")
    if converted:
        extra += " The lead is now read-only (an admin can reopen it)."
    return tidy(f"#{found.id} {found.name or ''}: status {old} → {new}.{extra}"), {"focus_lead_id": found.id}
