"""A `leaddesk worker` process: its state built once per process, and the Celery task it runs."""

from __future__ import annotations

import os
from pathlib import Path

from leaddesk.worker.celery_app import PROCESS_TASK, make_celery
from leaddesk.worker.runner import WorkerProcess, register_tasks
from tests.webhooks.support import make_settings


def test_a_worker_process_builds_its_state_once_and_anew_after_closing(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        broker_url=None,
        telegram_bot_token=None,
        prompts_poll_seconds=0,
    )
    process = WorkerProcess(settings, sweep=False)
    first = process.current()
    try:
        assert process.current() is first, "one state per process, not per task"
        assert first.pid == os.getpid() and first.sweeper is None
    finally:
        process.close()
    second = process.current()
    try:
        assert second is not first, "a closed process builds its state again"
    finally:
        process.close()


def test_web_processes_publish_by_name_and_workers_register_the_task(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        broker_url="redis://127.0.0.1:6379/15",
        broker_queue="worker-process-test",
    )
    app = make_celery(settings)
    assert PROCESS_TASK not in app.tasks, "a web process only publishes"
    register_tasks(app, WorkerProcess(settings))
    assert PROCESS_TASK in app.tasks
    assert app.conf.task_default_queue == "worker-process-test"
    app.close()
