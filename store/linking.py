"""Linking an agent's Telegram account: one-time link codes (stored hashed) and the agent behind a
Telegram user.

Like every repository module: keyword-only `session`, no commits (the caller owns the transaction).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.agents import hash_token
from store.models import Agent
from store.tenancy import all_workspaces

# No 0/O, 1/I/L: codes are read off a terminal and typed into a phone.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 10


def normalize_link_code(code: str) -> str:
    """Upper-case and drop the separators people type (spaces, dashes)."""
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def new_link_code(agent: Agent, *, session: Session) -> str:
    """Give the agent a fresh one-time Telegram link code (stored hashed) and return it, e.g.
    'K7P2Q-X9MRT'."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    agent.link_code_hash = hash_token(raw)
    session.flush()
    return f"{raw[:5]}-{raw[5:]}"


def link_telegram(code: str, telegram_user_id: int, *, session: Session) -> Agent | None:
    """Link a Telegram user to the active agent holding this code; the code is used up. None if
    unknown."""
    normalized = normalize_link_code(code)
    if len(normalized) != _CODE_LENGTH:
        return None
    # Codes and Telegram accounts belong to the person, whichever workspaces they work in.
    agent = session.scalars(
        select(Agent)
        .where(Agent.link_code_hash == hash_token(normalized), Agent.active.is_(True))
        .execution_options(**all_workspaces())
    ).first()
    if agent is None:
        return None
    # One Telegram account speaks for one agent: a relink moves it.
    session.execute(
        update(Agent)
        .where(Agent.telegram_user_id == telegram_user_id, Agent.id != agent.id)
        .values(telegram_user_id=None)
        .execution_options(**all_workspaces())
    )
    session.flush()
    agent.telegram_user_id = telegram_user_id
    agent.link_code_hash = None
    session.flush()
    return agent


def agent_by_telegram(telegram_user_id: int, *, session: Session) -> Agent | None:
    """The active agent linked to this Telegram user, or None."""
    return session.scalars(
        select(Agent)
        .where(Agent.telegram_user_id == telegram_user_id, Agent.active.is_(True))
        .execution_options(**all_workspaces())
    ).first()
