"""Starting up: processes that set up a fresh PostgreSQL database together take turns without
waiting for each other forever, and the web processes of `serve --workers N` import the installed
package whatever folder they were started from."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from leaddesk import __version__
from leaddesk.cli.webprocs import child_python
from leaddesk.settings import load_settings
from leaddesk.worker.locks import LOCK_NAMESPACE
from leaddesk.worker.setup import prepare_shared_database
from store import make_engine
from tests.conftest import _postgres_admin_url
from tests.scale import harness

SETUP_LOCK_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = :ns AND objsubid = 2"
)


@pytest.fixture
def fresh_databases() -> Iterator[Callable[[], str]]:
    """Creates empty PostgreSQL databases on demand (no schema at all); drops them at the end."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(
            "PostgreSQL is not reachable on 127.0.0.1:5432 and LEADDESK_TEST_POSTGRES_URL is unset"
        )
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"leaddesk_start_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _shadowing_folder(tmp_path: Path) -> Path:
    """A folder holding a checkout-like `leaddesk` package that must never be imported."""
    folder = tmp_path / "projects"
    (folder / "leaddesk").mkdir(parents=True)
    (folder / "leaddesk" / "__init__.py").write_text(
        'raise ImportError("the leaddesk folder of the current directory was imported")\n'
    )
    return folder


@pytest.mark.postgres
def test_a_second_process_waits_for_the_set_up_without_blocking_it(
    fresh_databases: Callable[[], str],
) -> None:
    """One process migrates and builds the copilot memory's indexes concurrently while another
    waits for its turn: the waiting one holds no transaction, so both finish."""
    url = fresh_databases()
    settings = load_settings(database_url=url, copilot_memory_path=None)
    errors: list[BaseException] = []

    def set_up() -> None:
        try:
            prepare_shared_database(settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    first = threading.Thread(target=set_up, daemon=True)
    second = threading.Thread(target=set_up, daemon=True)
    probe = make_engine(url)
    try:
        first.start()
        # The second starts waiting while the first holds the set-up lock, before its index builds.
        deadline = time.monotonic() + 30
        with probe.connect() as connection:
            while not connection.execute(text(SETUP_LOCK_HELD), {"ns": LOCK_NAMESPACE}).scalar():
                assert first.is_alive() and time.monotonic() < deadline, errors
                connection.rollback()
                time.sleep(0.005)
        second.start()
        deadline = time.monotonic() + 45
        for thread in (first, second):
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not first.is_alive() and not second.is_alive(), "the set-ups wait for each other"
        assert errors == []
        with probe.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM leads")).scalar() == 0
            assert connection.execute(
                text("SELECT count(*) FROM leaddesk_copilot.checkpoint_migrations")
            ).scalar()
    finally:
        probe.dispose()


def test_child_processes_import_the_package_this_one_runs_whatever_the_folder(
    tmp_path: Path,
) -> None:
    folder = _shadowing_folder(tmp_path)
    result = subprocess.run(
        [*child_python(), "version"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"leaddesk {__version__}"


@pytest.mark.scale
def test_serve_with_two_web_processes_starts_from_a_folder_holding_a_leaddesk_checkout(
    services: None, tmp_path: Path
) -> None:
    folder = _shadowing_folder(tmp_path)
    cluster = harness.Cluster(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        redis_db=14,
        graph_url="http://127.0.0.1:9",
        llm_url=None,
        log_dir=tmp_path,
    )
    # The installed `leaddesk` command, as a user runs it (its own folder is not the current one).
    script = Path(sys.executable).with_name("leaddesk")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-P", "-c", "from leaddesk.cli import run; run()"]
    )
    web = harness.Proc(
        "web",
        ["serve", "--port", "0", "--workers", "2"],
        cluster.env(),
        tmp_path,
        cwd=folder,
        command=command,
    )
    try:
        url = web.wait_for(r"listening on (http://\S+?:\d+)").group(1)
        deadline = time.monotonic() + 60
        while len(re.findall(r"web process \d+ serving", web.log())) < 2:
            assert time.monotonic() < deadline and web.process.poll() is None, web.log()[-3000:]
            time.sleep(0.1)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert "ImportError" not in web.log() and "exited with code" not in web.log()
    finally:
        web.stop()
        harness.drop_queue(cluster.broker_url, cluster.queue)


@pytest.mark.scale
@pytest.mark.timeout(900)
def test_serve_and_a_worker_started_together_on_fresh_postgres_databases_become_healthy(
    services: None, fresh_databases: Callable[[], str], tmp_path: Path
) -> None:
    """Ten times: `serve --workers 2` and `leaddesk worker` started at the same moment on a new
    database; both set it up in turn and are healthy within 30 seconds."""
    for attempt in range(10):
        cluster = harness.Cluster(
            database_url=fresh_databases(),
            redis_db=14,
            graph_url="http://127.0.0.1:9",
            llm_url=None,
            log_dir=tmp_path / f"try-{attempt}",
        )
        cluster.log_dir.mkdir()
        started = time.monotonic()
        web = harness.Proc(
            "web", ["serve", "--port", "0", "--workers", "2"], cluster.env(), cluster.log_dir
        )
        worker = harness.Proc(
            "worker",
            ["worker", "--concurrency", "1", "--pool", "solo"],
            cluster.env(),
            cluster.log_dir,
        )
        try:
            deadline = started + 30
            while True:
                web_log, worker_log = web.log(), worker.log()
                served = len(re.findall(r"web process \d+ serving", web_log))
                if served >= 2 and "worker ready" in worker_log:
                    break
                assert time.monotonic() < deadline, (
                    f"try {attempt + 1}: not healthy after 30 s\n--- serve\n{web_log[-2500:]}\n"
                    f"--- worker\n{worker_log[-2500:]}"
                )
                assert web.process.poll() is None and worker.process.poll() is None, (
                    web_log[-2500:],
                    worker_log[-2500:],
                )
                time.sleep(0.1)
            url = re.search(r"listening on (http://\S+?:\d+)", web_log)
            assert url is not None
            health = httpx.get(f"{url.group(1)}/healthz", timeout=10)
            assert health.status_code == 200, health.text
            print(f"try {attempt + 1}: healthy after {time.monotonic() - started:.1f} s")
        finally:
            web.stop()
            worker.stop()
            harness.drop_queue(cluster.broker_url, cluster.queue)
