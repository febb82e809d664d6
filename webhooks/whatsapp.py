"""WhatsApp Cloud API webhook: `/webhooks/whatsapp`.

`parse_whatsapp(payload)` turns a webhook body into inbound messages (customers, and human replies
echoed from the WhatsApp Business app) and delivery statuses, for every entry, change and message.
It also accepts the envelope-less On-Premises/BSP shape (`{"contacts": [...], "messages": [...]}`).

A customer is identified by their phone (`wa_id`) when WhatsApp shares it; a customer whose phone
is withheld is identified by their business-scoped user id (BSUID). When both are present the
BSUID is kept as an alias of the same lead, so later BSUID-only messages find them.
"""

from __future__ import annotations

import json
import re
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

CHANNEL = "whatsapp"
_DIGITS = re.compile(r"^\d{6,17}$")
_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
_MEDIA = ("image", "video", "audio", "document", "sticker")

blueprint = Blueprint("whatsapp", __name__, url_prefix="/webhooks")


def parse_whatsapp(payload: Any, *, phone_number_id: str | None = None) -> ParsedBatch:
    """Parse a WhatsApp webhook body; never raises on odd input, it reports what it skipped.

    With `phone_number_id` (our WHATSAPP_PHONE_NUMBER_ID), a change for another business number
    is not ours: it is skipped and reported in `batch.foreign`.
    """
    batch = ParsedBatch()
    ours = str(phone_number_id).strip() if phone_number_id else None

    def target(number: str | None) -> ParsedBatch | None:
        if ours and number != ours:
            batch.not_ours(f"phone_number_id {number or 'missing'}")
            return None
        return batch

    _parse(payload, batch, target)
    return batch


def split_whatsapp(payload: Any) -> SplitBatch:
    """Parse a WhatsApp webhook body into the events of each business number it names
    (`metadata.phone_number_id` of each change)."""
    split = SplitBatch()
    _parse(payload, split.rest, split.to)
    return split


def _parse(
    payload: Any, rest: ParsedBatch, target: Callable[[str | None], ParsedBatch | None]
) -> None:
    """Every entry and change of the body: a change's events go to `target(its number)` (None:
    skipped), what is no conversation event to `rest`."""
    if not isinstance(payload, dict):
        rest.ignored.append("the body is not a JSON object")
        return
    if "entry" not in payload and any(
        key in payload for key in ("messages", "statuses", "message_echoes")
    ):
        _parse_value(payload, "messages", rest)
        return
    kind = payload.get("object")
    if kind not in (None, "whatsapp_business_account"):
        rest.ignored.append(f"object {str(kind)[:40]!r} is not a WhatsApp Business Account event")
        return
    entries = payload.get("entry")
    if not isinstance(entries, list):
        rest.ignored.append("'entry' is not a list")
        return
    for entry in entries:
        changes = as_dict(entry).get("changes")
        if not isinstance(changes, list):
            rest.ignored.append("an entry without a 'changes' list")
            continue
        for change in changes:
            change = as_dict(change)
            field = as_text(change.get("field"), 80) or "messages"
            value = as_dict(change.get("value"))
            if field not in ("messages", "smb_message_echoes"):
                rest.ignored.append(f"{field} change (not a conversation event)")
                continue
            batch = target(ident(as_dict(value.get("metadata")).get("phone_number_id")))
            if batch is not None:
                _parse_value(value, field, batch)


def _parse_value(value: dict[str, Any], field: str, batch: ParsedBatch) -> None:
    contacts = _Contacts(as_list(value.get("contacts")))
    for message in as_list(value.get("messages")):
        _add_message(as_dict(message), contacts, batch, author="customer")
    for echo in as_list(value.get("message_echoes")):
        _add_message(as_dict(echo), contacts, batch, author="agent")
    for status in as_list(value.get("statuses")):
        update = _status(as_dict(status))
        if update is None:
            batch.ignored.append(f"status {as_text(as_dict(status).get('status'), 40)!r}")
        else:
            batch.statuses.append(update)
    for error in as_list(value.get("errors")):
        batch.ignored.append(f"error report: {_error_text(as_dict(error))}")


