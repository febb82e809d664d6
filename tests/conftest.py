"""Shared fixtures: fresh, migrated database per test on SQLite and, when it answers, PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from store import make_engine, make_session_factory, upgrade
from store.models import Base

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_admin_url() -> str | None:
    url = os.environ.get("LEADDESK_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None
    return DEFAULT_PG_URL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head; dropped at the end."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(
            "PostgreSQL is not reachable on 127.0.0.1:5432 and LEADDESK_TEST_POSTGRES_URL is unset"
        )
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"leaddesk_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable PostgreSQL"
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL test database: {exc}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        # As migrated: the first workspace's row, and new workspaces numbered after it.
        conn.execute(
            text(
                "INSERT INTO workspaces (id, slug, name, active, created_at) "
                "VALUES (1, 'default', 'Default', true, now())"
            )
        )
        conn.execute(text("SELECT setval('workspaces_id_seq', 1)"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: a SQLite file per test, or the session's PostgreSQL emptied."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'leaddesk.db'}")
        upgrade(engine)
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"))
        _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for tests that are about behaviour rather than the backend."""
    engine = make_engine(f"sqlite:///{tmp_path / 'leaddesk.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory.begin() as session:
        yield session


def set_quiet_window(prompts_dir: Path, seconds: float) -> None:
    """Set the quiet window of every chat channel in a writable prompts copy's business.yaml
    (tests that are not about bursts use 0: every message is answered at once)."""
    import re

    path = prompts_dir / "business.yaml"
    text = path.read_text(encoding="utf-8")
    line = f"quiet_window: {seconds:g}\n"
    block = re.compile(r"^quiet_window:.*\n(?:[ \t]+.*\n)*", re.MULTILINE)
    text = block.sub(line, text, count=1) if block.search(text) else text + line
    path.write_text(text, encoding="utf-8")
