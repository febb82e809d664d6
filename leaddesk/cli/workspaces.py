"""`leaddesk workspaces add|list|disable|enable|channel|secret-key`: the businesses this install
serves, their first admins and their channel connections."""

from __future__ import annotations

import argparse

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leaddesk.cli.common import UserError, open_store, print_json, table
from leaddesk.settings import Settings
from store.agents import AgentError
from store.contacts import InvalidContact, normalize_email
from store.db import read_session
from store.domain.policy import Policy
from store.domain.waiting import add_agent
from store.models import Agent, Workspace, utcnow
from store.sealed import SealError, new_secret_key
from store.tenancy import all_workspaces, in_workspace
from store.workspaces import (
    ACCOUNT_NAMES,
    CHANNELS,
    WorkspaceError,
    create_workspace,
    find_workspace,
    list_connections,
    list_workspaces,
    remove_connection,
    set_active,
    set_connection,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workspaces = subparsers.add_parser(
        "workspaces",
        help="manage the businesses (workspaces) this install serves",
        description="Manage workspaces: each business served by this install, with its own team, "
        "channels and data. The first workspace is the install's own (configured by the "
        "environment).",
    )
    sub = workspaces.add_subparsers(dest="workspaces_command", metavar="ACTION")
    sub.required = True

    add = sub.add_parser(
        "add",
        help="create a workspace (and its first admin)",
        description="Create a workspace. With --admin-email, its first admin: an agent with that "
        "email joins as admin, or a new agent is created and its API token printed once.",
    )
    add.add_argument("slug", metavar="SLUG", help="short name: lower-case letters, digits, dashes")
    add.add_argument("--name", required=True, help="the business's name")
    add.add_argument("--admin-email", help="the first admin's email")
    add.add_argument("--admin-name", help="the first admin's name, when the agent is new")
    add.add_argument("--json", action="store_true", help="print the workspace (and admin) as JSON")
    add.set_defaults(func=run_add)

    ls = sub.add_parser("list", help="list workspaces", description="List workspaces.")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(func=run_list)

    for action, verb in (("disable", "Disable"), ("enable", "Re-enable")):
        cmd = sub.add_parser(
            action,
            help=f"{verb.lower()} a workspace",
            description=f"{verb} a workspace by slug or id."
            + (
                " Its channels stop being answered (their events are acknowledged and dropped); "
                "its data stays."
                if action == "disable"
                else ""
            ),
        )
        cmd.add_argument("target", metavar="SLUG", help="slug or id")
        cmd.set_defaults(func=run_set_active, active=action == "enable")

    key = sub.add_parser(
        "secret-key",
        help="print a new random LEADDESK_SECRET_KEY",
        description="Print a new random key for LEADDESK_SECRET_KEY, which encrypts the channel "
        "credentials stored in the database (and signs console sessions). Set it once and keep "
        "it: stored credentials do not open with another key.",
    )
    key.set_defaults(func=run_secret_key, needs_settings=False)

    channel = sub.add_parser(
        "channel",
        help="connect a workspace to its WhatsApp number, Page, Instagram account or web widget",
        description="Manage a workspace's channel connections: which account's events are its "
        "own, and the credentials its replies go out with (stored encrypted with "
        "LEADDESK_SECRET_KEY).",
    )
    channel.add_argument("target", metavar="SLUG", help="slug or id")
    actions = channel.add_subparsers(dest="channel_command", metavar="ACTION")
    actions.required = True
    set_ = actions.add_parser(
        "set",
        help="connect (or reconnect) an account",
        description="Connect an account: a WhatsApp phone number id, a Facebook Page id, an "
        "Instagram account id or a web widget key (made for you when --account is left out). "
        "The credentials given replace any earlier ones.",
    )
    set_.add_argument("channel", choices=CHANNELS, help="the channel")
    set_.add_argument("--account", help="the account id (web: the widget key; default: a new one)")
    set_.add_argument("--token", help="the access token replies are sent with")
    set_.add_argument("--app-secret", help="the Meta app secret its webhooks are signed with")
    set_.add_argument("--app-id", help="the Meta app id (its echoes are the bot's own replies)")
    set_.add_argument("--verify-token", help="the verify token of its webhook subscription")
    set_.add_argument(
        "--identity-secret", help="web: the secret the site signs visitors' identities with"
    )
    set_.add_argument("--json", action="store_true", help="print the connection as JSON")
    set_.set_defaults(func=run_channel_set)
    cls = actions.add_parser(
        "list",
        help="list the workspace's connections",
        description="List the workspace's connections (credentials by name, never their values).",
    )
    cls.add_argument("--json", action="store_true", help="print a JSON array")
    cls.set_defaults(func=run_channel_list)
    rm = actions.add_parser(
        "remove",
        help="disconnect an account",
        description="Disconnect an account: its events are no longer this workspace's.",
    )
    rm.add_argument("channel", choices=CHANNELS, help="the channel")
    rm.add_argument("account", metavar="ACCOUNT", help="the account id or widget key")
    rm.set_defaults(func=run_channel_remove)


def _find(session: Session, ref: str) -> Workspace:
    workspace = find_workspace(ref, session=session)
    if workspace is None:
        raise UserError(f"no workspace matches {ref!r} (use its slug or id)")
    return workspace


def _describe(workspace: Workspace) -> dict[str, object]:
    return {
        "id": workspace.id,
        "slug": workspace.slug,
        "name": workspace.name,
        "active": bool(workspace.active),
    }


def run_secret_key(args: argparse.Namespace, settings: Settings | None) -> int:
    print(new_secret_key())
    return 0


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    if args.admin_name and not args.admin_email:
        raise UserError("--admin-name needs --admin-email")
    admin: dict[str, object] | None = None
    token: str | None = None
    with open_store(settings) as session_factory:
        try:
            with session_factory.begin() as session:
                workspace = create_workspace(args.slug, args.name, session=session)
                info = _describe(workspace)
                if args.admin_email:
                    admin, token = _first_admin(workspace.id, args, session=session)
        except (WorkspaceError, AgentError, InvalidContact) as exc:
            raise UserError(str(exc)) from None
        except IntegrityError:
            raise UserError(f"an agent with email {args.admin_email} already exists") from None
    if args.json:
        print_json({**info, "admin": {**admin, "token": token} if admin else None})
        return 0
    print(f"workspace {info['id']} ({info['slug']}, {info['name']}) created")
    if admin is not None:
        joined = "created" if token else "joined"
        print(f"admin: agent {admin['id']} ({admin['name']}) {joined}")
        if token:
            print(f"API token (shown once, keep it safe): {token}")
    return 0


def _first_admin(
    workspace_id: int, args: argparse.Namespace, *, session: Session
) -> tuple[dict[str, object], str | None]:
    """The workspace's first admin: the agent with that email (anywhere) joins it, or a new one
    is made (with its token)."""
    email = normalize_email(args.admin_email)
    existing = session.scalars(
        select(Agent)
        .where(func.lower(Agent.email) == email.lower())
        .execution_options(**all_workspaces())
    ).first()
    with in_workspace(workspace_id):
        if existing is not None:
            existing.role = "admin"  # a membership of the workspace in force
            session.flush()
            return {"id": existing.id, "name": existing.name, "email": existing.email}, None
        # A new workspace has no leads waiting for an agent: nothing for a policy to decide.
        agent, token = add_agent(
            args.admin_name or email.split("@")[0],
            session=session,
            policy=Policy(),
            now=utcnow(),
            email=email,
            role="admin",
        )
        return {"id": agent.id, "name": agent.name, "email": agent.email}, token


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, read_session(session_factory) as session:
        found = [_describe(w) for w in list_workspaces(session=session)]
    if args.json:
        print_json(found)
        return 0
    rows = [
        [str(w["id"]), str(w["slug"]), str(w["name"]), "yes" if w["active"] else "no"]
        for w in found
    ]
    print(table(rows, ["ID", "SLUG", "NAME", "ACTIVE"]))
    return 0


def run_set_active(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory:
        try:
            with session_factory.begin() as session:
                workspace = _find(session, args.target)
                changed = bool(workspace.active) != args.active
                set_active(workspace, args.active, session=session)
                info = _describe(workspace)
        except WorkspaceError as exc:
            raise UserError(str(exc)) from None
    state = "enabled" if args.active else "disabled"
    who = f"workspace {info['id']} ({info['slug']})"
    print(f"{who} {state}" if changed else f"{who} was already {state}")
    return 0


def run_channel_set(args: argparse.Namespace, settings: Settings) -> int:
    credentials = {
        "access_token": args.token,
        "app_secret": args.app_secret,
        "app_id": args.app_id,
        "verify_token": args.verify_token,
        "identity_secret": args.identity_secret,
    }
    with open_store(settings) as session_factory:
        try:
            with session_factory.begin() as session:
                workspace = _find(session, args.target)
                connection = set_connection(
                    workspace,
                    args.channel,
                    args.account,
                    {k: v for k, v in credentials.items() if v},
                    session=session,
                    key=settings.secret,
                )
                slug, account = workspace.slug, connection.account_id
        except (WorkspaceError, SealError) as exc:
            raise UserError(str(exc)) from None
    if args.json:
        print_json({"workspace": slug, "channel": args.channel, "account_id": account})
        return 0
    print(f"{args.channel} {ACCOUNT_NAMES[args.channel]} {account} connected to {slug}")
    if args.channel == "web":
        print(f'widget: <script src=".../static/leaddesk-widget.js" data-key="{account}"></script>')
    return 0


def run_channel_list(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, read_session(session_factory) as session:
        workspace = _find(session, args.target)
        found = list_connections(workspace.id, session=session, key=settings.secret)
        slug = workspace.slug
    if args.json:
        print_json(
            [
                {"channel": c.channel, "account_id": c.account_id, "credentials": c.credentials}
                for c in found
            ]
        )
        return 0
    if not found:
        print(f"no channel connections yet: add one with `leaddesk workspaces channel {slug} set`")
        return 0
    rows = [[c.channel, c.account_id, ", ".join(c.credentials)] for c in found]
    print(table(rows, ["CHANNEL", "ACCOUNT", "CREDENTIALS"]))
    return 0


def run_channel_remove(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory:
        try:
            with session_factory.begin() as session:
                workspace = _find(session, args.target)
                removed = remove_connection(workspace, args.channel, args.account, session=session)
                slug = workspace.slug
        except WorkspaceError as exc:
            raise UserError(str(exc)) from None
    if not removed:
        raise UserError(f"{slug} has no {args.channel} connection {args.account}")
    print(f"{args.channel} {args.account} disconnected from {slug}")
    return 0
