"""Web console sessions kept on the server: the browser holds a random key, the row decides.

A session ends when it has been idle too long, when it is older than the absolute limit, when the
agent signs out (that browser) or signs out everywhere, and when the agent's token or password
changes or the agent is disabled (every browser).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from store.models import Agent, ConsoleSession

# Writing last_seen_at on every page view would turn every read into a write; a minute's
# precision is plenty for an idle timeout counted in hours.
TOUCH_EVERY = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def open_console_session(agent: Agent, *, session: Session, now: datetime) -> str:
    """Start a session for the agent and return its key (for the cookie; stored hashed)."""
    key = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(key_hash=_hash(key), agent_id=agent.id, created_at=now, last_seen_at=now)
    )
    session.flush()
    return key


def console_session_agent(
    key: str, *, session: Session, now: datetime, idle: timedelta, lifetime: timedelta
) -> Agent | None:
    """The active agent whose live session this key opens, or None (an expired one is removed)."""
    if not key:
        return None
    row = session.scalars(
        select(ConsoleSession).where(ConsoleSession.key_hash == _hash(key))
    ).first()
    if row is None:
        return None
    if now - row.last_seen_at >= idle or now - row.created_at >= lifetime:
        session.delete(row)
        return None
    agent = session.get(Agent, row.agent_id)
    if agent is None or not agent.active:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return agent


def end_console_session(key: str, *, session: Session) -> None:
    """Sign one browser out."""
    if key:
        session.execute(delete(ConsoleSession).where(ConsoleSession.key_hash == _hash(key)))


def end_console_sessions(agent_id: int, *, session: Session) -> int:
    """Sign the agent out of every browser; the number of sessions ended."""
    result = session.execute(delete(ConsoleSession).where(ConsoleSession.agent_id == agent_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def forget_expired_sessions(
    *, session: Session, now: datetime, idle: timedelta, lifetime: timedelta
) -> None:
    """Delete sessions that can no longer be used (called at sign-in, so the table stays small)."""
    session.execute(
        delete(ConsoleSession).where(
            or_(
                ConsoleSession.last_seen_at <= now - idle,
                ConsoleSession.created_at <= now - lifetime,
            )
        )
    )
