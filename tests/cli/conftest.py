"""Run `leaddesk ...` in-process against the test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from leaddesk.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(
    db_engine: Engine, bare_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """`cli("leads", "list")` runs the command on the test database and returns code and output."""
    monkeypatch.setenv("DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
    return bare_cli


@pytest.fixture
def bare_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """The command line on a SQLite file in tmp_path, for tests that are not about the backend."""
    monkeypatch.chdir(tmp_path)  # no stray .env, and relative paths land in tmp_path
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    for name in ("LEADDESK_DEFAULT_REGION", "LEADDESK_PROMPTS_DIR", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()

    def run(*argv: str) -> Run:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
