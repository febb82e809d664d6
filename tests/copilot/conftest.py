"""Fixtures for the copilot: the shipped prompt files, a controllable clock, a data factory, a
recording outbox and a copilot on a fresh database with fresh in-memory memory."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import load_prompts
from bot.outbox import LocalOutbox
from copilot import Copilot, build_graph
from copilot.service import Answer
from store import make_session_factory
from store.agents import create_agent
from store.leads import get_lead, resolve, update_lead
from store.linking import new_link_code
from store.messages import Inbound, ingest
from store.models import AuditEvent, Lead, Note
from store.work import add_note, record_score
from tests.conftest import REPO_ROOT

T0 = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)  # a Monday afternoon


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def prompts():  # type: ignore[no-untyped-def]
    return load_prompts(REPO_ROOT / "prompts")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sf(sqlite_engine) -> sessionmaker[Session]:  # type: ignore[no-untyped-def]
    """SQLite only: most copilot behaviour does not depend on the backend."""
    return make_session_factory(sqlite_engine)


class RecordingOutbox(LocalOutbox):
    """Marks messages sent like the local outbox and remembers which ones it was handed."""

    def __init__(self, session_factory: sessionmaker[Session]):
        super().__init__(session_factory)
        self.delivered: list[int] = []

    def deliver(self, message_ids):  # type: ignore[no-untyped-def]
        self.delivered.extend(message_ids)
        super().deliver(message_ids)


@dataclass
class World:
    """Test data through the store's own repository functions."""

    sf: sessionmaker[Session]
    clock: Clock
    _senders: Any = field(default_factory=lambda: itertools.count(1))

    def agent(
        self, name: str, *, role: str = "agent", active: bool = True, telegram: int | None = None
    ) -> int:
        with self.sf.begin() as session:
            agent, _token = create_agent(name, session=session, role=role)
            agent.active = active
            agent.telegram_user_id = telegram
            return agent.id

    def agent_with_token(self, name: str, *, role: str = "agent") -> tuple[int, str]:
        with self.sf.begin() as session:
            agent, token = create_agent(name, session=session, role=role)
            return agent.id, token

    def link_code(self, agent_id: int) -> str:
        from store.models import Agent

        with self.sf.begin() as session:
            agent = session.get(Agent, agent_id)
            assert agent is not None
            return new_link_code(agent, session=session)

    def lead(
        self,
        name: str | None = "Dana Smith",
        *,
        says: Sequence[str] = ("Hi, I'd like some information",),
        channel: str = "web",
        phone: str | None = None,
        email: str | None = None,
        score: int | None = None,
        factors: Sequence[dict[str, Any]] = (),
        agent: int | None = None,
        status: str | None = None,
        company: str | None = None,
        ago: timedelta = timedelta(hours=1),
        **fields: Any,
    ) -> int:
        """A lead who wrote `says` (one message a minute, ending `ago` before now)."""
        sender = f"{channel}-{next(self._senders)}"
        if channel == "whatsapp" and phone:
            sender = phone.lstrip("+")
        with self.sf.begin() as session:
            lead: Lead | None = None
            last_message_id = None
            start = self.clock() - ago - timedelta(minutes=len(says))
            for i, text in enumerate(says):
                got = ingest(
                    Inbound(
                        channel,
                        sender,
                        text,
                        name=name,
                        channel_message_id=f"{sender}-{i}",
                        phone=phone if channel == "whatsapp" else None,
                        sent_at=start + timedelta(minutes=i + 1),
                    ),
                    session=session,
                )
                got.message.processed_at = got.message.sent_at
                lead, last_message_id = got.lead, got.message.id
            if lead is None:
                lead = resolve(channel, sender, name=name, session=session)
            lead.created_at = start
            if phone and channel != "whatsapp":
                lead = resolve(channel, sender, phone=phone, session=session)
            if email:
                lead = resolve(channel, sender, email=email, session=session)
            if score is not None:
                record_score(
                    lead, score, list(factors), session=session, message_id=last_message_id
                )
            changes: dict[str, Any] = dict(fields)
            if agent is not None:
                changes["assigned_agent_id"] = agent
            if status is not None:
                changes["status"] = status
            if company is not None:
                changes["company"] = company
            update_lead(lead, changes, session=session, actor="system")
            return lead.id

    def note(self, lead_id: int, text: str, category: str = "General") -> None:
        with self.sf.begin() as session:
            add_note(get_lead(lead_id, session=session), text, session=session, category=category)

    def get(self, lead_id: int) -> Lead:
        with self.sf() as session:
            lead = get_lead(lead_id, session=session)
            session.expunge(lead)
            return lead

    def notes(self, lead_id: int) -> list[Note]:
        with self.sf() as session:
            return list(
                session.scalars(select(Note).where(Note.lead_id == lead_id).order_by(Note.id))
            )

    def audits(self, lead_id: int, field: str | None = None) -> list[AuditEvent]:
        with self.sf() as session:
            query = select(AuditEvent).where(AuditEvent.lead_id == lead_id)
            if field:
                query = query.where(AuditEvent.field == field)
            return list(session.scalars(query.order_by(AuditEvent.id)))


@pytest.fixture
def world(sf, clock) -> World:  # type: ignore[no-untyped-def]
    return World(sf, clock)


@pytest.fixture
def outbox(sf) -> RecordingOutbox:  # type: ignore[no-untyped-def]
    return RecordingOutbox(sf)


def make_copilot(
    sf: sessionmaker[Session],
    prompts: Any,
    clock: Clock,
    *,
    outbox: Any = None,
    model: Any = None,
    checkpointer: Any = None,
) -> Copilot:
    graph = build_graph(
        session_factory=sf,
        prompts=prompts,
        checkpointer=checkpointer or InMemorySaver(),
        model=model,
        outbox=outbox,
        clock=clock,
        region="US",
        takeover_minutes=60,
    )
    return Copilot(graph)


@pytest.fixture
def copilot(sf, prompts, clock, outbox) -> Copilot:  # type: ignore[no-untyped-def]
    return make_copilot(sf, prompts, clock, outbox=outbox)


class Chat:
    """One agent's conversation with the copilot on one thread."""

    def __init__(self, copilot: Copilot, agent_id: int, thread: str = "test"):
        self.copilot, self.agent_id, self.thread = copilot, agent_id, f"test:{agent_id}:{thread}"
        self.last: Answer | None = None

    def say(self, text: str) -> Answer:
        self.last = self.copilot.ask(self.agent_id, self.thread, text)
        return self.last

    def __call__(self, text: str) -> str:
        return self.say(text).reply

    def press(self, choice: str) -> Answer:
        pending = self.copilot.pending(self.agent_id, self.thread)
        assert pending is not None, "nothing is waiting for an answer"
        self.last = self.copilot.answer(self.agent_id, self.thread, choice, str(pending["id"])[:8])
        return self.last


@pytest.fixture
def chat(copilot):  # type: ignore[no-untyped-def]
    return lambda agent_id, thread="test": Chat(copilot, agent_id, thread)
