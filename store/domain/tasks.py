"""Follow-up tasks: what an agent owes a lead (a call, an email, a meeting) and when.

One place for every front end (console, API, CLI, copilot) and the bot: create, reschedule or edit,
complete and reopen, the lists (my tasks today / overdue / this week in the business's time zone),
logging a call or meeting that happened, the task the bot proposes from a next best action, and the
reminders (one "due now" notification per task, one morning digest of overdue tasks per agent and
business day). An agent sees the tasks of the leads they may see, and their own; admins all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import insert_for
from store.domain.errors import Invalid, NotFound
from store.domain.permissions import can_see, check_visible, is_admin, visible_clause
from store.domain.policy import OpeningHours
from store.events import inserted
from store.leads import record_audit
from store.models import TASK_KINDS, Agent, Lead, Task, TaskDigest
from store.work import notify

Window = Literal["today", "overdue", "week", "open", "done", "all"]
WINDOWS: tuple[str, ...] = ("today", "overdue", "week", "open", "done", "all")
# How a logged call or meeting went.
OUTCOMES = (
    "reached",
    "no_answer",
    "voicemail",
    "wrong_number",
    "held",
    "no_show",
    "rescheduled",
)
LOGGABLE_KINDS = ("call", "meeting", "email", "other")
MAX_NOTES = 4000
MAX_TITLE = 200
# The bot proposes a task due this long after the status change unless its action says otherwise.
DEFAULT_PROPOSAL_DELAY = timedelta(hours=24)


# ---- reading ------------------------------------------------------------------------------


def can_see_task(agent: Agent, task: Task) -> bool:
    """Admins see every task; an agent their own and those on leads they may see."""
    return is_admin(agent) or task.agent_id == agent.id or can_see(agent, task.lead)


def get_task(task_id: int, agent: Agent, *, session: Session) -> Task:
    """The task if `agent` may see it; `NotFound` otherwise (another agent's task is not shown to
    exist)."""
    task = session.get(Task, task_id) if 0 < task_id < 2**31 else None
    if task is None or not can_see_task(agent, task):
        raise NotFound(f"no task with id {task_id}")
    return task


def _visible(agent: Agent) -> ColumnElement[bool]:
    if is_admin(agent):
        return true()
    return or_(Task.agent_id == agent.id, visible_clause(agent))


def window_range(window: str, *, now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """(start, end) in UTC of "today" or "this week" (Monday to Monday) in the business's zone."""
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    if window == "today":
        start, end = midnight, midnight + timedelta(days=1)
    else:
        start = midnight - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    return _rebuilt(start, zone).astimezone(UTC), _rebuilt(end, zone).astimezone(UTC)


def _rebuilt(value: datetime, zone: tzinfo) -> datetime:
    # Local midnights rebuilt in the zone so a daylight-saving change in between keeps them 00:00.
    return datetime(value.year, value.month, value.day, tzinfo=zone)


def list_tasks(
    agent: Agent,
    *,
    session: Session,
    now: datetime,
    zone: tzinfo = UTC,
    window: str = "open",
    lead_id: int | None = None,
    agent_id: int | None = None,
    limit: int = 200,
) -> list[Task]:
    """Tasks `agent` may see, by due time (undated last).

    Without `lead_id` the list is one agent's (`agent_id`, default the caller's own: "my tasks");
    with it, the lead's tasks. Windows: `today` (open, due today), `overdue` (open, due before
    now), `week` (open, due this week), `open`, `done`, `all`.
    """
    if window not in WINDOWS:
        raise Invalid(
            f"unknown window {window!r}; use one of: {', '.join(WINDOWS)}",
            code="unknown_window",
            field="window",
        )
    query = select(Task).join(Lead, Lead.id == Task.lead_id).where(_visible(agent))
    if lead_id is not None:
        query = query.where(Task.lead_id == lead_id)
        if agent_id is not None:
            query = query.where(Task.agent_id == agent_id)
    else:
        query = query.where(Task.agent_id == (agent_id or agent.id))
    if window == "done":
        query = query.where(Task.done_at.is_not(None))
    elif window != "all":
        query = query.where(Task.done_at.is_(None))
    if window == "overdue":
        query = query.where(Task.due_at < now)
    elif window in ("today", "week"):
        start, end = window_range(window, now=now, zone=zone)
        query = query.where(Task.due_at >= start, Task.due_at < end)
    order = (
        (Task.done_at.desc(), Task.id.desc())
        if window == "done"
        else (Task.due_at.is_(None), Task.due_at, Task.id)
    )
    return list(session.scalars(query.order_by(*order).limit(limit)))


