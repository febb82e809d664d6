"""The web console for agents and admins: server-rendered pages over the same operations as the REST
API.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from store import identity
from store.agents import (
    AgentError,
    list_agents,
    rotate_token,
    set_password,
)
from store.contacts import InvalidContact
from store.conversation_list import unread_conversations
from store.db import read_session
from store.domain import assignment, tasks
from store.domain import merge as lead_merge
from store.domain import status as lead_status
from store.domain import team as workspace_team
from store.domain.errors import RuleError
from store.domain.mail import send_email
from store.domain.permissions import is_admin, may_read_notes, visible_notes
from store.domain.takeover import pause_by_agent, resume_by_agent
from store.domain.waiting import add_agent, set_agent_active
from store.leads import LeadNotFound, get_lead
from store.models import CHANNELS, NOTE_CATEGORIES, TASK_KINDS, Agent, Lead
from store.query import LeadCount
from store.tenancy import current_workspace
from store.work import mark_read, open_lead_counts, unread_notifications
from webhooks.api import catalog, conversations, emails, schemas, stats, transfer
from webhooks.api import lead_edits as edits
from webhooks.api.base import api_error, now, parse_model
from webhooks.api.leads import lead_page
from webhooks.api.notifications import agent_notifications, scheduled_notifications
from webhooks.api.serialize import BANDS, band, lead_detail, lead_summary, note_out
from webhooks.api.tasks import task_out
from webhooks.app import ApiError, services
from webhooks.console import auth, charts
from webhooks.outbound import reply_window

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PAGE_SIZE = 50
STALE_DAYS = 7
_LIST_PARAMS = (
    "status",
    "hot",
    "unassigned",
    "mine",
    "period",
    "stale",
    "channel",
    "score_min",
    "score_max",
    "q",
    "sort",
    "archived",
    "agent_id",
)


@blueprint.record_once
def _cookie_defaults(state: Any) -> None:
    # The console's session cookie is not readable by scripts and not sent on cross-site posts.
    auth.configure_cookies(state.app, state.app.extensions["leaddesk"].settings)


@blueprint.before_request
def _protect() -> None:
    auth.check_csrf()
    if request.endpoint != "console.static":
        # Signs the agent in and enters their session's workspace for the whole request.
        auth.current_agent()


@blueprint.errorhandler(HTTPException)
def _page_error(exc: HTTPException) -> Any:
    return render_template(
        "console_error.html", code=exc.code, title=exc.name, message=exc.description
    ), exc.code or 500


@blueprint.app_template_filter("ago")
def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (now() - value).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _zone() -> tzinfo:
    """The business's time zone (`timezone:` in business.yaml): every time the console shows."""
    return services().prompts().business.hours.zone


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@blueprint.app_template_filter("when")
def _when(value: datetime | None) -> str:
    """The time in the business's zone, e.g. 2026-11-28 09:05."""
    return _aware(value).astimezone(_zone()).strftime("%Y-%m-%d %H:%M") if value else "—"


@blueprint.app_template_filter("clock")
def _clock(value: datetime | None) -> str:
    """A time to come, briefly, in the business's zone: "09:00" today, else "Mon 09:00"."""
    if value is None:
        return "—"
    zone = _zone()
    local = _aware(value).astimezone(zone)
    if local.date() == now().astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%a %d %b %H:%M")


@blueprint.app_template_filter("utc")
def _utc(value: datetime | None) -> str:
    """The time in UTC, for tooltips."""
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


@blueprint.app_template_filter("iso")
def _iso(value: datetime | None) -> str:
    return _aware(value).astimezone(UTC).isoformat(timespec="seconds") if value else ""


def _prompts_rejected(agent: Agent | None) -> bool:
    """Whether admins should see that a saved prompts change was rejected."""
    probe = services().prompts_health
    if agent is None or not is_admin(agent) or probe is None:
        return False
    return bool(probe().get("rejected"))


def _zone_name() -> str:
    return services().prompts().business.timezone


def count_inbox_unread(agent: Agent, *, session: Any) -> int:
    """The agent's conversations with unread messages, counted once per request (a view that
    counts them itself leaves the number for the page's navigation)."""
    g.inbox_unread = unread_conversations(agent, session=session)
    return int(g.inbox_unread)


