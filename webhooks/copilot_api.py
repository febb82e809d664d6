"""`POST /api/copilot`: the agents' copilot over HTTP, with the same graph and permissions as in
Telegram, working in the request's workspace (`X-Leaddesk-Workspace`). The copilot service is
handed over by the entry point as the `copilot` extra (this package never builds it): anything
with `ask(agent_id, thread_id, text) -> answer` whose answer has
`as_json()` -> `{"reply", "pending_confirmation"}`.

A confirmation is answered by posting "yes" or "no" (or an option's value) on the same thread.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, g, jsonify

from store.tenancy import FIRST_WORKSPACE, current_workspace
from webhooks.app import ApiError, json_body, require_agent, services

log = logging.getLogger(__name__)

blueprint = Blueprint("copilot_api", __name__)

MAX_MESSAGE = 8000
_THREAD = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@blueprint.post("/api/copilot")
@require_agent()
def ask():  # type: ignore[no-untyped-def]
    """Answer one message from the calling agent on one of their threads."""
    body = json_body()
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError(400, "invalid_message", "'message' must be a non-empty string", "message")
    if len(message) > MAX_MESSAGE:
        raise ApiError(
            400, "invalid_message", f"'message' must be at most {MAX_MESSAGE} characters", "message"
        )
    thread = body.get("thread", "default")
    if thread is None:
        thread = "default"
    if not isinstance(thread, str) or not _THREAD.match(thread):
        raise ApiError(
            400, "invalid_thread", "'thread' must be 1-100 letters, digits or . _ : -", "thread"
        )
    copilot = services().copilot
    if copilot is None:
        raise ApiError(503, "copilot_unavailable", "the copilot is not running in this server")
    # Threads are per agent (the same name used by two agents is two conversations) and per
    # workspace: the copilot works in the request's workspace and remembers nothing of another.
    workspace_id = current_workspace()
    key = thread if workspace_id == FIRST_WORKSPACE else f"w{workspace_id}:{thread}"
    answer = copilot.ask(g.agent.id, f"api:{g.agent.id}:{key}", message)
    return jsonify(answer.as_json())
