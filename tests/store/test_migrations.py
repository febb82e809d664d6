"""The migrations create exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from store import ensure_schema, make_engine, upgrade
from store.db import alembic_config
from store.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_only(request, tmp_path):
    """A database that only the migrations have touched (the shared test database may also hold
    tables other components create at run time, such as the copilot's PostgreSQL checkpoints)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    server = make_engine(request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT")
    name = f"leaddesk_migrated_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


# SQLite's reflection cannot read an expression index (lower(email)); the index is still created, as
# test_emails_are_unique_whatever_their_case shows.
@pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index"
)
def test_migrated_database_matches_the_models(migrated_only):
    dialect = migrated_only.dialect.name

    def include_object(obj, name, type_, reflected, compare_to) -> bool:
        # Indexes only one backend has (the PostgreSQL trigram index) are compared there only.
        only_on = getattr(obj, "info", {}).get("only_on")
        return only_on in (None, dialect)

    with migrated_only.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": include_object,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "models and migration differ; put the change in both:\n" + "\n".join(
        map(str, diff)
    )


def test_every_lead_filter_column_is_indexed(db_engine):
    indexed = {tuple(index["column_names"]) for index in inspect(db_engine).get_indexes("leads")}
    leading = {columns[0] for columns in indexed}
    for column in (
        "status",
        "score",
        "assigned_agent_id",
        "archived",
        "last_contacted_at",
        "created_at",
    ):
        assert column in leading or any(column in cols for cols in indexed), column
    identities = {tuple(i["column_names"]) for i in inspect(db_engine).get_indexes("identities")}
    assert ("channel", "lead_id") in identities  # the channel filter's EXISTS


