"""`leaddesk agents add|list|disable|enable|link|token|password`: the sales agents who work the
leads, in the first workspace or the one `--workspace SLUG` names."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from leaddesk.cli.common import UserError, int_in, open_store, print_json, table
from leaddesk.cli.leads import terminal_statuses
from leaddesk.settings import Settings
from store.agents import (
    AgentError,
    agent_summary,
    check_password_rules,
    find_agent,
    list_agents,
    rotate_token,
    set_password,
)
from store.calendar import rotate_calendar_token
from store.contacts import InvalidContact
from store.db import read_session
from store.domain.policy import Policy
from store.domain.waiting import add_agent, set_agent_active
from store.linking import new_link_code
from store.models import AGENT_ROLES, utcnow
from store.work import open_lead_counts

Run = Callable[[argparse.Namespace, Settings], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = subparsers.add_parser(
        "agents",
        help="manage sales agents and their API tokens",
        description="Manage sales agents and their API tokens.",
    )
    sub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    sub.required = True

    add = sub.add_parser(
        "add",
        help="create an agent and print its API token",
        description="Create an agent and print its id and API token. The token is shown once "
        "and stored hashed: keep it safe.",
    )
    add.add_argument("--name", required=True, help="the agent's name")
    add.add_argument(
        "--email", help="the agent's email (unique; used to log in to the web console)"
    )
    add.add_argument(
        "--role",
        choices=AGENT_ROLES,
        default="agent",
        help="agent (own and unassigned leads) or admin (everything); default agent",
    )
    add.add_argument(
        "--capacity",
        type=int_in(0, 100000),
        default=50,
        help="most open leads auto-assignment gives this agent (default 50)",
    )
    password_source = add.add_mutually_exclusive_group()
    password_source.add_argument(
        "--password", help="a password for the web console (stored hashed)"
    )
    password_source.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the web console password from the first line of stdin",
    )
    add.add_argument(
        "--json", action="store_true", help='print {"id", "name", "role", "token"} as JSON'
    )
    add.set_defaults(func=run_add)

    ls = sub.add_parser(
        "list", help="list agents", description="List agents (tokens are never shown)."
    )
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(func=run_list)

    for action, verb in (("disable", "Disable"), ("enable", "Re-enable")):
        cmd = sub.add_parser(
            action,
            help=f"{verb.lower()} an agent",
            description=f"{verb} an agent by id, email or name."
            + (
                " A disabled agent's token and password stop working and no lead is "
                "assigned to them; their leads stay assigned."
                if action == "disable"
                else ""
            ),
        )
        cmd.add_argument("agent", metavar="AGENT", help="id, email or exact name")
        cmd.add_argument("--json", action="store_true", help="print the agent as JSON")
        cmd.set_defaults(func=run_set_active, active=action == "enable")

    link = sub.add_parser(
        "link",
        help="print a one-time code that links an agent's Telegram account",
        description="Print a one-time code for the agent to send to the copilot bot in Telegram "
        "(/start CODE). A new code replaces any earlier one.",
    )
    link.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    link.add_argument("--json", action="store_true", help='print {"id", "name", "code"} as JSON')
    link.set_defaults(func=run_link)

    token = sub.add_parser(
        "token",
        help="issue a new API token for an agent (the old one stops working)",
        description="Issue a new API token for an agent, e.g. when the old one was lost or leaked. "
        "The old token stops working at once; the new one is shown once.",
    )
    token.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    token.add_argument(
        "--json", action="store_true", help='print {"id", "name", "role", "token"} as JSON'
    )
    token.set_defaults(func=run_token)

    calendar = sub.add_parser(
        "calendar-token",
        help="issue a new read-only calendar token for an agent's task feed (.ics)",
        description="Issue a new calendar token: it opens only the agent's task feed "
        "(/api/agents/me/calendar.ics?token=...), for Google Calendar or Outlook. The old one "
        "stops working; the new one is shown once.",
    )
    calendar.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    calendar.add_argument("--json", action="store_true", help='print {"id", "name", "token"}')
    calendar.set_defaults(func=run_calendar_token)

    password = sub.add_parser(
        "password",
        help="set or remove an agent's web console password",
        description="Set an agent's web console password: typed at a prompt (not shown), or the "
        "first line of stdin when stdin is not a terminal. The agent is signed out of the console "
        "everywhere.",
    )
    password.add_argument("agent", metavar="AGENT", help="id, email or exact name")
    password.add_argument(
        "--remove",
        action="store_true",
        help="remove the password: the agent signs in to the console with the API token only",
    )
    password.set_defaults(func=run_password)
    for command in sub.choices.values():
        # The same as `leaddesk --workspace SLUG agents ...` (main enters it): the team of that
        # workspace. SUPPRESS: when not given here, the one given before the command stands.
        command.add_argument(
            "--workspace",
            metavar="SLUG",
            default=argparse.SUPPRESS,
            help="the workspace whose team this is (slug or id; default: the first)",
        )


def _find(session, ref: str):  # type: ignore[no-untyped-def]
    agent = find_agent(ref, session=session)
    if agent is None:
        raise UserError(f"no agent matches {ref!r} (use an id, an email or an exact name)")
    return agent


def run_link(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, session_factory.begin() as session:
        agent = _find(session, args.agent)
        if not agent.active:
            raise UserError(f"agent {agent.id} ({agent.name}) is disabled; enable them first")
        code = new_link_code(agent, session=session)
        agent_id, name = agent.id, agent.name
    if args.json:
        print_json({"id": agent_id, "name": name, "code": code})
    else:
        print(f"link code for agent {agent_id} ({name}): {code}")
        print("in Telegram, send the copilot bot: /start " + code)
    return 0


def run_token(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, session_factory.begin() as session:
        agent = _find(session, args.agent)
        token = rotate_token(agent, session=session)
        agent_id, name, role = agent.id, agent.name, agent.role
    if args.json:
        print_json({"id": agent_id, "name": name, "role": role, "token": token})
    else:
        print(f"new API token for agent {agent_id} ({name}); the old one no longer works")
        print(f"API token (shown once, keep it safe): {token}")
    return 0


def run_calendar_token(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, session_factory.begin() as session:
        agent = _find(session, args.agent)
        token = rotate_calendar_token(agent, session=session)
        agent_id, name = agent.id, agent.name
    if args.json:
        print_json({"id": agent_id, "name": name, "token": token})
    else:
        print(f"new calendar token for agent {agent_id} ({name}); the old one no longer works")
        print(f"subscribe to: <console address>/api/agents/me/calendar.ics?token={token}")
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("no password on stdin")
        return password
    password = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != password:
        raise UserError("the two passwords differ; nothing was changed")
    return password


def run_password(args: argparse.Namespace, settings: Settings) -> int:
    password = None if args.remove else _read_password()
    try:
        if password is not None:
            check_password_rules(password)
        with open_store(settings) as session_factory, session_factory.begin() as session:
            agent = _find(session, args.agent)
            if password is not None and not agent.email:
                raise UserError(
                    f"agent {agent.id} ({agent.name}) has no email to sign in with; "
                    "give them one first (PATCH /api/agents/ID with an email)"
                )
            set_password(agent, password, session=session)
            agent_id, name = agent.id, agent.name
    except AgentError as exc:
        raise UserError(str(exc)) from None
    what = "removed" if password is None else "set"
    print(f"console password {what} for agent {agent_id} ({name}); their console sessions ended")
    return 0


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("no password on stdin")
    if password is not None and len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    with open_store(settings) as session_factory:
        try:
            with session_factory.begin() as session:
                agent, token = add_agent(
                    args.name,
                    session=session,
                    policy=_policy(settings),
                    now=utcnow(),
                    email=args.email,
                    role=args.role,
                    capacity=args.capacity,
                    password=password,
                )
                agent_id, name, role = agent.id, agent.name, agent.role
                code = new_link_code(agent, session=session)
        except (AgentError, InvalidContact) as exc:
            raise UserError(str(exc)) from None
        except IntegrityError:
            raise UserError(f"an agent with email {args.email} already exists") from None
    if args.json:
        # Exactly these keys (scripts rely on them); the link code is one `agents link` away.
        print_json({"id": agent_id, "name": name, "role": role, "token": token})
    else:
        print(f"agent {agent_id} ({name}, {role}) created")
        print(f"API token (shown once, keep it safe): {token}")
        print(f"Telegram copilot: send /start {code} to the bot (one-time code)")
    return 0


def _policy(settings: Settings) -> Policy:
    """The business rules' view of the prompts (which statuses give a lead to an agent); an empty
    one (with a warning) when the prompts do not validate, so the team can still be managed."""
    from bot.config import PromptError, load_prompts  # noqa: PLC0415 - brings LangGraph
    from bot.policy import build_policy  # noqa: PLC0415 - brings LangGraph

    try:
        config = load_prompts(settings.prompts_dir)
    except PromptError:
        print(
            "leaddesk: warning: the prompts do not validate; waiting leads are not assigned now",
            file=sys.stderr,
        )
        return Policy()
    return build_policy(config, takeover_fallback=settings.takeover_minutes)


def _closed_statuses(settings: Settings) -> tuple[str, ...]:
    """The terminal statuses, whose leads do not count against an agent's capacity; none (with a
    warning) when the prompts do not validate, so the team can still be listed."""
    try:
        return terminal_statuses(settings)
    except UserError as exc:
        print(f"leaddesk: warning: {exc}; counting every open lead", file=sys.stderr)
        return ()


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    terminal = _closed_statuses(settings)
    with open_store(settings) as session_factory, read_session(session_factory) as session:
        counts = open_lead_counts(session=session, terminal_statuses=terminal)
        agents = [agent_summary(a, counts.get(a.id, 0)) for a in list_agents(session=session)]
    if args.json:
        print_json(agents)
        return 0
    if not agents:
        print("no agents yet: add one with `leaddesk agents add --name NAME`")
        return 0
    rows = [
        [
            str(a["id"]),
            str(a["name"]),
            str(a["email"] or ""),
            str(a["role"]),
            "yes" if a["active"] else "no",
            f"{a['open_leads']}/{a['capacity']}",
            "yes" if a["telegram_linked"] else "no",
        ]
        for a in agents
    ]
    print(table(rows, ["ID", "NAME", "EMAIL", "ROLE", "ACTIVE", "LEADS", "TELEGRAM"]))
    return 0


def run_set_active(args: argparse.Namespace, settings: Settings) -> int:
    terminal = _closed_statuses(settings)
    with open_store(settings) as session_factory, session_factory.begin() as session:
        agent = _find(session, args.agent)
        changed = set_agent_active(
            agent, args.active, session=session, policy=_policy(settings), now=utcnow()
        )
        session.flush()
        counts = open_lead_counts(session=session, terminal_statuses=terminal)
        info = agent_summary(agent, counts.get(agent.id, 0))
    if args.json:
        print_json(info)
        return 0
    state = "enabled" if args.active else "disabled"
    who = f"agent {info['id']} ({info['name']})"
    print(f"{who} {state}" if changed else f"{who} was already {state}")
    if not args.active and info["open_leads"]:
        print(
            f"{info['open_leads']} open leads are still assigned to them; "
            "reassign them in the console or with the API"
        )
    return 0
