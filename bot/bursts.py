"""Bursts: people type several short messages in a row, and the bot answers once they stop.

The rule lives here once: a conversation's pending messages are due for an answer when the customer
has been quiet for the channel's quiet window (business.yaml `quiet_window`), or when the burst has
gone on for `MAX_HOLD_FACTOR` windows (someone who never pauses still gets an answer). The server's
dispatchers, the broker's workers and `leaddesk replay` all ask it; nothing about a wait is kept
outside the store, so a restart picks the burst up where it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Conversation, Message

# A burst is answered at the latest this many quiet windows after its first message.
MAX_HOLD_FACTOR = 8


def reply_due(first_at: datetime, last_at: datetime, window_seconds: float) -> datetime:
    """When a burst whose messages arrived between `first_at` and `last_at` should be answered."""
    if window_seconds <= 0:
        return last_at
    window = timedelta(seconds=window_seconds)
    return min(last_at + window, first_at + window * MAX_HOLD_FACTOR)


def pending_span(
    conversation_id: int, *, session: Session
) -> tuple[str, datetime, datetime] | None:
    """(channel, first, last) arrival time of the conversation's unprocessed customer messages."""
    row = session.execute(
        select(Conversation.channel, func.min(Message.created_at), func.max(Message.created_at))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(
            Conversation.id == conversation_id,
            Message.direction == "in",
            Message.processed_at.is_(None),
        )
        .group_by(Conversation.channel)
    ).first()
    if row is None or row[1] is None:
        return None
    return str(row[0]), _aware(row[1]), _aware(row[2])


def _aware(value: datetime | str) -> datetime:
    # Aggregates bypass the column type on SQLite: the value comes back naive (or as text).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