class _Contacts:
    """The `contacts` array of a change: profile names and ids, looked up by wa_id or user_id."""

    def __init__(self, contacts: list[Any]) -> None:
        self.items = [as_dict(c) for c in contacts if isinstance(c, dict)]

    def find(self, wa_id: str | None, user_id: str | None) -> dict[str, Any]:
        for contact in self.items:
            if wa_id and ident(contact.get("wa_id")) == wa_id:
                return contact
            if user_id and ident(contact.get("user_id")) == user_id:
                return contact
        # A lone contact belongs to the message only when the message does not name someone else.
        return self.items[0] if len(self.items) == 1 and not (wa_id or user_id) else {}


def _add_message(
    message: dict[str, Any], contacts: _Contacts, batch: ParsedBatch, *, author: str
) -> None:
    kind_of = as_text(message.get("type"), 40) or "unknown"
    if kind_of == "system":
        system = as_dict(message.get("system"))
        batch.ignored.append(f"system event {as_text(system.get('type'), 60)!r}")
        return
    if kind_of in ("revoke", "deleted"):
        batch.ignored.append("a message was deleted")
        return
    if author == "customer":
        wa_id, user_id = ident(message.get("from")), ident(message.get("from_user_id"))
    else:
        wa_id, user_id = ident(message.get("to")), ident(message.get("to_user_id"))
    contact = contacts.find(wa_id, user_id)
    wa_id = wa_id or ident(contact.get("wa_id"))
    user_id = user_id or ident(contact.get("user_id"))
    phone_id = wa_id if wa_id and _DIGITS.match(wa_id) else None
    external_id = phone_id or user_id or wa_id
    if not external_id:
        batch.ignored.append("a message without a sender")
        return
    profile = as_dict(contact.get("profile"))
    kind, text = describe(message)
    aliases = [user_id] if user_id and user_id != external_id else []
    batch.messages.append(
        Inbound(
            channel=CHANNEL,
            external_id=external_id,
            text=text,
            kind=kind,
            channel_message_id=ident(message.get("id")) or fallback_id("wa", message),
            name=as_text(profile.get("name"), 200) or None,
            phone=f"+{phone_id}" if phone_id else None,
            sent_at=parse_timestamp(message.get("timestamp")),
            payload=message,
            author=author,
            extra={"aliases": aliases},
        )
    )


def describe(message: dict[str, Any]) -> tuple[str, str]:
    """The stored kind and readable text of one WhatsApp message object."""
    kind = as_text(message.get("type"), 40) or "unknown"
    if kind == "text":
        return "text", as_text(as_dict(message.get("text")).get("body"), 20000)
    if kind in _MEDIA:
        media = as_dict(message.get(kind))
        caption = as_text(media.get("caption"))
        if kind == "audio":
            label = "voice message" if media.get("voice") else "audio"
        elif kind == "document":
            filename = as_text(media.get("filename"), 200)
            label = f"document: {filename}" if filename else "document"
        elif kind == "sticker":
            label = "animated sticker" if media.get("animated") else "sticker"
        else:
            label = kind
        return kind, bracket(label, caption)
    if kind == "location":
        return "location", _location_text(as_dict(message.get("location")))
    if kind == "contacts":
        return "contacts", _contacts_text(as_list(message.get("contacts")))
    if kind == "reaction":
        emoji = as_text(as_dict(message.get("reaction")).get("emoji"), 20)
        return "reaction", bracket("reacted", emoji) if emoji else bracket("removed a reaction")
    if kind == "interactive":
        return _interactive(as_dict(message.get("interactive")))
    if kind == "button":
        button = as_dict(message.get("button"))
        return "button_reply", as_text(button.get("text")) or as_text(
            button.get("payload")
        ) or bracket("button")
    if kind == "order":
        return "order", _order_text(as_dict(message.get("order")))
    if kind == "edit":
        edit = as_dict(message.get("edit"))
        inner_kind, inner_text = describe(as_dict(edit.get("message")))
        return inner_kind, bracket("edited", inner_text)
    if kind == "unsupported":
        inner = as_text(as_dict(message.get("unsupported")).get("type"), 40)
        return "unsupported", bracket("unsupported message", inner)
    return "unsupported", bracket("unsupported message", kind)


