"""A workspace's team: who works in the workspace in force and with which role.

A person (an `Agent` row: name, email, tokens, active) may work in several workspaces; an admin
manages the team of their own workspace: adds an existing person by email, changes their role
there, removes them from it (their leads there become unassigned). What belongs to the person in
every workspace (name, email, password, token, enabled) is changed by an admin only when the person
works nowhere that admin does not administer, so an admin of one workspace can never take over a
person's access to another.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.agents import person_by_email
from store.contacts import normalize_email
from store.domain.assignment import reassign_book
from store.domain.errors import Conflict, Invalid, NotAllowed, NotFound
from store.models import AGENT_ROLES, Agent, Lead
from store.tenancy import current_workspace
from store.workspaces import memberships


def check_role(role: str) -> str:
    if role not in AGENT_ROLES:
        raise Invalid(f"role must be one of {', '.join(AGENT_ROLES)}", field="role")
    return role


def check_keeps_an_admin(agent: Agent, *, session: Session) -> None:
    """`Conflict` (`last_admin`) when `agent` is the workspace's last active admin (demoting,
    disabling or removing them would leave nobody to manage it)."""
    if agent.role != "admin" or not agent.active:
        return
    # Agent.role and the Agent filter both read the workspace in force: a count of this one.
    others = session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(Agent.role == "admin", Agent.active.is_(True), Agent.id != agent.id)
    )
    if not others:
        raise Conflict("this is the last active admin; make another admin first", code="last_admin")


def check_manages_person(by: Agent, target: Agent, *, session: Session) -> None:
    """`NotAllowed` unless `by` may change what is `target`'s in every workspace (name, email,
    password, token, enabled): themselves, or someone working only where `by` is an admin."""
    if by.id == target.id:
        return
    mine = {m.workspace_id for m in memberships(by.id, session=session) if m.role == "admin"}
    theirs = {m.workspace_id for m in memberships(target.id, session=session)}
    if not theirs <= mine:
        raise NotAllowed(
            f"{target.name} also works in other workspaces: only they can change their account "
            "(you can change their role here or remove them from this workspace)",
            code="other_workspaces",
        )


def add_member(email: str, role: str, *, session: Session) -> Agent:
    """Add the existing person with this email to the workspace in force with `role`.
    `NotFound` when nobody has that email, `Conflict` when they already work here."""
    check_role(role)
    try:
        address = normalize_email(email)
    except ValueError:
        raise Invalid("give the person's email address", field="email") from None
    person = person_by_email(address, session=session, any_case=True)
    if person is None or not person.active:
        raise NotFound(
            f"nobody with the email {address} can be added; create a new agent instead",
            field="email",
        )
    if person.role:
        raise Conflict(f"{person.name} already works in this workspace", code="duplicate")
    person.role = role  # makes the membership of the workspace in force
    session.flush()
    return person


def set_role(agent: Agent, role: str, *, session: Session) -> bool:
    """Change the agent's role in the workspace in force (the last admin stays one). Whether it
    changed."""
    check_role(role)
    if role == agent.role:
        return False
    if role != "admin":
        check_keeps_an_admin(agent, session=session)
    agent.role = role
    session.flush()
    return True


def remove_member(agent: Agent, *, by: Agent, session: Session) -> list[int]:
    """Take the agent out of the workspace in force (the person stays, with their other
    workspaces); their leads here become unassigned. Returns the ids of those leads."""
    check_keeps_an_admin(agent, session=session)
    if agent.id == by.id:
        raise NotAllowed("you cannot remove yourself from the workspace", code="forbidden")
    book = list(session.scalars(select(Lead.id).where(Lead.assigned_agent_id == agent.id)))
    moved = reassign_book(agent, None, book, by=by, session=session)
    workspace_id = current_workspace()
    agent.memberships[:] = [m for m in agent.memberships if m.workspace_id != workspace_id]
    session.flush()
    return moved
