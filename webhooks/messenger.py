"""Messenger and Instagram webhooks: `/webhooks/messenger` and `/webhooks/instagram`.

Both platforms deliver the same `entry[].messaging[]` events (Instagram with `object: instagram`).
`parse_messaging(payload, channel, app_id=...)` turns every event of every entry into inbound
messages, delivery/read reports, and human replies echoed from the Page inbox or the Instagram app
(`is_echo` with an `app_id` that is not ours). Our own echoes are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint

from store.messages import Inbound
from webhooks.events import (
    ParsedBatch,
    SplitBatch,
    StatusUpdate,
    as_dict,
    as_list,
    as_text,
    bracket,
    fallback_id,
    ident,
    parse_timestamp,
)
from webhooks.meta import receive_webhook, verify_subscription

_OBJECTS = {"messenger": "page", "instagram": "instagram"}
_ATTACHMENT_KIND = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "document",
    "location": "location",
    "fallback": "link",
    "template": "template",
    "share": "share",
    "ig_post": "share",
    "ig_reel": "share",
    "reel": "share",
    "story_mention": "story_mention",
    "ig_story": "story",
    "sticker": "sticker",
}
_ATTACHMENT_LABEL = {
    "file": "file",
    "fallback": "link",
    "template": "template message",
    "share": "shared post",
    "ig_post": "shared post",
    "ig_reel": "shared reel",
    "reel": "shared reel",
    "story_mention": "mentioned you in their story",
    "ig_story": "shared a story",
}

messenger_blueprint = Blueprint("messenger", __name__, url_prefix="/webhooks")
instagram_blueprint = Blueprint("instagram", __name__, url_prefix="/webhooks")


def parse_messaging(
    payload: Any, channel: str, *, app_id: str | None = None, account_id: str | None = None
) -> ParsedBatch:
    """Parse a Messenger (`channel="messenger"`) or Instagram webhook body; never raises on odd
    input.

    `app_id` is our META_APP_ID: echoes carrying it are our own replies. Without it, echoes cannot
    be told apart, so none is taken for a human takeover. `account_id` is our Page id (Messenger)
    or Instagram account id: an entry for another one is not ours and is reported in
    `batch.foreign`.
    """
    batch = ParsedBatch()
    ours = str(account_id).strip() if account_id else None

    def target(entry_id: str | None) -> ParsedBatch | None:
        if ours and entry_id != ours:
            batch.not_ours(f"{channel} account {entry_id or 'missing'}")
            return None
        return batch

    _parse(payload, channel, batch, target, lambda entry_id: app_id)
    return batch


def split_messaging(
    payload: Any, channel: str, app_id_of: Callable[[str | None], str | None]
) -> SplitBatch:
    """Parse a Messenger or Instagram webhook body into the events of each Page or account it
    names (`entry[].id`); `app_id_of(account)` is the Meta app whose echoes are our own."""
    split = SplitBatch()
    _parse(payload, channel, split.rest, split.to, app_id_of)
    return split


def _parse(
    payload: Any,
    channel: str,
    rest: ParsedBatch,
    target: Callable[[str | None], ParsedBatch | None],
    app_id_of: Callable[[str | None], str | None],
) -> None:
    if not isinstance(payload, dict):
        rest.ignored.append("the body is not a JSON object")
        return
    kind = payload.get("object")
    if kind not in (None, _OBJECTS[channel]):
        rest.ignored.append(f"object {str(kind)[:40]!r} is not a {channel} event")
        return
    entries = payload.get("entry")
    if not isinstance(entries, list):
        rest.ignored.append("'entry' is not a list")
        return
    for entry in entries:
        entry = as_dict(entry)
        entry_id = ident(entry.get("id"))
        batch = target(entry_id)
        if batch is None:
            continue
        app_id = app_id_of(entry_id)
        events = as_list(entry.get("messaging")) + as_list(entry.get("standby"))
        for change in as_list(entry.get("changes")):
            change = as_dict(change)
            value = as_dict(change.get("value"))
            if as_text(change.get("field"), 60) == "messages" and "sender" in value:
                events.append(value)  # the dashboard's "test" button sends events in this shape
            else:
                batch.ignored.append(
                    f"{as_text(change.get('field'), 60) or 'unknown'} change "
                    "(not a conversation event)"
                )
        if not events and not entry.get("changes"):
            batch.ignored.append("an entry without events")
        for event in events:
            _parse_event(as_dict(event), channel, app_id, batch)


def _parse_event(
    event: dict[str, Any], channel: str, app_id: str | None, batch: ParsedBatch
) -> None:
    sender = ident(as_dict(event.get("sender")).get("id"))
    recipient = ident(as_dict(event.get("recipient")).get("id"))
    at = parse_timestamp(event.get("timestamp"))
    message = event.get("message")
    if isinstance(message, dict):
        if message.get("is_echo"):
            _parse_echo(event, message, channel, app_id, recipient, at, batch)
            return
        if message.get("is_deleted"):
            batch.ignored.append("the customer deleted a message")
            return
        kind, text = describe(message)
        _add(batch, channel, sender, kind, text, ident(message.get("mid")), event, at)
        return
    if isinstance(event.get("postback"), dict):
        postback = as_dict(event.get("postback"))
        text = (
            as_text(postback.get("title")) or as_text(postback.get("payload")) or bracket("button")
        )
        _add(batch, channel, sender, "postback", text, ident(postback.get("mid")), event, at)
        return
    if isinstance(event.get("reaction"), dict):
        reaction = as_dict(event.get("reaction"))
        emoji = as_text(reaction.get("emoji"), 20) or as_text(reaction.get("reaction"), 20)
        if as_text(reaction.get("action"), 20) == "unreact":
            text = bracket("removed a reaction")
        else:
            text = bracket("reacted", emoji)
        _add(batch, channel, sender, "reaction", text, None, event, at)
        return
    if isinstance(event.get("referral"), dict):
        referral = as_dict(event.get("referral"))
        source = as_text(referral.get("source"), 60).lower().replace("_", " ")
        ref = as_text(referral.get("ref"), 200)
        detail = " ".join(
            part
            for part in (f"from {source}" if source else "", f"(ref {ref})" if ref else "")
            if part
        )
        _add(
            batch,
            channel,
            sender,
            "referral",
            bracket("opened the conversation", detail),
            None,
            event,
            at,
        )
        return
    if isinstance(event.get("optin"), dict):
        ref = as_text(as_dict(event.get("optin")).get("ref"), 200)
        if sender:
            _add(batch, channel, sender, "optin", bracket("opted in", ref), None, event, at)
        else:
            batch.ignored.append("an opt-in by user_ref (no conversation yet)")
        return
    if isinstance(event.get("delivery"), dict):
        delivery = as_dict(event.get("delivery"))
        watermark = parse_timestamp(delivery.get("watermark"))
        mids = [m for m in (ident(x) for x in as_list(delivery.get("mids"))) if m]
        for mid in mids:
            batch.statuses.append(
                StatusUpdate(channel, "delivered", channel_message_id=mid, recipient=sender, at=at)
            )
        if watermark is not None and sender:
            batch.statuses.append(
                StatusUpdate(channel, "delivered", recipient=sender, watermark=watermark, at=at)
            )
        elif not mids:
            batch.ignored.append("a delivery report without messages")
        return
    if isinstance(event.get("read"), dict):
        read = as_dict(event.get("read"))
        watermark = parse_timestamp(read.get("watermark"))
        read_mid = ident(read.get("mid"))
        if read_mid:
            batch.statuses.append(
                StatusUpdate(channel, "read", channel_message_id=read_mid, recipient=sender, at=at)
            )
        if watermark is not None and sender:
            batch.statuses.append(
                StatusUpdate(channel, "read", recipient=sender, watermark=watermark, at=at)
            )
        elif not read_mid:
            batch.ignored.append("a read report without messages")
        return
    known = [key for key in event if key not in ("sender", "recipient", "timestamp")]
    batch.ignored.append(f"{(known[0] if known else 'empty')[:40]} event")


def _parse_echo(
    event: dict[str, Any],
    message: dict[str, Any],
    channel: str,
    app_id: str | None,
    customer: str | None,
    at: Any,
    batch: ParsedBatch,
) -> None:
    echo_app = ident(message.get("app_id"))
    if app_id is None:
        batch.ignored.append("an echo (META_APP_ID is not set, so echoes cannot be told apart)")
        return
    if echo_app == app_id:
        batch.ignored.append("our own echo")
        return
    kind, text = describe(message)
    _add(batch, channel, customer, kind, text, ident(message.get("mid")), event, at, author="agent")


def _add(
    batch: ParsedBatch,
    channel: str,
    customer: str | None,
    kind: str,
    text: str,
    mid: str | None,
    event: dict[str, Any],
    at: Any,
    author: str = "customer",
) -> None:
    if not customer:
        batch.ignored.append(f"a {kind} event without a sender")
        return
    prefix = "fb" if channel == "messenger" else "ig"
    batch.messages.append(
        Inbound(
            channel=channel,
            external_id=customer,
            text=text,
            kind=kind,
            channel_message_id=mid or fallback_id(prefix, event),
            sent_at=at,
            payload=event,
            author=author,
        )
    )


def describe(message: dict[str, Any]) -> tuple[str, str]:
    """The stored kind and readable text of a Messenger/Instagram `message` object."""
    if message.get("is_unsupported"):
        return "unsupported", bracket("unsupported message")
    text = as_text(message.get("text"), 20000)
    attachments = [as_dict(a) for a in as_list(message.get("attachments"))]
    described = [_attachment_text(a) for a in attachments]
    if text:
        kind = "quick_reply" if isinstance(message.get("quick_reply"), dict) else "text"
        return kind, " ".join([text, *described]) if described else text
    if attachments:
        kinds = {
            _ATTACHMENT_KIND.get(as_text(a.get("type"), 40), "attachment") for a in attachments
        }
        kind = kinds.pop() if len(kinds) == 1 else "attachments"
        return kind, " ".join(described)
    if isinstance(message.get("sticker_id"), (int, str)):
        return "sticker", bracket("sticker")
    return "unsupported", bracket("unsupported message")


def _attachment_text(attachment: dict[str, Any]) -> str:
    kind = as_text(attachment.get("type"), 40) or "attachment"
    payload = as_dict(attachment.get("payload"))
    label = _ATTACHMENT_LABEL.get(kind, kind)
    if kind == "location":
        coordinates = as_dict(payload.get("coordinates"))
        lat, lon = as_text(coordinates.get("lat"), 40), as_text(coordinates.get("long"), 40)
        return bracket("location", f"{lat}, {lon}" if lat and lon else "")
    title = as_text(payload.get("title"), 300) or as_text(attachment.get("title"), 300)
    return bracket(label, title)


@messenger_blueprint.get("/messenger")
def verify_messenger():  # type: ignore[no-untyped-def]
    return verify_subscription("messenger")


def split_messenger_webhook(
    payload: Any, app_id_of: Callable[[str | None], str | None]
) -> SplitBatch:
    """A Messenger webhook body by Page."""
    return split_messaging(payload, "messenger", app_id_of)


def split_instagram_webhook(
    payload: Any, app_id_of: Callable[[str | None], str | None]
) -> SplitBatch:
    """An Instagram webhook body by Instagram account."""
    return split_messaging(payload, "instagram", app_id_of)


@messenger_blueprint.post("/messenger")
def receive_messenger():  # type: ignore[no-untyped-def]
    return receive_webhook("messenger", split_messenger_webhook)


@instagram_blueprint.get("/instagram")
def verify_instagram():  # type: ignore[no-untyped-def]
    return verify_subscription("instagram")


@instagram_blueprint.post("/instagram")
def receive_instagram():  # type: ignore[no-untyped-def]
    return receive_webhook("instagram", split_instagram_webhook)
