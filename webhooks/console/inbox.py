"""The console's inbox: conversations first, the one selected open beside the list, kept up to date
by the live events (`/console/events`, Server-Sent Events, or `/console/events/poll` where a
stream is not possible)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, abort, jsonify, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from store.conversation_list import (
    TABS,
    conversation_rows,
    mark_read,
    tab_for,
)
from store.db import read_session
from store.domain.errors import NotAllowed
from store.domain.permissions import check_visible, is_admin
from store.events import StoreEvent
from store.models import Agent, Conversation, Lead, Message
from store.tenancy import current_workspace, in_workspace
from webhooks.api.base import now
from webhooks.app import services
from webhooks.console import auth
from webhooks.console.views import _row_id, blueprint, count_inbox_unread
from webhooks.outbound import reply_window

log = logging.getLogger(__name__)

# How many messages the open conversation shows (the lead page has them all).
SHOWN_MESSAGES = 100
# A stream ends after this long and the browser reconnects with Last-Event-ID (frees the thread
# now and then, and survives proxies that cut idle connections).
STREAM_SECONDS = 55.0
# Also how soon a stream whose browser went away (a page change) gives its thread back: waitress
# only notices a closed connection when it writes.
KEEPALIVE_SECONDS = 2.0
# How often a quiet stream looks whether the server is shutting down.
STOP_CHECK_SECONDS = 1.0
TAB_LABELS = {"mine": "Mine", "unassigned": "Unassigned", "all": "All", "waiting": "Waiting"}


class _Streams:
    """Open event streams hold a server thread each: at most `limit` at once, the rest poll."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0

    def enter(self, limit: int) -> bool:
        with self._lock:
            if self._open >= limit:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._open -= 1


_streams = _Streams()


def _agent() -> Agent:
    agent = auth.current_agent()
    assert agent is not None
    return agent


@blueprint.get("/inbox")
@auth.login_required
def inbox() -> Any:
    agent = _agent()
    tab = tab_for(request.args.get("tab"), agent)
    selected = _row_id(request.args.get("c"))
    with services().session_factory.begin() as session:
        rows = conversation_rows(agent, tab, session=session)
        pane = _conversation_pane(agent, selected, session=session) if selected else None
        count_inbox_unread(agent, session=session)  # after the pane marked its conversation read
    return render_template(
        "console_inbox.html",
        rows=rows,
        tab=tab,
        tabs=[t for t in TABS if t != "all" or is_admin(agent)],
        tab_labels=TAB_LABELS,
        pane=pane,
        selected=selected,
    )


@blueprint.get("/inbox/list")
@auth.login_required
def inbox_list() -> Any:
    agent = _agent()
    tab = tab_for(request.args.get("tab"), agent)
    with read_session(services().session_factory) as session:
        rows = conversation_rows(agent, tab, session=session)
        unread = count_inbox_unread(agent, session=session)
    html = render_template(
        "console_inbox_list.html", rows=rows, tab=tab, selected=_row_id(request.args.get("c"))
    )
    return jsonify({"html": html, "unread_conversations": unread})


@blueprint.get("/inbox/conversations/<int:conversation_id>")
@auth.login_required
def inbox_conversation(conversation_id: int) -> Any:
    agent = _agent()
    with services().session_factory.begin() as session:
        pane = _conversation_pane(agent, conversation_id, session=session)
    if pane is None:
        abort(404, description="No such conversation, or it is another agent's.")
    return render_template("console_inbox_pane.html", pane=pane, tab=request.args.get("tab"))


