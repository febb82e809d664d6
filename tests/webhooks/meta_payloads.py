"""Factories for webhook bodies in the shapes Meta documents (WhatsApp Cloud API, Messenger,
Instagram),
and for wrapping the shared corpus' fragments (single events, single entries) into full bodies."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

_ids = itertools.count(1)

PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "682498302938465"
IG_ID = "17841400000000000"


def next_id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def now_ts() -> int:
    return int(time.time())


# -- WhatsApp --------------------------------------------------------------------------------------


def wa_message(
    kind: str = "text",
    *,
    wa_id: str | None = "16505551234",
    user_id: str | None = None,
    mid: str | None = None,
    ts: int | None = None,
    **content: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": mid or next_id("wamid.test"),
        "timestamp": str(ts or now_ts()),
        "type": kind,
    }
    if wa_id:
        message["from"] = wa_id
    if user_id:
        message["from_user_id"] = user_id
    if kind == "text":
        message["text"] = {"body": content.get("body", "Hello there")}
    else:
        message[kind] = content
    return message


def wa_contact(
    wa_id: str | None = "16505551234", name: str = "Sheena Nelson", user_id: str | None = None
) -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {"name": name}}
    if wa_id:
        contact["wa_id"] = wa_id
    if user_id:
        contact["user_id"] = user_id
    return contact


def wa_status(
    mid: str,
    status: str,
    *,
    recipient: str = "16505551234",
    errors: list[Any] | None = None,
    ts: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": mid,
        "status": status,
        "timestamp": str(ts or now_ts()),
        "recipient_id": recipient,
    }
    if errors:
        body["errors"] = errors
    return body


def wa_change(
    *,
    messages: list[Any] | None = None,
    contacts: list[Any] | None = None,
    statuses: list[Any] | None = None,
    echoes: list[Any] | None = None,
    field: str = "messages",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    if echoes is not None:
        value["message_echoes"] = echoes
    return {"value": value, "field": field}


def wa_body(*changes: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    """A full body; with entries > 1 the changes are spread over several entries."""
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(entries)]
    for index, change in enumerate(changes):
        buckets[index % entries].append(change)
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": f"10229012934039{i}", "changes": bucket} for i, bucket in enumerate(buckets)
        ],
    }


def wa_text(
    body: str = "Hello there",
    *,
    wa_id: str = "16505551234",
    name: str = "Sheena Nelson",
    mid: str | None = None,
) -> dict[str, Any]:
    return wa_body(
        wa_change(
            contacts=[wa_contact(wa_id, name)],
            messages=[wa_message("text", wa_id=wa_id, mid=mid, body=body)],
        )
    )


# -- Messenger / Instagram ------------------------------------------------------------------------


def fb_event(
    sender: str = "1254459154682919",
    *,
    recipient: str = PAGE_ID,
    ts: int | None = None,
    **event: Any,
) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": (ts or now_ts()) * 1000,
        **event,
    }


def fb_text(
    text: str = "Hi, do you ship to Canada?",
    *,
    sender: str = "1254459154682919",
    mid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return fb_event(sender, message={"mid": mid or next_id("m_test"), "text": text, **extra})


def fb_echo(
    text: str,
    *,
    customer: str = "1254459154682919",
    app_id: str | None = None,
    mid: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid or next_id("m_echo"), "is_echo": True, "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    return fb_event(PAGE_ID, recipient=customer, message=message)


def fb_body(*events: dict[str, Any], obj: str = "page", entries: int = 1) -> dict[str, Any]:
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(entries)]
    for index, event in enumerate(events):
        buckets[index % entries].append(event)
    return {
        "object": obj,
        "entry": [
            {
                "id": PAGE_ID if obj == "page" else IG_ID,
                "time": now_ts() * 1000,
                "messaging": bucket,
            }
            for bucket in buckets
        ],
    }


# -- the shared corpus ----------------------------------------------------------------------------


def wrap_fragment(data: Any, obj: str) -> dict[str, Any]:
    """Turn a corpus file into a full webhook body (some hold one event or one entry only)."""
    if isinstance(data, dict) and "entry" in data:
        return data if "object" in data else {"object": obj, **data}
    if isinstance(data, dict) and "change" in data:
        return {"object": obj, "entry": [{"id": PAGE_ID, "time": 1, "changes": [data["change"]]}]}
    if (
        isinstance(data, dict)
        and "sender" not in data
        and any(k in data for k in ("messaging", "standby", "changes"))
    ):
        if isinstance(data.get("messaging"), dict):
            return {
                "object": obj,
                "entry": [{"id": PAGE_ID, "time": 1, "messaging": [data["messaging"]]}],
            }
        return {"object": obj, "entry": [data]}
    return {"object": obj, "entry": [{"id": PAGE_ID, "time": 1, "messaging": [data]}]}


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")