def _interactive(interactive: dict[str, Any]) -> tuple[str, str]:
    sub = as_text(interactive.get("type"), 40)
    if sub in ("button_reply", "list_reply"):
        reply = as_dict(interactive.get(sub))
        title = as_text(reply.get("title")) or as_text(reply.get("id")) or bracket("choice")
        description = as_text(reply.get("description"))
        return sub, f"{title} ({description})" if description else title
    if sub == "nfm_reply":
        reply = as_dict(interactive.get("nfm_reply"))
        try:
            answers = json.loads(reply.get("response_json") or "{}")
        except (TypeError, ValueError, RecursionError):
            answers = {}
        parts = []
        if isinstance(answers, dict):
            for key, value in answers.items():
                if key == "flow_token":
                    continue
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                parts.append(f"{key}: {shown}")
        return "flow_reply", bracket("form submitted", "; ".join(parts)[:2000])
    return "unsupported", bracket("unsupported message", f"interactive {sub}".strip())


def _location_text(location: dict[str, Any]) -> str:
    name, address = as_text(location.get("name"), 200), as_text(location.get("address"), 300)
    lat, lon = location.get("latitude"), location.get("longitude")
    where = ", ".join(part for part in (name, address) if part)
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        where = f"{where} ({lat}, {lon})" if where else f"{lat}, {lon}"
    return bracket("location", where)


def _contacts_text(cards: list[Any]) -> str:
    shown = []
    for card in cards[:10]:
        card = as_dict(card)
        name = as_text(as_dict(card.get("name")).get("formatted_name"), 200)
        phones = [as_text(as_dict(p).get("phone"), 40) for p in as_list(card.get("phones"))]
        phones = [p for p in phones if p]
        shown.append(" ".join(part for part in (name, ", ".join(phones)) if part))
    return bracket("shared contact", "; ".join(s for s in shown if s))


def _order_text(order: dict[str, Any]) -> str:
    items = []
    for item in as_list(order.get("product_items"))[:50]:
        item = as_dict(item)
        quantity = item.get("quantity")
        product = as_text(item.get("product_retailer_id"), 100)
        price = item.get("item_price")
        currency = as_text(item.get("currency"), 10)
        line = f"{quantity} x {product}" if quantity is not None else product
        if price is not None:
            line += f" ({price} {currency})".replace(" )", ")")
        items.append(line)
    note = as_text(order.get("text"))
    detail = ", ".join(items)
    if note:
        detail = f"{detail}; note: {note}" if detail else note
    return bracket("order", detail)


def _status(status: dict[str, Any]) -> StatusUpdate | None:
    name = _STATUS.get(as_text(status.get("status"), 20))
    message_id = ident(status.get("id"))
    if name is None or message_id is None:
        return None
    errors = [as_dict(e) for e in as_list(status.get("errors"))]
    return StatusUpdate(
        channel=CHANNEL,
        status=name,
        channel_message_id=message_id,
        recipient=ident(status.get("recipient_id")),
        at=parse_timestamp(status.get("timestamp")),
        error=_error_text(errors[0]) if errors else None,
    )


def _error_text(error: dict[str, Any]) -> str:
    details = as_text(as_dict(error.get("error_data")).get("details"), 300) or as_text(
        error.get("details"), 300
    )
    title = as_text(error.get("title"), 200) or as_text(error.get("message"), 200)
    code = ident(error.get("code"))
    head = " ".join(part for part in (code, title) if part)
    return f"{head}: {details}" if details and details != title else head or "unknown error"


@blueprint.get("/whatsapp")
def verify():  # type: ignore[no-untyped-def]
    return verify_subscription(CHANNEL)


def split_webhook(payload: Any, app_id_of: Callable[[str | None], str | None]) -> SplitBatch:
    """A webhook body by business number (WhatsApp echoes carry no app id: `app_id_of` unused)."""
    return split_whatsapp(payload)


@blueprint.post("/whatsapp")
def receive():  # type: ignore[no-untyped-def]
    return receive_webhook(CHANNEL, split_webhook)
