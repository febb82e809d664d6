"""`leaddesk agents add|list|disable|enable`, `leaddesk version`, exit codes and help."""

from __future__ import annotations

import io

import pytest

from store import make_session_factory
from store.agents import agent_by_password, agent_by_token


def test_version_needs_no_database(bare_cli, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")  # would be refused if settings were read
    result = bare_cli("version")
    assert result.code == 0 and result.out.startswith("leaddesk 0.")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["agents"],
        ["agents", "add"],
        ["agents", "list"],
        ["agents", "disable"],
        ["agents", "enable"],
        ["agents", "link"],
        ["agents", "token"],
        ["agents", "password"],
        ["leads"],
        ["leads", "list"],
        ["leads", "show"],
        ["leads", "export"],
        ["leads", "import"],
        ["db"],
        ["db", "upgrade"],
        ["version"],
    ],
)
def test_every_command_has_help(bare_cli, command):
    result = bare_cli(*command, "--help")
    assert result.code == 0
    assert result.out.startswith("usage: leaddesk")


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["agents"],
        ["agents", "add"],
        ["agents", "add", "--name", "A", "--role", "boss"],
        ["agents", "add", "--name", "A", "--capacity", "-1"],
        ["leads", "list", "--min-score", "101"],
        ["leads", "list", "--limit", "0"],
        ["leads", "list", "--created-from", "yesterday"],
        ["leads", "list", "--agent", "a", "--unassigned"],
        ["leads", "show", "abc"],
        ["leads", "list", "--channel", "telegram"],
        ["leads", "list", "--sort", "phone"],
        ["leads", "list", "--sort", "-score"],
    ],
)
def test_usage_errors_exit_2(bare_cli, argv):
    result = bare_cli(*argv)
    assert result.code == 2
    assert "usage: leaddesk" in result.err


def test_bad_settings_are_one_line_exit_1(bare_cli, monkeypatch):
    monkeypatch.setenv("LEADDESK_DEFAULT_REGION", "XX")
    result = bare_cli("agents", "list")
    assert result.code == 1
    assert result.err.startswith("leaddesk: error: LEADDESK_DEFAULT_REGION:")
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


@pytest.mark.parametrize(
    "url", ["sqlite:///{tmp}/no/such/dir/leaddesk.db", "postgresql://postgres@127.0.0.1:9/leaddesk"]
)
def test_unreachable_database_is_one_line_exit_1(bare_cli, monkeypatch, tmp_path, url):
    monkeypatch.setenv("DATABASE_URL", url.format(tmp=tmp_path))
    result = bare_cli("agents", "list")
    assert result.code == 1
    assert result.err.startswith("leaddesk: error: cannot open the database:")
    assert len(result.err.strip().splitlines()) == 1


def test_add_prints_id_and_a_token_that_authenticates(cli, db_engine):
    result = cli(
        "agents", "add", "--name", "Alice", "--email", "Alice@Example.COM", "--role", "admin"
    )
    assert result.code == 0, result.err
    first, second, third = result.out.strip().splitlines()
    assert first == "agent 1 (Alice, admin) created"
    assert third.startswith("Telegram copilot: send /start ")
    token = second.rsplit(" ", 1)[1]
    with make_session_factory(db_engine)() as session:
        agent = agent_by_token(token, session=session)
        assert agent is not None and (agent.name, agent.email, agent.role) == (
            "Alice",
            "Alice@example.com",
            "admin",
        )
        assert agent.token_hash != token  # stored hashed


def test_add_json_and_password_from_stdin(cli, db_engine, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    result = cli(
        "agents",
        "add",
        "--name",
        "Bob",
        "--email",
        "bob@example.com",
        "--capacity",
        "3",
        "--password-stdin",
        "--json",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert set(data) == {"id", "name", "role", "token"}
    assert (data["name"], data["role"]) == ("Bob", "agent") and data["token"].startswith("ld_")
    with make_session_factory(db_engine)() as session:
        agent = agent_by_password("bob@example.com", "correct horse battery", session=session)
        assert agent is not None and agent.capacity == 3
        assert agent_by_password("bob@example.com", "wrong", session=session) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "  "], "an agent needs a name"),
        (["--name", "C", "--email", "not-an-email"], "not a valid email address"),
        (["--name", "C", "--password", "short"], "at least 8 characters"),
    ],
)
def test_add_refuses_bad_values_with_exit_1(bare_cli, argv, message):
    result = bare_cli("agents", "add", *argv)
    assert result.code == 1 and message in result.err


def test_a_second_agent_with_the_same_email_is_refused(cli):
    assert cli("agents", "add", "--name", "A", "--email", "a@example.com").code == 0
    result = cli("agents", "add", "--name", "B", "--email", "a@EXAMPLE.com")
    assert result.code == 1 and "already exists" in result.err