@blueprint.context_processor
def _context() -> dict[str, Any]:
    agent = auth.current_agent()
    unread = inbox_unread = 0
    if agent is not None:
        with read_session(services().session_factory) as session:
            unread = len(unread_notifications(agent.id, session=session, now=now()))
            inbox_unread = g.get("inbox_unread")
            if inbox_unread is None:
                inbox_unread = count_inbox_unread(agent, session=session)
    return {
        "me": agent,
        "workspaces": auth.workspaces(),
        "workspace_id": current_workspace(),
        "csrf_token": auth.csrf_token,
        "unread_count": unread,
        "inbox_unread": inbox_unread,
        "prompts_rejected": _prompts_rejected(agent),
        "status_colours": catalog.status_colours(),
        "band_colours": charts.BAND_COLOURS,
        "channel_colours": charts.CHANNEL_COLOURS,
        "band_of": band,
        "time_zone": _zone_name(),
        # Sending email is offered only when LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM are set.
        "email_ready": services().settings.email_configured,
        # A lost status asks why (statuses.yaml's asks_reason and lost_reasons).
        "lost_statuses": [st.name for st in catalog.statuses() if st.asks_reason],
        "lost_reasons": catalog.policy().lost_reasons,
    }


def _redirect_back(default: str) -> WerkzeugResponse:
    target = request.form.get("next") or default
    return redirect(auth.safe_next(target))


def _row_id(value: str | None) -> int | None:
    """A form value that is a positive database id, else None."""
    value = (value or "").strip()
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= schemas.MAX_ID else None


# What a refused request raises: the API layer's own errors and the business rules' refusals.
REFUSED = (ApiError, RuleError)


def _flash_error(exc: ApiError | RuleError) -> None:
    flash(exc.message, "error")


# ---- sign in / out ------------------------------------------------------------------------


@blueprint.get("/")
def index() -> WerkzeugResponse:
    return redirect(url_for("console.leads"))


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = request.values.get("next", "")
    if request.method == "POST":
        result = auth.sign_in(
            token=request.form.get("token", ""),
            email=request.form.get("email", ""),
            password=request.form.get("password", ""),
        )
        if result.agent is None:
            flash(result.message, "error")
            return render_template(
                "console_login.html", next=next_url, email=request.form.get("email", "")
            ), 401
        auth.start_session(result.agent)
        log.info("agent %s signed in to the console", result.agent.id)
        return redirect(auth.safe_next(next_url))
    if auth.current_agent() is not None:
        return redirect(auth.safe_next(next_url))
    return render_template("console_login.html", next=next_url, email="")


@blueprint.post("/logout")
def logout() -> WerkzeugResponse:
    everywhere = request.form.get("everywhere") == "1"
    auth.end_session(everywhere=everywhere)
    flash("You are signed out everywhere." if everywhere else "You are signed out.", "info")
    return redirect(url_for("console.login"))


@blueprint.route("/account", methods=["GET", "POST"])
@auth.login_required
def account() -> Any:
    """The agent's own account: change the password (with the current one), sign out everywhere."""
    me = auth.current_agent()
    assert me is not None
    if request.method == "GET":
        return render_template("console_account.html", has_password=bool(me.password_hash))
    current, new = request.form.get("current_password", ""), request.form.get("new_password", "")
    problem = None
    if new != request.form.get("confirm_password", ""):
        problem = "The new password and its confirmation differ."
    with services().session_factory.begin() as session:
        agent = session.get(Agent, me.id)
        assert agent is not None
        if problem is None and agent.password_hash and not auth.current_password_ok(agent, current):
            problem = "The current password is not right."
        if problem is None:
            try:
                set_password(agent, new, session=session)
            except AgentError as exc:
                problem = str(exc).capitalize() + "."
    if problem is not None:
        flash(problem, "error")
        return render_template("console_account.html", has_password=bool(me.password_hash)), 422
    log.info("agent %s changed their console password", me.id)
    # The change ended every session, this one too: sign this browser straight back in.
    auth.start_session(me)
    flash("Password changed. Other browsers were signed out.", "success")
    return redirect(url_for("console.account"))


# ---- leads list ---------------------------------------------------------------------------


