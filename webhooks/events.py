"""What the channel adapters hand over: inbound messages (`store.messages.Inbound`), delivery status
updates, and what a batch held that was deliberately not stored.

Helpers shared by the Meta parsers (timestamps, fallback ids, readable text) live here too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from store.messages import Inbound
from store.models import as_utc

# Outbound delivery states, in the order they progress; "failed" and "withheld" are final.
DELIVERY_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}
MAX_TEXT = 20000


@dataclass
class StatusUpdate:
    """A delivery report for messages we sent: by channel message id, or everything up to a
    watermark."""

    channel: str
    status: str  # sent, delivered, read, failed
    channel_message_id: str | None = None
    recipient: str | None = None  # the customer's id on the channel
    watermark: datetime | None = None  # Messenger/Instagram: all messages sent before this time
    at: datetime | None = None
    error: str | None = None


@dataclass
class ParsedBatch:
    """Everything one webhook request carried."""

    messages: list[Inbound] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why each skipped event was skipped
    # Events addressed to a number, Page or account that is not ours (also counted as ignored).
    foreign: list[str] = field(default_factory=list)
    # The workspace the events belong to (None: the one in force when they are stored).
    workspace_id: int | None = None

    @property
    def event_count(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.ignored)

    def extend(self, other: ParsedBatch) -> None:
        self.messages.extend(other.messages)
        self.statuses.extend(other.statuses)
        self.ignored.extend(other.ignored)
        self.foreign.extend(other.foreign)

    def not_ours(self, what: str) -> None:
        self.foreign.append(what)
        self.ignored.append(f"{what} (not ours)")


@dataclass
class SplitBatch:
    """A webhook body's events by the business account each is addressed to (the WhatsApp phone
    number id, the Page or Instagram account id; None: the body does not say), and in `rest`
    what belongs to no account: what was skipped, and the events of a body without accounts at
    all (an On-Premises WhatsApp body: one number, the first workspace's)."""

    accounts: dict[str | None, ParsedBatch] = field(default_factory=dict)
    rest: ParsedBatch = field(default_factory=ParsedBatch)

    def to(self, account_id: str | None) -> ParsedBatch:
        """The batch of one account (made on first use)."""
        batch = self.accounts.get(account_id)
        if batch is None:
            batch = self.accounts[account_id] = ParsedBatch()
        return batch


def parse_timestamp(value: Any) -> datetime | None:
    """Meta sends seconds or milliseconds since the epoch (as numbers or strings), or ISO 8601
    text."""
    if value is None or isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
                try:
                    return datetime.strptime(text, fmt).astimezone(UTC)
                except ValueError:
                    continue
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            return as_utc(parsed)
    if number is None or number <= 0:
        return None
    if number > 1e11:  # milliseconds
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def fallback_id(prefix: str, event: Any) -> str:
    """A stable id for an event that has none, so that a redelivery of it is still recognised."""
    digest = hashlib.sha256(
        json.dumps(event, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    return f"{prefix}:{digest[:48]}"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_text(value: Any, limit: int = 2000) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()[:limit]


def ident(value: Any) -> str | None:
    """An id field as a clean string (Meta sends ids as strings, some samples as numbers)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = (
        str(value).replace("\x00", "").strip()
    )  # NUL: never meant, and PostgreSQL cannot store it
    return text[:200] or None


def bracket(label: str, detail: str = "") -> str:
    """The readable text of a non-text message, e.g. "[image] Check this out"."""
    return f"[{label}] {detail}".strip() if detail else f"[{label}]"
