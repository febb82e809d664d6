"""What every view shares: the app's typed collaborators (`Services`, reached through
`services()`), the JSON error type and the request helpers (agent authentication, JSON bodies).

`webhooks.create_app(settings, services)` (in `webhooks.factory`) builds the app around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy.orm import Session, sessionmaker

from bot import Outbox, PromptConfig
from store.agents import agent_by_token
from store.events import EventBus
from store.tenancy import current_workspace, enter_workspace, in_workspace, leave_workspace
from store.workspaces import NotAMember, WorkspaceNotChosen, choose_workspace
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
T = TypeVar("T")


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


# The header that names the workspace a request works in (its id or slug); `/api/w/<slug>/...`
# says the same in the path (`WorkspacePath`).
WORKSPACE_HEADER = "X-Leaddesk-Workspace"
_WORKSPACE_TOKEN = "leaddesk_workspace_token"


class WorkspacePath:
    """WSGI middleware: `/api/w/<slug or id>/rest` is `/api/rest` with the workspace named as by
    the `X-Leaddesk-Workspace` header (the path wins over a header)."""

    PREFIX = "/api/w/"

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self._next = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.PREFIX):
            ref, slash, rest = path[len(self.PREFIX) :].partition("/")
            if ref and slash:
                environ = {
                    **environ,
                    "PATH_INFO": "/api/" + rest,
                    "HTTP_X_LEADDESK_WORKSPACE": ref,
                }
        return self._next(environ, start_response)


def enter_request_workspace(workspace_id: int) -> None:
    """Work in `workspace_id` for the rest of the request (left at its teardown,
    `leave_request_workspace`). A streamed answer runs after the teardown: it enters the workspace
    in it with `in_request_workspace`."""
    previous = g.pop(_WORKSPACE_TOKEN, None)
    if previous is not None:
        leave_workspace(previous)
    setattr(g, _WORKSPACE_TOKEN, enter_workspace(workspace_id))


def in_request_workspace(chunks: Iterable[T]) -> Iterator[T]:
    """`chunks` made in the request's workspace however late the server reads them (a streamed
    answer is read after the view returned and the request left its workspace). Each step enters
    the workspace and leaves it before handing the chunk over, so nothing leaks to the reader."""
    workspace_id = current_workspace()
    iterator = iter(chunks)

    def generate() -> Iterator[T]:
        try:
            while True:
                with in_workspace(workspace_id):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with in_workspace(workspace_id):
                    close()

    return generate()


def leave_request_workspace(_exc: BaseException | None = None) -> None:
    token = g.pop(_WORKSPACE_TOKEN, None)
    if token is not None:
        try:
            leave_workspace(token)
        except ValueError:
            # Entered in another context (a copied one): that context ends with the request.
            log.debug("request workspace entered in another context")


def request_workspace(agent_id: int, session: Session) -> int:
    """The workspace the request works in for this agent (`X-Leaddesk-Workspace`, else their
    only one), or the 400/403 that says why there is none."""
    try:
        return choose_workspace(agent_id, request.headers.get(WORKSPACE_HEADER), session=session).id
    except WorkspaceNotChosen:
        raise ApiError(
            400,
            "workspace_required",
            f"you work in several workspaces: name one with the {WORKSPACE_HEADER} header "
            "(its slug or id) or /api/w/<slug>/...; GET /api/workspaces lists yours",
        ) from None
    except NotAMember:
        raise ApiError(
            403, "workspace_forbidden", "you are not a member of that workspace"
        ) from None


def require_agent(admin: bool = False, *, workspace: bool = True) -> Callable[[F], F]:
    """Authenticate the agent by bearer token (`g.agent`) and enter the request's workspace;
    401 without a token, 400/403 without a workspace of theirs, 403 when not an admin there.
    `workspace=False`: a view about the person, not a workspace (their list of workspaces)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None:
                raise ApiError(
                    401, "unauthorized", "send an agent token as 'Authorization: Bearer TOKEN'"
                )
            workspace_id = current_workspace()
            with services().session_factory() as session:
                agent = agent_by_token(token, session=session)
                if agent is not None:
                    if workspace:
                        workspace_id = request_workspace(agent.id, session)
                    session.expunge(agent)
            if agent is None:
                raise ApiError(401, "unauthorized", "unknown or disabled agent token")
            if workspace:
                enter_request_workspace(workspace_id)
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
