"""Scale tests: multi-process load and fault scenarios against the real PostgreSQL and Redis.

Tests marked `scale` (minutes of CPU) run only with `pytest -m scale` or LEADDESK_SCALE_TESTS=1
(`.ci/run` does both when both services answer); the rest of this folder (fuzzing, security, the
worker tier's parts) runs by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale import harness

REDIS_DB = 13  # the scale tests' Redis database (each run has its own queue in it)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = str(config.getoption("markexpr", "") or "")
    if os.environ.get("LEADDESK_SCALE_TESTS") == "1" or (markexpr.strip() == "scale"):
        return
    skip = pytest.mark.skip(
        reason="scale test: set LEADDESK_SCALE_TESTS=1 to run (needs PostgreSQL and Redis)"
    )
    for item in items:
        # (item.keywords also holds this folder's name: ask for the marker itself)
        if item.get_closest_marker("scale") is not None and str(item.fspath).startswith(
            str(Path(__file__).parent)
        ):
            item.add_marker(skip)


@pytest.fixture
def services() -> None:
    missing = harness.services_missing()
    if missing:
        pytest.skip(missing)


@pytest.fixture
def redis_db(services: None) -> Iterator[int]:
    harness.start_redis()  # an earlier test may have left it stopped
    yield REDIS_DB
    harness.start_redis()
