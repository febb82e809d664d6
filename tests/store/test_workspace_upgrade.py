"""A database from before workspaces migrates into one workspace: every row belongs to the first,
the agents keep their roles there, and the desk works on it as before (while a second workspace
can now hold the same customer)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from store import make_engine, make_session_factory, upgrade
from store.agents import agent_by_token, hash_token
from store.domain.tasks import list_tasks
from store.leads import find_lead_by_phone, get_lead
from store.messages import Inbound, ingest
from store.models import Lead, Message, Workspace
from store.tenancy import FIRST_WORKSPACE, all_workspaces, in_workspace
from store.workspaces import create_workspace, memberships

BEFORE = "0011_email_lost"
NOW = "2026-05-04 10:00:00"
PHONE = "+14155550102"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def before_workspaces(request, tmp_path):
    """A database migrated up to the last revision before workspaces."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(engine, BEFORE)
        yield engine
        engine.dispose()
        return
    server = make_engine(request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT")
    name = f"leaddesk_ws_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine, BEFORE)
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _insert(conn, table: str, **values) -> int:
    columns = ", ".join(values)
    params = ", ".join(f":{key}" for key in values)
    return conn.execute(
        text(f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING *"), values
    ).first()[0]


def _fill(engine) -> dict[str, int]:
    flags = {"f": False}
    with engine.begin() as conn:
        ids = {}
        ids["admin"] = _insert(
            conn,
            "agents",
            name="Ana",
            email="ana@desk.example",
            role="admin",
            active=True,
            capacity=50,
            token_hash=hash_token("ld_ana"),
            created_at=NOW,
        )
        ids["rep"] = _insert(
            conn,
            "agents",
            name="Rui",
            email="rui@desk.example",
            role="agent",
            active=True,
            capacity=50,
            token_hash=hash_token("ld_rui"),
            created_at=NOW,
        )
        ids["lead"] = _insert(
            conn,
            "leads",
            name="Dana",
            email="dana@example.com",
            phone=PHONE,
            status="Interested",
            score=40,
            score_factors="[]",
            interests="[]",
            objections="[]",
            tags="[]",
            custom_fields="{}",
            ai_stopped=flags["f"],
            ai_resume_notice_due=flags["f"],
            phone_asks=0,
            phone_declined=flags["f"],
            last_reply_asked_phone=flags["f"],
            archived=flags["f"],
            locked=flags["f"],
            assigned_agent_id=ids["rep"],
            created_at=NOW,
            updated_at=NOW,
        )
        ids["identity"] = _insert(
            conn,
            "identities",
            lead_id=ids["lead"],
            channel="whatsapp",
            external_id=PHONE.lstrip("+"),
            trust="verified",
            created_at=NOW,
        )
        ids["conversation"] = _insert(
            conn,
            "conversations",
            lead_id=ids["lead"],
            identity_id=ids["identity"],
            channel="whatsapp",
            ai_stopped=flags["f"],
            created_at=NOW,
            updated_at=NOW,
        )
        ids["message"] = _insert(
            conn,
            "messages",
            conversation_id=ids["conversation"],
            channel="whatsapp",
            direction="in",
            author="customer",
            text="hi there",
            kind="text",
            channel_message_id="wamid.old",
            idempotency_key="key-1",
            sent_at=NOW,
            created_at=NOW,
            processed_at=NOW,
        )
        ids["note"] = _insert(
            conn,
            "notes",
            lead_id=ids["lead"],
            agent_id=ids["rep"],
            author="Rui",
            category="General",
            text="called",
            created_at=NOW,
        )
        ids["task"] = _insert(
            conn,
            "tasks",
            lead_id=ids["lead"],
            agent_id=ids["rep"],
            kind="call",
            title="Call Dana",
            notes="",
            due_at="2026-05-05 10:00:00",
            source="agent",
            created_at=NOW,
            updated_at=NOW,
        )
        conn.execute(
            text("INSERT INTO task_digests (agent_id, day, sent_at) VALUES (:a, '2026-05-04', :t)"),
            {"a": ids["rep"], "t": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO calendar_tokens (agent_id, token_hash, created_at) VALUES (:a, :h, :t)"
            ),
            {"a": ids["rep"], "h": hash_token("ldcal_rui"), "t": NOW},
        )
        _insert(
            conn,
            "inbox",
            channel="whatsapp",
            kind="message",
            dedupe_key="wamid.old",
            event="{}",
            received_at=NOW,
            processed_at=NOW,
            attempts=0,
        )
        _insert(
            conn,
            "chat_sessions",
            token_hash=hash_token("chat"),
            external_id="web-1",
            created_at=NOW,
        )
    return ids


def test_existing_data_becomes_the_first_workspace_and_the_desk_works_on_it(before_workspaces):
    engine = before_workspaces
    ids = _fill(engine)
    upgrade(engine)

    with engine.connect() as conn:
        for table in (
            "leads",
            "identities",
            "conversations",
            "messages",
            "notes",
            "tasks",
            "task_digests",
            "calendar_tokens",
            "inbox",
            "chat_sessions",
        ):
            spread = conn.execute(text(f"SELECT DISTINCT workspace_id FROM {table}")).all()
            assert [tuple(row) for row in spread] == [(FIRST_WORKSPACE,)], table
        first = conn.execute(text("SELECT id, slug, active FROM workspaces")).all()
        assert [tuple(row) for row in first] == [(FIRST_WORKSPACE, "default", True)]

    factory = make_session_factory(engine)
    with factory.begin() as session:
        ana = agent_by_token("ld_ana", session=session)
        rui = agent_by_token("ld_rui", session=session)
        assert ana is not None and ana.role == "admin"
        assert rui is not None and rui.role == "agent"
        assert [(m.workspace_id, m.role) for m in memberships(rui.id, session=session)] == [
            (FIRST_WORKSPACE, "agent")
        ]
        lead = get_lead(ids["lead"], session=session)
        assert lead.assigned_agent_id == rui.id and find_lead_by_phone(PHONE, session=session)
        assert [m.text for c in lead.conversations for m in c.messages] == ["hi there"]
        assert [n.text for n in lead.notes] == ["called"]
        due = list_tasks(rui, session=session, now=datetime(2026, 5, 4, tzinfo=UTC), window="all")
        assert [t.title for t in due] == ["Call Dana"]
        # a redelivered message is still recognised as the one stored before the upgrade
        again = ingest(
            Inbound(
                channel="whatsapp",
                external_id=PHONE.lstrip("+"),
                phone=PHONE,
                text="hi there",
                channel_message_id="wamid.old",
            ),
            session=session,
        )
        assert again.duplicate and again.message.id == ids["message"]
        acme = create_workspace("acme", "Acme", session=session).id
    assert acme != FIRST_WORKSPACE

    # The same customer can now write to the second business: a lead of its own there.
    with in_workspace(acme), factory.begin() as session:
        theirs = ingest(
            Inbound(
                channel="whatsapp",
                external_id=PHONE.lstrip("+"),
                phone=PHONE,
                text="hola",
                channel_message_id="wamid.old",
            ),
            session=session,
        )
        assert not theirs.duplicate and theirs.lead.id != ids["lead"]
    with factory() as session:
        assert session.scalars(select(Lead.id)).all() == [ids["lead"]]
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        every = select(func.count()).select_from(Workspace).execution_options(**all_workspaces())
        assert session.scalar(every) == 2