def test_ensure_schema_creates_once_then_does_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert ensure_schema(engine) is True
        assert "leads" in inspect(engine).get_table_names()
        assert ensure_schema(engine) is False
        upgrade(engine)  # idempotent too
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def at_initial_revision(request, tmp_path):
    """A database migrated only up to the initial schema, to fill with data of that time."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(engine, "0001")
        yield engine
        engine.dispose()
        return
    server = make_engine(request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT")
    name = f"leaddesk_old_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine, "0001")
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def test_identity_trust_migration_moves_existing_data(at_initial_revision):
    engine = at_initial_revision
    now = "2024-06-03 12:00:00"
    lead_columns = (
        "name, email, phone, status, score, score_factors, interests, objections, tags, "
        "custom_fields, ai_stopped, ai_resume_notice_due, phone_asks, phone_declined, "
        "last_reply_asked_phone, archived, locked, created_at, updated_at"
    )
    lead_values = (
        ":name, :email, :phone, 'Interested', 40, '[]', '[]', '[]', '[]', '{}', false, false, 0, "
        "false, false, false, false, :at, :at"
    )
    with engine.begin() as conn:

        def lead(name, email=None, phone=None):
            return conn.execute(
                text(f"INSERT INTO leads ({lead_columns}) VALUES ({lead_values}) RETURNING id"),
                {"name": name, "email": email, "phone": phone, "at": now},
            ).scalar_one()

        def identity(lead_id, channel, external_id):
            return conn.execute(
                text(
                    "INSERT INTO identities (lead_id, channel, external_id, created_at) "
                    "VALUES (:l, :c, :e, :at) RETURNING id"
                ),
                {"l": lead_id, "c": channel, "e": external_id, "at": now},
            ).scalar_one()

        def conversation(lead_id, channel, *texts):
            conversation_id = conn.execute(
                text(
                    "INSERT INTO conversations (lead_id, channel, created_at, updated_at) "
                    "VALUES (:l, :c, :at, :at) RETURNING id"
                ),
                {"l": lead_id, "c": channel, "at": now},
            ).scalar_one()
            for body in texts:
                conn.execute(
                    text(
                        "INSERT INTO messages (conversation_id, channel, direction, author, text, "
                        "kind, sent_at, created_at) VALUES (:c, :ch, 'in', 'customer', :t, "
                        "'text', :at, :at)"
                    ),
                    {"c": conversation_id, "ch": channel, "t": body, "at": now},
                )
            return conversation_id

        dana = lead("Dana", "dana@example.com", "+14155550102")
        wa = identity(dana, "whatsapp", "14155550102")
        bsuid = identity(dana, "whatsapp", "US.123")
        web = identity(dana, "web", "web-abc")
        dana_wa = conversation(dana, "whatsapp", "hi", "my address is 12 Elm Street")
        dana_web = conversation(dana, "web", "hello")
        sam = lead("Sam", "Sam@Example.com", "+14155550199")
        messenger = identity(sam, "messenger", "psid-1")
        conversation(sam, "messenger", "hey")
        twin = lead("Sam again", "sam@example.com")
        twin_web = identity(twin, "web", "web-def")

    upgrade(engine)

    with engine.connect() as conn:
        trust = dict(conn.execute(text("SELECT id, trust FROM identities")).all())
        assert trust == {
            wa: "verified",
            bsuid: "verified",
            web: "claimed",
            messenger: "verified",
            twin_web: "claimed",
        }
        aliases = dict(conn.execute(text("SELECT id, alias_of_id FROM identities")).all())
        assert aliases[bsuid] == wa and aliases[wa] is None
        rooms = dict(conn.execute(text("SELECT id, identity_id FROM conversations")).all())
        assert rooms[dana_wa] == wa and rooms[dana_web] == web
        # every message is still there, in its conversation
        counts = dict(
            conn.execute(
                text("SELECT conversation_id, count(*) FROM messages GROUP BY conversation_id")
            ).all()
        )
        assert counts[dana_wa] == 2 and counts[dana_web] == 1
        details = {
            (lead_id, kind): (value, trust)
            for lead_id, kind, value, trust in conn.execute(
                text("SELECT lead_id, kind, value, trust FROM contact_details")
            )
        }
        assert details[(dana, "phone")] == ("+14155550102", "verified")  # WhatsApp vouches
        assert details[(dana, "email")] == ("dana@example.com", "claimed")
        assert details[(sam, "phone")] == ("+14155550199", "claimed")  # typed in a chat
        assert details[(twin, "email")] == ("sam@example.com", "claimed")
        # the leads themselves are as they were (the newer of two same-email leads keeps its
        # address as a claimed detail beside a merge suggestion)
        leads = {
            row[0]: row[1:]
            for row in conn.execute(text("SELECT id, name, email, phone, status, score FROM leads"))
        }
        assert leads[dana] == ("Dana", "dana@example.com", "+14155550102", "Interested", 40)
        assert leads[sam] == ("Sam", "Sam@Example.com", "+14155550199", "Interested", 40)
        assert leads[twin] == ("Sam again", None, None, "Interested", 40)
        suggested = conn.execute(
            text("SELECT lead_id, other_lead_id, state FROM merge_suggestions")
        ).all()
        assert [tuple(row) for row in suggested] == [(twin, sam, "open")]


def test_lead_list_indexes_go_back_and_forth(migrated_only):
    def live_indexes() -> set[str]:
        # Read from the catalogue: SQLite's reflection leaves out expression indexes.
        sql = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads'"
            if migrated_only.dialect.name == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'leads'"
        )
        with migrated_only.connect() as connection:
            return set(connection.scalars(text(sql)))

    assert {"ix_leads_live_id", "ix_leads_live_created"} <= live_indexes()
    with migrated_only.begin() as connection:
        config = alembic_config(migrated_only.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_language")
    assert "ix_leads_live_id" not in live_indexes()
    assert "ix_leads_live_contacted_desc" not in live_indexes()
    upgrade(migrated_only)
    assert {"ix_leads_live_id", "ix_leads_live_created"} <= live_indexes()