def list_filters(args: MultiDict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The API filter values for the console's query string (chips and form), or an error
    message."""
    data: dict[str, Any] = {}
    for key in ("status", "channel"):
        values = [v for v in args.getlist(key) if v]
        if values:
            data[key] = values
    for key in ("hot", "unassigned", "mine"):
        if args.get(key) in ("1", "true", "on", "yes"):
            data[key] = True
    for key in ("score_min", "score_max", "q", "sort", "archived", "agent_id"):
        if args.get(key):
            data[key] = args.get(key)
    at = now()
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    period = args.get("period")
    if period == "today":
        data["created_from"] = midnight
    elif period == "week":
        data["created_from"] = midnight - timedelta(days=midnight.weekday())
    elif period:
        return data, f"unknown period {period!r} (use today or week)"
    if args.get("stale"):
        stale = args.get("stale", "")
        data["stale_days"] = STALE_DAYS if stale in ("1", "true", "on") else stale
    return data, None


def _toggle(args: MultiDict[str, str], key: str, value: str) -> str:
    """The leads URL with `key=value` switched on or off (a fresh first page)."""
    pairs = [(k, v) for k, v in args.items(multi=True) if k != "cursor"]
    if (key, value) in pairs:
        pairs = [(k, v) for k, v in pairs if (k, v) != (key, value)]
    else:
        if key not in ("status", "channel"):
            pairs = [(k, v) for k, v in pairs if k != key]
        pairs.append((key, value))
    return url_for("console.leads") + ("?" + urlencode(pairs) if pairs else "")


def _with(args: MultiDict[str, str], **changes: Any) -> str:
    pairs = [(k, v) for k, v in args.items(multi=True) if k not in changes]
    pairs += [(k, v) for k, v in changes.items() if v not in (None, "")]
    return "?" + urlencode(pairs) if pairs else ""


@blueprint.get("/leads")
@auth.login_required
def leads() -> Any:
    agent = auth.current_agent()
    assert agent is not None
    args = request.args
    data, problem = list_filters(args)
    rows: list[dict[str, Any]] = []
    total, next_cursor = LeadCount(0), None
    if problem is None:
        try:
            params = parse_model(
                schemas.LeadListParams,
                {**data, "limit": PAGE_SIZE, "cursor": args.get("cursor") or None},
            )
            at = now()
            query = edits.lead_query(params, agent, now=at, sort=params.sort, limit=PAGE_SIZE)
            with read_session(services().session_factory) as session:
                page, next_cursor, total = lead_page(query, params.cursor, session=session, at=at)
                rows = [lead_summary(lead, at) for lead in page]
        except REFUSED as exc:
            problem = exc.message
    if problem:
        flash(f"Filter not applied: {problem}", "error")
    with read_session(services().session_factory) as session:
        team = list(list_agents(session=session, include_inactive=False))
        for a in team:
            session.expunge(a)
    export_query = _with(args, cursor=None)
    return render_template(
        "console_leads.html",
        leads=rows,
        total=total,
        next_url=_with(args, cursor=next_cursor) if next_cursor else None,
        first_url=_with(args, cursor=None) if args.get("cursor") else None,
        args=args,
        toggle=lambda k, v: _toggle(args, k, v),
        active=lambda k, v: (k, v) in list(args.items(multi=True)),
        statuses=catalog.statuses(),
        channels=list(CHANNELS),
        team=team,
        export_url=url_for("console.export_csv") + export_query,
        sort=args.get("sort", "-created_at"),
        sort_keys=schemas.SortKey.__args__,  # type: ignore[attr-defined]
        current_url=request.full_path.rstrip("?"),
    )


@blueprint.get("/leads/export.csv")
@auth.login_required
def export_csv() -> Any:
    agent = auth.current_agent()
    assert agent is not None
    data, problem = list_filters(request.args)
    ids = [v for v in request.args.getlist("ids") if v]
    if ids:
        data["ids"] = ids
    if problem:
        abort(400, description=problem)
    try:
        params = parse_model(schemas.ExportParams, data)
        return transfer.export_response(transfer.export_query(params, agent))
    except REFUSED as exc:
        abort(400, description=exc.message)


@blueprint.post("/leads/bulk")
@auth.login_required
def bulk() -> Any:
    agent = auth.current_agent()
    assert agent is not None
    back = request.form.get("next") or url_for("console.leads")
    ids = [i for i in map(_row_id, request.form.getlist("ids")) if i is not None][
        : schemas.MAX_BULK
    ]
    action = request.form.get("action", "")
    if not ids:
        flash("Select at least one lead first.", "error")
        return _redirect_back(back)
    if action == "export":
        return redirect(url_for("console.export_csv") + "?" + urlencode([("ids", i) for i in ids]))
    try:
        with services().session_factory.begin() as session:
            if action == "assign":
                choice = request.form.get("agent_id", "")
                body = parse_model(
                    schemas.BulkAssignBody,
                    {"ids": ids, "round_robin": choice == "auto", "agent_id": _row_id(choice)},
                )
                result = edits.bulk_assign(body, agent, session=session, now=now())
                verb = "assigned"
            elif action == "status":
                body_status = parse_model(
                    schemas.BulkStatusBody,
                    {
                        "ids": ids,
                        "status": request.form.get("status", ""),
                        "lost_reason": request.form.get("lost_reason", "").strip() or None,
                        "lost_note": request.form.get("lost_note", "").strip() or None,
                    },
                )
                result = edits.bulk_status(body_status, agent, session=session, now=now())
                verb = "updated"
            else:
                flash("Choose what to do with the selected leads.", "error")
                return _redirect_back(back)
    except REFUSED as exc:
        _flash_error(exc)
        return _redirect_back(back)
    message = f"{result['changed']} lead(s) {verb}"
    if result["unchanged"]:
        message += f", {result['unchanged']} already so"
    if result["skipped"]:
        message += f", {len(result['skipped'])} skipped ({result['skipped'][0]['reason']})"
    flash(message + ".", "success")
    return _redirect_back(back)


# ---- one lead -----------------------------------------------------------------------------


@blueprint.get("/leads/<int:lead_id>")
@auth.login_required
def lead(lead_id: int) -> Any:
    agent = auth.current_agent()
    assert agent is not None
    at = now()
    with read_session(services().session_factory) as session:
        try:
            found = edits.load_lead(lead_id, agent, session=session)
        except REFUSED as exc:
            if isinstance(exc, RuleError):
                exc = api_error(exc)
            own_notes = (
                _former_owners_notes(lead_id, agent, session=session) if exc.status == 403 else None
            )
            if own_notes is None:
                abort(exc.status, description=exc.message)
            return render_template(
                "console_own_notes.html", asked_id=lead_id, lead_id=own_notes[0], notes=own_notes[1]
            )
        if found.id != lead_id:
            return redirect(url_for("console.lead", lead_id=found.id))
        detail = lead_detail(found, at, session=session)
        default_room = identity.reply_conversation(found, session=session)
        default_conversation_id = default_room.id if default_room is not None else None
        rooms = [c for c in detail["conversations"] if c["channel"] != "email"]
        if default_conversation_id is None and rooms:
            default_conversation_id = rooms[0]["id"]  # what the reply box's list shows first
        windows = {c["id"]: reply_window(c["channel"], c["last_inbound_at"], at) for c in rooms}
        team = list_agents(session=session, include_inactive=False)
        for a in team:
            session.expunge(a)
        lead_tasks = [
            task_out(t, at)
            for t in tasks.list_tasks(
                agent, session=session, now=at, window="all", lead_id=found.id
            )
        ]
    # Logged calls and meetings sit in the timeline beside the messages, at the time they happened.
    logged = [
        {"activity": True, "id": 0, "sent_at": t["done_at"], **t}
        for t in lead_tasks
        if t["outcome"] and t["done_at"] is not None
    ]
    timeline = sorted(
        [*(m for c in detail["conversations"] for m in c["messages"]), *logged],
        key=lambda m: (m["sent_at"], m["id"]),
    )
    history = detail["score_history"]
    return render_template(
        "console_lead.html",
        lead=detail,
        timeline=timeline,
        team=team,
        statuses=catalog.statuses(),
        custom_fields=catalog.custom_fields(),
        categories=NOTE_CATEGORIES,
        chart=charts.score_line(history),
        history=list(reversed(history)),
        takeover_minutes=catalog.policy().takeover_minutes,
        is_admin=is_admin(agent),
        default_conversation_id=default_conversation_id,
        windows=windows,
        tasks=lead_tasks,
        task_kinds=TASK_KINDS,
        outcomes=tasks.OUTCOMES,
    )


def _former_owners_notes(
    lead_id: int, agent: Agent, *, session: Any
) -> tuple[int, list[dict[str, Any]]] | None:
    """For an agent whose lead was merged into another agent's: the surviving lead's id and the
    notes they may still read there (`store.domain.permissions` decides which), else None."""
    try:
        found = get_lead(lead_id, session=session)
    except LeadNotFound:
        return None
    if not may_read_notes(agent, found, session=session):
        return None
    return found.id, [note_out(n) for n in visible_notes(agent, found, session=session)]


@blueprint.post("/leads/<int:lead_id>/merge")
@auth.login_required
def merge(lead_id: int) -> Any:
    """Merge another lead into this one: first a page showing both leads, then the merge itself
    once the agent confirms (`store.domain.merge` decides who may)."""
    agent = auth.current_agent()
    assert agent is not None
    other_id = _row_id(request.form.get("other_lead_id"))
    if other_id is None:
        flash("Give the number of the lead to merge into this one.", "error")
        return redirect(url_for("console.lead", lead_id=lead_id))
    try:
        if request.form.get("confirm") != "yes":
            with read_session(services().session_factory) as session:
                target = edits.load_lead(lead_id, agent, session=session)
                other = edits.load_lead(other_id, agent, session=session, check=False)
                lead_merge.check_merge(agent, target, other, session=session)
                suggestion = next(
                    (
                        s
                        for s in identity.open_suggestions(target, session=session)
                        if s.other_lead_id == other.id
                    ),
                    None,
                )
                pair = [lead_summary(target, now()), lead_summary(other, now())]
            return render_template(
                "console_merge.html",
                target=pair[0],
                other=pair[1],
                reason=suggestion.reason if suggestion else None,
            )
        with services().session_factory.begin() as session:
            target = edits.load_lead(lead_id, agent, session=session)
            other = edits.load_lead(other_id, agent, session=session, check=False)
            survivor = lead_merge.merge_by_hand(agent, target, other, session=session)
            survivor_id = survivor.id
    except REFUSED as exc:
        _flash_error(exc)
        return redirect(url_for("console.lead", lead_id=lead_id))
    flash(f"Lead #{other_id} was merged into this one; its conversations stay separate.", "success")
    return redirect(url_for("console.lead", lead_id=survivor_id))


@blueprint.post("/leads/<int:lead_id>/merge-suggestions/<int:suggestion_id>/dismiss")
@auth.login_required
def dismiss_suggestion(lead_id: int, suggestion_id: int) -> WerkzeugResponse:
    """Dismiss a suggestion as "not the same person" (`store.domain.merge` decides who may)."""

    def apply(found: Lead, agent: Agent, session: Any) -> str:
        other = lead_merge.dismiss_suggestion(agent, found, suggestion_id, session=session)
        return f"Noted: #{other.id} is not the same person; the suggestion is gone from both leads."

    return _lead_action(lead_id, apply, "")


def _lead_action(
    lead_id: int, action: Any, success: str, *, write: bool = False
) -> WerkzeugResponse:
    """Run `action(lead, agent, session)` in one transaction and come back to the lead page."""
    agent = auth.current_agent()
    assert agent is not None
    try:
        with services().session_factory.begin() as session:
            found = edits.load_lead(lead_id, agent, session=session, write=write)
            message = action(found, agent, session)
    except REFUSED as exc:
        _flash_error(exc)
    else:
        flash(message or success, "success")
    return redirect(url_for("console.lead", lead_id=lead_id))


@blueprint.post("/leads/<int:lead_id>/edit")
@auth.login_required
def edit(lead_id: int) -> WerkzeugResponse:
    form = request.form
    values: dict[str, Any] = {}
    for name in ("name", "email", "phone", "company", "status"):
        if name in form:
            values[name] = form.get(name, "").strip() or None
    # The lost dialog's reason goes with the status it explains (ignored for any other status).
    if form.get("status", "").strip() and form.get("lost_reason", "").strip():
        values["lost_reason"] = form.get("lost_reason", "").strip()
        values["lost_note"] = form.get("lost_note", "").strip() or None
    if "tags" in form:
        values["tags"] = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    custom = {
        f.name: form.get(f"cf_{f.name}", "").strip() or None
        for f in catalog.custom_fields()
        if f"cf_{f.name}" in form
    }
    if custom:
        values["custom_fields"] = custom

    def apply(found: Lead, agent: Agent, session: Any) -> str:
        if values.get("status") is None:
            values.pop("status", None)
        body = parse_model(schemas.LeadUpdate, values)
        changed = edits.update_fields(found, body, agent, session=session, now=now())
        return (
            f"Saved ({len(changed)} change{'s' if len(changed) != 1 else ''})."
            if changed
            else "Nothing changed."
        )

    return _lead_action(lead_id, apply, "Saved.", write=True)


@blueprint.post("/leads/<int:lead_id>/note")
@auth.login_required
def note(lead_id: int) -> WerkzeugResponse:
    def apply(found: Lead, agent: Agent, session: Any) -> str:
        body = parse_model(
            schemas.NoteCreate,
            {
                "text": request.form.get("text", ""),
                "category": request.form.get("category") or "General",
            },
        )
        edits.add_lead_note(found, body.text, body.category, agent, session=session)
        return f"Note added ({body.category})."

    return _lead_action(lead_id, apply, "Note added.")


@blueprint.post("/leads/<int:lead_id>/reply")
@auth.login_required
def reply(lead_id: int) -> WerkzeugResponse:
    agent = auth.current_agent()
    assert agent is not None
    try:
        body = parse_model(
            schemas.ReplyBody,
            {
                "text": request.form.get("text", ""),
                "conversation_id": _row_id(request.form.get("conversation_id")),
            },
        )
        message, paused_until = conversations.send_reply(
            lead_id, body.text, agent, at=now(), conversation_id=body.conversation_id
        )
    except REFUSED as exc:
        _flash_error(exc)
    else:
        until = ""
        if paused_until is not None:
            local = _aware(paused_until).astimezone(_zone())
            until = f" The bot is paused until {local:%H:%M} ({_zone_name()})."
        if message["delivery_status"] in ("withheld", "failed"):
            # Recorded in the conversation but not delivered: say so, and why.
            flash(
                f"Reply {message['delivery_status']}, not sent to the customer: "
                f"{message['error'] or 'no reason given'}.{until}",
                "error",
            )
        else:
            flash("Reply sent." + until, "success")
    if request.form.get("back") == "inbox":
        room = _row_id(request.form.get("conversation_id"))
        return redirect(url_for("console.inbox", c=room, tab=request.form.get("tab") or None))
    return redirect(url_for("console.lead", lead_id=lead_id))


@blueprint.post("/leads/<int:lead_id>/email")
@auth.login_required
def email(lead_id: int) -> WerkzeugResponse:
    """Send the "Send email" form (the lead page's, or the inbox's reply box)."""
    return _send_email(lead_id, request.form.get("subject", ""), request.form.get("body", ""))


@blueprint.post("/leads/<int:lead_id>/email/<int:message_id>/resend")
@auth.login_required
def resend_email(lead_id: int, message_id: int) -> WerkzeugResponse:
    """Send a failed or uncertain email again (a new email; the agent chose to)."""
    return _send_email(lead_id, "", "", resend_of=message_id)


def _send_email(
    lead_id: int, subject: str, body: str, *, resend_of: int | None = None
) -> WerkzeugResponse:
    agent = auth.current_agent()
    assert agent is not None
    try:
        result = send_email(
            lead_id,
            subject,
            body,
            by=agent,
            session_factory=services().session_factory,
            deliver=services().outbox.deliver,
            sender=emails.email_sender(),
            resend_of=resend_of,
        )
    except REFUSED as exc:
        _flash_error(exc)
    else:
        if result.sent:
            flash(f"Email sent to {result.to}.", "success")
        elif result.status == "unknown":
            flash(
                f"Email to {result.to} may or may not have arrived: {result.error} "
                "Check with the lead before sending it again.",
                "error",
            )
        elif result.status == "failed":
            flash(f"Email to {result.to} was not sent: {result.error}", "error")
        else:
            flash(f"Email to {result.to} is being sent.", "success")
    if request.form.get("back") == "inbox":
        room = _row_id(request.form.get("conversation_id"))
        return redirect(url_for("console.inbox", c=room, tab=request.form.get("tab") or None))
    return redirect(url_for("console.lead", lead_id=lead_id))


@blueprint.post("/leads/<int:lead_id>/bot")
@auth.login_required
def bot(lead_id: int) -> WerkzeugResponse:
    what = request.form.get("action")

    def apply(found: Lead, agent: Agent, session: Any) -> str:
        if what == "resume":
            resume_by_agent(found, agent, session=session)
            return "The bot is answering this lead again."
        if what == "pause":
            minutes = request.form.get("minutes", "")
            body = parse_model(schemas.PauseBody, {"minutes": _row_id(minutes)})
            pause_by_agent(found, agent, session=session, now=now(), minutes=body.minutes)
            return (
                f"The bot is paused for {body.minutes} minutes."
                if body.minutes
                else "The bot is paused until resumed."
            )
        raise ApiError(400, "invalid_action", "choose pause or resume")

    return _lead_action(lead_id, apply, "Done.")


@blueprint.post("/leads/<int:lead_id>/assign")
@auth.login_required
def assign(lead_id: int) -> WerkzeugResponse:
    choice = request.form.get("agent_id", "")

    def apply(found: Lead, agent: Agent, session: Any) -> str:
        if choice == "auto":
            target: Agent | None = assignment.round_robin_agent(
                session=session, policy=catalog.policy()
            )
        elif choice == "me":
            target = session.get(Agent, agent.id)
        else:
            target = assignment.find_assignee(_row_id(choice), session=session)
        changed = assignment.assign(found, target, by=agent, session=session)
        if not changed:
            return "Nothing changed."
        return f"Assigned to {target.name}." if target else "Unassigned."

    return _lead_action(lead_id, apply, "Assigned.", write=True)


@blueprint.post("/leads/<int:lead_id>/convert")
@auth.login_required
def convert(lead_id: int) -> WerkzeugResponse:
    def apply(found: Lead, agent: Agent, session: Any) -> str:
        change = lead_status.convert(
            found,
            by=agent,
            session=session,
            policy=catalog.policy(),
            now=now(),
            note=request.form.get("note", "").strip() or None,
        )
        return f"{change.new_status}. The lead is now read-only."

    return _lead_action(lead_id, apply, "", write=True)


@blueprint.post("/leads/<int:lead_id>/archive")
@auth.login_required
def archive(lead_id: int) -> WerkzeugResponse:
    archived = request.form.get("archived", "1") == "1"

    def apply(found: Lead, agent: Agent, session: Any) -> str:
        edits.set_archived(found, archived, agent, session=session)
        return "Archived." if archived else "Back in the active list."

    return _lead_action(lead_id, apply, "Done.")


@blueprint.post("/leads/<int:lead_id>/reopen")
@auth.admin_required
def reopen(lead_id: int) -> WerkzeugResponse:
    def apply(found: Lead, agent: Agent, session: Any) -> str:
        lead_status.reopen(found, by=agent, session=session)
        return "Reopened: the lead can be edited again."

    return _lead_action(lead_id, apply, "Reopened.")


@blueprint.post("/leads/<int:lead_id>/delete")
@auth.admin_required
def delete(lead_id: int) -> WerkzeugResponse:
    agent = auth.current_agent()
    assert agent is not None
    try:
        with services().session_factory.begin() as session:
            edits.delete_lead(
                edits.load_lead(lead_id, agent, session=session), agent, session=session
            )
    except REFUSED as exc:
        _flash_error(exc)
        return redirect(url_for("console.lead", lead_id=lead_id))
    flash(f"Lead {lead_id} deleted.", "success")
    return redirect(url_for("console.leads"))


# ---- dashboard and notifications ----------------------------------------------------------


@blueprint.get("/dashboard")
@auth.login_required
def dashboard() -> Any:
    agent = auth.current_agent()
    assert agent is not None
    with read_session(services().session_factory) as session:
        data = stats.dashboard(agent, session=session, at=now())
    return render_template(
        "console_dashboard.html",
        data=data,
        by_status=charts.horizontal_bars(data["by_status"], catalog.status_colours()),
        by_channel=charts.horizontal_bars(data["by_channel"], charts.CHANNEL_COLOURS),
        lost_reasons=charts.horizontal_bars(data["lost_reasons"], {}),
        by_band=charts.horizontal_bars(data["by_band"], charts.BAND_COLOURS),
        per_day=charts.columns(data["new_per_day"]),
        per_week=charts.columns(data["conversions_per_week"], colour="#16a34a"),
        bands=BANDS,
    )


@blueprint.get("/notifications")
@auth.login_required
def notifications() -> Any:
    agent = auth.current_agent()
    assert agent is not None
    show_all = request.args.get("all") == "1"
    with read_session(services().session_factory) as session:
        items = agent_notifications(agent.id, unread=not show_all, session=session)
        scheduled = scheduled_notifications(agent.id, session=session)
    return render_template(
        "console_notifications.html", items=items, show_all=show_all, scheduled=scheduled
    )


@blueprint.post("/notifications/read")
@auth.login_required
def notifications_read() -> WerkzeugResponse:
    agent = auth.current_agent()
    assert agent is not None
    with services().session_factory.begin() as session:
        if request.form.get("all") == "1":
            ids = [n.id for n in unread_notifications(agent.id, session=session, now=now())]
        else:
            ids = [i for i in map(_row_id, request.form.getlist("id")) if i is not None]
        marked = mark_read(ids, agent.id, session=session) if ids else 0
    flash(f"{marked} notification(s) marked read.", "success")
    open_lead = request.form.get("open")
    if _row_id(open_lead) is not None:
        return redirect(url_for("console.lead", lead_id=_row_id(open_lead)))
    return redirect(url_for("console.notifications"))


# ---- team (admins) ------------------------------------------------------------------------


def _team_page(new_token_for: dict[str, Any] | None = None, status: int = 200) -> Any:
    with read_session(services().session_factory) as session:
        team = list_agents(session=session)
        counts = open_lead_counts(session=session, terminal_statuses=catalog.terminal_statuses())
        for a in team:
            session.expunge(a)
    return render_template(
        "console_agents.html", team=team, counts=counts, new_token=new_token_for
    ), status


@blueprint.get("/agents")
@auth.admin_required
def agents() -> Any:
    return _team_page()


@blueprint.post("/agents")
@auth.admin_required
def agents_create() -> Any:
    form = request.form
    try:
        body = parse_model(
            schemas.AgentCreate,
            {
                "name": form.get("name", ""),
                "email": form.get("email") or None,
                "role": form.get("role") or "agent",
                "capacity": form.get("capacity") or 50,
                "password": form.get("password") or None,
            },
        )
        with services().session_factory.begin() as session:
            created, token = add_agent(
                body.name,
                session=session,
                policy=catalog.policy(),
                now=now(),
                email=body.email,
                role=body.role,
                capacity=body.capacity,
                password=body.password,
            )
            shown = {"name": created.name, "token": token}
    except ApiError as exc:
        _flash_error(exc)
        return _team_page(status=422)
    except (AgentError, InvalidContact) as exc:
        flash(str(exc), "error")
        return _team_page(status=422)
    # The token is rendered into this one response and never stored in the (signed, readable)
    # cookie.
    return _team_page(new_token_for=shown)


@blueprint.post("/agents/<int:agent_id>/<any(disable, enable, token):what>")
@auth.admin_required
def agents_change(agent_id: int, what: str) -> Any:
    me = auth.current_agent()
    assert me is not None
    with services().session_factory.begin() as session:
        target = session.get(Agent, agent_id) if agent_id <= schemas.MAX_ID else None
        if target is None:
            abort(404, description=f"No agent with id {agent_id}.")
        try:
            workspace_team.check_manages_person(me, target, session=session)
            if what == "disable":
                workspace_team.check_keeps_an_admin(target, session=session)
        except RuleError as exc:
            flash(exc.message, "error")
            return redirect(url_for("console.agents"))
        if what == "token":
            token = rotate_token(target, session=session)
            shown = {"name": target.name, "token": token}
        else:
            if what == "disable" and target.id == me.id:
                flash("You cannot disable yourself.", "error")
                return redirect(url_for("console.agents"))
            set_agent_active(
                target, what == "enable", session=session, policy=catalog.policy(), now=now()
            )
            shown = None
            flash(f"{target.name} is {'enabled' if target.active else 'disabled'}.", "success")
    if shown:
        return _team_page(new_token_for=shown)
    return redirect(url_for("console.agents"))


@blueprint.post("/agents/members")
@auth.admin_required
def agents_add_member() -> Any:
    """Add an existing person (an agent of another workspace) to this one by email."""
    try:
        with services().session_factory.begin() as session:
            added = workspace_team.add_member(
                request.form.get("email", ""), request.form.get("role") or "agent", session=session
            )
            flash(f"{added.name} now works in this workspace as {added.role}.", "success")
    except RuleError as exc:
        flash(exc.message, "error")
        return _team_page(status=api_error(exc).status)
    return redirect(url_for("console.agents"))


@blueprint.post("/agents/<int:agent_id>/<any(role, remove):what>")
@auth.admin_required
def agents_membership(agent_id: int, what: str) -> Any:
    """Change an agent's role in this workspace, or remove them from it (the person stays)."""
    me = auth.current_agent()
    assert me is not None
    try:
        with services().session_factory.begin() as session:
            target = session.get(Agent, agent_id) if agent_id <= schemas.MAX_ID else None
            if target is None:
                abort(404, description=f"No agent with id {agent_id}.")
            if what == "role":
                role = request.form.get("role", "")
                workspace_team.set_role(target, role, session=session)
                flash(f"{target.name} is now {role} in this workspace.", "success")
            else:
                by = session.get(Agent, me.id)
                assert by is not None
                moved = workspace_team.remove_member(target, by=by, session=session)
                flash(
                    f"{target.name} was removed from this workspace; {len(moved)} of their "
                    "leads here are now unassigned.",
                    "success",
                )
    except RuleError as exc:
        flash(exc.message, "error")
    return redirect(url_for("console.agents"))


@blueprint.post("/workspace")
@auth.login_required
def switch_workspace() -> WerkzeugResponse:
    """The workspace switcher: this browser works in the chosen workspace of the agent's."""
    chosen = auth.switch_workspace(request.form.get("workspace", ""))
    if chosen is None:
        abort(404, description="You do not work in that workspace.")
    flash(f"You are working in {chosen.name}.", "success")
    return redirect(url_for("console.leads"))
