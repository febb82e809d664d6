"""An agent's calendar token: a second, read-only secret that opens only their task feed (.ics),
so that a calendar app holding it cannot act as the agent. Stored hashed, like agent tokens.

Like every repository module: keyword-only `session`, no commits (the caller owns the transaction).
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.agents import hash_token
from store.models import Agent, CalendarToken, utcnow
from store.tenancy import all_workspaces


def rotate_calendar_token(agent: Agent, *, session: Session) -> str:
    """A new calendar token for `agent` (the old one stops working); returns it, shown once."""
    token = "ldcal_" + secrets.token_urlsafe(32)
    session.execute(delete(CalendarToken).where(CalendarToken.agent_id == agent.id))
    session.add(CalendarToken(agent_id=agent.id, token_hash=hash_token(token), created_at=utcnow()))
    session.flush()
    return token


def has_calendar_token(agent: Agent, *, session: Session) -> bool:
    found = select(CalendarToken.agent_id).where(CalendarToken.agent_id == agent.id)
    return session.scalar(found) is not None


def calendar_token_workspace(token: str, *, session: Session) -> int | None:
    """The workspace whose feed this calendar token opens (a token is made in one), or None."""
    if not token or len(token) > 200:
        return None
    found = select(CalendarToken.workspace_id).where(CalendarToken.token_hash == hash_token(token))
    return session.scalar(found.execution_options(**all_workspaces()))


def agent_by_calendar_token(token: str, *, session: Session) -> Agent | None:
    """The active agent whose calendar token this is, in the workspace in force, or None."""
    if not token or len(token) > 200:
        return None
    return session.scalars(
        select(Agent)
        .join(CalendarToken, CalendarToken.agent_id == Agent.id)
        .where(CalendarToken.token_hash == hash_token(token), Agent.active.is_(True))
    ).first()
