"""The migrations create exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from store import ensure_schema, make_engine, upgrade
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
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
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