@dataclass
class Plate:
    """An agent's open tasks in the console's three lists."""

    overdue: list[Task] = field(default_factory=list)
    today: list[Task] = field(default_factory=list)
    week: list[Task] = field(default_factory=list)  # later this week (not today, not overdue)


def my_plate(agent: Agent, *, session: Session, now: datetime, zone: tzinfo = UTC) -> Plate:
    """The agent's overdue tasks, the rest of today's and the rest of this week's."""
    plate = Plate(
        overdue=list_tasks(agent, session=session, now=now, zone=zone, window="overdue"),
    )
    overdue = {t.id for t in plate.overdue}
    today_ids: set[int] = set()
    for task in list_tasks(agent, session=session, now=now, zone=zone, window="today"):
        if task.id not in overdue:
            plate.today.append(task)
            today_ids.add(task.id)
    for task in list_tasks(agent, session=session, now=now, zone=zone, window="week"):
        if task.id not in overdue and task.id not in today_ids:
            plate.week.append(task)
    return plate


# ---- changing -------------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    value = (kind or "").strip().lower()
    if value not in TASK_KINDS:
        raise Invalid(
            f"unknown task kind {kind!r}; use one of: {', '.join(TASK_KINDS)}",
            code="unknown_kind",
            field="kind",
        )
    return value


def _check_text(value: str | None, limit: int, name: str) -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise Invalid(f"{name} is too long (at most {limit} characters)", field=name)
    return text


def _check_due(due_at: datetime | None) -> datetime | None:
    if due_at is None:
        return None
    if due_at.tzinfo is None:
        raise Invalid("give the due time with its time zone (or in UTC)", field="due_at")
    if not 2000 <= due_at.year <= 2200:
        raise Invalid("the due time is out of range", field="due_at")
    return due_at.astimezone(UTC)


def _owner(lead: Lead, assignee: Agent | None, by: Agent) -> Agent:
    """Who the task is for: the caller, or (admins only) another active agent who may see the
    lead."""
    if assignee is None or assignee.id == by.id:
        return by
    if not is_admin(by):
        raise Invalid("only an admin can give a task to another agent", field="agent_id")
    if not assignee.active:
        raise Invalid(f"agent {assignee.name} is disabled", code="agent_disabled", field="agent_id")
    if not can_see(assignee, lead):
        raise Invalid(
            f"lead {lead.id} is assigned to another agent; {assignee.name} cannot see it",
            field="agent_id",
        )
    return assignee


def _label(kind: str, lead: Lead) -> str:
    who = lead.name or f"lead #{lead.id}"
    return {
        "call": f"Call {who}",
        "email": f"Email {who}",
        "meeting": f"Meeting with {who}",
    }.get(kind, f"Follow up with {who}")


def create_task(
    lead: Lead,
    *,
    by: Agent,
    session: Session,
    now: datetime,
    kind: str = "call",
    due_at: datetime | None = None,
    notes: str | None = None,
    title: str | None = None,
    assignee: Agent | None = None,
    source: str = "agent",
) -> Task:
    """A new task on `lead` for `by` (or, from an admin, for `assignee`); audited."""
    check_visible(by, lead)
    owner = _owner(lead, assignee, by)
    kind = _check_kind(kind)
    task = Task(
        lead_id=lead.id,
        agent_id=owner.id,
        kind=kind,
        title=_check_text(title, MAX_TITLE, "title") or _label(kind, lead),
        notes=_check_text(notes, MAX_NOTES, "notes"),
        due_at=_check_due(due_at),
        source=source,
        created_by_agent_id=by.id,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="agent",
        action="task",
        field=kind,
        new=_audit_text(task),
        agent_id=by.id,
    )
    return task


