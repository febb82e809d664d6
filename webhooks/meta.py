"""What the three Meta webhooks share: the GET subscription handshake, the signature check on the
raw body, and the receive path (verify, parse, put the whole batch in the inbox with one insert,
answer, publish "the inbox has work").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from store.inbox import INBOX_KEY
from store.text import clean_json
from webhooks.app import ApiError, services
from webhooks.events import ParsedBatch
from webhooks.intake import queue_batch

log = logging.getLogger(__name__)

# Meta batches at most 1000 events per request; anything larger is not from Meta.
MAX_EVENTS = 1000
SIGNATURE_HEADER = "X-Hub-Signature-256"

Parser = Callable[[Any, Any], ParsedBatch]


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


def verify_subscription() -> Response | tuple[Any, int]:
    """GET handshake: answer `hub.challenge` when `hub.verify_token` is META_VERIFY_TOKEN."""
    settings = services().settings
    configured = settings.meta_verify_token.get_secret_value() if settings.meta_verify_token else ""
    if not configured:
        raise ApiError(
            403,
            "verification_refused",
            "META_VERIFY_TOKEN is not set on this server, so no subscription can be verified",
        )
    mode = request.args.get("hub.mode", "")
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge", "")
    if mode != "subscribe" or not hmac.compare_digest(
        token.encode("utf-8"), configured.encode("utf-8")
    ):
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


def receive_webhook(channel: str, parse: Parser) -> tuple[Any, int]:
    """POST: verify the signature, put every event of the batch in the inbox, answer 200, then
    publish that the inbox has work."""
    svc = services()
    settings = svc.settings
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before anything is read
    secret = settings.meta_app_secret.get_secret_value() if settings.meta_app_secret else ""
    if secret and not signature_ok(body, request.headers.get(SIGNATURE_HEADER), secret):
        log.warning("%s webhook refused: missing or wrong %s", channel, SIGNATURE_HEADER)
        raise ApiError(
            403, "invalid_signature", f"the {SIGNATURE_HEADER} header does not match the body"
        )
    try:
        payload = clean_json(json.loads(body, parse_constant=_no_constants))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    batch = parse(payload, settings)
    if batch.foreign:
        # Acknowledged (Meta would retry otherwise) but never stored or answered from our number.
        log.warning(
            "%s webhook: %d event(s) for a number or account that is not ours ignored: %s",
            channel,
            len(batch.foreign),
            ", ".join(sorted(set(batch.foreign)))[:300],
        )
    if len(batch.messages) + len(batch.statuses) > MAX_EVENTS:
        raise ApiError(413, "too_many_events", f"a webhook carries at most {MAX_EVENTS} events")
    try:
        result = queue_batch(batch, engine=svc.session_factory.kw["bind"], now=svc.clock())
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
        len(batch.ignored),
    )
    return jsonify(
        {
            "stored": result.stored,
            "duplicates": result.duplicates,
            "statuses": result.statuses,
            "ignored": len(batch.ignored),
        }
    ), 200
