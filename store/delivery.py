"""Delivering notifications to agents on Telegram: the due ones, each claimed once (the database
decides who sends it) and released again when sending failed.

Like every repository module: keyword-only `session`, no commits (the caller owns the transaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.models import Agent, Notification


def due_notifications(*, session: Session, now: datetime, limit: int = 50) -> list[Notification]:
    """Undelivered notifications whose time has come, for active agents linked to Telegram,
    oldest first."""
    query = (
        select(Notification)
        .join(Agent, Agent.id == Notification.agent_id)
        .where(Notification.delivered_at.is_(None))
        .where(or_(Notification.deliver_after.is_(None), Notification.deliver_after <= now))
        .where(Agent.active.is_(True), Agent.telegram_user_id.is_not(None))
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim_notification(notification_id: int, *, session: Session, now: datetime) -> bool:
    """Mark one notification delivered unless someone else already did (the database decides)."""
    result = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.delivered_at.is_(None))
        .values(delivered_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_notification(notification_id: int, *, session: Session) -> None:
    """Undo a claim whose delivery failed, so that the next round tries again."""
    session.execute(
        update(Notification).where(Notification.id == notification_id).values(delivered_at=None)
    )
