"""The status tool: set a lead's status as a human (final statuses ask first)."""

from __future__ import annotations

from collections.abc import Sequence
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
    rules = policy(ctx)
    wanted = rules.status(new)
    if wanted is not None and wanted.asks_reason:
        return _ask_why_lost(ctx, found, new, args.reason, rules.lost_reasons)
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


def match_reason(said: str, reasons: Sequence[str]) -> str | None:
    """The configured lost reason the agent's words name: the same words, or one within the
    other ("price" → "Price too high"); None when none or several fit."""
    text = " ".join(said.split()).lower()
    if not text:
        return None
    for reason in reasons:
        if reason.lower() == text:
            return reason
    close = [r for r in reasons if r.lower() in text or (len(text) >= 4 and text in r.lower())]
    return close[0] if len(close) == 1 else None


def _ask_why_lost(
    ctx: ToolContext, found: Lead, new: str, said: str | None, reasons: Sequence[str]
) -> Confirm:
    """A lost status needs a reason: confirm the one the agent gave, or let them pick one (their
    own words are kept as the note)."""
    lead_id, old, name = found.id, found.status, found.name or "(no name)"
    said = " ".join((said or "").split())
    known = match_reason(said, reasons)
    note = said if said and (known is None or said.lower() != known.lower()) else None
    declined = (f"Okay, #{lead_id} stays {old}.", {"focus_lead_id": lead_id})
    if known is not None:
        words = f"; {note}" if note else ""
        return Confirm(
            "set_status",
            f"Set #{lead_id} {name} from {old} to {new} (reason: {known}{words})? "
            f"{new} is a final status.",
            {"lead_ids": [lead_id], "status": new, "lost_reason": known},
            apply=lambda me, s, _choice, _plan: apply_status(
                ctx, me, s, lead_id, new, reason=known, note=note
            ),
            declined=declined,
        )
    if not reasons:
        raise CopilotError(f"{new} needs a reason, and statuses.yaml lists no lost_reasons.")

    def apply(me: Agent, s: Session, choice: str, _plan: dict[str, Any]) -> Result:
        index = int(choice.removeprefix("reason:"))
        return apply_status(ctx, me, s, lead_id, new, reason=reasons[index], note=note)

    heard = f' ("{note}")' if note else ""
    return Confirm(
        "lost_reason",
        f"Why was #{lead_id} {name} lost{heard}? Pick a reason: {' · '.join(reasons)} "
        "(or no to leave it as it is).",
        {"lead_ids": [lead_id], "status": new},
        apply=apply,
        declined=declined,
        options=(*((f"reason:{i}", r) for i, r in enumerate(reasons)), ("no", "Cancel")),
    )


def apply_status(
    ctx: ToolContext,
    agent: Agent,
    session: Session,
    lead_id: int,
    new: str,
    *,
    reason: str | None = None,
    note: str | None = None,
) -> Result:
    """Set the status as a human (`store.domain.status.change_status`: its lock, AI behaviour,
    action and, for a lost status, its reason) and say what it did."""
    found = writable(check_visible(agent, get_lead(lead_id, session=session)))
    change = change_status(
        found,
        new,
        by=agent,
        session=session,
        policy=policy(ctx),
        now=ctx.clock(),
        notices=NOTICES,
        reason=reason,
        reason_note=note,
    )
    extra = f" Reason: {reason}." if reason else ""
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
