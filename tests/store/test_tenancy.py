"""Workspaces kept apart by the store itself: every ORM statement of a session sees only the
workspace in force, new rows belong to it, and uniqueness is per workspace."""

from __future__ import annotations

import gc
import threading

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from store import make_session_factory
from store.agents import create_agent
from store.identity import load_standing
from store.leads import (
    LeadNotFound,
    batched_audit,
    find_lead_by_phone,
    get_lead,
    known_sender,
    record_audit,
    write_audit,
)
from store.messages import Inbound, ingest
from store.models import (
    Agent,
    AuditEvent,
    Conversation,
    Identity,
    Lead,
    Message,
    Note,
    WorkspaceMember,
)
from store.tenancy import FIRST_WORKSPACE, all_workspaces, current_workspace, in_workspace
from store.workspaces import WorkspaceError, create_workspace, find_workspace, memberships

PHONE = "+14155550123"


@pytest.fixture
def two(session_factory):
    """Workspace 1 (the first) and a second one, each with the same customer writing on WhatsApp."""
    with session_factory.begin() as session:
        other = create_workspace("acme", "Acme", session=session).id
    found = {}
    for workspace_id in (FIRST_WORKSPACE, other):
        with in_workspace(workspace_id), session_factory.begin() as session:
            stored = ingest(
                Inbound(
                    channel="whatsapp",
                    external_id=PHONE.lstrip("+"),
                    phone=PHONE,
                    text=f"hello {workspace_id}",
                    channel_message_id="wamid.same",
                ),
                session=session,
            )
            found[workspace_id] = (stored.lead.id, stored.conversation.id, stored.message.id)
    return found, other


def test_the_same_customer_writing_to_two_workspaces_is_two_leads(session_factory, two):
    found, other = two
    assert found[FIRST_WORKSPACE][0] != found[other][0]
    for workspace_id, (lead_id, conversation_id, message_id) in found.items():
        with in_workspace(workspace_id), session_factory() as session:
            assert find_lead_by_phone(PHONE, session=session).id == lead_id
            assert session.scalars(select(Lead.id)).all() == [lead_id]
            assert session.scalars(select(Conversation.id)).all() == [conversation_id]
            assert session.scalars(select(Message.id)).all() == [message_id]
            assert session.scalar(select(func.count()).select_from(Identity)) == 1
    with session_factory() as session:
        everything = select(func.count()).select_from(Lead).execution_options(**all_workspaces())
        assert session.scalar(everything) == 2


def test_a_known_sender_is_found_only_in_the_workspace_it_wrote_to(session_factory, two):
    # `known_sender` writes the workspace's filter into its own statement (the bot's hot path).
    found, _other = two
    for workspace_id, (lead_id, conversation_id, _message_id) in found.items():
        with in_workspace(workspace_id), session_factory() as session:
            known = known_sender("whatsapp", PHONE.lstrip("+"), phone=PHONE, session=session)
            assert known is not None
            assert (known.lead.id, known.conversation.id) == (lead_id, conversation_id)
            assert known.lead.workspace_id == known.identity.workspace_id == workspace_id
    with session_factory.begin() as session:
        empty = create_workspace("empty", "Empty", session=session).id
    with in_workspace(empty), session_factory() as session:
        assert known_sender("whatsapp", PHONE.lstrip("+"), phone=None, session=session) is None
    # A second message in each workspace stays with that workspace's lead.
    for workspace_id, (lead_id, conversation_id, _message_id) in found.items():
        with in_workspace(workspace_id), session_factory.begin() as session:
            again = ingest(
                Inbound(channel="whatsapp", external_id=PHONE.lstrip("+"), phone=PHONE, text="hi"),
                session=session,
            )
            assert (again.lead.id, again.conversation.id) == (lead_id, conversation_id)


def test_a_conversations_standing_is_read_only_in_its_workspace(session_factory, two):
    # `load_standing` (the bot's turn) writes the workspace's filter into its own statement.
    found, other = two
    mine, theirs = found[FIRST_WORKSPACE], found[other]
    for lock in (False, True):
        with session_factory.begin() as session:  # the first workspace
            standing = load_standing(mine[1], session=session, lock_lead=lock)
            assert standing is not None and standing.lead.id == mine[0]
            assert load_standing(theirs[1], session=session, lock_lead=lock) is None
            assert load_standing(theirs[1], session=session, pending_besides=[]) is None
        with in_workspace(other), session_factory.begin() as session:
            standing = load_standing(theirs[1], session=session, lock_lead=lock)
            assert standing is not None and standing.lead.id == theirs[0]
            assert load_standing(mine[1], session=session, lock_lead=lock) is None


def test_another_workspaces_rows_are_not_found_by_id_nor_through_relationships(
    session_factory, two
):
    found, other = two
    theirs = found[other][0]
    with session_factory() as session:  # the first workspace
        assert session.get(Lead, theirs) is None
        with pytest.raises(LeadNotFound):
            get_lead(theirs, session=session)
        mine = get_lead(found[FIRST_WORKSPACE][0], session=session)
        assert [c.id for c in mine.conversations] == [found[FIRST_WORKSPACE][1]]
        assert all(m.text == "hello 1" for c in mine.conversations for m in c.messages)


def test_updates_and_deletes_reach_only_the_workspace_in_force(session_factory, two):
    found, other = two
    with session_factory.begin() as session:
        changed = session.execute(update(Lead).values(status="Hot")).rowcount
        session.execute(delete(Note))
    assert changed == 1
    with in_workspace(other), session_factory() as session:
        assert session.scalars(select(Lead.status)).all() == ["New"]
    with session_factory.begin() as session:
        session.execute(delete(Message).where(Message.id == found[other][2]))
    with in_workspace(other), session_factory() as session:
        assert session.get(Message, found[other][2]) is not None


