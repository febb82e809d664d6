"""Fixtures for the channel tests: a fake Graph API, a recording dispatcher, the app."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import Settings
from tests.app_support import build_app
from tests.fakes.fake_graph import FakeGraph
from tests.fakes.fake_openai import fake_openai  # noqa: F401 - the fixture
from tests.webhooks.support import RecordingDispatcher, make_settings


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def human_replies() -> list[int]:
    """Lead ids for which a human takeover was signalled (the hook the webhooks call)."""
    return []


@pytest.fixture
def make_app(
    session_factory: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
    human_replies: list[int],
) -> Callable[..., Flask]:
    def build(settings: Settings | None = None, **extras: Any) -> Flask:
        def record_takeover(lead: Any, *, session: Session, now: datetime, minutes: int) -> None:
            human_replies.append(lead.id)

        extras.setdefault("dispatcher", dispatcher)
        extras.setdefault("on_human_reply", record_takeover)
        app = build_app(settings or make_settings(), session_factory, **extras)
        app.testing = True
        return app

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed, so no test certificate can be made")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert
