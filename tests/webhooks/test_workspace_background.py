"""Background work per workspace: the catch-up of `leaddesk serve` and the workers' sweeper assign
waiting leads and send task reminders in each active workspace, by that workspace's time zone and
hours, to that workspace's agents only; a conversation left pending by an earlier run is answered
in its own workspace, with its own prompts, when the server starts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.settings import load_settings
from leaddesk.wiring import Runtime, build_runtime
from leaddesk.worker.locks import make_locks
from leaddesk.worker.runner import build_worker
from leaddesk.worker.sweeper import Sweeper
from store.agents import create_agent
from store.domain import tasks
from store.messages import Inbound
from store.models import Agent, Lead, Message, Notification, Workspace
from store.tenancy import FIRST_WORKSPACE, all_workspaces, in_workspace
from tests.conftest import set_quiet_window
from tests.prompts.conftest import edit

ACME = 2
PHONE = "+15125550199"  # a customer of both businesses
# Monday 3 June 2024, 12:30 UTC: 07:30 in Chicago (the first workspace opens at 08:00), 14:30 in
# Madrid (Acme has been open since 08:00).
MONDAY = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)
# Tuesday 4 March 2025, 15:00 UTC: both businesses are open.
TUESDAY = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


def make_runtime(tmp_path: Path, now: datetime) -> Runtime:
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    set_quiet_window(prompts, 0)
    (prompts / "acme").mkdir()
    shutil.copy(prompts / "business.yaml", prompts / "acme" / "business.yaml")
    edit(prompts / "acme" / "business.yaml", "name: Sunpeak Solar", "name: Acme Roofing")
    edit(prompts / "acme" / "business.yaml", "timezone: America/Chicago", "timezone: Europe/Madrid")
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        prompts_dir=prompts,
        prompts_poll_seconds=0,
        broker_url=None,
        telegram_bot_token=None,
        openai_api_key=None,
    )
    runtime = build_runtime(settings, clock=lambda: now)
    with runtime.session_factory.begin() as session:
        session.add(Workspace(id=ACME, slug="acme", name="Acme", active=True))
    return runtime


@pytest.fixture
def monday(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, MONDAY)
    yield runtime
    runtime.stop(timeout=5)


def desk(runtime: Runtime, workspace_id: int, agent_name: str) -> dict[str, int]:
    """In the workspace: an agent with an overdue task on their lead, and a lead (the same
    customer in both workspaces) waiting for an agent."""
    with in_workspace(workspace_id), runtime.session_factory.begin() as session:
        agent, _token = create_agent(agent_name, session=session)
        mine = Lead(name=f"{agent_name}'s lead", assigned_agent_id=agent.id)
        waiting = Lead(name="Wanda", phone=PHONE, status="Follow Up", created_at=MONDAY)
        session.add_all([mine, waiting])
        session.flush()
        tasks.create_task(
            mine, by=agent, session=session, now=MONDAY, due_at=MONDAY - timedelta(days=1)
        )
        return {"agent": agent.id, "waiting": waiting.id}


def notifications(runtime: Runtime) -> list[tuple[int, int, str]]:
    """(workspace, agent, kind) of every notification, across workspaces."""
    with runtime.session_factory() as session:
        rows = session.execute(
            select(Notification.workspace_id, Notification.agent_id, Notification.kind)
            .order_by(Notification.id)
            .execution_options(**all_workspaces())
        ).all()
    return [(w, a, k) for w, a, k in rows]


def assert_each_workspace_caught_up(
    runtime: Runtime, first: dict[str, int], acme: dict[str, int]
) -> None:
    for workspace_id, own in ((FIRST_WORKSPACE, first), (ACME, acme)):
        with in_workspace(workspace_id), runtime.session_factory() as session:
            waiting = session.get(Lead, own["waiting"])
            assert waiting is not None and waiting.assigned_agent_id == own["agent"]
    sent = notifications(runtime)
    # Every notification is for an agent of the workspace it belongs to.
    assert {(w, a) for w, a, _ in sent} == {
        (FIRST_WORKSPACE, first["agent"]),
        (ACME, acme["agent"]),
    }
    kinds = {w: sorted(k for x, _, k in sent if x == w) for w in (FIRST_WORKSPACE, ACME)}
    # Acme is open: its agent has the morning digest; Chicago has not opened yet.
    assert "task_digest" in kinds[ACME] and "task_digest" not in kinds[FIRST_WORKSPACE]
    assert "task_due" in kinds[ACME] and "task_due" in kinds[FIRST_WORKSPACE]


def test_the_catch_up_works_each_workspace_by_its_own_hours(monday: Runtime) -> None:
    first = desk(monday, FIRST_WORKSPACE, "Ana")
    acme = desk(monday, ACME, "Bo")
    sweeper = monday.local_sweeper()  # what `leaddesk serve` runs without a broker
    sweeper.sweep()
    assert_each_workspace_caught_up(monday, first, acme)
    # Nothing twice: reminders and digests are claimed per workspace.
    before = notifications(monday)
    sweeper.sweep()
    assert notifications(monday) == before


def test_the_sweeper_catches_up_each_active_workspace(monday: Runtime) -> None:
    first = desk(monday, FIRST_WORKSPACE, "Ana")
    acme = desk(monday, ACME, "Bo")
    sweeper = Sweeper(
        session_factory=monday.session_factory,
        locks=make_locks(monday.engine),
        submit=lambda conversation_id: None,
        catch_up=monday.catch_up,
        clock=lambda: MONDAY,
    )
    with monday.session_factory.begin() as session:
        session.get_one(Workspace, ACME).active = False
    sweeper.sweep()
    # A disabled workspace's background work does not run.
    assert {w for w, _, _ in notifications(monday)} == {FIRST_WORKSPACE}
    with in_workspace(ACME), monday.session_factory() as session:
        waiting = session.get_one(Lead, acme["waiting"])
        assert waiting.assigned_agent_id is None

    with monday.session_factory.begin() as session:
        session.get_one(Workspace, ACME).active = True
    sweeper.sweep()
    assert_each_workspace_caught_up(monday, first, acme)


def test_a_conversation_left_pending_is_answered_in_its_workspace_at_start(
    tmp_path: Path,
) -> None:
    runtime = make_runtime(tmp_path, TUESDAY)
    try:
        for workspace_id in (FIRST_WORKSPACE, ACME):
            # Stored by an earlier run's webhooks (the same customer in both), never answered.
            with in_workspace(workspace_id):
                runtime.bot.store(
                    Inbound(
                        channel="whatsapp",
                        external_id=PHONE.lstrip("+"),
                        phone=PHONE,
                        text="Hello, how long does installation take?",
                        channel_message_id="wamid.1",
                    )
                )
        runtime.start()

        def waiting() -> int:
            with runtime.session_factory() as session:
                return session.scalar(
                    select(func.count(Message.id))
                    .where(Message.direction == "in", Message.processed_at.is_(None))
                    .execution_options(**all_workspaces())
                )

        deadline = time.monotonic() + 20
        while waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting() == 0
        for workspace_id, name, other in (
            (FIRST_WORKSPACE, "Sunpeak Solar", "Acme"),
            (ACME, "Acme Roofing", "Sunpeak"),
        ):
            with in_workspace(workspace_id), runtime.session_factory() as session:
                (reply,) = session.scalars(
                    select(Message.text).where(Message.direction == "out")
                ).all()
                assert name in reply and other not in reply
        # Nobody of one workspace works the other's lead.
        with in_workspace(ACME), runtime.session_factory() as session:
            assert session.scalars(select(Agent)).all() == []
    finally:
        runtime.stop(timeout=5)


def test_a_worker_task_runs_in_its_conversation_workspace(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, TUESDAY)
    try:
        worker = build_worker(runtime.settings, sweep=False, runtime=runtime)
        with in_workspace(ACME):
            conversation_id = runtime.bot.store(
                Inbound(
                    channel="web",
                    external_id="visitor-7",
                    text="Hello, how long does installation take?",
                    channel_message_id="web-1",
                )
            )
        assert conversation_id is not None
        # A Celery task names only the conversation; the worker's thread is in no workspace.
        assert worker.due_in(conversation_id) == 0
        assert worker.run(conversation_id) == "done"
        with in_workspace(ACME), runtime.session_factory() as session:
            (reply,) = session.scalars(select(Message.text).where(Message.direction == "out"))
        assert "Acme Roofing" in reply
        with runtime.session_factory() as session:
            assert session.scalars(select(Message.id)).all() == []  # nothing in the first
    finally:
        runtime.stop(timeout=5)
