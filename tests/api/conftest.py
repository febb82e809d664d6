"""Fixtures for the REST API tests: an app on the per-test database, agents with tokens, lead
factories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import load_settings
from store.agents import create_agent
from store.domain.assignment import assign
from store.leads import get_conversation, resolve
from store.messages import Inbound, ingest
from store.models import Agent, Lead, Message
from store.work import record_score
from tests.app_support import build_app, fixed

T0 = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday


class Clock:
    """A controllable clock handed to the app as `clock=`."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Status:
    name: str
    colour: str
    description: str = ""
    action: str = "none"
    ai_behaviour: str = "continue"
    pause_minutes: int | None = None
    terminal: bool = False
    ai_can_set: bool = True
    locks: bool = False
    asks_reason: bool = False


@dataclass
class Business:
    """The slice of business.yaml the business rules read: always open, no takeover window of
    its own (LEADDESK_TAKEOVER_MINUTES applies)."""

    default_pause_minutes: int = 60
    takeover_minutes: int | None = None
    hours: None = None
    assign_on_reply: bool = True


@dataclass
class Prompts:
    """The slice of the bot's PromptConfig the API reads: statuses, custom field definitions and
    the business timings."""

    statuses: list[Status] = field(default_factory=list)
    custom_fields: list[dict[str, Any]] = field(default_factory=list)
    business: Business = field(default_factory=Business)
    lost_reasons: tuple[str, ...] = ("Price", "Chose a competitor", "No budget")


def default_prompts() -> Prompts:
    return Prompts(
        statuses=[
            Status("New", "#64748b"),
            Status("Interested", "#2563eb", action="notify"),
            Status("Scouting", "#7c3aed", action="notify"),
            Status(
                "Follow Up", "#d97706", action="auto_assign", ai_behaviour="pause", pause_minutes=60
            ),
            Status("Not Interested", "#dc2626", ai_behaviour="stop", terminal=True),
            Status("Converted", "#16a34a", terminal=True, ai_can_set=False, locks=True),
        ],
        custom_fields=[
            {"name": "budget", "label": "Budget", "type": "number"},
            {"name": "seats", "type": "integer"},
            {"name": "industry", "type": "choice", "choices": ["Retail", "Health", "Education"]},
            {"name": "renewal", "type": "date"},
            {"name": "website", "type": "url"},
            {"name": "vip", "type": "boolean"},
            {"name": "billing_email", "type": "email"},
        ],
    )


class Api:
    """A test client speaking as one agent (or anonymously)."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client, self.token = client, token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


class World:
    """Factories for agents, leads and messages in the test's database."""

    def __init__(self, app: Flask, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self.app, self.session_factory, self.clock = app, session_factory, clock
        self._ids = count(1)

    def agent(self, name: str, role: str = "agent", **kw: Any) -> tuple[int, Api]:
        with self.session_factory.begin() as session:
            agent, token = create_agent(name, session=session, role=role, **kw)
            agent_id = agent.id
        return agent_id, Api(self.app.test_client(), token)

    def anonymous(self) -> Api:
        return Api(self.app.test_client(), None)

    def lead(
        self,
        name: str | None = None,
        *,
        channel: str = "web",
        phone: str | None = None,
        email: str | None = None,
        score: int = 0,
        status: str = "New",
        agent_id: int | None = None,
        created_at: datetime | None = None,
        last_contacted_at: datetime | None = None,
        company: str | None = None,
        archived: bool = False,
        extra_channels: tuple[str, ...] = (),
    ) -> int:
        n = next(self._ids)
        with self.session_factory.begin() as session:
            lead = resolve(
                channel, f"{channel}-user-{n}", phone=phone, email=email, name=name, session=session
            )
            for other in extra_channels:
                resolve(
                    other, f"{other}-user-{n}", phone=lead.phone, email=lead.email, session=session
                )
                lead = session.get(Lead, lead.id)
            lead.score = score
            lead.status = status
            lead.assigned_agent_id = agent_id
            lead.company = company
            lead.archived = archived
            lead.created_at = created_at or self.clock.now
            lead.last_contacted_at = last_contacted_at
            return lead.id

    def customer_message(
        self, lead_id: int, text: str, *, channel: str = "web", at: datetime | None = None
    ) -> int:
        with self.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            identity = next(i for i in lead.identities if i.channel == channel)
            ingested = ingest(
                Inbound(
                    channel=channel,
                    external_id=identity.external_id,
                    text=text,
                    channel_message_id=f"m-{next(self._ids)}",
                    sent_at=at or self.clock.now,
                ),
                session=session,
            )
            return ingested.message.id

    def bot_message(self, lead_id: int, text: str, *, channel: str = "web") -> int:
        with self.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            conversation = get_conversation(lead, channel, session=session)
            message = Message(
                conversation_id=conversation.id,
                channel=channel,
                direction="out",
                author="bot",
                text=text,
                sent_at=self.clock.now,
                created_at=self.clock.now,
                processed_at=self.clock.now,
                delivery_status="sent",
            )
            session.add(message)
            session.flush()
            return message.id

    def score(
        self, lead_id: int, score: int, factors: list[dict[str, Any]], message_id: int | None = None
    ) -> None:
        with self.session_factory.begin() as session:
            record_score(
                session.get(Lead, lead_id), score, factors, session=session, message_id=message_id
            )

    def conversation_of(self, lead_id: int, channel: str) -> int:
        """The id of the lead's conversation on `channel`."""
        with self.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            return get_conversation(lead, channel, session=session).id

    def assign(self, lead_id: int, agent_id: int | None, *, by: int) -> None:
        """Agent `by` gives the lead to agent `agent_id` (None: unassigns it), by the rule."""
        with self.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            target = session.get(Agent, agent_id) if agent_id is not None else None
            assign(lead, target, by=session.get(Agent, by), session=session)

    def read(self, lead_id: int) -> Lead:
        with self.session_factory() as session:
            lead = session.get(Lead, lead_id)
            session.expunge(lead)
            return lead


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prompts() -> Prompts:
    return default_prompts()


@pytest.fixture
def app_extras() -> dict[str, Any]:
    """Services fields for the app; tests override this fixture to add an outbox etc."""
    return {}


@pytest.fixture
def app(
    session_factory: sessionmaker[Session],
    clock: Clock,
    prompts: Prompts,
    app_extras: dict[str, Any],
    tmp_path: Any,
) -> Flask:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}", default_region="US"
    )
    app = build_app(
        settings, session_factory, **{"prompts": fixed(prompts), "clock": clock, **app_extras}
    )
    app.testing = True
    return app


@pytest.fixture
def world(app: Flask, session_factory: sessionmaker[Session], clock: Clock) -> World:
    return World(app, session_factory, clock)


@pytest.fixture
def team(world):  # type: ignore[no-untyped-def]
    admin_id, admin = world.agent("Ada", role="admin")
    sarah_id, sarah = world.agent("Sarah")
    mike_id, mike = world.agent("Mike")
    return {
        "admin": admin,
        "sarah": sarah,
        "mike": mike,
        "sarah_id": sarah_id,
        "mike_id": mike_id,
        "admin_id": admin_id,
    }