def test_list_disable_and_enable(cli, db_engine):
    assert "no agents yet" in cli("agents", "list").out
    token = cli("agents", "add", "--name", "Alice", "--json").json()["token"]
    cli("agents", "add", "--name", "Bob", "--email", "bob@example.com")
    table = cli("agents", "list").out
    assert table.splitlines()[0].split() == [
        "ID",
        "NAME",
        "EMAIL",
        "ROLE",
        "ACTIVE",
        "LEADS",
        "TELEGRAM",
    ]
    assert "bob@example.com" in table and "0/50" in table

    result = cli("agents", "disable", "alice")  # by name, any case
    assert result.code == 0 and result.out.strip() == "agent 1 (Alice) disabled"
    assert cli("agents", "disable", "1").out.strip() == "agent 1 (Alice) was already disabled"
    with make_session_factory(db_engine)() as session:
        assert (
            agent_by_token(token, session=session) is None
        )  # a disabled agent's token stops working
    listed = {a["name"]: a for a in cli("agents", "list", "--json").json()}
    assert listed["Alice"]["active"] is False and listed["Bob"]["active"] is True
    assert "token" not in listed["Alice"] and "token_hash" not in listed["Alice"]

    assert cli("agents", "enable", "Alice").code == 0
    with make_session_factory(db_engine)() as session:
        assert agent_by_token(token, session=session) is not None
    assert cli("agents", "disable", "bob@example.com", "--json").json()["active"] is False


def test_disable_an_unknown_agent_is_exit_1(cli):
    result = cli("agents", "disable", "nobody")
    assert result.code == 1 and "no agent matches 'nobody'" in result.err


def test_link_prints_a_code_the_copilot_accepts(cli, db_engine):
    from store.linking import link_telegram

    cli("agents", "add", "--name", "Alice")
    result = cli("agents", "link", "Alice")
    assert result.code == 0, result.err
    code = result.out.strip().splitlines()[-1].rsplit(" ", 1)[1]
    assert (
        cli("agents", "link", "1", "--json").json()["code"] != code
    )  # a new code replaces the old
    fresh = cli("agents", "link", "1", "--json").json()["code"]
    with make_session_factory(db_engine).begin() as session:
        assert link_telegram(code, 4242, session=session) is None
        assert link_telegram(fresh, 4242, session=session).name == "Alice"
    cli("agents", "disable", "Alice")
    result = cli("agents", "link", "Alice")
    assert result.code == 1 and "is disabled" in result.err


def test_token_replaces_the_old_token(cli, db_engine):
    old = cli("agents", "add", "--name", "Alice", "--json").json()["token"]
    new = cli("agents", "token", "Alice", "--json").json()["token"]
    assert new != old
    with make_session_factory(db_engine)() as session:
        assert agent_by_token(old, session=session) is None
        assert agent_by_token(new, session=session).name == "Alice"
    assert "the old one no longer works" in cli("agents", "token", "1").out


def test_password_from_stdin_replaces_the_old_one(cli, db_engine, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli("agents", "add", "--name", "Bob", "--email", "bob@example.com").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a new passphrase\n"))
    result = cli("agents", "password", "bob@example.com")
    assert result.code == 0 and "password set" in result.out
    assert "a new passphrase" not in result.out + result.err
    with make_session_factory(db_engine)() as session:
        assert agent_by_password("bob@example.com", "a new passphrase", session=session) is not None
        old = agent_by_password("bob@example.com", "correct horse battery", session=session)
        assert old is None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    refused = cli("agents", "password", "Bob")
    assert refused.code == 1 and "at least 8" in refused.err


def test_password_prompt_does_not_echo_and_must_match(cli, monkeypatch):
    assert cli("agents", "add", "--name", "Bob", "--email", "bob@example.com").code == 0

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    typed = iter(["first passphrase", "second passphrase"])
    prompts: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": prompts.append(prompt) or next(typed))
    result = cli("agents", "password", "Bob")
    assert result.code == 1 and "differ" in result.err and len(prompts) == 2


def test_adding_or_enabling_an_agent_hands_out_the_leads_that_waited(cli, db_engine):
    from store.leads import resolve
    from store.models import Lead

    factory = make_session_factory(db_engine)
    with factory.begin() as session:
        # Follow Up gives a lead to an agent; these reached it before there was one.
        waited = resolve("web", "w-1", name="Dana", session=session)
        waited.status = "Follow Up"
        waited_id = waited.id
    result = cli("agents", "add", "--name", "Alice", "--json")
    assert result.code == 0, result.err
    alice = result.json()["id"]
    with factory() as session:
        assert session.get(Lead, waited_id).assigned_agent_id == alice

    assert cli("agents", "disable", "Alice").code == 0
    with factory.begin() as session:
        later = resolve("web", "w-2", name="Omar", session=session)
        later.status = "Follow Up"
        later_id = later.id
    assert cli("agents", "enable", "Alice").code == 0
    with factory() as session:
        assert session.get(Lead, later_id).assigned_agent_id == alice
