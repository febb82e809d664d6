"""The copilot's tasks: "remind me to call Dana tomorrow at 10", "book a demo with 42 on Thursday
3pm", "what's on my plate today?". The rules are `store.domain.tasks`'s; due times are read in the
business's time zone (`copilot.dates.parse_when`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot.access import CopilotError
from copilot.dates import parse_when
from copilot.schemas import TaskArgs, TasksArgs
from copilot.tools.base import Result, ToolContext, find, label, tool, zone
from store.domain import tasks
from store.models import Agent, Lead, Task


def _when(ctx: ToolContext, task: Task) -> str:
    if task.due_at is None:
        return "no due time"
    return task.due_at.astimezone(zone(ctx)).strftime("%a %d %b %H:%M")


def _describe(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"schedule a {args.get('kind', 'call')} with {label(lead)} {args.get('when', '')}"


@tool(
    TaskArgs,
    "Schedule a task on a lead for the agent: a call, email, meeting (a demo) or other, due at a "
    "time ('remind me to call Dana tomorrow at 10', 'book a demo with 42 on Thursday 3pm').",
    confirm="unasked",
    clarify_lead=True,
    could_not="I couldn't schedule that",
    describe=_describe,
)
def schedule_task(ctx: ToolContext, agent: Agent, session: Session, args: TaskArgs) -> Result:
    now = ctx.clock()
    try:
        due = parse_when(args.when, now=now, zone=zone(ctx))
    except ValueError as exc:
        raise CopilotError(str(exc)) from None
    found = find(ctx, args.lead, agent, session)
    task = tasks.create_task(
        found,
        by=agent,
        session=session,
        now=now,
        kind=args.kind,
        due_at=due,
        notes=args.notes,
        source="copilot",
    )
    past = " (that time has passed: it is overdue already)" if due < now else ""
    return (
        f"Scheduled: {task.title} (#{found.id}), {_when(ctx, task)}{past}. "
        "I'll remind you when it is due."
    ), {"focus_lead_id": found.id}


@tool(
    TasksArgs,
    "The agent's open tasks: today's (with the overdue ones), overdue, this week's or all open, "
    "by due time ('what's on my plate today?').",
)
def my_tasks(ctx: ToolContext, agent: Agent, session: Session, args: TasksArgs) -> Result:
    now = ctx.clock()
    if args.window == "today":
        plate = tasks.my_plate(agent, session=session, now=now, zone=zone(ctx))
        sections = [("Overdue", plate.overdue), ("Today", plate.today)]
    else:
        found = tasks.list_tasks(
            agent, session=session, now=now, zone=zone(ctx), window=args.window
        )
        title = {"overdue": "Overdue", "week": "This week", "open": "Open tasks"}[args.window]
        sections = [(title, found)]
    lines: list[str] = []
    for title, items in sections:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [
                f"• {_when(ctx, t)} · {t.title} (#{t.lead_id})"
                + (f" — {t.notes[:60]}" if t.notes else "")
                for t in items[:20]
            ]
    if not lines:
        nothing = {"today": "today", "overdue": "overdue", "week": "this week", "open": "open"}
        return f"Nothing on your plate ({nothing[args.window]}).", {}
    return "\n".join(lines), {}
