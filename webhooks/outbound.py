"""Sending replies: the channel outbox behind `bot.Outbox`.

The bot records each outbound message (delivery_status "pending", external_id = the recipient) and
commits; then it calls `deliver(message_ids)`. Per message this:
- web chat: marks it sent and wakes the widget's long poll;
- email: hands it to the SMTP server (`webhooks.mail`) under the Message-ID recorded with it,
  retrying transient failures with backoff; a send cut off after the content went out is recorded
  "unknown" (never sent again by itself), like a send a crash interrupted;
- WhatsApp / Messenger / Instagram: sends it through the Graph API send endpoint, retrying with
  exponential backoff on 5xx answers, timeouts and connection errors (never on 4xx), and stores
  the outcome on the message: "sent" with the channel's message id, or "failed" with the error;
- outside the 24-hour customer-service window (measured from the customer's last message) the
  reply is not sent and is recorded as "withheld"; a channel without its access token is
  receive-only and the reply is recorded as "failed" with that reason.

No database transaction is open during an HTTP call: a message is claimed ("sending") in one
short transaction, sent, and its outcome written in another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import httpx
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.db import once_more_if_disconnected, read_session
from store.models import Conversation, Message, table_of, utcnow
from store.pending import reading
from store.tenancy import all_workspaces, current_workspace, in_workspace
from store.workspaces import active_workspace_ids
from webhooks.channels import ChannelDirectory
from webhooks.mail import EmailChannel, build_message
from webhooks.notify import ReplyNotifier
from webhooks.retry import Transient, with_backoff

log = logging.getLogger(__name__)

SERVICE_WINDOW = timedelta(hours=24)
# Longest text one send request may carry on each channel; longer replies go out in parts.
TEXT_LIMITS = {"whatsapp": 4096, "messenger": 2000, "instagram": 1000}


def reply_window(channel: str, last_inbound_at: datetime | None, now: datetime) -> dict[str, Any]:
    """Whether a free-form reply can go out on this channel now (Meta's 24-hour customer service
    window, counted from the customer's last message; outside it a reply is withheld), for the
    console's reply boxes to say so."""
    if channel not in TEXT_LIMITS:
        return {"limited": False}
    if last_inbound_at is None:
        return {"limited": True, "open": False, "closes_at": None}
    closes_at = last_inbound_at + SERVICE_WINDOW
    left = closes_at - now
    return {
        "limited": True,
        "open": left.total_seconds() > 0,
        "closes_at": closes_at,
        "hours_left": max(0, int(left.total_seconds() // 3600)),
        "minutes_left": max(0, int(left.total_seconds() // 60)),
    }


@dataclass
class ChannelStatus:
    """How a channel is set up: "ready", "receive-only" or "off", with the reason."""

    channel: str
    state: str
    reason: str = ""


def channel_statuses(settings: Any) -> list[ChannelStatus]:
    """What `leaddesk serve` reports at start: each channel ready, receive-only or off."""
    verify = bool(settings.meta_verify_token and settings.meta_verify_token.get_secret_value())
    out = [ChannelStatus("web", "ready", "widget at /, API under /api/chat")]
    tokens = {
        "whatsapp": (
            _secret(settings.whatsapp_access_token) and settings.whatsapp_phone_number_id,
            "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID",
        ),
        "messenger": (_secret(settings.messenger_page_access_token), "MESSENGER_PAGE_ACCESS_TOKEN"),
        "instagram": (_secret(settings.instagram_access_token), "INSTAGRAM_ACCESS_TOKEN"),
    }
    if settings.email_configured:
        out.append(ChannelStatus("email", "ready", f"sending from {settings.email_from}"))
    else:
        out.append(
            ChannelStatus("email", "off", "set LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM to send")
        )
    for channel, (can_send, needs) in tokens.items():
        if not verify:
            out.append(
                ChannelStatus(
                    channel, "off", "META_VERIFY_TOKEN is not set, so Meta cannot subscribe"
                )
            )
        elif can_send:
            out.append(ChannelStatus(channel, "ready"))
        else:
            out.append(ChannelStatus(channel, "receive-only", f"set {needs} to send replies"))
    return out


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


@dataclass
class _Plan:
    message_id: int
    workspace_id: int
    conversation_id: int
    channel: str
    recipient: str | None
    text: str
    last_inbound_at: datetime | None
    subject: str = ""
    channel_message_id: str | None = None
    to_name: str = ""


@cache
def _plan_statement() -> Any:
    """`ChannelOutbox._plan`'s read, built once: the reply, if it waits to be sent, with its
    workspace and its conversation's last customer message."""
    return (
        select(
            Message.id,
            Message.workspace_id,
            Message.conversation_id,
            Message.channel,
            Message.external_id,
            Message.text,
            Message.payload,
            Message.channel_message_id,
            Conversation.last_inbound_at,
        )
        .outerjoin(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.id == bindparam("message_id"),
            Message.direction == "out",
            Message.delivery_status == "pending",
        )
        .execution_options(**all_workspaces())
    )


@cache
def _claim_statement() -> Any:
    """`ChannelOutbox._claim`'s UPDATE, built once: a Core statement with the workspace's filter
    written in (the ORM's bulk UPDATE was built, and its cache key worked out, at every send)."""
    messages = table_of(Message).c
    return (
        update(table_of(Message))
        .where(
            messages.id == bindparam("message_id"),
            messages.workspace_id == bindparam("workspace"),
            messages.delivery_status == "pending",
        )
        .values(
            delivery_status="sending", sent_at=bindparam("started", type_=messages.sent_at.type)
        )
    )


@cache
def _outcome_statement(with_channel_id: bool) -> Any:
    """`ChannelOutbox._write_outcome`'s UPDATE, built once per shape: the status and error, and
    the channel's message id when the send returned one."""
    messages = table_of(Message).c
    values: dict[str, Any] = {
        "delivery_status": bindparam("new_delivery_status"),
        "error": bindparam("new_error"),
    }
    if with_channel_id:
        values["channel_message_id"] = bindparam("new_channel_message_id")
    return (
        update(table_of(Message))
        .where(
            messages.id == bindparam("message_id"),
            messages.workspace_id == bindparam("workspace"),
            messages.delivery_status.in_(("pending", "sending")),
        )
        .values(values)
    )


@dataclass
class SendResult:
    ok: bool
    channel_message_id: str | None = None
    error: str | None = None
    attempts: int = 0


class ChannelOutbox:
    """Delivers recorded outbound messages on their channel (implements `bot.Outbox`)."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        settings: Any,
        notifier: ReplyNotifier | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        http: httpx.Client | None = None,
        email: EmailChannel | None = None,
        channels: ChannelDirectory | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        # Each workspace's accounts and tokens (the first's from the environment by default).
        self.channels = channels or ChannelDirectory(session_factory, settings)
        self._notifier = notifier
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self._email = email

    @property
    def email_ready(self) -> bool:
        """Whether email can be sent (LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM are set)."""
        return self._email is not None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- bot.Outbox ---------------------------------------------------------------------------

    def deliver(self, message_ids: list[int]) -> None:
        for message_id in message_ids:
            try:
                self._deliver_one(message_id)
            except Exception:  # one message's failure must not hold back the others
                log.exception("delivering message %s failed unexpectedly", message_id)

    def resend_pending(self, limit: int = 1000) -> int:
        """Deliver outbound messages recorded but never handed over (e.g. a crash before
        delivery), of every active workspace (each goes out in its own, see `_deliver_one`)."""
        with read_session(self._session_factory) as session:
            active = active_workspace_ids(session=session)
            ids = list(
                session.scalars(
                    select(Message.id)
                    .where(
                        Message.direction == "out",
                        Message.delivery_status == "pending",
                        Message.workspace_id.in_(active),
                    )
                    .order_by(Message.id)
                    .limit(limit)
                    .execution_options(**all_workspaces())
                )
            )
        if ids:
            log.info("delivering %d reply(ies) left pending by an earlier run", len(ids))
            self.deliver(ids)
        return len(ids)

    # -- one message --------------------------------------------------------------------------

    def _deliver_one(self, message_id: int) -> None:
        # Whoever asks (a bot job, an agent's request, the catch-up at start), the message goes
        # out in its own workspace, with that workspace's account and token.
        plan = self._plan(message_id)
        if plan is None:
            return
        with in_workspace(plan.workspace_id):
            self._deliver_in_workspace(plan)

    def _deliver_in_workspace(self, plan: _Plan) -> None:
        message_id = plan.message_id
        channel = plan.channel
        if channel == "web":
            self._finish(plan, "sent")
            return
        if channel == "email":
            self._deliver_email(plan)
            return
        if channel not in TEXT_LIMITS:
            self._finish(plan, "failed", error=f"the {channel} channel has no way to send messages")
            return
        missing = self._missing_config(channel)
        if missing:
            self._finish(
                plan,
                "failed",
                error=f"receive-only: {missing} is not set, so replies cannot be sent",
            )
            log.warning(
                "message %s not sent: %s channel is receive-only (%s not set)",
                message_id,
                channel,
                missing,
            )
            return
        if not plan.recipient:
            self._finish(plan, "failed", error="the message has no recipient id")
            return
        now = self._clock()
        if plan.last_inbound_at is None or now - plan.last_inbound_at > SERVICE_WINDOW:
            since = plan.last_inbound_at.isoformat() if plan.last_inbound_at else "never"
            self._finish(
                plan,
                "withheld",
                error=(
                    "outside the 24-hour customer service window (last customer message: "
                    f"{since}); a free-form reply is not allowed"
                ),
            )
            log.info("message %s withheld: outside the %s 24-hour window", message_id, channel)
            return
        if not self._claim(plan):
            return
        result = self.send(channel, plan.recipient, plan.text)
        if result.ok:
            self._finish(plan, "sent", channel_message_id=result.channel_message_id)
        else:
            self._finish(plan, "failed", error=result.error)
            log.warning(
                "message %s to %s failed after %d attempt(s)", message_id, channel, result.attempts
            )

    def _deliver_email(self, plan: _Plan) -> None:
        email = self._email
        if email is None:
            self._finish(
                plan,
                "failed",
                error="email is off: LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM are not set",
            )
            return
        if not plan.recipient or not plan.channel_message_id:
            self._finish(plan, "failed", error="the email has no recipient address or Message-ID")
            return
        message = build_message(
            sender=email.sender,
            recipient=plan.recipient,
            to_name=plan.to_name,
            subject=plan.subject,
            body=plan.text,
            message_id=plan.channel_message_id,
        )
        if not self._claim(plan):
            return
        result = email.send(message)
        if result.ok:
            self._finish(plan, "sent")
        elif result.uncertain:
            self._finish(plan, "unknown", error=result.error)
            log.warning("email %s: outcome unknown after the connection broke", plan.message_id)
        else:
            self._finish(plan, "failed", error=result.error)
            log.warning("email %s failed after %d attempt(s)", plan.message_id, result.attempts)

    def _plan(self, message_id: int) -> _Plan | None:
        """What delivering reply `message_id` needs, in one read whatever workspace is in force;
        None unless it is an outbound message waiting to be sent."""
        with reading(self._session_factory) as session:
            row = session.execute(_plan_statement(), {"message_id": message_id}).first()
        if row is None:
            return None
        payload = row.payload or {}
        return _Plan(
            message_id=row.id,
            workspace_id=row.workspace_id,
            conversation_id=row.conversation_id,
            channel=row.channel,
            recipient=row.external_id,
            text=row.text or "",
            last_inbound_at=row.last_inbound_at,
            subject=str(payload.get("subject") or ""),
            channel_message_id=row.channel_message_id,
            to_name=str(payload.get("to_name") or ""),
        )

    def _missing_config(self, channel: str) -> str | None:
        return self.channels.missing(current_workspace(), channel)

    def _claim(self, plan: _Plan) -> bool:
        """Mark the message "sending" unless another delivery got there first (no double sends).

        `sent_at` becomes the moment the send started: a message still "sending" long after it was
        cut off by a crash between the HTTP call and recording its outcome
        (leaddesk.worker.sweeper marks it "unknown" rather than sending it again).
        """
        params = {
            "message_id": plan.message_id,
            "workspace": current_workspace(),
            "started": utcnow(),
        }

        def claim() -> int:
            with self._session_factory.begin() as session:
                return session.connection().execute(_claim_statement(), params).rowcount

        return bool(once_more_if_disconnected(claim))

    def _finish(
        self,
        plan: _Plan,
        status: str,
        *,
        channel_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "delivery_status": status,
            "error": error[:2000] if error else None,
        }
        if channel_message_id:
            values["channel_message_id"] = channel_message_id[:255]
        try:
            self._write_outcome(plan.message_id, values)
        except IntegrityError:
            # The channel id is already on another row (a misread echo): keep the outcome only.
            values.pop("channel_message_id", None)
            values["error"] = f"sent as {channel_message_id}"
            self._write_outcome(plan.message_id, values)
        if self._notifier is not None:
            self._notifier.notify(plan.conversation_id)

    def _write_outcome(self, message_id: int, values: dict[str, Any]) -> None:
        statement = _outcome_statement("channel_message_id" in values)
        params = {f"new_{name}": value for name, value in values.items()}
        params.update(message_id=message_id, workspace=current_workspace())

        def write() -> None:
            with self._session_factory.begin() as session:
                session.connection().execute(statement, params)

        # The message went out (or failed for good): its outcome is not left to a retry of the
        # job, which would find it "sending" and never send it again.
        once_more_if_disconnected(write)

    # -- the Graph API ------------------------------------------------------------------------

    def send(self, channel: str, recipient: str, text: str) -> SendResult:
        """Send `text` to `recipient` on a Meta channel (in parts when longer than the channel
        allows), through the account of the workspace in force."""
        credentials = self.channels.credentials(current_workspace(), channel)
        if credentials is None:
            return SendResult(ok=False, error=f"this workspace has no {channel} connection")
        base = self._settings.meta_graph_url.rstrip("/")
        if channel == "whatsapp":
            url = f"{base}/{credentials.account_id}/messages"
        else:
            url = f"{base}/me/messages"
        token = credentials.access_token
        first: SendResult | None = None
        parts = split_text(text, TEXT_LIMITS[channel])
        for index, part in enumerate(parts):
            result = self._post(url, token, _body(channel, recipient, part))
            if not result.ok:
                if index:
                    result.error = f"only {index} of {len(parts)} parts were sent: {result.error}"
                return result
            first = first or result
        return first or SendResult(ok=False, error="nothing to send")

    def _post(self, url: str, token: str, body: dict[str, Any]) -> SendResult:
        def attempt() -> SendResult | Transient:
            try:
                response = self._http.post(
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                )
            except httpx.TimeoutException:
                return Transient(f"timed out after {self._timeout:g}s")
            except httpx.TransportError as exc:
                return Transient(f"connection failed: {type(exc).__name__}")
            if response.status_code < 400:
                return SendResult(ok=True, channel_message_id=_message_id(response))
            error = f"HTTP {response.status_code}: {_graph_error(response)}"
            if response.status_code < 500:
                return SendResult(ok=False, error=error)
            return Transient(error)

        outcome, attempts = with_backoff(
            attempt, delays=self._retry_delays, sleep=self._sleep, what="send"
        )
        if isinstance(outcome, Transient):
            return SendResult(
                ok=False,
                error=f"{outcome.error} (gave up after {attempts} attempts)",
                attempts=attempts,
            )
        outcome.attempts = attempts
        return outcome


def _body(channel: str, recipient: str, text: str) -> dict[str, Any]:
    if channel == "whatsapp":
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        # A phone number goes in "to"; a business-scoped user id (phone withheld) in "recipient".
        if recipient.isdigit():
            body["to"] = recipient
        else:
            body["recipient"] = recipient
        return body
    return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}}


def _message_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    messages = data.get("messages")
    if (
        isinstance(messages, list)
        and messages
        and isinstance(messages[0], dict)
        and messages[0].get("id")
    ):
        return str(messages[0]["id"])
    if data.get("message_id"):
        return str(data["message_id"])
    return None


def _graph_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return (response.text or response.reason_phrase or "")[:300]
    if not isinstance(error, dict):
        return str(error)[:300]
    code = error.get("code")
    message = str(error.get("message") or error.get("error_user_msg") or "error")[:300]
    # Graph messages usually start with their code, e.g. "(#131030) Recipient not in allowed list".
    if code is None or message.startswith("(#"):
        return message
    return f"(#{code}) {message}"


def split_text(text: str, limit: int) -> list[str]:
    """Cut a long reply into parts of at most `limit` characters, at whitespace where possible."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit + 1)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
