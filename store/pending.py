"""Work still waiting in the store: customer messages the bot has not processed, replies recorded
but never handed to their channel, and sends a crash cut off (the worker tier's queries)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.db import read_session
from store.models import Conversation, Message
from store.tenancy import all_workspaces

INTERRUPTED_ERROR = (
    "interrupted while sending (the process stopped before the channel's answer was recorded); "
    "not sent again automatically to avoid a duplicate"
)


def reading(session_factory: sessionmaker[Session]) -> Any:
    """A session for a short read: on SQLite a snapshot that does not take the write lock (every
    other transaction there does); on PostgreSQL without a transaction (autocommit: each statement
    sees what is committed when it runs, and no BEGIN or ROLLBACK round trips around it)."""
    bind = session_factory.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return read_session(session_factory)
    return _autocommit(session_factory)


@contextmanager
def _autocommit(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def _waiting() -> ColumnElement[bool]:
    """A message that still needs work: an unprocessed inbound one or an undelivered reply."""
    return or_(
        and_(Message.direction == "in", Message.processed_at.is_(None)),
        and_(Message.direction == "out", Message.delivery_status == "pending"),
    )


def has_pending(conversation_id: int, *, session: Session) -> bool:
    """Inbound messages the bot has not processed, or replies recorded but never handed to the
    channel."""
    return bool(
        session.scalar(
            select(exists().where(Message.conversation_id == conversation_id, _waiting()))
        )
    )


def waiting_workspace(conversation_id: int, *, session: Session) -> int | None:
    """The workspace of conversation `conversation_id` when something in it waits (what
    `has_pending` asks), else None; whatever workspace is in force: a background job's first
    question, in one statement."""
    return session.scalar(
        select(Conversation.workspace_id)
        .where(
            Conversation.id == conversation_id,
            exists().where(Message.conversation_id == conversation_id, _waiting()),
        )
        .execution_options(**all_workspaces())
    )


def undelivered_replies(conversation_id: int, *, session: Session) -> list[int]:
    """Ids of the conversation's replies recorded but never handed to the channel, oldest first."""
    return list(
        session.scalars(
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "out",
                Message.delivery_status == "pending",
            )
            .order_by(Message.id)
        )
    )


def stale_conversations(
    cutoff: datetime, *, session: Session, limit: int = 1000, every_workspace: bool = False
) -> list[int]:
    """Conversations whose oldest waiting message was stored at or before `cutoff`, longest
    waiting first: the workspace in force's, or with `every_workspace` all of them (the sweeper:
    each job enters its conversation's workspace)."""
    statement = (
        select(Message.conversation_id)
        .where(_waiting())
        .group_by(Message.conversation_id)
        .having(func.min(Message.created_at) <= cutoff)
        .order_by(func.min(Message.created_at))
        .limit(limit)
    )
    if every_workspace:
        statement = statement.execution_options(**all_workspaces())
    return list(session.scalars(statement))


def mark_interrupted_sends(
    claimed_before: datetime, *, session: Session, every_workspace: bool = False
) -> int:
    """Mark sends claimed before `claimed_before` and never finished as "unknown": the process died
    between the HTTP call and recording its outcome, so the customer may or may not have the
    message. They are not sent again automatically (that could be a duplicate); an agent can look
    and resend. Returns how many (of the workspace in force, or with `every_workspace` of all: a
    crash cuts off every workspace's sends)."""
    options: dict[str, Any] = {"synchronize_session": False}
    if every_workspace:
        options.update(all_workspaces())
    result: Any = session.execute(
        update(Message)
        .where(
            Message.direction == "out",
            Message.delivery_status == "sending",
            Message.sent_at <= claimed_before,
        )
        .values(delivery_status="unknown", error=INTERRUPTED_ERROR)
        .execution_options(**options)
    )
    return int(result.rowcount or 0)
