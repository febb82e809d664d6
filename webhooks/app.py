"""What every view shares: the app's typed collaborators (`Services`, reached through
`services()`), the JSON error type and the request helpers (agent authentication, JSON bodies).

`webhooks.create_app(settings, services)` (in `webhooks.factory`) builds the app around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy.orm import Session, sessionmaker

from bot import Outbox, PromptConfig
from store.agents import agent_by_token
from store.events import EventBus
from webhooks.channels import ChannelDirectory
from webhooks.intake import HumanReplyHook, InboxWriter
from webhooks.notify import ReplyNotifier
from webhooks.ratelimit import ChatLimits

if TYPE_CHECKING:
    # Type only: the entry point (leaddesk) builds the settings and hands them down; the web layer
    # never imports leaddesk at run time.
    from leaddesk.settings import Settings

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class CopilotAnswer(Protocol):
    def as_json(self) -> dict[str, Any]:
        """The answer as the API returns it (`reply`, `pending_confirmation`)."""


class CopilotPort(Protocol):
    """The agents' copilot as the API talks to it (`copilot.Copilot`, built by the entry point)."""

    def ask(self, agent_id: int, thread: str, text: str) -> CopilotAnswer:
        """Handle one message of `agent_id` in `thread`."""


class JobQueue(Protocol):
    """Where the web layer hands over "conversation N has new messages" (the entry point's job
    dispatcher: worker threads, or Celery tasks on a broker)."""

    def submit(self, conversation_id: int) -> None:
        """Ask for the conversation's pending messages to be processed (soon, at least once)."""


@dataclass(frozen=True)
class Services:
    """The collaborators the views use, built once by the entry point and handed to `create_app`."""

    settings: Settings
    session_factory: sessionmaker[Session]
    # The business configuration in force (statuses, custom fields...); a hot reload of prompts/
    # shows up at the next call.
    prompts: Callable[[], PromptConfig]
    clock: Callable[[], datetime]
    # Hands recorded replies (an agent's, from the API or console) to their channel.
    outbox: Outbox
    dispatcher: JobQueue
    # Wakes the web chat's long polls when a reply is recorded.
    notifier: ReplyNotifier
    # Called when a person answers from the channel's own app (the bot steps back).
    on_human_reply: HumanReplyHook
    chat_limits: ChatLimits = field(default_factory=ChatLimits)
    # The agents' copilot behind POST /api/copilot; None: the endpoint answers 503.
    copilot: CopilotPort | None = None
    # What the store commits, for the console's live updates (`store.events.watch` feeds it);
    # None: the console's pages still work, they just do not update by themselves.
    events: EventBus | None = None
    # The prompts' reload state for the admins' Settings page (`bot.reload.PromptStore.health`:
    # version in force, when it loaded, a rejected change with its problems); None: read once.
    prompts_health: Callable[[], dict[str, Any]] | None = None
    # Which workspace a channel account belongs to and its credentials (shared with the outbox);
    # None: `create_app` makes one.
    channels: ChannelDirectory | None = None


class ApiError(Exception):
    """A client error answered as `{"error": {"code", "message", "field"?}}` with its HTTP
    status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return jsonify({"error": body}), status


def services() -> Services:
    """The current app's collaborators."""
    return current_app.extensions["leaddesk"]  # type: ignore[no-any-return]


def channel_directory() -> ChannelDirectory:
    """The current app's channel directory (routing and credentials per workspace)."""
    return current_app.extensions["leaddesk_channels"]  # type: ignore[no-any-return]


def inbox_writer() -> InboxWriter:
    """The current app's inbox writer (the webhooks' group commit)."""
    return current_app.extensions["leaddesk_inbox"]  # type: ignore[no-any-return]


def add_health_probe(app: Flask, name: str, probe: Callable[[], dict[str, Any]]) -> None:
    """Add a section to GET /healthz (e.g. the worker pool, the prompts)."""
    app.extensions.setdefault("leaddesk_health", {})[name] = probe


def wants_json() -> bool:
    """Whether the error answer should be JSON (the API, the webhooks, or a JSON client)."""
    path = request.path
    return (
        path.startswith(("/api", "/webhooks"))
        or request.accept_mimetypes.best == "application/json"
    )


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_agent(admin: bool = False) -> Callable[[F], F]:
    """Authenticate the agent by bearer token (`g.agent`); 401 without one, 403 when not an
    admin."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None:
                raise ApiError(
                    401, "unauthorized", "send an agent token as 'Authorization: Bearer TOKEN'"
                )
            with services().session_factory() as session:
                agent = agent_by_token(token, session=session)
                if agent is not None:
                    session.expunge(agent)
            if agent is None:
                raise ApiError(401, "unauthorized", "unknown or disabled agent token")
            if admin and agent.role != "admin":
                raise ApiError(403, "forbidden", "this needs an admin")
            g.agent = agent
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(
            400, "invalid_json", "the body must be a JSON object (Content-Type: application/json)"
        )
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data
