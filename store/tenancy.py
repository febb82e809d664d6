"""Workspaces: which business a piece of work belongs to, and the one filter that keeps them apart.

Every row of a business's data (leads, identities, conversations, messages, notes, tasks, audit…)
carries a `workspace_id`. The workspace of the work in hand is a context variable: the web request,
the inbox drain, the bot's job, the sweeper's round and the CLI each enter theirs with
`in_workspace(id)`. Then every ORM statement a session of `store.make_session_factory` runs
is filtered to it (`scope_sessions`: a `with_loader_criteria` on SELECT, UPDATE and DELETE,
relationship loads included) and every new row is stamped with it (the column's default). No
front end passes the filter by hand; forgetting to enter a workspace finds nothing of another one.

Agents are people who may work in several workspaces: an agent is visible in a workspace when it
is a member of it (`WorkspaceMember`, with the role it has there).

Outside any `in_workspace` the first workspace (`FIRST_WORKSPACE`, the one an install that has
never heard of workspaces has) is in force. Work that must see every workspace at once (the
inbox drain, finding which workspace a conversation belongs to, signing a person in before their
workspace is known) asks for it explicitly with the `ALL_WORKSPACES` execution option. A statement
the bot runs at every message may instead write the filter in itself (`filter_written_in`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

FIRST_WORKSPACE = 1
# An execution option: `session.execute(stmt.execution_options(all_workspaces=True))` or
# `session.connection(execution_options=...)` sees every workspace.
ALL_WORKSPACES = "all_workspaces"

_current: ContextVar[int] = ContextVar("leaddesk_workspace", default=FIRST_WORKSPACE)


def current_workspace() -> int:
    """The id of the workspace the work in hand belongs to."""
    return _current.get()


@contextmanager
def in_workspace(workspace_id: int) -> Iterator[int]:
    """Run the block in workspace `workspace_id`: its reads see only that workspace, its new rows
    belong to it."""
    token = _current.set(workspace_id)
    try:
        yield workspace_id
    finally:
        _current.reset(token)


def enter_workspace(workspace_id: int) -> object:
    """`in_workspace` for code that cannot hold a `with` (a Flask request): returns the token
    `leave_workspace` takes."""
    return _current.set(workspace_id)


def leave_workspace(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def _scope(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria of the statement that loaded the parent propagate to these
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get(ALL_WORKSPACES):
        return
    workspace_id = _current.get()
    statement = state.statement
    scoped = _scoped.get(statement)
    if scoped is None:
        scoped = _scoped.setdefault(statement, {})
    found = scoped.get(workspace_id)
    if found is None:
        options = _criteria.get(workspace_id)
        if options is None:
            options = _criteria.setdefault(workspace_id, _make_criteria(workspace_id))
        found = scoped.setdefault(workspace_id, statement.options(*options))
    state.statement = found


# Each statement with the filter of each workspace, kept while the statement lives: a statement
# the store builds once and runs often (most of the bot's) gets the same filtered statement every
# time, whose cache key SQLAlchemy then works out once instead of at every execution.
_scoped: WeakKeyDictionary[Any, dict[int, Any]] = WeakKeyDictionary()


# The filter's options for each workspace, made once. One plain condition per scoped class rather
# than one lambda for the mixin: a plain condition's value travels with the statement like any
# bound parameter, whatever the thread or the compiled-statement cache.
_criteria: dict[int, tuple[Any, ...]] = {}


def _make_criteria(workspace_id: int) -> tuple[Any, ...]:
    # Imported here: the models import this module for the column default.
    from store.models import Agent, WorkspaceMember, WorkspaceScoped  # noqa: PLC0415

    members = select(WorkspaceMember.agent_id).where(WorkspaceMember.workspace_id == workspace_id)
    scoped = [
        mapper.class_
        for mapper in Agent.registry.mappers
        if issubclass(mapper.class_, WorkspaceScoped)
    ]
    return (
        *(
            with_loader_criteria(cls, cls.workspace_id == workspace_id, include_aliases=True)
            for cls in sorted(scoped, key=lambda cls: cls.__name__)
        ),
        with_loader_criteria(Agent, Agent.id.in_(members), include_aliases=True),
    )


# The mark of a session factory whose sessions are filtered.
_SCOPED = "_leaddesk_workspace_scoped"


def scope_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Make every session of `factory` see only the current workspace (see the module's text)."""
    # Marked on the factory's own Session class, not asked of `event.contains`: SQLAlchemy's event
    # registry keys a listener by the id() of its target, so a new factory whose Session class
    # reuses the address of a collected one looked as if it had the filter and went without.
    if not factory.class_.__dict__.get(_SCOPED, False):
        event.listen(factory, "do_orm_execute", _scope)
        setattr(factory.class_, _SCOPED, True)
    return factory


def all_workspaces() -> dict[str, Any]:
    """Execution options that lift the workspace filter for one statement."""
    return {ALL_WORKSPACES: True}


def filter_written_in() -> dict[str, Any]:
    """Execution options for an ORM statement that filters on the workspace in force itself
    (`workspace_id == current_workspace()` on each of its rows' tables): the session then adds
    no options at each execution, which were a quarter to a half of the work of the bot's two
    such reads. The relationships of the rows it loads load without the filter too: a lead's
    rows are in its workspace, but an assigned agent would not be checked for membership."""
    return all_workspaces()
