"""Workspaces: create, find, list, disable; an agent's memberships; channel connections (which
account on which channel is whose, with its credentials sealed) and the routing of an inbound
event to its workspace (`route`).

Like every repository module: keyword-only `session`, no commits. These read the `workspaces`
table itself, which is not scoped (it is the scope); memberships are read across workspaces, with
the `ALL_WORKSPACES` option, since a person's workspaces are what decides where they may work.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import ChannelConnection, Workspace, WorkspaceMember, utcnow
from store.sealed import SealError, seal, unseal
from store.tenancy import FIRST_WORKSPACE, all_workspaces

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
# A workspace's prompts are LEADDESK_PROMPTS_DIR/<slug>/, beside the first workspace's own
# sub-directories (bot.reload.CONFIG_DIRS and the eval cases): a slug may not be one of them.
RESERVED_SLUGS = frozenset({"copilot", "eval", "knowledge", "replies", "templates"})
# The first workspace when its row is missing (a database emptied by hand): it always exists.
FIRST_SLUG = "default"


class WorkspaceError(ValueError):
    """A workspace that cannot be created or changed as asked (the message says why)."""


def check_slug(slug: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        raise WorkspaceError(
            "a workspace's slug is 1-60 lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    if slug in RESERVED_SLUGS:
        raise WorkspaceError(
            f"{slug!r} names a directory of the prompts, so it cannot name a workspace"
        )
    return slug


def create_workspace(slug: str, name: str, *, session: Session) -> Workspace:
    """A new, active workspace; `WorkspaceError` when the slug is malformed or taken."""
    slug = check_slug(slug)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise WorkspaceError("a workspace's name is 1-200 characters")
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise WorkspaceError(f"a workspace {slug!r} already exists")
    _keep_first(session)
    for _attempt in range(3):
        # Ids after the highest (never the first's, whatever a sequence says after a restore);
        # the primary key and the slug's unique index decide a race.
        number = (session.scalar(select(func.max(Workspace.id))) or FIRST_WORKSPACE) + 1
        workspace = Workspace(id=number, slug=slug, name=name, active=True, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(workspace)
        except IntegrityError:
            if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
                raise WorkspaceError(f"a workspace {slug!r} already exists") from None
            continue
        return workspace
    raise WorkspaceError("could not create the workspace (busy): try again")


def _keep_first(session: Session) -> None:
    """Put back the first workspace's row if it is missing (a database emptied by hand)."""
    if session.get(Workspace, FIRST_WORKSPACE) is None:
        with session.begin_nested():
            session.add(
                Workspace(
                    id=FIRST_WORKSPACE,
                    slug=FIRST_SLUG,
                    name="Default",
                    active=True,
                    created_at=utcnow(),
                )
            )


def get_workspace(workspace_id: int, *, session: Session) -> Workspace | None:
    found = session.get(Workspace, workspace_id)
    if found is None and workspace_id == FIRST_WORKSPACE:
        return Workspace(id=FIRST_WORKSPACE, slug=FIRST_SLUG, name="Default", active=True)
    return found


