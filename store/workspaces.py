"""Workspaces: create, find, list, disable; and an agent's memberships.

Like every repository module: keyword-only `session`, no commits. These read the `workspaces`
table itself, which is not scoped (it is the scope); memberships are read across workspaces, with
the `ALL_WORKSPACES` option, since a person's workspaces are what decides where they may work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import Workspace, WorkspaceMember, utcnow
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
    workspace = Workspace(slug=slug, name=name, active=True, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(workspace)
    except IntegrityError:
        raise WorkspaceError(f"a workspace {slug!r} already exists") from None
    return workspace


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
