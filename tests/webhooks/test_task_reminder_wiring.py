"""`leaddesk serve`'s periodic catch-up runs the task reminders with the business's hours and time
zone from prompts/ and the runtime's clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.settings import load_settings
from leaddesk.wiring import Runtime, build_runtime
from store.agents import create_agent
from store.domain import tasks
from store.models import Lead, Notification

# Monday 3 June 2024, 07:30 in Chicago; the shipped hours open at 08:00.
NOW = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)


def make_runtime(tmp_path: Path) -> Runtime:
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        prompts_dir=prompts,
        prompts_poll_seconds=0,
        broker_url=None,
        telegram_bot_token=None,
        openai_api_key=None,
    )
    return build_runtime(settings, clock=lambda: NOW)


def kinds(runtime: Runtime) -> list[str]:
    with runtime.session_factory() as session:
        return list(session.scalars(select(Notification.kind).order_by(Notification.id)))


def agent_with_tasks(runtime: Runtime, *dues: datetime) -> int:
    """Ana, with the lead Dana and a task on it due at each of `dues`; the lead's id."""
    with runtime.session_factory.begin() as session:
        ana, _token = create_agent("Ana", session=session)
        lead = Lead(name="Dana", assigned_agent_id=ana.id)
        session.add(lead)
        session.flush()
        for due in dues:
            tasks.create_task(lead, by=ana, session=session, now=NOW, due_at=due)
        return lead.id


def test_the_catch_up_sends_due_reminders_and_the_digest_at_opening(tmp_path: Path) -> None:
    now = NOW
    runtime = make_runtime(tmp_path)
    try:
        agent_with_tasks(runtime, now - timedelta(days=1), now + timedelta(minutes=10))
        with runtime.session_factory.begin() as session:
            runtime.catch_up(session, now)
        assert kinds(runtime) == ["task_due"]  # yesterday's; no digest before opening
        with runtime.session_factory.begin() as session:
            runtime.catch_up(session, now + timedelta(minutes=30))
        assert kinds(runtime) == ["task_due", "task_due", "task_digest"]
    finally:
        runtime.stop(timeout=5)


def test_a_step_of_the_catch_up_that_fails_holds_back_neither_the_other_nor_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = make_runtime(tmp_path)
    try:
        lead_id = agent_with_tasks(runtime, NOW - timedelta(days=1))

        def half_done(session: Session, now: datetime) -> list[int]:
            # A change made before the failure is undone with its step, not committed with the
            # round's other step.
            session.get_one(Lead, lead_id).name = "Half done"
            session.flush()
            raise RuntimeError("the assignment broke")

        monkeypatch.setattr(runtime, "assign_waiting_leads", half_done)
        sweeper = runtime.local_sweeper()
        sweeper.sweep()
        assert kinds(runtime) == ["task_due"]  # the reminders went out all the same
        assert "could not assign the leads waiting for an agent (workspace 1)" in caplog.text
        with runtime.session_factory() as session:
            assert session.get_one(Lead, lead_id).name == "Dana"
        monkeypatch.undo()
        sweeper.sweep()  # the next round runs both steps, and reminds no one twice
        assert kinds(runtime) == ["task_due"]
    finally:
        runtime.stop(timeout=5)
