"""The bulk tool: assign, set the status of, or archive every lead a filter selects, after the
agent has seen the preview and said yes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot import config as cfg
from copilot.access import CopilotError, Denied, check_visible, find_teammate
from copilot.schemas import BulkArgs
from copilot.tools.base import Confirm, Result, ToolContext, lead_line, tool, writable
from copilot.tools.reading import filter_query
from copilot.tools.status import apply_status
from store.domain.permissions import is_admin
from store.lead_lookups import lead_ids_matching
from store.leads import LeadNotFound, get_lead, update_lead
from store.models import Agent
from store.work import assign_lead, notify


@tool(
    BulkArgs,
    "Assign, set the status of, or archive every lead matching a filter (shows a "
    "preview and asks to confirm).",
    confirm="itself",
    changes_lead=True,
    could_not="I couldn't change those leads",
)
def bulk_update(
    ctx: ToolContext, agent: Agent, session: Session, args: BulkArgs
) -> Result | Confirm:
    action = args.action
    now = ctx.clock()
    q = filter_query(
        ctx,
        agent,
        args.kind,
        args.filter_status,
        args.channel,
        args.score_min,
        args.score_max,
        args.period,
        now,
    )
    if action == "status":
        if not args.status:
            raise CopilotError("Which status should they get?")
        new_status = cfg.canonical_status(ctx.prompts, args.status)
    target: Agent | None = None
    if action == "assign":
        target = find_teammate(args.agent or "", agent, session=session)
        if target is not None and target.id != agent.id and not is_admin(agent):
            raise Denied(
                "Only an admin can give leads to another agent in bulk; you can take them yourself."
            )
    ids = lead_ids_matching(q, session=session, now=now)
    leads = [get_lead(i, session=session) for i in ids]
    if action == "status":
        leads = [lead for lead in leads if lead.status != new_status and not lead.locked]
    elif action == "assign":
        leads = [
            lead
            for lead in leads
            if lead.assigned_agent_id != (target.id if target else None) and not lead.locked
        ]
    if not leads:
        return "No lead you can change matches that, so nothing would change.", {}
    ids = [lead.id for lead in leads]
    preview = [lead_line(lead) for lead in leads[:8]] + (
        [f"… and {len(leads) - 8} more"] if len(leads) > 8 else []
    )
    if action == "assign":
        what = f"Assign {len(ids)} lead(s) to {target.name if target else 'nobody (unassigned)'}?"
        plan: dict[str, Any] = {"lead_ids": ids, "to_agent_id": target.id if target else None}
    elif action == "status":
        what = f"Set {len(ids)} lead(s) to {new_status}?"
        plan = {"lead_ids": ids, "status": new_status}
    else:
        what = f"Archive {len(ids)} lead(s)? They will no longer show in lists."
        plan = {"lead_ids": ids}

    def apply(me: Agent, s: Session, _choice: str, shown_plan: dict[str, Any]) -> Result:
        done = 0
        shown = [int(i) for i in shown_plan.get("lead_ids", ids)]
        for lead_id in shown:
            try:
                lead = writable(check_visible(me, get_lead(lead_id, session=s)))
            except (CopilotError, LeadNotFound):
                continue  # changed hands or was converted meanwhile: left alone
            if action == "assign":
                to = s.get(Agent, plan["to_agent_id"]) if plan["to_agent_id"] is not None else None
                # Assigned without a notice each: the new owner gets one notice for the lot, below.
                if assign_lead(lead, to, session=s, actor="agent", by_agent=me):
                    done += 1
            elif action == "status":
                apply_status(ctx, me, s, lead.id, plan["status"])
                done += 1
            elif not lead.archived:
                update_lead(lead, {"archived": True}, session=s, actor="agent", agent_id=me.id)
                done += 1
        if action == "assign" and plan["to_agent_id"] not in (None, me.id) and done:
            to = s.get(Agent, plan["to_agent_id"])
            if to is not None:
                notify(
                    to, None, f"{me.name} assigned you {done} lead(s).", session=s, kind="assigned"
                )
        skipped = len(shown) - done
        tail = f" ({skipped} changed meanwhile and were left alone.)" if skipped else ""
        verb = {"assign": "Assigned", "status": "Updated", "archive": "Archived"}[action]
        return f"{verb} {done} lead(s).{tail}", {}

    return Confirm(
        f"bulk_{action}",
        "\n".join([what, *preview]),
        plan,
        apply=apply,
        declined=("Okay, nothing was changed.", {}),
    )
