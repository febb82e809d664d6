"""Web console sessions kept on the server: the browser holds a random key, the row decides.

A session ends when it has been idle too long, when it is older than the absolute limit, when the
agent signs out (that browser) or signs out everywhere, and when the agent's token or password
changes or the agent is disabled (every browser).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from store.models import Agent, ConsoleSession
from store.tenancy import all_workspaces
from store.workspaces import agent_workspaces

# Writing last_seen_at on every page view would turn every read into a write; a minute's
# precision is plenty for an idle timeout counted in hours.
TOUCH_EVERY = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def open_console_session(agent: Agent, *, session: Session, now: datetime) -> str:
    """Start a session for the agent and return its key (for the cookie; stored hashed). It works
    in the agent's first workspace until they switch."""
    key = secrets.token_urlsafe(32)
    theirs = agent_workspaces(agent.id, session=session)
    session.add(
        ConsoleSession(
            key_hash=_hash(key),
            agent_id=agent.id,
            workspace_id=theirs[0][0].id if theirs else None,
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    return key


@dataclass
class SessionCheck:
    """What a session key is worth now: the agent it signs in (None: signed out), and whether the
    row needs a write (`touch`: a new last-seen time; `expired`: delete it)."""

    agent: Agent | None
    touch: bool = False
    expired: bool = False
    # The workspace the session works in: the one selected if the agent still works there, else
    # their first.
    workspace_id: int | None = None


def check_console_session(
    key: str, *, session: Session, now: datetime, idle: timedelta, lifetime: timedelta
) -> SessionCheck:
    """Read-only check of a session key (page views must not take the write lock each time)."""
    if not key:
        return SessionCheck(None)
    row = session.scalars(
        select(ConsoleSession).where(ConsoleSession.key_hash == _hash(key))
    ).first()
    if row is None:
        return SessionCheck(None)
    if now - row.last_seen_at >= idle or now - row.created_at >= lifetime:
        return SessionCheck(None, expired=True)
    # The person signs in before their workspace is entered: look in every workspace.
    agent = session.scalars(
        select(Agent).where(Agent.id == row.agent_id).execution_options(**all_workspaces())
    ).first()
    if agent is None or not agent.active:
        return SessionCheck(None)
    theirs = [w.id for w, _role in agent_workspaces(agent.id, session=session)]
    if not theirs:
        return SessionCheck(None)
    workspace_id = row.workspace_id if row.workspace_id in theirs else theirs[0]
    return SessionCheck(
        agent, touch=now - row.last_seen_at >= TOUCH_EVERY, workspace_id=workspace_id
    )


def select_console_workspace(key: str, workspace_id: int, *, session: Session) -> None:
    """Make the session work in `workspace_id` (the caller checked the agent works there)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.key_hash == _hash(key))
        .values(workspace_id=workspace_id)
    )


def touch_console_session(key: str, *, session: Session, now: datetime) -> None:
    """Record activity on a session (what the idle timeout counts from)."""
    session.execute(
        update(ConsoleSession).where(ConsoleSession.key_hash == _hash(key)).values(last_seen_at=now)
    )


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
