"""Fixtures for the bot: a migrated in-memory database, a controllable clock, a chat helper that
talks to a `BotService` like a channel would, agents, and the fake OpenAI-compatible server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, PromptConfig, load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from store import make_engine, make_session_factory, upgrade
from store.agents import create_agent
from store.models import Agent
from tests.bot.support import Chat, Clock
from tests.fakes.fake_openai import fake_openai  # noqa: F401 - the fixture


@pytest.fixture(scope="session")
def prompts() -> PromptConfig:
    return load_prompts(DEFAULT_PROMPTS_DIR)


@pytest.fixture
def memory_engine() -> Iterator[Engine]:
    engine = make_engine("sqlite://")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def bot_db(memory_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(memory_engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_chat(
    bot_db: sessionmaker[Session], clock: Clock, prompts: PromptConfig
) -> Callable[..., Chat]:
    def build(
        *,
        model: Any = None,
        session_factory: sessionmaker[Session] | None = None,
        config: PromptConfig | None = None,
        region: str = "US",
        takeover_minutes: int = 60,
    ) -> Chat:
        factory = session_factory or bot_db
        service = BotService(
            session_factory=factory,
            prompts=config or prompts,
            model=model,
            outbox=LocalOutbox(factory),
            clock=clock,
            region=region,
            takeover_minutes=takeover_minutes,
        )
        return Chat(service, factory, clock)

    return build


@pytest.fixture
def chat(make_chat: Callable[..., Chat]) -> Chat:
    return make_chat()


@pytest.fixture
def make_agent(bot_db: sessionmaker[Session]) -> Callable[..., Agent]:
    counter = itertools.count(1)

    def build(
        name: str | None = None,
        *,
        role: str = "agent",
        capacity: int = 50,
        active: bool = True,
        session_factory: sessionmaker[Session] | None = None,
    ) -> Agent:
        number = next(counter)
        with (session_factory or bot_db).begin() as session:
            agent, _token = create_agent(
                name or f"Agent {number}",
                session=session,
                role=role,
                email=f"agent{number}@example.com",
                capacity=capacity,
            )
            agent.active = active
            session.flush()
            session.expunge(agent)
        return agent

    return build