def find_workspace(ref: str | int, *, session: Session) -> Workspace | None:
    """A workspace by id or slug (as a request or the CLI names it), or None."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        number = int(ref)
        return get_workspace(number, session=session) if 0 < number < 2**31 else None
    slug = str(ref).strip().lower()
    found = session.scalars(select(Workspace).where(Workspace.slug == slug)).first()
    if found is None and slug == FIRST_SLUG:
        return get_workspace(FIRST_WORKSPACE, session=session)
    return found


def list_workspaces(*, session: Session, active_only: bool = False) -> list[Workspace]:
    statement = select(Workspace).order_by(Workspace.id)
    if active_only:
        statement = statement.where(Workspace.active.is_(True))
    found = list(session.scalars(statement))
    if not any(w.id == FIRST_WORKSPACE for w in found):
        first = get_workspace(FIRST_WORKSPACE, session=session)
        assert first is not None
        found.insert(0, first)
    return found


def active_workspace_ids(*, session: Session) -> list[int]:
    """The workspaces whose channels are answered and whose background work runs."""
    return [w.id for w in list_workspaces(session=session, active_only=True)]


def set_active(workspace: Workspace, active: bool, *, session: Session) -> None:
    if workspace.id == FIRST_WORKSPACE and not active:
        raise WorkspaceError("the first workspace is the install's own and cannot be disabled")
    if session.get(Workspace, workspace.id) is None:  # the first, without its row
        session.add(workspace)
    workspace.active = active
    session.flush()


def memberships(agent_id: int, *, session: Session) -> Sequence[WorkspaceMember]:
    """Every workspace the agent belongs to (with the role there), first workspace first."""
    return session.scalars(
        select(WorkspaceMember)
        .where(WorkspaceMember.agent_id == agent_id)
        .order_by(WorkspaceMember.workspace_id)
        .execution_options(**all_workspaces())
    ).all()


# -- channel connections ---------------------------------------------------------------------------

CHANNELS = ("whatsapp", "messenger", "instagram", "web")
# What a workspace's account is called on each channel (for messages that name it).
ACCOUNT_NAMES = {
    "whatsapp": "WhatsApp phone number id",
    "messenger": "Facebook Page id",
    "instagram": "Instagram account id",
    "web": "web widget key",
}
WIDGET_KEY_PREFIX = "wk_"


@dataclass(frozen=True)
class ConnectionInfo:
    """A channel connection as listings show it: which credentials it holds, never their values."""

    id: int
    workspace_id: int
    channel: str
    account_id: str
    credentials: tuple[str, ...]


def check_channel(channel: str) -> str:
    channel = (channel or "").strip().lower()
    if channel not in CHANNELS:
        raise WorkspaceError(f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")
    return channel


def new_widget_key() -> str:
    return WIDGET_KEY_PREFIX + secrets.token_urlsafe(18)


def set_connection(
    workspace: Workspace,
    channel: str,
    account_id: str | None,
    credentials: dict[str, str] | None = None,
    *,
    session: Session,
    key: str | None,
    keep_unset: bool = False,
) -> ChannelConnection:
    """Connect the workspace to its account on a channel (a web widget without a key gets a new
    random one), with these credentials sealed under `key` (they replace any earlier ones; with
    `keep_unset`, earlier ones not given again are kept, as a form left blank means).

    `WorkspaceError` when the account belongs to another workspace; `SealError` when there are
    credentials to store and no key."""
    channel = check_channel(channel)
    account_id = (account_id or "").strip()
    if not account_id:
        if channel != "web":
            raise WorkspaceError(f"give the {ACCOUNT_NAMES[channel]} to connect")
        account_id = new_widget_key()
    if len(account_id) > 200 or any(c.isspace() for c in account_id):
        raise WorkspaceError(f"a {ACCOUNT_NAMES[channel]} is 1-200 characters without spaces")
    values = {k: v.strip() for k, v in (credentials or {}).items() if v and v.strip()}
    existing = session.scalars(
        select(ChannelConnection).where(
            ChannelConnection.channel == channel, ChannelConnection.account_id == account_id
        )
    ).first()
    if existing is not None and existing.workspace_id != workspace.id:
        raise WorkspaceError(
            f"{channel} account {account_id} is already connected to another workspace"
        )
    if keep_unset and existing is not None and existing.secrets:
        values = {**unseal(existing.secrets, key), **values}
    sealed = seal(values, key) if values else None
    if existing is None:
        existing = ChannelConnection(
            workspace_id=workspace.id, channel=channel, account_id=account_id, created_at=utcnow()
        )
        try:
            with session.begin_nested():
                session.add(existing)
                session.flush()
        except IntegrityError:
            raise WorkspaceError(
                f"{channel} account {account_id} is already connected to another workspace"
            ) from None
    existing.secrets = sealed
    existing.updated_at = utcnow()
    session.flush()
    return existing


def remove_connection(
    workspace: Workspace, channel: str, account_id: str, *, session: Session
) -> bool:
    """Disconnect the workspace's account on a channel; False when it had no such connection."""
    found = session.scalars(
        select(ChannelConnection).where(
            ChannelConnection.workspace_id == workspace.id,
            ChannelConnection.channel == check_channel(channel),
            ChannelConnection.account_id == (account_id or "").strip(),
        )
    ).first()
    if found is None:
        return False
    session.delete(found)
    session.flush()
    return True


