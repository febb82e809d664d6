"""Task endpoints: an agent's follow-ups (calls, emails, meetings) on leads, logging a call or
meeting that happened, and the agent's calendar feed (.ics) opened by a read-only token.

The rules are `store.domain.tasks`'s; another agent's task answers 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from flask import Response, g, jsonify, request, url_for
from icalendar import Calendar, Event
from sqlalchemy.orm import Session

from store.calendar import (
    agent_by_calendar_token,
    calendar_token_workspace,
    rotate_calendar_token,
)
from store.db import read_session
from store.domain import tasks
from store.domain.errors import Invalid
from store.models import Agent, Task
from store.tenancy import in_workspace
from webhooks.api import lead_edits as edits
from webhooks.api import schemas
from webhooks.api.base import endpoint, now
from webhooks.api.catalog import current_prompts
from webhooks.app import ApiError, services

TAG = "Tasks"
# How long a task without a length of its own takes in a calendar.
EVENT_MINUTES = {"call": 15, "email": 15, "meeting": 60, "other": 30}
FEED_DAYS_BACK = 30  # done tasks older than this leave the feed


def business_zone() -> tzinfo:
    """The business's time zone (business.yaml `timezone:`), UTC when none is configured."""
    hours = getattr(current_prompts().business, "hours", None)
    zone: tzinfo = getattr(hours, "zone", None) or UTC
    return zone


def task_out(task: Task, at: datetime) -> dict[str, Any]:
    return {
        "id": task.id,
        "lead_id": task.lead_id,
        "lead_name": task.lead.name if task.lead is not None else None,
        "agent_id": task.agent_id,
        "kind": task.kind,
        "title": task.title,
        "notes": task.notes,
        "due_at": task.due_at,
        "done": task.done,
        "done_at": task.done_at,
        "outcome": task.outcome,
        "overdue": task.done_at is None and task.due_at is not None and task.due_at < at,
        "source": task.source,
        "created_at": task.created_at,
    }


def _assignee(agent_id: int | None, *, session: Session) -> Agent | None:
    if agent_id is None:
        return None
    found = session.get(Agent, agent_id)
    if found is None:
        raise Invalid(f"no agent with id {agent_id}", field="agent_id")
    return found


def _me(session: Session) -> Agent:
    agent = session.get(Agent, g.agent.id)
    if agent is None:
        raise ApiError(401, "unauthorized", "unknown or disabled agent token")
    return agent


@endpoint(
    "GET",
    "/tasks",
    summary="List tasks",
    tag=TAG,
    query=schemas.TaskParams,
    response=schemas.TaskList,
    errors=(400, 401, 422),
)
def list_tasks(params: schemas.TaskParams) -> Any:
    """Your tasks (an admin may name another agent) in a window of the business's time zone:
    `today`, `overdue`, `week`, `open` (default), `done`, `all`; by due time."""
    at = now()
    with read_session(services().session_factory) as session:
        found = tasks.list_tasks(
            _me(session),
            session=session,
            now=at,
            zone=business_zone(),
            window=params.window,
            agent_id=params.agent_id,
        )
        data = [task_out(t, at) for t in found]
    return jsonify(schemas.TaskList.model_validate({"tasks": data}).model_dump(mode="json"))


@endpoint(
    "POST",
    "/tasks",
    summary="Create a task",
    tag=TAG,
    body=schemas.TaskCreate,
    response=schemas.TaskOut,
    status=201,
    errors=(400, 401, 403, 404, 422),
)
def create_task(body: schemas.TaskCreate) -> Any:
    """A call, email, meeting or other task on a lead you may see, due at `due_at` (with its time
    zone); an admin may give it to another agent who can see the lead."""
    at = now()
    with services().session_factory.begin() as session:
        lead = edits.load_lead(body.lead_id, g.agent, session=session)
        task = tasks.create_task(
            lead,
            by=_me(session),
            session=session,
            now=at,
            kind=body.kind,
            due_at=body.due_at,
            title=body.title,
            notes=body.notes,
            assignee=_assignee(body.agent_id, session=session),
        )
        data = task_out(task, at)
    return jsonify(schemas.TaskOut(**data).model_dump(mode="json")), 201


@endpoint(
    "GET",
    "/tasks/<int:task_id>",
    summary="Get a task",
    tag=TAG,
    response=schemas.TaskOut,
    errors=(401, 404),
)
def get_task(task_id: int) -> Any:
    at = now()
    with read_session(services().session_factory) as session:
        data = task_out(tasks.get_task(task_id, _me(session), session=session), at)
    return jsonify(schemas.TaskOut(**data).model_dump(mode="json"))


@endpoint(
    "PATCH",
    "/tasks/<int:task_id>",
    summary="Update a task",
    tag=TAG,
    body=schemas.TaskUpdate,
    response=schemas.TaskOut,
    errors=(400, 401, 404, 422),
)
def update_task(task_id: int, body: schemas.TaskUpdate) -> Any:
    """Reschedule (`due_at`; null clears it), edit, hand over (admins) or complete/reopen
    (`done`). A new due time reminds again."""
    at = now()
    given = body.model_fields_set
    with services().session_factory.begin() as session:
        me = _me(session)
        task = tasks.get_task(task_id, me, session=session)
        tasks.update_task(
            task,
            by=me,
            session=session,
            now=at,
            due_at=body.due_at,
            clear_due="due_at" in given and body.due_at is None,
            kind=body.kind,
            title=body.title,
            notes=body.notes,
            assignee=_assignee(body.agent_id, session=session),
        )
        if body.done is True:
            tasks.complete_task(task, by=me, session=session, now=at)
        elif body.done is False:
            tasks.reopen_task(task, by=me, session=session, now=at)
        data = task_out(task, at)
    return jsonify(schemas.TaskOut(**data).model_dump(mode="json"))


