"""Two workspaces with overlapping data for the tests of people, the API, the console and the
copilot: the install's own ("default", A) and "beta" (B), the same customer phone in both, and
people who work in one or both with different roles.

Everything of B that people read (lead names, notes, task titles, messages) carries the word
`MARK`, so a test can tell at a glance that nothing of B reached a view of A.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.domain.team import add_member
from store.models import (
    Agent,
    Conversation,
    Lead,
    Message,
    Note,
    Task,
    WorkspaceMember,
)
from store.tenancy import FIRST_WORKSPACE, all_workspaces, in_workspace
from store.work import add_note
from store.workspaces import create_workspace

PHONE = "+14155550100"
MARK = "zebra"
HEADER = "X-Leaddesk-Workspace"


@dataclass
class TwoWorkspaces:
    """Ids of the people and rows of both workspaces, and each person's API client (`Api`)."""

    a: int
    b: int
    ada_id: int  # admin in A, agent in B
    alan_id: int  # admin of A only
    carl_id: int  # agent of A only
    bob_id: int  # admin of B only
    ada: Any
    alan: Any
    carl: Any
    bob: Any
    a_leads: list[int]
    b_leads: list[int]  # [unassigned with the shared phone, Bob's]
    b_notes: list[int]
    b_conversations: list[int]
    b_messages: list[int]
    b_tasks: list[int]
    a_notes: list[int]
    a_conversations: list[int]
    a_messages: list[int]
    a_tasks: list[int]

    def header(self, workspace: str | int) -> dict[str, str]:
        return {HEADER: str(workspace)}


def second_workspace(session: Session, slug: str = "beta", name: str = "Beta Ltd") -> int:
    """Create a workspace beside the first; its id."""
    # The first workspace's row is there (migrated, or put back by the PostgreSQL test database's
    # reset in tests/conftest.py), and create_workspace numbers after it.
    return create_workspace(slug, name, session=session).id


def two_workspaces(world: Any, session_factory: sessionmaker[Session]) -> TwoWorkspaces:
    """Build both workspaces through the store (`world`: the API tests' factories)."""
    with session_factory.begin() as session:
        b = second_workspace(session)
    ada_id, ada = world.agent("Ada", role="admin", email="ada@example.com")
    alan_id, alan = world.agent("Alan", role="admin", email="alan@example.com")
    carl_id, carl = world.agent("Carl", email="carl@example.com")
    a_leads = [
        world.lead("Alpha One", channel="whatsapp", phone=PHONE),
        world.lead("Alpha Two", agent_id=carl_id),
    ]
    a_messages = [
        world.customer_message(a_leads[0], "alpha hello", channel="whatsapp"),
        world.customer_message(a_leads[1], "alpha there", channel="web"),
    ]
    with session_factory.begin() as session:
        a_notes = [
            add_note(session.get(Lead, lead_id), "alpha note", session=session).id
            for lead_id in a_leads
        ]
        a_conversations = list(
            session.scalars(select(Conversation.id).where(Conversation.lead_id.in_(a_leads)))
        )
    with in_workspace(b):
        bob_id, bob = world.agent("Bob", role="admin", email="bob@example.com")
        with session_factory.begin() as session:
            add_member("ada@example.com", "agent", session=session)
        b_leads = [
            world.lead(f"{MARK.title()} One", channel="whatsapp", phone=PHONE),
            world.lead(f"{MARK.title()} Two", agent_id=bob_id),
        ]
        b_messages = [
            world.customer_message(b_leads[0], f"{MARK} hello", channel="whatsapp"),
            world.customer_message(b_leads[1], f"{MARK} there", channel="web"),
        ]
        with session_factory.begin() as session:
            b_notes = [
                add_note(session.get(Lead, lead_id), f"{MARK} note", session=session).id
                for lead_id in b_leads
            ]
            b_conversations = list(
                session.scalars(select(Conversation.id).where(Conversation.lead_id.in_(b_leads)))
            )
    created = bob.post(
        "/api/tasks", json={"lead_id": b_leads[1], "title": f"{MARK} call", "kind": "call"}
    )
    assert created.status_code == 201, created.get_json()
    b_tasks = [created.get_json()["id"]]
    created = alan.post(
        "/api/tasks", json={"lead_id": a_leads[1], "title": "alpha call", "kind": "call"}
    )
    assert created.status_code == 201, created.get_json()
    a_tasks = [created.get_json()["id"]]
    return TwoWorkspaces(
        a=FIRST_WORKSPACE,
        b=b,
        ada_id=ada_id,
        alan_id=alan_id,
        carl_id=carl_id,
        bob_id=bob_id,
        ada=ada,
        alan=alan,
        carl=carl,
        bob=bob,
        a_leads=a_leads,
        b_leads=b_leads,
        b_notes=b_notes,
        b_conversations=b_conversations,
        b_messages=b_messages,
        b_tasks=b_tasks,
        a_notes=a_notes,
        a_conversations=a_conversations,
        a_messages=a_messages,
        a_tasks=a_tasks,
    )


def snapshot(session_factory: sessionmaker[Session], workspace_id: int) -> dict[str, Any]:
    """Everything of one workspace a request could change, as plain values (to compare)."""

    def rows(model: Any, *columns: str) -> list[tuple[Any, ...]]:
        with session_factory() as session:
            found = session.scalars(
                select(model)
                .where(model.workspace_id == workspace_id)
                .order_by(*[getattr(model, c) for c in columns[:1]])
                .execution_options(**all_workspaces())
            ).all()
            return [tuple(getattr(row, c) for c in columns) for row in found]

    with session_factory() as session:
        members = sorted(
            (m.agent_id, m.role)
            for m in session.scalars(
                select(WorkspaceMember).where(WorkspaceMember.workspace_id == workspace_id)
            )
        )
        people = sorted(
            (a.id, a.name, a.email, a.active, a.capacity, a.token_hash, a.password_hash)
            for a in session.scalars(
                select(Agent)
                .where(Agent.id.in_([agent_id for agent_id, _role in members]))
                .execution_options(**all_workspaces())
            )
        )
    return {
        "leads": rows(
            Lead,
            "id",
            "name",
            "email",
            "phone",
            "status",
            "score",
            "assigned_agent_id",
            "archived",
            "locked",
            "merged_into_id",
            "custom_fields",
            "tags",
            "ai_paused_until",
            "ai_stopped",
        ),
        "notes": rows(Note, "id", "lead_id", "text", "category"),
        "tasks": rows(Task, "id", "lead_id", "title", "due_at", "done_at", "agent_id"),
        "conversations": rows(Conversation, "id", "lead_id", "ai_stopped"),
        "messages": rows(Message, "id", "conversation_id", "text", "delivery_status"),
        "members": members,
        "people": people,
    }