def _audit_text(task: Task) -> str:
    due = f" due {task.due_at:%Y-%m-%d %H:%M} UTC" if task.due_at else ""
    return f"{task.title}{due}"


def _check_changeable(task: Task, by: Agent) -> None:
    """Agents change their own tasks (and those on their leads); admins any."""
    if not (is_admin(by) or task.agent_id == by.id or can_see(by, task.lead)):
        raise NotFound(f"no task with id {task.id}")


def update_task(
    task: Task,
    *,
    by: Agent,
    session: Session,
    now: datetime,
    due_at: datetime | None = None,
    clear_due: bool = False,
    kind: str | None = None,
    notes: str | None = None,
    title: str | None = None,
    assignee: Agent | None = None,
) -> bool:
    """Reschedule or edit a task; a new due time makes it remind again. Returns whether anything
    changed."""
    _check_changeable(task, by)
    changed = False
    if kind is not None and _check_kind(kind) != task.kind:
        task.kind, changed = _check_kind(kind), True
    if title is not None:
        value = _check_text(title, MAX_TITLE, "title") or _label(task.kind, task.lead)
        if value != task.title:
            task.title, changed = value, True
    if notes is not None and _check_text(notes, MAX_NOTES, "notes") != task.notes:
        task.notes, changed = _check_text(notes, MAX_NOTES, "notes"), True
    if assignee is not None and assignee.id != task.agent_id:
        task.agent_id, changed = _owner(task.lead, assignee, by).id, True
        task.reminded_at = None
    new_due = None if clear_due else _check_due(due_at)
    if (clear_due or due_at is not None) and new_due != task.due_at:
        old = task.due_at
        task.due_at, task.reminded_at, changed = new_due, None, True
        record_audit(
            session=session,
            lead_id=task.lead_id,
            actor="agent",
            action="task",
            field="due_at",
            old=old.isoformat(timespec="minutes") if old else None,
            new=new_due.isoformat(timespec="minutes") if new_due else None,
            agent_id=by.id,
        )
    if changed:
        task.updated_at = now
        session.flush()
    return changed


def _check_outcome(outcome: str | None) -> str | None:
    if outcome is None or not outcome.strip():
        return None
    value = outcome.strip().lower().replace(" ", "_").replace("-", "_")
    if value not in OUTCOMES:
        raise Invalid(
            f"unknown outcome {outcome!r}; use one of: {', '.join(OUTCOMES)}",
            code="unknown_outcome",
            field="outcome",
        )
    return value


def complete_task(
    task: Task, *, by: Agent, session: Session, now: datetime, outcome: str | None = None
) -> bool:
    """Mark the task done (with how it went); False when it already was."""
    _check_changeable(task, by)
    result = _check_outcome(outcome)
    if task.done_at is not None:
        return False
    task.done_at, task.updated_at = now, now
    if result:
        task.outcome = result
    session.flush()
    record_audit(
        session=session,
        lead_id=task.lead_id,
        actor="agent",
        action="task_done",
        field=task.kind,
        new=task.title + (f" ({result.replace('_', ' ')})" if result else ""),
        agent_id=by.id,
    )
    return True


def reopen_task(task: Task, *, by: Agent, session: Session, now: datetime) -> bool:
    """Mark a done task open again; False when it was open."""
    _check_changeable(task, by)
    if task.done_at is None:
        return False
    task.done_at, task.updated_at = None, now
    session.flush()
    record_audit(
        session=session,
        lead_id=task.lead_id,
        actor="agent",
        action="task_reopen",
        field=task.kind,
        new=task.title,
        agent_id=by.id,
    )
    return True