def test_new_rows_belong_to_the_workspace_in_force(session_factory, two):
    found, other = two
    with in_workspace(other), session_factory.begin() as session:
        note = Note(lead_id=found[other][0], author="Ana", text="called")
        session.add(note)
        session.flush()
        assert note.workspace_id == other == current_workspace()
    with session_factory() as session:
        assert session.scalars(select(Note)).all() == []


def test_uniqueness_is_per_workspace_but_holds_inside_one(session_factory, two):
    _found, other = two
    with in_workspace(other), session_factory() as session:
        session.add(Lead(name="Twin", phone=PHONE))
        with pytest.raises(IntegrityError):
            session.flush()


def test_an_agent_is_seen_where_they_are_a_member_with_the_role_they_have_there(
    session_factory, two
):
    _found, other = two
    with session_factory.begin() as session:
        ana, _token = create_agent("Ana", email="ana@desk.example", role="admin", session=session)
        ana_id = ana.id
    with in_workspace(other), session_factory() as session:
        assert session.get(Agent, ana_id) is None  # not a member here
        assert session.scalars(select(Agent)).all() == []
    with session_factory.begin() as session:
        ana = session.get(Agent, ana_id)
        with in_workspace(other):
            ana.role = "agent"  # joins the second workspace as an agent
    with in_workspace(other), session_factory() as session:
        ana = session.get(Agent, ana_id)
        assert ana is not None and ana.role == "agent"
        admins = select(Agent.id).where(Agent.role == "admin")
        assert session.scalars(admins).all() == []
    with session_factory() as session:
        ana = session.get(Agent, ana_id)
        assert ana.role == "admin"
        assert session.scalars(select(Agent.id).where(Agent.role == "admin")).all() == [ana_id]
        assert [(m.workspace_id, m.role) for m in memberships(ana_id, session=session)] == [
            (FIRST_WORKSPACE, "admin"),
            (other, "agent"),
        ]
        assert session.scalar(select(func.count()).select_from(WorkspaceMember)) == 2


def test_workspaces_are_found_by_slug_or_id_and_slugs_are_checked(session_factory, two):
    _found, other = two
    with session_factory.begin() as session:
        assert find_workspace("acme", session=session).id == other
        assert find_workspace(str(other), session=session).slug == "acme"
        assert find_workspace("default", session=session).id == FIRST_WORKSPACE
        assert find_workspace("nope", session=session) is None
        assert find_workspace("99999999999", session=session) is None
        for bad in ("", "Acme!", "-x", "a" * 61):
            with pytest.raises(WorkspaceError):
                create_workspace(bad, "X", session=session)
        with pytest.raises(WorkspaceError):
            create_workspace("acme", "Again", session=session)


def test_threads_working_in_different_workspaces_at_once_each_see_their_own(session_factory, two):
    """The filter's value belongs to the statement run, not to whichever thread compiled a
    statement of that shape first."""
    found, other = two
    problems: list[str] = []
    start = threading.Barrier(8)

    def work(workspace_id: int) -> None:
        lead_id, conversation_id, message_id = found[workspace_id]
        start.wait()
        for _ in range(60):
            with in_workspace(workspace_id), session_factory() as session:
                seen = {
                    "leads": session.scalars(select(Lead.id)).all(),
                    "by phone": [find_lead_by_phone(PHONE, session=session).id],
                    "identity": session.scalars(
                        select(Identity.lead_id).where(Identity.channel == "whatsapp")
                    ).all(),
                    "messages": [
                        m.id for m in session.scalars(select(Message).where(Message.id > 0))
                    ],
                    "conversations": [
                        c.id for c in get_lead(lead_id, session=session).conversations
                    ],
                }
            want = {
                "leads": [lead_id],
                "by phone": [lead_id],
                "identity": [lead_id],
                "messages": [message_id],
                "conversations": [conversation_id],
            }
            if seen != want:
                problems.append(f"workspace {workspace_id}: {seen} instead of {want}")
                return

    threads = [
        threading.Thread(target=work, args=((FIRST_WORKSPACE, other)[n % 2],)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems, problems[:3]


def test_a_row_belongs_to_the_workspace_it_was_made_in_whenever_it_is_flushed(session_factory, two):
    """One session may work in several workspaces in turn (the inbox drain does): a row, and an
    audit row written in a batch, keep the workspace they were made in."""
    found, other = two
    with session_factory.begin() as session:
        note = Note(lead_id=found[FIRST_WORKSPACE][0], author="Ana", text="made in the first")
        session.add(note)
        with batched_audit(session):
            record_audit(
                session=session, lead_id=found[FIRST_WORKSPACE][0], actor="agent", action="note"
            )
            with in_workspace(other):
                session.flush()
                write_audit(session)
    with session_factory() as session:
        assert [n.text for n in session.scalars(select(Note))] == ["made in the first"]
        assert [a.action for a in session.scalars(select(AuditEvent))][-1] == "note"
    with in_workspace(other), session_factory() as session:
        assert session.scalars(select(Note)).all() == []
        assert "note" not in [a.action for a in session.scalars(select(AuditEvent))]


def test_every_new_session_factory_is_filtered_whatever_came_before_it(db_engine, two):
    """A process may make several session factories, and tests make hundreds: each one's sessions
    are filtered, including one whose Session class lands where a collected factory's was (the
    event registry keys listeners by address, and asked of it this once went unfiltered)."""
    found, other = two
    for _ in range(10):
        factory = make_session_factory(db_engine)
        with in_workspace(other), factory() as session:
            assert find_lead_by_phone(PHONE, session=session).id == found[other][0]
            assert session.scalar(select(func.count()).select_from(Lead)) == 1
        del factory, session
        gc.collect()
