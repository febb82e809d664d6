"""The web chat: its public API (used by the widget and by any site), the widget and the demo page.

- `POST /api/chat/sessions` (optional JSON name, email, phone, identity, identity_hash) ->
  `{"session": TOKEN}`
- `POST /api/chat/messages` `{"text": "..."}` with `Authorization: Bearer TOKEN` -> `{"id": ID}`
- `GET /api/chat/messages?after=ID&wait=SECONDS` ->
  `{"messages": [{"id", "author", "text", "at"}]}`, long-polling up to `wait` seconds without
  holding a database transaction.
- `GET /` a demo page with the widget (`/static/leaddesk-widget.js`, one script tag, no build step).

Every call may name its web widget's key (`X-Leaddesk-Widget-Key`, or `?key=`): the call then
works in that key's workspace (without one: the first workspace); an unknown key is a 404, a
disabled workspace's a 403. A chat session belongs to its workspace: its token opens nothing with
another workspace's key.

A visitor becomes a lead when the site already knows who they are (name/email/phone given at session
start) or when they write their first message. Each session sees only its own messages.

Trust: what a visitor or an unsigned client passes is *claimed* (it never merges the visitor into
another lead, it only suggests a merge). A site that knows its visitor passes `identity` (its user
id, email or phone) with `identity_hash` = hex HMAC-SHA256 of it keyed with
LEADDESK_WEBCHAT_SECRET (another workspace's widget: the `identity_secret` of its web
connection): a valid hash makes the identity *verified* (the same user finds their lead
and conversation again, and a verified email or phone joins the lead a channel vouched for); a
wrong one is refused with 400.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from limits import RateLimitItem
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from store.agents import hash_token
from store.contacts import (
    InvalidContact,
    normalize_email,
    normalize_phone,
    try_normalize_email,
    try_normalize_phone,
)
from store.db import read_session
from store.events import StoreEvent
from store.leads import find_identity, get_conversation, resolve, resolve_identity
from store.messages import Inbound, ingest, record_outbound
from store.models import CLAIMED, VERIFIED, Agent, ChatSession, Conversation, Message, utcnow
from store.tenancy import enter_workspace, leave_workspace
from webhooks import ratelimit
from webhooks.app import ApiError, bearer_token, channel_directory, error_response, services
from webhooks.channels import WidgetRoute
from webhooks.ratelimit import ChatLimits

log = logging.getLogger(__name__)

blueprint = Blueprint("webchat", __name__)

CHANNEL = "web"
PAGE_SIZE = 100
MAX_ID = 2**31 - 1
SIGNED_PREFIX = "signed:"
# The web widget's key (its `data-key`): which workspace's chat this is (none: the first's).
WIDGET_KEY_HEADER = "X-Leaddesk-Widget-Key"
IDENTITY_CHARS = 180


def identity_hash(identity: str, secret: str) -> str:
    """The `data-identity-hash` a site computes for `identity` (hex HMAC-SHA256 with the secret)."""
    return hmac.new(secret.encode("utf-8"), identity.encode("utf-8"), hashlib.sha256).hexdigest()


def _signed_identity(data: dict[str, Any]) -> tuple[str | None, bool]:
    """The site's identity for this visitor and whether its signature checks out.

    Without LEADDESK_WEBCHAT_SECRET nothing can be checked: the identity is only claimed.
    """
    identity = _optional_str(data, "identity", IDENTITY_CHARS)
    given = _optional_str(data, "identity_hash", 128)
    if identity is None:
        if given is not None:
            raise ApiError(400, "invalid_identity", "identity_hash needs an identity", "identity")
        return None, False
    secret = _widget().identity_secret
    if not secret:
        return identity, False
    expected = identity_hash(identity, secret)
    if given is None or not hmac.compare_digest(
        expected.encode("ascii"), given.lower().encode("ascii", "replace")
    ):
        log.warning("web chat: a session with a wrong identity signature was refused")
        raise ApiError(
            400,
            "invalid_identity_hash",
            "identity_hash is not the HMAC-SHA256 of identity with this site's web chat secret",
            "identity_hash",
        )
    return identity, True


class RateLimited(ApiError):
    def __init__(self, retry_after: float, what: str):
        super().__init__(
            429, "rate_limited", f"too many {what}; try again in {math.ceil(retry_after)}s"
        )
        self.retry_after = retry_after


@blueprint.errorhandler(RateLimited)
def _rate_limited(exc: RateLimited):  # type: ignore[no-untyped-def]
    response, status = error_response(exc.status, exc.code, exc.message)
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response, status


@blueprint.before_request
def _enter_widget_workspace() -> None:
    """The whole request works in the workspace of the widget's key (no key: the first one); an
    unknown key, or one of a disabled workspace, is refused."""
    if not request.path.startswith("/api/chat") or request.method == "OPTIONS":
        return
    key = request.headers.get(WIDGET_KEY_HEADER) or request.args.get("key")
    found = channel_directory().widget(key)
    if found.workspace_id is None:
        if found.problem == "disabled":
            raise ApiError(403, "widget_disabled", "this chat is closed: its workspace is disabled")
        raise ApiError(404, "unknown_widget_key", f"no web chat has this key ({WIDGET_KEY_HEADER})")
    g.leaddesk_widget = found
    g.leaddesk_widget_token = enter_workspace(found.workspace_id)


@blueprint.teardown_request
def _leave_widget_workspace(exc: BaseException | None) -> None:
    token = g.pop("leaddesk_widget_token", None)
    if token is not None:
        leave_workspace(token)


def _widget() -> WidgetRoute:
    return g.get("leaddesk_widget") or channel_directory().widget(None)


@blueprint.after_request
def _cors(response: Response) -> Response:
    # The widget runs on the customer's own site: the API is called cross-origin. Auth is a bearer
    # token (never a cookie), so allowing any origin does not expose anything.
    if request.path.startswith("/api/chat"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = (
            f"Authorization, Content-Type, {WIDGET_KEY_HEADER}"
        )
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


class _ChatState:
    """Per-app limits (counted by `webhooks.ratelimit`, shared by every web process when the
    broker is Redis) and the long-poll seat count."""

    def __init__(self, limits: ChatLimits) -> None:
        self.limits = limits
        self.session_messages = limits.session_messages.item()
        self.ip_messages = limits.ip_messages.item()
        self.ip_sessions = limits.ip_sessions.item()
        self.session_polls = limits.session_polls.item()
        self.waiters = threading.BoundedSemaphore(max(1, limits.max_waiters))
        # When each session last said "typing" (announced at most every TYPING_SECONDS).
        self.typing: dict[int, float] = {}
        self.typing_lock = threading.Lock()


_state_lock = threading.Lock()


def _state() -> _ChatState:
    state = current_app.extensions.get("leaddesk_chat")
    if state is None:
        with _state_lock:
            state = current_app.extensions.get("leaddesk_chat")
            if state is None:
                state = _ChatState(services().chat_limits)
                current_app.extensions["leaddesk_chat"] = state
    return state


def _limit(item: RateLimitItem, key: str, what: str) -> None:
    retry_after = ratelimit.hit(item, "chat", what, key)
    if retry_after is not None:
        raise RateLimited(retry_after, what)


def _client_ip() -> str:
    return request.remote_addr or "unknown"


@dataclass
class _Visitor:
    session_id: int
    external_id: str


def _visitor() -> _Visitor:
    token = bearer_token()
    if token is None:
        raise ApiError(
            401, "unauthorized", "start a chat session first and send 'Authorization: Bearer TOKEN'"
        )
    with read_session(services().session_factory) as session:
        row = session.scalars(
            select(ChatSession).where(ChatSession.token_hash == hash_token(token))
        ).first()
        if row is None:
            raise ApiError(401, "unauthorized", "unknown chat session; start a new one")
        return _Visitor(row.id, row.external_id)


# -- pages -----------------------------------------------------------------------------------------


@blueprint.get("/")
def demo():  # type: ignore[no-untyped-def]
    return render_template("demo.html", base_url=request.host_url.rstrip("/"))


# -- the API ---------------------------------------------------------------------------------------


@blueprint.get("/api/chat/config")
def widget_config():  # type: ignore[no-untyped-def]
    """What the widget shows before the first message: the bot's own greeting (in the visitor's
    language when the business speaks it) and the pre-chat form business.yaml asks for."""
    config = services().prompts()
    language = _greeting_language(request.args.get("lang"))
    chat = config.business.web_chat
    return jsonify(
        {
            "business": config.business.name,
            "language": language,
            "greeting": config.template("greeting", language),
            "prechat": {"enabled": chat.prechat, "ask": list(chat.ask), "required": chat.required},
        }
    )


def _greeting_language(value: str | None) -> str:
    """The language of the greeting for a browser that prefers `value` (e.g. "es-MX")."""
    config = services().prompts()
    code = (value or "").strip().lower()[:2]
    if code and code in config.business.languages and config.has_template("greeting", code):
        return code
    return config.business.default_language


@blueprint.post("/api/chat/sessions")
def start_session():  # type: ignore[no-untyped-def]
    state = _state()
    _limit(state.ip_sessions, _client_ip(), "new chat sessions from this address")
    data = _optional_json()
    settings = services().settings
    name = _optional_str(data, "name", state.limits.name_chars)
    email = _optional_str(data, "email", 320)
    phone = _optional_str(data, "phone", 40)
    try:
        email = normalize_email(email) if email else None
    except InvalidContact:
        raise ApiError(
            400, "invalid_email", "email is not a valid email address", "email"
        ) from None
    try:
        phone = normalize_phone(phone, settings.default_region) if phone else None
    except InvalidContact:
        raise ApiError(400, "invalid_phone", "phone is not a valid phone number", "phone") from None
    identity, signed = _signed_identity(data)
    signed_email = signed_phone = None
    if identity is not None:
        as_email = try_normalize_email(identity) if "@" in identity else None
        as_phone = None if as_email else try_normalize_phone(identity, settings.default_region)
        if signed:
            signed_email, signed_phone = as_email, as_phone
        else:
            # Unsigned, the site's identity is only what a client says: a claimed detail.
            email = email or as_email
            phone = phone or as_phone
    token = "wc_" + secrets.token_urlsafe(32)
    external_id = "web-" + uuid.uuid4().hex
    with services().session_factory.begin() as session:
        session.add(
            ChatSession(token_hash=hash_token(token), external_id=external_id, created_at=utcnow())
        )
        if signed and identity is not None:
            # The site vouches for this visitor: the same user finds their lead and conversation
            # again, and a verified email or phone joins the lead that has it.
            signed_id = SIGNED_PREFIX + identity
            resolve(
                CHANNEL,
                signed_id,
                phone=signed_phone,
                email=signed_email,
                name=name,
                session=session,
                region=settings.default_region,
                source="web",
                trust=VERIFIED,
                identity_trust=VERIFIED,
            )
            resolve(
                CHANNEL,
                external_id,
                session=session,
                region=settings.default_region,
                source="web",
                identity_trust=VERIFIED,
                alias_of=signed_id,
            )
        if name or email or phone:
            # The visitor says who they are: a lead from now on, with claimed details only.
            resolve(
                CHANNEL,
                external_id,
                phone=phone,
                email=email,
                name=name,
                session=session,
                region=settings.default_region,
                source="web",
                trust=CLAIMED,
            )
    return jsonify({"session": token}), 201


@blueprint.post("/api/chat/messages")
def post_message():  # type: ignore[no-untyped-def]
    state = _state()
    visitor = _visitor()
    data = _optional_json(required=True)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "invalid_text", "text must be a non-empty string", "text")
    text = text.strip()
    if len(text) > state.limits.message_chars:
        raise ApiError(
            400,
            "message_too_long",
            f"a message can be at most {state.limits.message_chars} characters "
            f"(this one has {len(text)})",
            "text",
        )
    client_id = data.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 100):
        raise ApiError(
            400,
            "invalid_client_id",
            "client_id must be a string of at most 100 characters",
            "client_id",
        )
    _limit(state.session_messages, f"s{visitor.session_id}", "messages in this chat")
    _limit(state.ip_messages, _client_ip(), "messages from this address")
    svc = services()
    inbound = Inbound(
        channel=CHANNEL,
        external_id=visitor.external_id,
        text=text,
        kind="text",
        # A client id makes a retried send (after a network error) land once.
        channel_message_id=f"web:{visitor.session_id}:{client_id or uuid.uuid4().hex}",
    )
    greeted = data.get("greeted")
    try:
        with svc.session_factory.begin() as session:
            if isinstance(greeted, str):
                _record_greeting(visitor.external_id, greeted, session=session)
            ingested = ingest(inbound, session=session, region=svc.settings.default_region)
            message_id = ingested.message.id
            conversation_id = ingested.message.conversation_id
            pending = ingested.message.processed_at is None
    except SQLAlchemyError:
        log.exception("web chat: could not store a message")
        raise ApiError(
            503, "store_unavailable", "the message could not be stored; try again"
        ) from None
    if pending:
        svc.dispatcher.submit(conversation_id)
    return jsonify({"id": message_id}), 200 if ingested.duplicate else 201


def _record_greeting(external_id: str, language: str, *, session: Any) -> None:
    """The widget showed the bot's greeting before the visitor wrote: keep it in the conversation,
    before their first message (where the agents see it), so that the bot does not greet a second
    time. Only the server's own greeting text is recorded, and only before the business has said
    anything in the room."""
    svc = services()
    region = svc.settings.default_region
    lead, identity = resolve_identity(
        CHANNEL, external_id, session=session, region=region, trust=VERIFIED
    )
    conversation = get_conversation(lead, CHANNEL, session=session, identity=identity)
    spoken = session.scalar(
        select(Message.id)
        .where(Message.conversation_id == conversation.id, Message.direction == "out")
        .limit(1)
    )
    if spoken is not None:
        return
    text = svc.prompts().template("greeting", _greeting_language(language))
    if text:
        record_outbound(
            conversation,
            text,
            session=session,
            kind="greeting",
            delivery_status="delivered",
            external_id=external_id,
        )


TYPING_SECONDS = 3.0


@blueprint.post("/api/chat/typing")
def typing():  # type: ignore[no-untyped-def]
    """The visitor is typing: the agents with the conversation open see "typing…" for a moment."""
    state = _state()
    visitor = _visitor()
    now = time.monotonic()
    with state.typing_lock:
        if now - state.typing.get(visitor.session_id, -TYPING_SECONDS) < TYPING_SECONDS:
            return "", 204
        state.typing[visitor.session_id] = now
        if len(state.typing) > 10000:  # forget sessions that went quiet long ago
            state.typing = {k: v for k, v in state.typing.items() if now - v < 60}
    bus = services().events
    conversation_id = _conversation_id(visitor.external_id)
    if bus is not None and conversation_id is not None:
        bus.publish([StoreEvent("typing", conversation_id=conversation_id)])
    return "", 204


@blueprint.get("/api/chat/messages")
def list_messages():  # type: ignore[no-untyped-def]
    state = _state()
    visitor = _visitor()
    after = _int_arg("after", 0, minimum=0)
    wait = _float_arg("wait", 0.0, minimum=0.0)
    wait = min(wait, state.limits.max_wait)
    _limit(state.session_polls, f"s{visitor.session_id}", "requests in this chat")
    seat = False
    if wait > 0:
        # Long polls hold a server thread: past the seat count, answer at once (the widget waits).
        seat = state.waiters.acquire(blocking=False)
        if not seat:
            wait = 0.0
    try:
        messages = _poll(visitor, after, wait, state.limits.poll_interval)
    finally:
        if seat:
            state.waiters.release()
    return jsonify({"messages": messages})


def _poll(visitor: _Visitor, after: int, wait: float, interval: float) -> list[dict[str, Any]]:
    svc = services()
    notifier = svc.notifier
    deadline = time.monotonic() + wait
    while True:
        # Looked up each round: a merge of leads can move the chat into another conversation.
        conversation_id = _conversation_id(visitor.external_id)
        watching = (
            notifier.watch(conversation_id)
            if conversation_id is not None
            else contextlib.nullcontext()
        )
        with watching as watch:
            rows = (
                _fetch(conversation_id, visitor.external_id, after)
                if conversation_id is not None
                else []
            )
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0 or notifier.closed:
                return rows
            step = min(remaining, interval)
            if watch is not None:
                watch.wait(step)
            else:
                time.sleep(min(step, 1.0))


def _conversation_id(external_id: str) -> int | None:
    with read_session(services().session_factory) as session:
        identity = find_identity(CHANNEL, external_id, session=session)
        if identity is None:
            return None
        return session.scalars(
            select(Conversation.id).where(
                Conversation.identity_id == (identity.alias_of_id or identity.id)
            )
        ).first()


def _fetch(conversation_id: int, external_id: str, after: int) -> list[dict[str, Any]]:
    with read_session(services().session_factory) as session:
        rows = session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.id > after,
                # Two sessions of one lead (same email) each see their own exchange.
                or_(Message.external_id == external_id, Message.external_id.is_(None)),
                or_(
                    Message.delivery_status.is_(None),
                    Message.delivery_status.not_in(("failed", "withheld")),
                ),
            )
            .order_by(Message.id)
            .limit(PAGE_SIZE)
        )
        # The page by id (the widget's cursor), each page in the order the visitor saw it (the
        # widget's greeting came before their first message).
        messages = sorted(rows, key=lambda m: (m.sent_at, m.id))
        agent_ids = {m.agent_id for m in messages if m.agent_id}
        names = (
            {
                row.id: row.name
                for row in session.execute(
                    select(Agent.id, Agent.name).where(Agent.id.in_(agent_ids))
                )
            }
            if agent_ids
            else {}
        )
        return [
            {
                "id": m.id,
                "author": m.author,
                "kind": m.kind,
                "text": m.text,
                "at": m.sent_at.isoformat(),
                # The agent's display name: the visitor talks to a person, not to "Agent".
                **({"agent_name": names.get(m.agent_id)} if m.author == "agent" else {}),
            }
            for m in messages
        ]


# -- request parsing -------------------------------------------------------------------------------


def _optional_json(required: bool = False) -> dict[str, Any]:
    if not request.get_data(cache=True) and not required:
        return {}
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _optional_str(data: dict[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"invalid_{key}", f"{key} must be a string", key)
    value = value.strip()
    if len(value) > limit:
        raise ApiError(400, f"invalid_{key}", f"{key} can be at most {limit} characters", key)
    return value or None


def _int_arg(name: str, default: int, *, minimum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a whole number", name) from None
    if value < minimum:
        raise ApiError(400, f"invalid_{name}", f"{name} must be at least {minimum}", name)
    if value > MAX_ID:  # ids are 32-bit integers in the database (PostgreSQL refuses larger ones)
        raise ApiError(400, f"invalid_{name}", f"{name} must be at most {MAX_ID}", name)
    return value


def _float_arg(name: str, default: float, *, minimum: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(
            400, f"invalid_{name}", f"{name} must be a number of seconds", name
        ) from None
    if not math.isfinite(value) or value < minimum:
        raise ApiError(400, f"invalid_{name}", f"{name} must be at least {minimum:g}", name)
    return value
