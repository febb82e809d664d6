"""The admins' Settings page: the configuration in force, when it loaded, and a rejected change with
its file:line problems (also flagged on every page for admins)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.reload import PromptStore
from tests.conftest import REPO_ROOT


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", directory)
    return directory


@pytest.fixture
def store(prompts_dir: Path) -> PromptStore:
    return PromptStore(prompts_dir, defaults=None, poll_seconds=0)


@pytest.fixture
def app_extras(store: PromptStore) -> dict[str, Any]:
    return {"prompts": store, "prompts_health": store.health}


@pytest.fixture
def people(world):  # type: ignore[no-untyped-def]
    world.agent("Ada", role="admin", email="ada@example.com", password="correct horse")
    world.agent("Sarah", email="sarah@example.com", password="correct horse")


def test_admins_see_the_configuration_in_force(console, people):  # type: ignore[no-untyped-def]
    console.login(email="ada@example.com", password="correct horse")
    page = console.get("/console/settings").text
    assert "Sunpeak Solar" in page and "America/Chicago" in page
    assert "Interested" in page and "Converted" in page  # the statuses table
    assert "business.yaml" in page and "knowledge" in page
    assert 'id="prompts-rejected"' not in page
    assert ">Settings</a>" in console.get("/console/leads").text


def test_a_rejected_change_is_shown_with_its_file_and_line(  # type: ignore[no-untyped-def]
    console, people, store, prompts_dir
):
    business = prompts_dir / "business.yaml"
    business.write_text(
        business.read_text(encoding="utf-8").replace("  prechat: false", "  prechat: maybe"),
        encoding="utf-8",
    )
    assert store.check() is False  # rejected: the last good version stays
    console.login(email="ada@example.com", password="correct horse")
    page = console.get("/console/settings").text
    rejected = page.split('id="prompts-rejected"')[1].split("</div>")[0]
    line = next(
        number
        for number, text in enumerate(business.read_text(encoding="utf-8").splitlines(), 1)
        if "prechat: maybe" in text
    )
    assert f"business.yaml:{line}" in rejected
    assert "keeps version 1" in rejected
    assert "A saved change to the prompts was rejected" in console.get("/console/leads").text


def test_the_settings_page_is_for_admins(console, people):  # type: ignore[no-untyped-def]
    console.login(email="sarah@example.com", password="correct horse")
    assert console.get("/console/settings").status_code == 403
    assert ">Settings</a>" not in console.get("/console/leads").text
