"""Handing recorded outbound messages to a channel after the transaction recording them committed.

The bot and the agents' reply helpers first record a message (delivery_status "pending") together
with the effects that caused it, commit, and only then call `Outbox.deliver`. A crash in between
leaves a pending message that a channel outbox can retry; nothing is ever sent twice by the bot
because every bot reply has an idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.models import Message, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """One outbound message the bot (or an agent) recorded and that needs sending."""

    message_id: int
    lead_id: int
    conversation_id: int
    channel: str
    external_id: str | None  # the customer's id on that channel (the recipient)
    text: str
    # How the bot wrote it: the language (ISO 639-1), the engine ("offline" or "model") and the
    # ids of the knowledge sections it answered from. Agents' replies keep the defaults.
    language: str = "en"
    source: str = "offline"
    knowledge: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A checkpointer stores a tuple as a list: restored, it is the same reply.
        object.__setattr__(self, "knowledge", tuple(self.knowledge))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Outbox(Protocol):
    """Sends recorded outbound messages; called after the recording transaction committed."""

    def deliver(self, message_ids: list[int]) -> None: ...


class LocalOutbox:
    """For channels with nobody to send to (terminal chat, replay, the web chat polling the store):
    marks the messages sent."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    def deliver(self, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        with self.session_factory.begin() as session:
            session.execute(
                update(Message)
                .where(
                    Message.id.in_(list(message_ids)),
                    or_(
                        Message.delivery_status.is_(None),
                        Message.delivery_status.in_(("pending", "failed")),
                    ),
                )
                .values(delivery_status="sent", error=None)
                .execution_options(synchronize_session=False)
            )
        log.debug("marked %d message(s) sent", len(message_ids))


def pending_deliveries(
    *, session: Session, older_than_seconds: float = 30.0, limit: int = 500
) -> list[int]:
    """Outbound messages still waiting to be sent (e.g. after a crash between commit and send)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(Message.id)
            .where(
                Message.direction == "out",
                Message.delivery_status == "pending",
                Message.created_at <= cutoff,
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )
