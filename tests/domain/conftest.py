"""Domain-layer fixtures: a fresh in-memory SQLite database per test, factories for agents and
leads, and a Policy shaped like the shipped statuses."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from store.agents import create_agent
from store.domain.policy import Policy, StatusPolicy
from store.models import Agent, Base, Conversation, Identity, Lead, Notification

T0 = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday, noon


class Hours:
    """Opening hours open from `opens` (an hour, UTC) to `closes`, every day."""

    def __init__(self, opens: int, closes: int) -> None:
        self.opens, self.closes = opens, closes

    def is_open(self, now: datetime) -> bool:
        return self.opens <= now.hour < self.closes

    def next_opening(self, now: datetime) -> datetime | None:
        opening = now.replace(hour=self.opens, minute=0, second=0, microsecond=0)
        return opening if opening > now else opening.replace(day=now.day + 1)


def make_policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "statuses": (
            StatusPolicy("New"),
            StatusPolicy("Interested", action="notify"),
            StatusPolicy("Follow Up", action="auto_assign", ai_behaviour="pause", pause_minutes=45),
            StatusPolicy("Callback", ai_behaviour="pause"),  # the default pause applies
            StatusPolicy("Lost", action="notify", ai_behaviour="stop", terminal=True),
            StatusPolicy("Won", terminal=True, locks=True),
        ),
        "default_pause_minutes": 90,
        "takeover_minutes": 30,
    }
    values.update(overrides)
    return Policy(**values)


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        yield session
    engine.dispose()


@pytest.fixture
def agent(session: Session) -> Callable[..., Agent]:
    def make(name: str, role: str = "agent", **kw: Any) -> Agent:
        active = kw.pop("active", True)
        created, _token = create_agent(name, session=session, role=role, **kw)
        created.active = active
        session.flush()
        return created

    return make


@pytest.fixture
def lead(session: Session) -> Callable[..., Lead]:
    counter = itertools.count(1)

    def make(owner: Agent | None = None, **fields: Any) -> Lead:
        n = next(counter)
        values: dict[str, Any] = {
            "name": f"Lead {n}",
            "status": "New",
            "score": 50,
            "created_at": T0,
            "updated_at": T0,
            "score_factors": [],
            "interests": [],
            "objections": [],
            "tags": [],
            "custom_fields": {},
            "assigned_agent_id": owner.id if owner else None,
        }
        values.update(fields)
        made = Lead(**values)
        session.add(made)
        session.flush()
        return made

    return make


@pytest.fixture
def room(session: Session) -> Callable[[Lead, str], Conversation]:
    """A conversation of the lead on `channel` (with its identity)."""
    counter = itertools.count(1)

    def make(owner: Lead, channel: str = "web") -> Conversation:
        identity = Identity(
            lead_id=owner.id,
            channel=channel,
            external_id=f"{channel}-{next(counter)}",
            created_at=T0,
        )
        session.add(identity)
        session.flush()
        conversation = Conversation(
            lead_id=owner.id, channel=channel, identity_id=identity.id, created_at=T0
        )
        session.add(conversation)
        session.flush()
        return conversation

    return make


def notes_for(session: Session, agent: Agent) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.agent_id == agent.id).order_by(Notification.id)
        )
    )
