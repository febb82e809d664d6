"""`leaddesk serve`'s periodic catch-up runs the task reminders with the business's hours and time
zone from prompts/ and the runtime's clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.settings import load_settings
from leaddesk.wiring import build_runtime
from store.agents import create_agent
from store.domain import tasks
from store.models import Lead, Notification


def test_the_catch_up_sends_due_reminders_and_the_digest_at_opening(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    # Monday 3 June 2024, 07:30 in Chicago; the shipped hours open at 08:00.
    now = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        prompts_dir=prompts,
        prompts_poll_seconds=0,
        broker_url=None,
        telegram_bot_token=None,
        openai_api_key=None,
    )
    runtime = build_runtime(settings, clock=lambda: now)
    try:
        with runtime.session_factory.begin() as session:
            ana, _token = create_agent("Ana", session=session)
            lead = Lead(name="Dana", assigned_agent_id=ana.id)
            session.add(lead)
            session.flush()
            for due in (now - timedelta(days=1), now + timedelta(minutes=10)):
                tasks.create_task(lead, by=ana, session=session, now=now, due_at=due)

        def kinds() -> list[str]:
            with runtime.session_factory() as session:
                return list(session.scalars(select(Notification.kind).order_by(Notification.id)))

        with runtime.session_factory.begin() as session:
            runtime.catch_up(session, now)
        assert kinds() == ["task_due"]  # yesterday's; no digest before opening
        with runtime.session_factory.begin() as session:
            runtime.catch_up(session, now + timedelta(minutes=30))
        assert kinds() == ["task_due", "task_due", "task_digest"]
    finally:
        runtime.stop(timeout=5)
