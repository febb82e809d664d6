"""`leaddesk workspaces add|list|disable|enable|channel|secret-key`."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from store import make_session_factory
from store.agents import agent_by_token
from store.sealed import unseal
from store.tenancy import in_workspace
from store.workspaces import route

KEY = "a-long-enough-secret-for-tests"


@pytest.fixture
def keyed(cli, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADDESK_SECRET_KEY", KEY)
    return cli


def test_secret_key_prints_a_fernet_key_that_the_settings_accept(bare_cli, monkeypatch):
    first, second = bare_cli("workspaces", "secret-key"), bare_cli("workspaces", "secret-key")
    assert first.code == 0 and len(first.out.strip()) == 44 and first.out != second.out
    monkeypatch.setenv("LEADDESK_SECRET_KEY", first.out.strip())
    assert bare_cli("workspaces", "list").code == 0
    # An install's existing short key still runs everything it ran before; only sealing channel
    # credentials with it is refused, in one line.
    monkeypatch.setenv("LEADDESK_SECRET_KEY", "too-short")
    assert bare_cli("workspaces", "list").code == 0
    refused = bare_cli(
        "workspaces", "channel", "default", "set", "whatsapp", "--account", "1065", "--token", "t"
    )
    assert refused.code == 1
    assert refused.err.startswith("leaddesk: error: LEADDESK_SECRET_KEY must have at least 16")
    assert len(refused.err.strip().splitlines()) == 1


def test_add_creates_the_workspace_and_its_first_admin(cli, db_engine: Engine):
    made = cli(
        "workspaces", "add", "acme", "--name", "Acme Plumbing",
        "--admin-email", "Ada@Acme.example", "--admin-name", "Ada",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "workspace 2 (acme, Acme Plumbing) created" in made.out
    token = made.out.split("keep it safe): ")[1].split()[0]
    # The same person becomes the admin of a second workspace: no new agent, no new token.
    joined = cli("workspaces", "add", "beta", "--name", "Beta", "--admin-email", "ada@acme.example")
    assert joined.code == 0 and "joined" in joined.out and "token" not in joined.out
    factory = make_session_factory(db_engine)
    for workspace_id in (2, 3):
        with in_workspace(workspace_id), factory() as session:
            agent = agent_by_token(token, session=session)
            assert agent is not None and agent.role == "admin"
    with factory() as session:  # the first workspace: not a member
        agent = agent_by_token(token, session=session)
        assert agent is None or agent.role == ""
    listed = cli("workspaces", "list", "--json").json()
    assert [(w["slug"], w["active"]) for w in listed] == [
        ("default", True),
        ("acme", True),
        ("beta", True),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "Not A Slug", "--name", "X"], "slug"),
        (["add", "acme", "--name", "Again"], "already exists"),
        (["disable", "default"], "cannot be disabled"),
        (["disable", "nope"], "no workspace matches"),
        (["channel", "acme", "remove", "whatsapp", "1"], "has no whatsapp connection"),
        (["channel", "acme", "set", "whatsapp"], "give the WhatsApp phone number id"),
        (["channel", "acme", "set", "whatsapp", "--account", "1", "--token", "t"], "SECRET_KEY"),
    ],
)
def test_mistakes_are_one_line_errors_exit_1(cli, argv, message):
    assert cli("workspaces", "add", "acme", "--name", "Acme").code == 0
    result = cli("workspaces", *argv)
    assert result.code == 1, result.out
    assert result.err.startswith("leaddesk: error: ") and message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_disable_and_enable(cli, db_engine: Engine):
    cli("workspaces", "add", "acme", "--name", "Acme")
    assert cli("workspaces", "channel", "acme", "set", "whatsapp", "--account", "111").code == 0
    assert cli("workspaces", "disable", "acme").out.strip() == "workspace 2 (acme) disabled"
    with make_session_factory(db_engine)() as session:
        assert route("whatsapp", "111", session=session, env_account=None) is None
    assert "already disabled" in cli("workspaces", "disable", "acme").out
    assert cli("workspaces", "enable", "2").out.strip() == "workspace 2 (acme) enabled"
    with make_session_factory(db_engine)() as session:
        assert route("whatsapp", "111", session=session, env_account=None) == 2


def test_channel_set_list_remove_keeps_credentials_encrypted(keyed, db_engine: Engine):
    keyed("workspaces", "add", "acme", "--name", "Acme")
    keyed("workspaces", "add", "beta", "--name", "Beta")
    made = keyed(
        "workspaces", "channel", "acme", "set", "whatsapp", "--account", "111",
        "--token", "EAAG-acme-token", "--app-secret", "acme-app-secret",
    )  # fmt: skip
    assert made.code == 0, made.err
    taken = keyed("workspaces", "channel", "beta", "set", "whatsapp", "--account", "111")
    assert taken.code == 1 and "already connected to another workspace" in taken.err
    widget = keyed("workspaces", "channel", "beta", "set", "web", "--json").json()
    assert widget["account_id"].startswith("wk_")
    listed = keyed("workspaces", "channel", "acme", "list", "--json").json()
    assert listed == [
        {"channel": "whatsapp", "account_id": "111", "credentials": ["access_token", "app_secret"]}
    ]
    shown = keyed("workspaces", "channel", "acme", "list")
    assert "EAAG-acme-token" not in shown.out and "access_token, app_secret" in shown.out
    with db_engine.connect() as connection:
        (sealed,) = connection.execute(
            text("SELECT secrets FROM channel_connections WHERE account_id = '111'")
        ).scalars()
    assert "EAAG-acme-token" not in sealed and "acme-app-secret" not in sealed
    assert unseal(sealed, KEY)["access_token"] == "EAAG-acme-token"
    removed = keyed("workspaces", "channel", "acme", "remove", "whatsapp", "111")
    assert (
        removed.code == 0 and keyed("workspaces", "channel", "acme", "list", "--json").json() == []
    )
