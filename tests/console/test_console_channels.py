"""Workspace admins connect their workspace's channels on the Settings page: the account, and the
credentials its replies go out with, stored sealed and never shown again; another workspace's
accounts are out of reach, and agents cannot change them."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from leaddesk.settings import load_settings
from store.models import ChannelConnection
from store.sealed import unseal
from tests.app_support import build_app, fixed
from tests.console.conftest import Console
from tests.workspace_support import TwoWorkspaces, two_workspaces

SECRET = "console-channels-secret-key"
TOKEN = "EAAG-acme-token-0001"


@pytest.fixture
def app(session_factory, clock, prompts, tmp_path) -> Flask:  # type: ignore[no-untyped-def]
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}", default_region="US", secret_key=SECRET
    )
    built = build_app(settings, session_factory, prompts=fixed(prompts), clock=clock)
    built.testing = True
    return built


@pytest.fixture
def two(world, session_factory) -> TwoWorkspaces:  # type: ignore[no-untyped-def]
    return two_workspaces(world, session_factory)


def signed_in(app: Any, token: str) -> Console:
    console = Console(app.test_client())
    assert console.login(token=token).status_code == 302
    return console


def connections(session_factory) -> list[ChannelConnection]:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return list(session.scalars(select(ChannelConnection).order_by(ChannelConnection.id)))


def test_an_admin_connects_an_account_whose_token_is_sealed_and_never_shown(
    app, two, session_factory
) -> None:  # type: ignore[no-untyped-def]
    bob = signed_in(app, two.bob.token)  # admin of beta only
    assert 'id="channels"' in bob.get("/console/settings").text
    saved = bob.post(
        "/console/settings/channels",
        {"channel": "whatsapp", "account_id": "206540352242922", "access_token": TOKEN},
    )
    assert saved.status_code == 302
    page = bob.get("/console/settings").text
    assert "206540352242922" in page and "access_token" in page and TOKEN not in page
    [row] = connections(session_factory)
    assert row.workspace_id == two.b and TOKEN not in (row.secrets or "")
    assert unseal(row.secrets, SECRET) == {"access_token": TOKEN}
    # A field left blank keeps what is stored; a new one is added.
    bob.post(
        "/console/settings/channels",
        {"channel": "whatsapp", "account_id": "206540352242922", "app_secret": "s3cr3t-app"},
    )
    [row] = connections(session_factory)
    assert unseal(row.secrets, SECRET) == {"access_token": TOKEN, "app_secret": "s3cr3t-app"}
    # A web widget without an account gets a key of its own, shown with its script tag.
    bob.post("/console/settings/channels", {"channel": "web", "account_id": ""})
    page = bob.get("/console/settings").text
    key = next(c.account_id for c in connections(session_factory) if c.channel == "web")
    assert key.startswith("wk_") and f'data-key="{key}"' in page


def test_another_workspaces_accounts_are_out_of_reach_and_agents_cannot_change_any(
    app, two, session_factory
) -> None:  # type: ignore[no-untyped-def]
    bob = signed_in(app, two.bob.token)
    bob.post(
        "/console/settings/channels",
        {"channel": "whatsapp", "account_id": "206540352242922", "access_token": TOKEN},
    )
    alan = signed_in(app, two.alan.token)  # admin of the first workspace only
    page = alan.get("/console/settings").text
    assert "206540352242922" not in page
    taken = alan.post(
        "/console/settings/channels",
        {"channel": "whatsapp", "account_id": "206540352242922", "access_token": "mine-now"},
    )
    assert taken.status_code == 302
    assert "already connected to another workspace" in alan.get("/console/settings").text
    alan.post(
        "/console/settings/channels/remove",
        {"channel": "whatsapp", "account_id": "206540352242922"},
    )
    [row] = connections(session_factory)
    assert row.workspace_id == two.b and unseal(row.secrets, SECRET) == {"access_token": TOKEN}
    carl = signed_in(app, two.carl.token)  # an agent of the first workspace
    refused = carl.post(
        "/console/settings/channels",
        {"channel": "messenger", "account_id": "1234567890", "access_token": "x"},
    )
    assert refused.status_code == 403
    assert len(connections(session_factory)) == 1
    # Bob disconnects his own.
    bob.post(
        "/console/settings/channels/remove",
        {"channel": "whatsapp", "account_id": "206540352242922"},
    )
    assert connections(session_factory) == []
