"""Factories for store tests, and the shared-phone-vector agreement report."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from store.models import Agent, Identity, Lead, utcnow

_AGREEMENT = pytest.StashKey[dict[str, tuple[int, int]]]()


@pytest.fixture
def phone_agreement(request: pytest.FixtureRequest) -> dict[str, tuple[int, int]]:
    """Where the shared-vector tests put (agreeing, total) per file, printed after the run."""
    return request.config.stash.setdefault(_AGREEMENT, {})


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_AGREEMENT, {})
    if not results:
        return
    terminalreporter.section("shared phone vectors: agreement with the expected numbers")
    for name, (agree, total) in sorted(results.items()):
        terminalreporter.write_line(f"{name}: {agree}/{total} = {agree / total:.1%}")


@pytest.fixture
def make_lead(session: Session) -> Callable[..., Lead]:
    """Insert a lead (with one identity) directly, with any field set; returns it flushed.

    `channels=("web", "whatsapp")` gives it one identity per channel; `age_days` backdates it.
    """
    counter = itertools.count(1)

    def make(*, channels: tuple[str, ...] = ("web",), age_days: float = 0, **fields: Any) -> Lead:
        n = next(counter)
        created = utcnow() - timedelta(days=age_days)
        values: dict[str, Any] = {
            "name": f"Lead {n}",
            "status": "New",
            "score": 0,
            "created_at": created,
            "updated_at": created,
            "score_factors": [],
            "interests": [],
            "objections": [],
            "tags": [],
            "custom_fields": {},
        }
        values.update(fields)
        lead = Lead(**values)
        session.add(lead)
        session.flush()
        for channel in channels:
            session.add(
                Identity(
                    lead_id=lead.id,
                    channel=channel,
                    external_id=f"{channel}-{n}",
                    created_at=created,
                )
            )
        session.flush()
        return lead

    return make


@pytest.fixture
def make_agent(session: Session) -> Callable[..., Agent]:
    counter = itertools.count(1)

    def make(**fields: Any) -> Agent:
        n = next(counter)
        values: dict[str, Any] = {
            "name": f"Agent {n}",
            "role": "agent",
            "active": True,
            "capacity": 50,
            "token_hash": f"hash-{n}",
            "created_at": utcnow(),
        }
        values.update(fields)
        agent = Agent(**values)
        session.add(agent)
        session.flush()
        return agent

    return make