def log_activity(
    lead: Lead,
    *,
    by: Agent,
    session: Session,
    now: datetime,
    kind: str = "call",
    outcome: str,
    notes: str | None = None,
) -> Task:
    """Record a call or meeting that happened (a done task with its outcome), in the lead's
    activity and audit."""
    check_visible(by, lead)
    kind = _check_kind(kind)
    result = _check_outcome(outcome)
    if result is None:
        raise Invalid("say how it went (an outcome)", code="outcome_required", field="outcome")
    title = {"call": "Call", "meeting": "Meeting", "email": "Email"}.get(kind, "Activity")
    task = Task(
        lead_id=lead.id,
        agent_id=by.id,
        kind=kind,
        title=f"{title} logged: {result.replace('_', ' ')}",
        notes=_check_text(notes, MAX_NOTES, "notes"),
        due_at=now,
        done_at=now,
        reminded_at=now,  # nothing to remind of
        outcome=result,
        source="agent",
        created_by_agent_id=by.id,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="agent",
        action="log",
        field=kind,
        new=f"{result.replace('_', ' ')}" + (f": {task.notes[:200]}" if task.notes else ""),
        agent_id=by.id,
    )
    return task


# ---- what the bot proposes ------------------------------------------------------------------

_WITHIN = re.compile(r"within\s+(\d{1,3})\s*(hour|hr|h|day|d|minute|min)s?\b", re.IGNORECASE)
_KIND_WORDS: tuple[tuple[str, str], ...] = (
    (r"\b(call|phone|ring)\b", "call"),
    (r"\b(email|e-mail|send)\b", "email"),
    (r"\b(book|meeting|meet|demo|survey|visit)\b", "meeting"),
    (r"\b(reply|answer|follow up|follow-up|nurture|address|onboard)\b", "other"),
)
_NO_ACTION = re.compile(r"^\s*(no action|wait\b)", re.IGNORECASE)


def proposal_from_action(action: str | None, now: datetime) -> tuple[str, datetime] | None:
    """(kind, due time) of the task a next best action asks for, or None ("wait", "no action").

    "Call within 24 hours" is a call due in 24 hours; "... now" is due now; otherwise a task is
    due after `DEFAULT_PROPOSAL_DELAY`."""
    text = (action or "").strip()
    if not text or _NO_ACTION.match(text):
        return None
    kind = next((k for pattern, k in _KIND_WORDS if re.search(pattern, text, re.IGNORECASE)), None)
    if kind is None:
        return None
    within = _WITHIN.search(text)
    if within:
        amount, unit = int(within.group(1)), within.group(2).lower()
        delay = (
            timedelta(days=amount)
            if unit.startswith("d")
            else timedelta(minutes=amount)
            if unit.startswith("m")
            else timedelta(hours=amount)
        )
    elif re.search(r"\bnow\b|\btoday\b", text, re.IGNORECASE):
        delay = timedelta(0)
    else:
        delay = DEFAULT_PROPOSAL_DELAY
    return kind, now + delay


def propose_task(
    lead: Lead, owner: Agent, *, session: Session, now: datetime, key: str
) -> Task | None:
    """The task the lead's next best action asks of its owner, once per `key` (the status change
    it follows): a redelivered job finds the key taken and adds nothing."""
    proposal = proposal_from_action(lead.next_best_action, now)
    if proposal is None or not owner.active:
        return None
    kind, due = proposal
    values = {
        "lead_id": lead.id,
        "agent_id": owner.id,
        "kind": kind,
        "title": _label(kind, lead),
        "notes": (lead.next_best_action or "")[:MAX_NOTES],
        "due_at": due,
        "source": "bot",
        "source_key": key[:120],
        "created_at": now,
        "updated_at": now,
    }
    # One statement: the unique key decides whether this change proposed it before.
    task: Task | None = session.scalars(
        _propose_once(session.get_bind().dialect.name), [values]
    ).first()
    if task is None:
        return None  # proposed already for this change
    inserted(session, [task])
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="bot",
        action="task",
        field=kind,
        new=_audit_text(task),
    )
    return task


