"""The app's typed collaborators: what `create_app` is handed is what the views use."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.settings import load_settings
from tests.api.conftest import Prompts, Status, default_prompts
from tests.app_support import make_services
from webhooks import create_app


def test_the_statuses_follow_the_configuration_in_force(app: Flask, team: dict[str, Any]) -> None:
    """An admin's edit of the statuses (a hot reload hands over a new configuration) shows up at
    the next request, with no restart."""
    in_force = [default_prompts()]
    app.extensions["leaddesk"] = replace(app.extensions["leaddesk"], prompts=lambda: in_force[-1])
    before = [s["name"] for s in team["sarah"].get("/api/statuses").get_json()["statuses"]]
    in_force.append(Prompts(statuses=[Status("Fresh", "#000000"), Status("Won", "#111111")]))
    after = [s["name"] for s in team["sarah"].get("/api/statuses").get_json()["statuses"]]
    assert before[:2] == ["New", "Interested"]
    assert after == ["Fresh", "Won"]


def test_the_app_is_built_on_the_settings_its_services_carry(
    session_factory: sessionmaker[Session], tmp_path: Any
) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    services = make_services(settings, session_factory, prompts=lambda: default_prompts())
    assert create_app(settings, services).extensions["leaddesk"] is services
    other = load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(ValueError, match=r"services\.settings"):
        create_app(other, services)
