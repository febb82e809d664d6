"""Agents: the people who work the leads, their API tokens (stored hashed) and Telegram links."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from store.console_sessions import end_console_sessions
from store.contacts import normalize_email
from store.models import AGENT_ROLES, Agent, utcnow
from store.tenancy import all_workspaces

MIN_PASSWORD = 8
MAX_PASSWORD = 200


class AgentError(ValueError):
    pass


class TokenOnlyAgent(Exception):
    """Raised by `agent_by_password` for an active agent without a password (token sign-in)."""


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "ld_" + secrets.token_urlsafe(32)


def create_agent(
    name: str,
    *,
    session: Session,
    email: str | None = None,
    role: str = "agent",
    capacity: int = 50,
    password: str | None = None,
) -> tuple[Agent, str]:
    """Create an agent and return it with its API token (the only time the token is visible)."""
    name = (name or "").strip()
    if not name:
        raise AgentError("an agent needs a name")
    if role not in AGENT_ROLES:
        raise AgentError(f"role must be one of {', '.join(AGENT_ROLES)}")
    if capacity < 0:
        raise AgentError("capacity cannot be negative")
    email = normalize_email(email) if email else None
    # A person's email is theirs in every workspace: look in all of them.
    if email and person_by_email(email, session=session) is not None:
        raise AgentError(f"an agent with email {email} already exists")
    token = new_token()
    agent = Agent(
        name=name,
        email=email,
        role=role,
        capacity=capacity,
        active=True,
        token_hash=hash_token(token),
        password_hash=generate_password_hash(password) if password else None,
        created_at=utcnow(),
    )
    session.add(agent)
    session.flush()
    return agent, token


def agent_by_token(token: str, *, session: Session) -> Agent | None:
    """The active agent owning this API token, or None."""
    if not token:
        return None
    # A token signs a person in before their workspace is known: look in every workspace.
    agent = session.scalars(
        select(Agent)
        .where(Agent.token_hash == hash_token(token))
        .execution_options(**all_workspaces())
    ).first()
    return agent if agent is not None and agent.active else None


def person_by_email(email: str, *, session: Session, any_case: bool = False) -> Agent | None:
    """The agent with this (normalized) email in any workspace: a person is one row however many
    workspaces they work in. `any_case`: the address as people type it, capitals or not."""
    match = func.lower(Agent.email) == email.lower() if any_case else Agent.email == email
    return session.scalars(
        select(Agent).where(match).order_by(Agent.id).execution_options(**all_workspaces())
    ).first()


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def agent_by_password(email: str, password: str, *, session: Session) -> Agent | None:
    """The active agent with this email and password, or None; `TokenOnlyAgent` when the agent
    has no password.

    An unknown email costs the same hashing time as a known one, so the answer's timing does not
    tell which emails exist.
    """
    try:
        email = normalize_email(email)
    except ValueError:
        email = ""
    agent = person_by_email(email, session=session) if email else None
    if agent is None or not agent.active or not agent.password_hash:
        check_password_hash(_dummy_hash(), password)
        if agent is not None and agent.active:
            raise TokenOnlyAgent(agent.id)
        return None
    return agent if check_password_hash(agent.password_hash, password) else None


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AgentError(f"the password must have at most {MAX_PASSWORD} characters")


def set_password(agent: Agent, password: str | None, *, session: Session) -> None:
    """Set (None: remove) the agent's console password; every console session of theirs ends."""
    if password is not None:
        check_password_rules(password)
    agent.password_hash = generate_password_hash(password) if password else None
    end_console_sessions(agent.id, session=session)


def rotate_token(agent: Agent, *, session: Session) -> str:
    """Issue a new API token (the old one stops working) and end the agent's console sessions."""
    token = new_token()
    agent.token_hash = hash_token(token)
    end_console_sessions(agent.id, session=session)
    session.flush()
    return token


def set_active(agent: Agent, active: bool, *, session: Session) -> bool:
    """Enable or disable the agent (disabling ends their console sessions); whether it changed."""
    changed = agent.active != active
    agent.active = active
    if not active:
        end_console_sessions(agent.id, session=session)
    return changed


def find_agent(ref: str, *, session: Session) -> Agent | None:
    """An agent by id, email or (case-insensitive) name."""
    ref = (ref or "").strip()
    if ref.isdigit():
        return session.get(Agent, int(ref))
    if "@" in ref:
        return session.scalars(select(Agent).where(Agent.email == ref.lower())).first()
    matches = [a for a in session.scalars(select(Agent)) if a.name.lower() == ref.lower()]
    return matches[0] if len(matches) == 1 else None


def list_agents(*, session: Session, include_inactive: bool = True) -> list[Agent]:
    query = select(Agent).order_by(Agent.id)
    if not include_inactive:
        query = query.where(Agent.active.is_(True))
    return list(session.scalars(query))


def agent_summary(agent: Agent, open_leads: int) -> dict[str, Any]:
    """The agent as every front end lists it (never the token or password hashes)."""
    return {
        "id": agent.id,
        "name": agent.name,
        "email": agent.email,
        "role": agent.role,
        "active": agent.active,
        "capacity": agent.capacity,
        "open_leads": open_leads,
        "telegram_linked": agent.telegram_user_id is not None,
        "created_at": agent.created_at,
    }