@endpoint(
    "POST",
    "/tasks/<int:task_id>/complete",
    summary="Complete a task",
    tag=TAG,
    body=schemas.TaskComplete,
    response=schemas.TaskOut,
    errors=(400, 401, 404, 422),
)
def complete_task(task_id: int, body: schemas.TaskComplete) -> Any:
    """Mark the task done, optionally with how it went (`outcome`)."""
    at = now()
    with services().session_factory.begin() as session:
        me = _me(session)
        task = tasks.get_task(task_id, me, session=session)
        tasks.complete_task(task, by=me, session=session, now=at, outcome=body.outcome)
        data = task_out(task, at)
    return jsonify(schemas.TaskOut(**data).model_dump(mode="json"))


@endpoint(
    "GET",
    "/leads/<int:lead_id>/tasks",
    summary="List a lead's tasks",
    tag=TAG,
    query=schemas.LeadTaskParams,
    response=schemas.TaskList,
    errors=(400, 401, 403, 404, 422),
)
def list_lead_tasks(lead_id: int, params: schemas.LeadTaskParams) -> Any:
    """The lead's tasks and logged calls and meetings (window `all` by default)."""
    at = now()
    with read_session(services().session_factory) as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        found = tasks.list_tasks(
            _me(session),
            session=session,
            now=at,
            zone=business_zone(),
            window=params.window,
            lead_id=lead.id,
        )
        data = [task_out(t, at) for t in found]
    return jsonify(schemas.TaskList.model_validate({"tasks": data}).model_dump(mode="json"))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/activities",
    summary="Log a call or meeting",
    tag=TAG,
    body=schemas.ActivityCreate,
    response=schemas.TaskOut,
    status=201,
    errors=(400, 401, 403, 404, 422),
)
def log_activity(lead_id: int, body: schemas.ActivityCreate) -> Any:
    """Record a call or meeting that happened with its outcome and notes: it shows in the lead's
    activity and audit."""
    at = now()
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        task = tasks.log_activity(
            lead,
            by=_me(session),
            session=session,
            now=at,
            kind=body.kind,
            outcome=body.outcome,
            notes=body.notes,
        )
        data = task_out(task, at)
    return jsonify(schemas.TaskOut(**data).model_dump(mode="json")), 201


@endpoint(
    "POST",
    "/agents/me/calendar-token",
    summary="Create or rotate your calendar token",
    tag=TAG,
    response=schemas.CalendarTokenOut,
    status=201,
    errors=(401,),
)
def new_calendar_token() -> Any:
    """A read-only token for your task feed (the old one stops working): subscribe to `url` in
    Google Calendar or Outlook."""
    with services().session_factory.begin() as session:
        token = rotate_calendar_token(_me(session), session=session)
    data = {"token": token, "url": calendar_url(token)}
    return jsonify(schemas.CalendarTokenOut(**data).model_dump(mode="json")), 201


def calendar_url(token: str) -> str:
    return url_for("leads_api.calendar_feed", token=token, _external=True)


@endpoint(
    "GET",
    "/agents/me/calendar.ics",
    summary="Your tasks as an iCalendar feed",
    tag=TAG,
    query=schemas.CalendarParams,
    auth=False,
    produces="text/calendar",
    errors=(400, 404),
)
def calendar_feed(params: schemas.CalendarParams) -> Any:
    """Your tasks with a due time (open ones, and those done in the last 30 days) as events, for a
    calendar app; `token` is your calendar token, not your agent token."""
    at = now()
    with read_session(services().session_factory) as session:
        # The token names its workspace: the feed is of that workspace, whatever the request says.
        workspace_id = calendar_token_workspace(params.token, session=session)
        if workspace_id is None:
            # A secret address: an unknown token is no feed (and says nothing of the agents).
            raise ApiError(404, "not_found", "no calendar feed for this token")
        with in_workspace(workspace_id):
            agent = agent_by_calendar_token(params.token, session=session)
            if agent is None:
                raise ApiError(404, "not_found", "no calendar feed for this token")
            found = [
                t
                for t in tasks.list_tasks(agent, session=session, now=at, window="all", limit=2000)
                if t.due_at is not None
                and (t.done_at is None or t.done_at >= at - timedelta(days=FEED_DAYS_BACK))
            ]
            body = calendar_ics(found, agent_name=agent.name, host=request.host)
    response = Response(body, mimetype="text/calendar")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def calendar_ics(found: list[Task], *, agent_name: str, host: str) -> bytes:
    """The tasks as the events of one calendar, in UTC; a done task keeps its place with "✓"
    before its summary."""
    calendar = Calendar()
    calendar.add("prodid", "-//Leaddesk//Tasks//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"Leaddesk tasks: {agent_name}")
    for task in found:
        assert task.due_at is not None
        event = Event()
        event.add("uid", f"task-{task.id}@{host}")
        event.add("summary", ("✓ " if task.done else "") + task.title)
        event.add("dtstart", task.due_at)
        event.add("dtend", task.due_at + timedelta(minutes=EVENT_MINUTES.get(task.kind, 30)))
        event.add("dtstamp", task.updated_at)
        event.add("categories", [task.kind])
        if task.notes:
            event.add("description", task.notes)
        event.add("status", "CONFIRMED")
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