def _conversation_pane(
    agent: Agent, conversation_id: int, *, session: Any
) -> dict[str, Any] | None:
    """What the open conversation shows; reading it marks it read for the agent."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    lead = session.get(Lead, conversation.lead_id)
    try:
        check_visible(agent, lead)
    except NotAllowed:
        return None
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(SHOWN_MESSAGES)
        )
    )
    messages.sort(key=lambda m: (m.sent_at, m.id))  # as they were shown to the customer
    names = {
        a.id: a.name
        for a in session.scalars(
            select(Agent).where(Agent.id.in_({m.agent_id for m in messages if m.agent_id}))
        )
    }
    owner = session.get(Agent, lead.assigned_agent_id) if lead.assigned_agent_id else None
    mark_read(agent.id, conversation_id, session=session)
    return {
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "window": reply_window(conversation.channel, conversation.last_inbound_at, now()),
        "lead": {
            "id": lead.id,
            "name": lead.name,
            "status": lead.status,
            "score": lead.score,
            "phone": lead.phone,
            "email": lead.email,
            "company": lead.company,
            "locked": lead.locked,
            "owner": owner.name if owner else None,
            "ai_paused": bool(lead.ai_stopped or lead.ai_paused_until or conversation.ai_stopped),
        },
        "messages": [
            {
                "id": m.id,
                "author": m.author,
                "agent_name": names.get(m.agent_id) if m.agent_id else None,
                "text": m.text,
                "kind": m.kind,
                "sent_at": m.sent_at,
                "delivery_status": m.delivery_status,
                "direction": m.direction,
                "error": m.error,
            }
            for m in messages
        ],
        "more": len(messages) == SHOWN_MESSAGES,
    }


# ---- live events ------------------------------------------------------------------------------


@blueprint.get("/events")
def events() -> Any:
    """Server-Sent Events for the signed-in agent: what changed among the leads they may see."""
    agent = auth.current_agent()
    if agent is None:
        return jsonify({"error": {"code": "unauthorized", "message": "sign in first"}}), 401
    bus = services().events
    if bus is None:
        return jsonify({"error": {"code": "unavailable", "message": "live updates are off"}}), 503
    if not _streams.enter(services().chat_limits.max_waiters):
        # Every stream slot is taken: this browser polls /console/events/poll instead.
        return jsonify({"error": {"code": "busy", "message": "poll instead"}}), 429
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or bus.last_id()
    viewer = (agent.id, is_admin(agent))
    # The stream runs after the view returned (and the request's workspace was left): it enters
    # the session's workspace itself, and shows only that workspace's events.
    workspace_id = current_workspace()
    # Closed when the server shuts down: the stream ends (the browser resumes elsewhere) instead
    # of holding its thread until the next keep-alive.
    stopping = services().notifier

    def stream() -> Iterator[str]:
        cursor = after
        now = time.monotonic()
        deadline, quiet_since = now + STREAM_SECONDS, now
        try:
            yield "retry: 2000\n\n"
            while not stopping.closed and time.monotonic() < deadline:
                batch = bus.read(cursor, timeout=STOP_CHECK_SECONDS)
                if not batch:
                    if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                cursor = batch[-1].id or cursor
                with in_workspace(workspace_id):
                    shown = _visible(batch, viewer)
                for item in shown:
                    quiet_since = time.monotonic()
                    yield f"id: {item.id}\nevent: {item.kind}\ndata: {_json(item)}\n\n"
        finally:
            _streams.leave()

    response = Response(stream_with_context(stream()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not hold the stream back
    return response


@blueprint.get("/events/poll")
def events_poll() -> Any:
    """The same events for a browser that cannot keep a stream open: what came after `after`,
    waiting up to `wait` seconds (at most 20) for something new."""
    agent = auth.current_agent()
    if agent is None:
        return jsonify({"error": {"code": "unauthorized", "message": "sign in first"}}), 401
    bus = services().events
    if bus is None:
        return jsonify({"events": [], "last_id": ""})
    after = request.args.get("after") or None
    wait = min(20.0, max(0.0, _float(request.args.get("wait"))))
    # A waiting poll holds a thread like a stream does: past the slots, answer at once.
    seat = wait > 0 and _streams.enter(services().chat_limits.max_waiters)
    try:
        batch = bus.read(after, timeout=wait if seat else 0.0) if after else []
    finally:
        if seat:
            _streams.leave()
    last = batch[-1].id if batch else (after or bus.last_id())
    shown = _visible(batch, (agent.id, is_admin(agent)))
    return jsonify({"events": [json.loads(_json(e)) for e in shown], "last_id": last})


def _visible(batch: list[StoreEvent], viewer: tuple[int, bool]) -> list[StoreEvent]:
    """The events this agent may see in the workspace in force: their own notifications, and
    changes to leads they may see (checked now, against the store, not when the event happened)."""
    agent_id, admin = viewer
    workspace_id = current_workspace()
    batch = [e for e in batch if e.kind == "reset" or e.workspace_id == workspace_id]
    conversation_ids = {e.conversation_id for e in batch if e.conversation_id and not e.lead_id}
    lead_of: dict[int, int] = {}
    owners: dict[int, int | None] = {}
    with read_session(services().session_factory) as session:
        if conversation_ids:
            lead_of = {
                row.id: row.lead_id
                for row in session.execute(
                    select(Conversation.id, Conversation.lead_id).where(
                        Conversation.id.in_(conversation_ids)
                    )
                )
            }
        lead_ids = {e.lead_id for e in batch if e.lead_id} | set(lead_of.values())
        if lead_ids:
            owners = {
                row.id: row.assigned_agent_id
                for row in session.execute(
                    select(Lead.id, Lead.assigned_agent_id).where(Lead.id.in_(lead_ids))
                )
            }
    shown: list[StoreEvent] = []
    for item in batch:
        if item.kind == "reset":
            shown.append(item)
            continue
        if item.kind == "notification":
            if item.agent_id == agent_id:
                shown.append(item)
            continue
        lead_id = item.lead_id or lead_of.get(item.conversation_id or 0)
        if lead_id is None or lead_id not in owners:
            continue
        if admin or owners[lead_id] in (None, agent_id):
            shown.append(
                StoreEvent(
                    item.kind,
                    lead_id,
                    item.conversation_id,
                    item.agent_id,
                    item.data,
                    item.id,
                    item.workspace_id,
                )
            )
    return shown


def _json(item: StoreEvent) -> str:
    return json.dumps(
        {
            "kind": item.kind,
            "lead_id": item.lead_id,
            "conversation_id": item.conversation_id,
            "data": item.data,
            "id": item.id,
        },
        separators=(",", ":"),
        default=str,
    )


def _float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def inbox_url(conversation_id: int | None, tab: str | None) -> str:
    return url_for("console.inbox", c=conversation_id, tab=tab or None)