@cache
def _propose_once(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (source_key) DO NOTHING RETURNING the task, built once a dialect."""
    return (
        insert_for(dialect)(Task)
        .on_conflict_do_nothing(index_elements=["source_key"])
        .returning(Task)
    )


# ---- reminders ------------------------------------------------------------------------------


@dataclass
class ReminderReport:
    reminded: list[int] = field(default_factory=list)  # task ids
    digests: list[int] = field(default_factory=list)  # agent ids


def _when(value: datetime | None, zone: tzinfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %H:%M") if value else "no due time"


def send_due_reminders(
    *, session: Session, now: datetime, zone: tzinfo = UTC, limit: int = 200
) -> list[int]:
    """Notify each open task's agent once when it falls due: the task is claimed by one UPDATE
    (`reminded_at` still NULL), so two sweeps or a restart never remind twice."""
    due = list(
        session.scalars(
            select(Task.id)
            .where(Task.reminded_at.is_(None), Task.done_at.is_(None), Task.due_at <= now)
            .order_by(Task.due_at, Task.id)
            .limit(limit)
        )
    )
    reminded = []
    for task_id in due:
        claimed = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.reminded_at.is_(None), Task.done_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            continue
        task = session.get(Task, task_id)
        assert task is not None
        session.refresh(task)
        agent = session.get(Agent, task.agent_id)
        if agent is None or not agent.active:
            continue
        notify(
            agent,
            task.lead,
            f"Due now: {task.title} ({_when(task.due_at, zone)})."
            + (f" {task.notes[:200]}" if task.notes else ""),
            session=session,
            kind="task_due",
        )
        reminded.append(task_id)
    return reminded


def digest_due(
    now: datetime, *, zone: tzinfo, hours: OpeningHours | None
) -> tuple[date, datetime] | None:
    """(the business day, its opening) when that day's morning digest is due at `now` (the
    opening has passed), else None (a closed day, or before opening). Always open: midnight."""
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    opening = midnight if hours is None else hours.next_opening(midnight)
    if opening is None or opening.astimezone(zone).date() != local.date() or opening > now:
        return None
    return local.date(), opening


def send_digests(
    *,
    session: Session,
    now: datetime,
    zone: tzinfo = UTC,
    hours: OpeningHours | None = None,
    limit: int = 10,
) -> list[int]:
    """At the business's opening, tell each agent with tasks overdue by then what they are, once
    per agent and day (a `TaskDigest` row is the claim). Returns the agents told."""
    due = digest_due(now, zone=zone, hours=hours)
    if due is None:
        return []
    day, opening = due
    label = day.isoformat()
    sent = select(TaskDigest.agent_id).where(TaskDigest.day == label)
    overdue_by_opening = and_(Task.done_at.is_(None), Task.due_at < opening)
    agents = list(
        session.scalars(
            select(Agent)
            .where(Agent.active.is_(True))
            .where(Agent.id.not_in(sent))
            .where(select(Task.id).where(Task.agent_id == Agent.id, overdue_by_opening).exists())
            .order_by(Agent.id)
        )
    )
    told = []
    for agent in agents:
        try:
            with session.begin_nested():
                session.add(TaskDigest(agent_id=agent.id, day=label, sent_at=now))
                session.flush()
        except IntegrityError:
            continue  # another worker sent it
        overdue = [
            t
            for t in list_tasks(agent, session=session, now=opening, zone=zone, window="overdue")
            if t.agent_id == agent.id
        ]
        lines = [f"• {t.title} (due {_when(t.due_at, zone)})" for t in overdue[:limit]]
        if len(overdue) > limit:
            lines.append(f"… and {len(overdue) - limit} more")
        notify(
            agent,
            None,
            f"Good morning: {len(overdue)} overdue task(s).\n" + "\n".join(lines),
            session=session,
            kind="task_digest",
        )
        told.append(agent.id)
    return told


def send_reminders(
    *, session: Session, now: datetime, zone: tzinfo = UTC, hours: OpeningHours | None = None
) -> ReminderReport:
    """One round of reminders: tasks falling due now, then the morning digest if it is due."""
    return ReminderReport(
        reminded=send_due_reminders(session=session, now=now, zone=zone),
        digests=send_digests(session=session, now=now, zone=zone, hours=hours),
    )