def list_connections(
    workspace_id: int, *, session: Session, key: str | None = None
) -> list[ConnectionInfo]:
    """The workspace's connections, by channel, with the names of the credentials each holds (read
    with `key`; without it, or when they do not open, "sealed"): never their values."""
    rows = session.scalars(
        select(ChannelConnection)
        .where(ChannelConnection.workspace_id == workspace_id)
        .order_by(ChannelConnection.channel, ChannelConnection.id)
    ).all()
    return [
        ConnectionInfo(row.id, row.workspace_id, row.channel, row.account_id, _names(row, key))
        for row in rows
    ]


def _names(row: ChannelConnection, key: str | None) -> tuple[str, ...]:
    if not row.secrets:
        return ()
    try:
        return tuple(sorted(unseal(row.secrets, key)))
    except SealError:
        return ("sealed",)


def connection_for(channel: str, account_id: str, *, session: Session) -> ChannelConnection | None:
    """The connection of this account on this channel, whichever workspace it belongs to."""
    return session.scalars(
        select(ChannelConnection).where(
            ChannelConnection.channel == channel, ChannelConnection.account_id == account_id
        )
    ).first()


def sealed_credentials(channel: str, *, session: Session) -> list[str]:
    """The sealed credentials of every connection on a channel (e.g. to find a verify token)."""
    return [
        sealed
        for sealed in session.scalars(
            select(ChannelConnection.secrets).where(
                ChannelConnection.channel == channel, ChannelConnection.secrets.is_not(None)
            )
        )
        if sealed
    ]


def workspace_connection(
    workspace_id: int, channel: str, *, session: Session
) -> ChannelConnection | None:
    """The workspace's account on a channel (its first, when it has several): the one replies
    go out through."""
    return session.scalars(
        select(ChannelConnection)
        .where(ChannelConnection.workspace_id == workspace_id, ChannelConnection.channel == channel)
        .order_by(ChannelConnection.id)
        .limit(1)
    ).first()


def route(
    channel: str, account_id: str | None, *, session: Session, env_account: str | None
) -> int | None:
    """The workspace an event for `account_id` on `channel` belongs to, or None (drop it).

    - an account connected to a workspace: that workspace, while it is active;
    - the first workspace's account as the environment names it (`env_account`, e.g.
      WHATSAPP_PHONE_NUMBER_ID): the first workspace;
    - when the first workspace names no account on the channel (neither in the environment nor
      by a connection) and no workspace claims this one: the first workspace, so an install that
      never heard of workspaces sees no change;
    - else None: the account is nobody's here.
    """
    account_id = (account_id or "").strip() or None
    if account_id is not None:
        found = connection_for(channel, account_id, session=session)
        if found is not None:
            workspace = get_workspace(found.workspace_id, session=session)
            return found.workspace_id if workspace is not None and workspace.active else None
    env_account = (env_account or "").strip() or None
    if env_account is not None:
        return FIRST_WORKSPACE if account_id == env_account else None
    if workspace_connection(FIRST_WORKSPACE, channel, session=session) is not None:
        return None
    return FIRST_WORKSPACE


class WorkspaceNotChosen(WorkspaceError):
    """The agent works in several workspaces and the request named none of them."""


class NotAMember(WorkspaceError):
    """The workspace named is not one the agent may work in (it may not exist, be disabled, or be
    someone else's: the message does not say which)."""


def agent_workspaces(agent_id: int, *, session: Session) -> list[tuple[Workspace, str]]:
    """The active workspaces the agent belongs to, each with their role there, first first."""
    found: list[tuple[Workspace, str]] = []
    for member in memberships(agent_id, session=session):
        workspace = get_workspace(member.workspace_id, session=session)
        if workspace is not None and workspace.active:
            found.append((workspace, member.role))
    return found


def choose_workspace(agent_id: int, ref: str | int | None, *, session: Session) -> Workspace:
    """The workspace a request of the agent works in: the one `ref` names (id or slug), or with
    no `ref` their only one. `WorkspaceNotChosen` when they have several and named none,
    `NotAMember` when the one named is not theirs (or they have none at all)."""
    theirs = agent_workspaces(agent_id, session=session)
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        if len(theirs) == 1:
            return theirs[0][0]
        if not theirs:
            raise NotAMember("this agent is not a member of any active workspace")
        raise WorkspaceNotChosen("this agent works in several workspaces: name one")
    named = find_workspace(ref, session=session)
    for workspace, _role in theirs:
        if named is not None and workspace.id == named.id:
            return workspace
    raise NotAMember("no workspace of yours by that name")
