"""Fixtures for the admin's prompt files: a writable copy of the shipped directory, an offline
environment for the CLI, and helpers to edit a file and find a line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import DEFAULT_PROMPTS_DIR


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped prompts (without the eval cases)."""
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target, ignore=shutil.ignore_patterns("eval"))
    return target


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LEADDESK_MODEL",
        "DATABASE_URL",
        "LEADDESK_PROMPTS_DIR",
        "LEADDESK_DEFAULT_REGION",
        "TELEGRAM_BOT_TOKEN",
        "LEADDESK_BROKER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADDESK_LOG_LEVEL", "WARNING")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def bot_world(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A bot on a fresh in-memory database with a controllable clock: `world.chat(config)`."""
    from bot import BotService, LocalOutbox, load_prompts
    from store import make_engine, make_session_factory, upgrade
    from tests.bot.support import Chat, Clock

    engine = make_engine("sqlite://")
    upgrade(engine)
    session_factory = make_session_factory(engine)
    clock = Clock()

    class World:
        def __init__(self) -> None:
            self.session_factory = session_factory
            self.clock = clock

        def chat(self, config=None) -> Chat:  # type: ignore[no-untyped-def]
            service = BotService(
                session_factory=session_factory,
                prompts=config or load_prompts(DEFAULT_PROMPTS_DIR),
                outbox=LocalOutbox(session_factory),
                clock=clock,
            )
            return Chat(service, session_factory, clock)

        def agent(self, name: str, *, role: str = "agent", telegram: int | None = None):  # type: ignore[no-untyped-def]
            from store.agents import create_agent

            with session_factory.begin() as session:
                agent, _token = create_agent(name, session=session, role=role)
                agent.telegram_user_id = telegram
                session.flush()
                session.expunge(agent)
            return agent

    yield World()
    engine.dispose()
