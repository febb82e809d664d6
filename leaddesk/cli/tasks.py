"""`leaddesk tasks list|add|done`: follow-up tasks from the terminal, acting as one agent.

Times without a zone are read in the business's time zone (business.yaml `timezone:`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from leaddesk.cli.common import UserError, int_in, open_store, print_json, table
from leaddesk.settings import Settings
from store.agents import find_agent
from store.domain import tasks
from store.domain.errors import RuleError
from store.domain.permissions import visible_lead
from store.models import TASK_KINDS, Agent, Task, utcnow


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "tasks",
        help="list, add and complete follow-up tasks",
        description="List, add and complete an agent's follow-up tasks (calls, emails, meetings).",
    )
    sub = group.add_subparsers(dest="tasks_command", metavar="ACTION")
    sub.required = True

    ls = sub.add_parser(
        "list",
        help="an agent's tasks: today, overdue, this week, open, done or all",
        description="List an agent's tasks by due time, in a window of the business's time zone.",
    )
    ls.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    ls.add_argument(
        "--window", choices=tasks.WINDOWS, default="open", help="which tasks (default open)"
    )
    ls.add_argument("--json", action="store_true", help="print a JSON array of tasks")
    ls.set_defaults(func=run_list)

    add = sub.add_parser(
        "add",
        help="add a task on a lead for an agent",
        description="Add a task on a lead the agent may see.",
    )
    add.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    add.add_argument("lead_id", metavar="LEAD", type=int_in(1, 2**31 - 1), help="the lead's id")
    add.add_argument("--kind", choices=TASK_KINDS, default="call", help="default call")
    add.add_argument(
        "--due", metavar="WHEN", help="YYYY-MM-DD HH:MM (business time zone unless it says one)"
    )
    add.add_argument("--notes", default="", help="what the task is about")
    add.add_argument("--json", action="store_true", help="print the task as JSON")
    add.set_defaults(func=run_add)

    done = sub.add_parser(
        "done", help="mark a task done", description="Mark a task done (as its agent)."
    )
    done.add_argument("task_id", metavar="TASK", type=int_in(1, 2**31 - 1), help="the task's id")
    done.add_argument("--outcome", choices=tasks.OUTCOMES, help="how it went")
    done.set_defaults(func=run_done)


def business_zone(settings: Settings) -> tzinfo:
    """The business's time zone from the prompts; UTC (with a warning) when they do not load."""
    from bot.config import PromptError, load_prompts  # noqa: PLC0415 - brings LangGraph

    try:
        return ZoneInfo(load_prompts(settings.prompts_dir).business.timezone)
    except (PromptError, ValueError, KeyError):
        print(
            "leaddesk: warning: no business time zone (prompts do not load); using UTC",
            file=sys.stderr,
        )
        return UTC


def parse_due(text: str, zone: tzinfo) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{text!r} is not a time; write YYYY-MM-DD HH:MM") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _agent(session, ref: str) -> Agent:  # type: ignore[no-untyped-def]
    agent = find_agent(ref, session=session)
    if agent is None:
        raise UserError(f"no agent matches {ref!r} (use an id, an email or an exact name)")
    return agent


def _row(task: Task, zone: tzinfo) -> dict[str, object]:
    return {
        "id": task.id,
        "lead_id": task.lead_id,
        "lead": task.lead.name,
        "agent_id": task.agent_id,
        "kind": task.kind,
        "title": task.title,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "due_local": task.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if task.due_at else "",
        "done": task.done,
        "outcome": task.outcome,
        "notes": task.notes,
    }


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    zone = business_zone(settings)
    with open_store(settings) as session_factory, session_factory() as session:
        agent = _agent(session, args.agent)
        found = tasks.list_tasks(
            agent, session=session, now=utcnow(), zone=zone, window=args.window
        )
        rows = [_row(t, zone) for t in found]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no tasks ({args.window})")
        return 0
    print(
        table(
            [
                [
                    str(r["id"]),
                    str(r["due_local"] or "—"),
                    str(r["kind"]),
                    str(r["title"]),
                    "done" if r["done"] else "open",
                ]
                for r in rows
            ],
            ["ID", "DUE", "KIND", "TASK", "STATE"],
        )
    )
    return 0


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    zone = business_zone(settings)
    due = parse_due(args.due, zone) if args.due else None
    with open_store(settings) as session_factory, session_factory.begin() as session:
        agent = _agent(session, args.agent)
        try:
            lead = visible_lead(args.lead_id, agent, session=session)
            task = tasks.create_task(
                lead,
                by=agent,
                session=session,
                now=utcnow(),
                kind=args.kind,
                due_at=due,
                notes=args.notes,
            )
        except RuleError as exc:
            raise UserError(exc.message) from None
        row = _row(task, zone)
    if args.json:
        print_json(row)
    else:
        print(f"task {row['id']}: {row['title']}" + (f", due {row['due_local']}" if due else ""))
    return 0


def run_done(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, session_factory.begin() as session:
        task = session.get(Task, args.task_id)
        if task is None:
            raise UserError(f"no task with id {args.task_id}")
        try:
            changed = tasks.complete_task(
                task, by=task.agent, session=session, now=utcnow(), outcome=args.outcome
            )
        except RuleError as exc:
            raise UserError(exc.message) from None
        title = task.title
    print(f"task {args.task_id} ({title}) " + ("done" if changed else "was already done"))
    return 0
