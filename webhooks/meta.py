"""What the three Meta webhooks share: the GET subscription handshake, the signature check on the
raw body, and the receive path (parse, verify, route each account's events to its workspace, put
the whole batch in the inbox with one insert, answer, publish "the inbox has work").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from store.inbox import INBOX_KEY
from store.tenancy import FIRST_WORKSPACE
from store.text import clean_json, may_need_cleaning
from webhooks.app import ApiError, Services, channel_directory, inbox_writer, services
from webhooks.channels import ChannelDirectory
from webhooks.events import ParsedBatch, SplitBatch
from webhooks.intake import InboxWriter

log = logging.getLogger(__name__)

# Meta batches at most 1000 events per request; anything larger is not from Meta.
MAX_EVENTS = 1000
SIGNATURE_HEADER = "X-Hub-Signature-256"

# A channel's parser: the body by account, given the Meta app id of each account's echoes.
Splitter = Callable[[Any, Callable[[str | None], str | None]], SplitBatch]


def signature_for(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body` (also used by tests and
    benchmarks)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    """Check `sha256=<hex>` against the HMAC-SHA256 of the raw body, in constant time."""
    if not header:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(
        expected.encode("ascii"), given.strip().lower().encode("ascii", "replace")
    )


def verify_subscription(channel: str) -> Response | tuple[Any, int]:
    """GET handshake: answer `hub.challenge` when `hub.verify_token` is META_VERIFY_TOKEN or the
    verify token of one of the channel's connections (a workspace with its own Meta app)."""
    configured = channel_directory().verify_tokens(channel)
    if not configured:
        raise ApiError(
            403,
            "verification_refused",
            "META_VERIFY_TOKEN is not set on this server, so no subscription can be verified",
        )
    mode = request.args.get("hub.mode", "")
    token = request.args.get("hub.verify_token", "").encode("utf-8")
    challenge = request.args.get("hub.challenge", "")
    # Every token compared (no early exit): the time taken does not say which one came close.
    matches = [hmac.compare_digest(token, known.encode("utf-8")) for known in configured]
    if mode != "subscribe" or not any(matches):
        raise ApiError(
            403,
            "verification_refused",
            "hub.mode must be 'subscribe' with the configured verify token",
        )
    if not challenge or len(challenge) > 512:
        raise ApiError(400, "invalid_challenge", "hub.challenge is missing or too long")
    return Response(challenge, status=200, mimetype="text/plain")


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON (Python accepts them; PostgreSQL's json and Meta do not)."""
    raise ValueError(f"{name} is not valid JSON")


def receive_webhook(channel: str, split: Splitter) -> tuple[Any, int]:
    """POST (through Flask: a body without a Content-Length): see `accept_webhook`."""
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before anything is read
    answer = accept_webhook(
        channel,
        split,
        body,
        request.headers.get(SIGNATURE_HEADER),
        services=services(),
        writer=inbox_writer(),
        channels=channel_directory(),
    )
    return jsonify(answer), 200


def accept_webhook(
    channel: str,
    split: Splitter,
    body: bytes,
    signature: str | None,
    *,
    services: Services,
    writer: InboxWriter,
    channels: ChannelDirectory,
) -> dict[str, int]:
    """Parse, verify the signature, route each account's events to its workspace, put every
    event of the batch in the inbox (one group commit) and return the 200's body; then publish
    that the inbox has work. Raises `ApiError`.

    The signature is checked with the app secret of each account the body names (its
    connection's own, else META_APP_SECRET): an account whose secret did not sign the body has
    its events dropped, and a body no secret signed is refused. Events for an account of no
    workspace here, or of a disabled one, are acknowledged and dropped."""
    svc = services
    default_secret = _secret(svc.settings.meta_app_secret)
    try:
        payload = json.loads(body, parse_constant=_no_constants)
        if may_need_cleaning(body):
            payload = clean_json(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        _check_signature(channel, body, signature, default_secret)
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        _check_signature(channel, body, signature, default_secret)
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    parts = split(payload, lambda account: channels.app_id(channel, account))
    accounts = _signed_accounts(channel, parts, body, signature, channels, default_secret)
    routed: list[ParsedBatch] = []
    foreign: list[str] = []
    ignored = len(parts.rest.ignored)
    for account, batch in parts.accounts.items():
        ignored += len(batch.ignored)
        workspace_id = channels.route(channel, account) if account in accounts else None
        if workspace_id is None:
            ignored += len(batch.messages) + len(batch.statuses)
            foreign.append(account or "missing")
            continue
        batch.workspace_id = workspace_id
        routed.append(batch)
    if parts.rest.messages or parts.rest.statuses:
        # A body that names no account at all (WhatsApp On-Premises): the install's own number.
        parts.rest.workspace_id = FIRST_WORKSPACE
        routed.append(parts.rest)
    if foreign:
        # Acknowledged (Meta would retry otherwise) but never stored or answered.
        log.warning(
            "%s webhook: events for %d account(s) not ours (or of a disabled workspace) "
            "ignored: %s",
            channel,
            len(foreign),
            ", ".join(sorted(set(foreign)))[:300],
        )
    if sum(len(b.messages) + len(b.statuses) for b in routed) > MAX_EVENTS:
        raise ApiError(413, "too_many_events", f"a webhook carries at most {MAX_EVENTS} events")
    try:
        result = writer.queue(routed, now=svc.clock())
    except SQLAlchemyError:
        log.exception("%s webhook: could not store the batch", channel)
        # A 5xx makes Meta deliver the batch again later; nothing was stored (one transaction).
        raise ApiError(
            503, "store_unavailable", "the events could not be stored; retry later"
        ) from None
    if result.stored or result.statuses:
        # The drain ingests the events and hands the conversations to the bot.
        svc.dispatcher.submit(INBOX_KEY)
    log.debug(
        "%s webhook: %d stored, %d duplicate, %d status update(s), %d ignored",
        channel,
        result.stored,
        result.duplicates,
        result.statuses,
        ignored,
    )
    return {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "statuses": result.statuses,
        "ignored": ignored,
    }


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def _check_signature(channel: str, body: bytes, signature: str | None, secret: str) -> None:
    if secret and not signature_ok(body, signature, secret):
        _refuse(channel)


def _refuse(channel: str) -> NoReturn:
    log.warning("%s webhook refused: missing or wrong %s", channel, SIGNATURE_HEADER)
    raise ApiError(
        403, "invalid_signature", f"the {SIGNATURE_HEADER} header does not match the body"
    )


def _signed_accounts(
    channel: str,
    parts: SplitBatch,
    body: bytes,
    signature: str | None,
    channels: ChannelDirectory,
    default_secret: str,
) -> set[str | None]:
    """The accounts of the body whose app secret signed it (all, when none has a secret); 403
    when the body is signed by none of the secrets it needs."""
    secrets = {account: channels.app_secret(channel, account) for account in parts.accounts}
    needed = {secret for secret in secrets.values() if secret}
    if default_secret and (not parts.accounts or parts.rest.messages or parts.rest.statuses):
        needed.add(default_secret)
    if not needed:
        return set(parts.accounts)
    valid = {secret for secret in needed if signature_ok(body, signature, secret)}
    if not valid:
        _refuse(channel)
    if (parts.rest.messages or parts.rest.statuses) and default_secret not in valid:
        parts.rest = ParsedBatch(ignored=parts.rest.ignored)
    signed = {account for account, secret in secrets.items() if not secret or secret in valid}
    if len(signed) < len(secrets):
        log.warning(
            "%s webhook: events for %d account(s) signed with another app's secret dropped",
            channel,
            len(secrets) - len(signed),
        )
    return signed


class WebhookFastPath:
    """WSGI middleware in front of the Flask app: the Meta webhooks' POSTs with a Content-Length
    are answered here, without Flask's request and response objects, context and hooks (which
    cost as much CPU as the rest of a webhook). The answers are the same as the Flask views'
    (`accept_webhook`, and the app's JSON error shape); everything else, and a body without a
    Content-Length, goes on to Flask.
    """

    def __init__(self, app: Flask, routes: dict[str, tuple[str, Splitter]]) -> None:
        self._app = app
        self._next = app.wsgi_app
        self._routes = routes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            route = self._routes.get(environ.get("PATH_INFO", ""))
            length = environ.get("CONTENT_LENGTH") or ""
            if route is not None and length.isdigit():
                return self._receive(route, int(length), environ, start_response)
        return self._next(environ, start_response)

    def _receive(
        self, route: tuple[str, Splitter], length: int, environ: dict[str, Any], start_response: Any
    ) -> list[bytes]:
        channel, split = route
        status, body = 200, b""
        try:
            limit = self._app.config.get("MAX_CONTENT_LENGTH")
            if limit is not None and length > limit:
                raise ApiError(
                    413,
                    "request_entity_too_large",
                    "The data value transmitted exceeds the capacity limit.",
                )
            raw = environ["wsgi.input"].read(length) if length else b""
            answer = accept_webhook(
                channel,
                split,
                raw,
                environ.get("HTTP_X_HUB_SIGNATURE_256"),
                services=self._app.extensions["leaddesk"],
                writer=self._app.extensions["leaddesk_inbox"],
                channels=self._app.extensions["leaddesk_channels"],
            )
            body = json.dumps(answer, separators=(",", ":")).encode() + b"\n"
        except ApiError as exc:
            status, body = exc.status, _error_body(exc)
        except Exception:
            log.exception("unhandled error on POST %s", environ.get("PATH_INFO"))
            status = 500
            body = _error_body(
                ApiError(500, "internal_error", "something went wrong on our side; it was logged")
            )
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _error_body(exc: ApiError) -> bytes:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field:
        error["field"] = exc.field
    return json.dumps({"error": error}, separators=(",", ":")).encode() + b"\n"
