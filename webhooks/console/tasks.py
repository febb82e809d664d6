"""The console's tasks: "My tasks" (overdue, today, this week in the business's time zone), a
lead's "Schedule" and "Log call / meeting" forms, done/reopen, and the agent's calendar token.

The rules are `store.domain.tasks`'s, as for the API and the copilot.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from flask import flash, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from store.calendar import has_calendar_token, rotate_calendar_token
from store.db import read_session
from store.domain import tasks
from store.domain.errors import Invalid
from store.models import Agent
from webhooks.api import lead_edits as edits
from webhooks.api.base import now
from webhooks.api.tasks import business_zone, calendar_url, task_out
from webhooks.app import services
from webhooks.console import auth
from webhooks.console.views import REFUSED, _flash_error, _redirect_back, _row_id, blueprint


def _me() -> Agent:
    agent = auth.current_agent()
    assert agent is not None
    return agent


def local_due(text: str | None, zone: tzinfo) -> datetime | None:
    """A `datetime-local` form value read in the business's zone ("" is no due time)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a date and time", field="due_at") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


@blueprint.get("/tasks")
@auth.login_required
def my_tasks() -> Any:
    """The agent's overdue tasks, the rest of today's and of this week's."""
    me, at = _me(), now()
    zone = business_zone()
    with read_session(services().session_factory) as session:
        plate = tasks.my_plate(me, session=session, now=at, zone=zone)
        lists = {
            "overdue": [task_out(t, at) for t in plate.overdue],
            "today": [task_out(t, at) for t in plate.today],
            "week": [task_out(t, at) for t in plate.week],
        }
        has_token = has_calendar_token(me, session=session)
    return render_template("console_tasks.html", lists=lists, has_calendar_token=has_token)


@blueprint.post("/leads/<int:lead_id>/tasks")
@auth.login_required
def schedule(lead_id: int) -> WerkzeugResponse:
    """Schedule a task on the lead (the "Schedule" form)."""
    me = _me()
    back = url_for("console.lead", lead_id=lead_id)
    try:
        with services().session_factory.begin() as session:
            lead = edits.load_lead(lead_id, me, session=session)
            task = tasks.create_task(
                lead,
                by=me,
                session=session,
                now=now(),
                kind=request.form.get("kind", "call"),
                due_at=local_due(request.form.get("due"), business_zone()),
                notes=request.form.get("notes"),
            )
            title = task.title
    except REFUSED as exc:
        _flash_error(exc)
        return _redirect_back(back)
    flash(f"Scheduled: {title}.", "success")
    return _redirect_back(back)


@blueprint.post("/leads/<int:lead_id>/activities")
@auth.login_required
def log_activity(lead_id: int) -> WerkzeugResponse:
    """Log a call or meeting that happened, with its outcome (one click from the lead)."""
    me = _me()
    back = url_for("console.lead", lead_id=lead_id)
    try:
        with services().session_factory.begin() as session:
            lead = edits.load_lead(lead_id, me, session=session)
            task = tasks.log_activity(
                lead,
                by=me,
                session=session,
                now=now(),
                kind=request.form.get("kind", "call"),
                outcome=request.form.get("outcome", ""),
                notes=request.form.get("notes"),
            )
            title = task.title
    except REFUSED as exc:
        _flash_error(exc)
        return _redirect_back(back)
    flash(f"{title}.", "success")
    return _redirect_back(back)


@blueprint.post("/tasks/<int:task_id>/<any(done, reopen):change>")
@auth.login_required
def change_task(task_id: int, change: str) -> WerkzeugResponse:
    """Mark a task done (with an optional outcome) or open again."""
    me = _me()
    back = url_for("console.my_tasks")
    if _row_id(str(task_id)) is None:
        flash(f"No task with id {task_id}.", "error")
        return _redirect_back(back)
    try:
        with services().session_factory.begin() as session:
            task = tasks.get_task(task_id, me, session=session)
            if change == "done":
                tasks.complete_task(
                    task, by=me, session=session, now=now(), outcome=request.form.get("outcome")
                )
            else:
                tasks.reopen_task(task, by=me, session=session, now=now())
            title = task.title
    except REFUSED as exc:
        _flash_error(exc)
        return _redirect_back(back)
    flash(f"{title}: {'done' if change == 'done' else 'open again'}.", "success")
    return _redirect_back(back)


@blueprint.post("/account/calendar-token")
@auth.login_required
def calendar_token() -> Any:
    """A new read-only calendar token (the old one stops working), shown once."""
    me = _me()
    with services().session_factory.begin() as session:
        token = rotate_calendar_token(me, session=session)
    flash(
        "New calendar address made; the old one no longer works. It is shown only now.", "success"
    )
    return render_template("console_calendar_token.html", url=calendar_url(token))
