"""Helpers the command modules share: opening the store, argument types, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import REPO_PROMPTS_DIR, Settings
from store import ensure_schema, make_engine, make_session_factory
from store.tenancy import FIRST_WORKSPACE
from store.workspaces import find_workspace


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 1."""


@dataclass(frozen=True)
class CliWorkspace:
    """The workspace `--workspace` named: its id and where its prompts are."""

    id: int
    slug: str
    prompts_dir: Path | None  # None: the first workspace's, LEADDESK_PROMPTS_DIR itself

    def settings(self, settings: Settings) -> Settings:
        """`settings` with LEADDESK_PROMPTS_DIR pointing at this workspace's prompts."""
        if self.prompts_dir is None:
            return settings
        return settings.model_copy(update={"prompts_dir": self.prompts_dir})


def find_cli_workspace(settings: Settings, ref: str) -> CliWorkspace:
    """The workspace named by slug (or id) in DATABASE_URL; UserError when there is none."""
    with open_store(settings) as session_factory, session_factory() as session:
        found = find_workspace(ref, session=session)
    if found is None:
        raise UserError(f"there is no workspace {ref!r}")
    if found.id == FIRST_WORKSPACE:
        return CliWorkspace(found.id, found.slug, None)
    # Its own directory over the shipped defaults; without one, the shipped defaults alone.
    own = Path(settings.prompts_dir) / found.slug
    return CliWorkspace(found.id, found.slug, own if own.is_dir() else REPO_PROMPTS_DIR)


@contextmanager
def open_store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on DATABASE_URL with the schema brought up to date (as the server does)."""
    engine: Engine | None = None
    try:
        engine = make_engine(settings.database_url)
        ensure_schema(engine)
    except OperationalError as exc:
        if engine is not None:
            engine.dispose()
        raise UserError(f"cannot open the database: {_first_line(exc.orig)}") from None
    try:
        yield make_session_factory(engine)
    except OperationalError as exc:
        raise UserError(f"database error: {_first_line(exc.orig)}") from None
    finally:
        engine.dispose()


def _first_line(value: Any) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "unknown error"


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def int_in(low: int, high: int) -> Any:
    """An argparse type: an integer in [low, high] (a bad value is a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def moment(text: str) -> tuple[datetime, bool]:
    """An argparse type: an ISO date or date-time (UTC unless it says otherwise).

    Returns (moment, date_only) so that a date-only upper bound can include its whole day.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC), True
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value, False


def lower_bound(value: tuple[datetime, bool] | None) -> datetime | None:
    return value[0] if value else None


def upper_bound(value: tuple[datetime, bool] | None) -> datetime | None:
    """Exclusive upper bound: a date means 'up to the end of that day'."""
    if not value:
        return None
    moment_, date_only = value
    return moment_ + timedelta(days=1) if date_only else moment_


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table with columns padded to their widest cell."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)
