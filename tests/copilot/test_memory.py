"""The copilot's per-chat memory on PostgreSQL (the offline tests cover the SQLite file)."""

from __future__ import annotations

import uuid

import pytest

from copilot import open_checkpointer
from copilot.memory import memory_path
from store import make_engine, make_session_factory
from tests.copilot.conftest import World, make_copilot


def test_memory_file_sits_beside_a_sqlite_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert (
        memory_path(f"sqlite:///{tmp_path}/data/leads.db")
        == f"{tmp_path}/data/leads-copilot.sqlite"
    )
    assert memory_path("sqlite://") == ":memory:"
    assert memory_path("sqlite:///x.db", tmp_path / "mem.sqlite") == str(tmp_path / "mem.sqlite")


@pytest.mark.postgres
def test_memory_survives_a_restart_in_postgres(postgres_url, prompts, clock) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(postgres_url)
    try:
        sf = make_session_factory(engine)
        world = World(sf, clock)
        sarah = world.agent(f"Sarah {uuid.uuid4().hex[:6]}")
        lead = world.lead("Dana Smith", agent=sarah, score=90)
        thread = f"pg-{uuid.uuid4().hex}"
        with open_checkpointer(postgres_url) as memory:
            make_copilot(sf, prompts, clock, checkpointer=memory).ask(
                sarah, thread, f"summarise lead {lead}"
            )
        with open_checkpointer(postgres_url) as memory:
            copilot = make_copilot(sf, prompts, clock, checkpointer=memory)
            assert copilot.ask(sarah, thread, "is it hot?").reply.startswith(
                f"Yes, #{lead} Dana Smith is hot."
            )
            copilot.ask(sarah, thread, f"archive {lead}")
        with open_checkpointer(postgres_url) as memory:
            # A confirmation waits across a restart too.
            copilot = make_copilot(sf, prompts, clock, checkpointer=memory)
            assert copilot.ask(sarah, thread, "yes").reply == f"Archived #{lead} Dana Smith."
        with engine.connect() as conn:
            # Kept apart from the store's tables (which the migrations own).
            schemas = set(
                conn.exec_driver_sql(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'checkpoints'"
                ).scalars()
            )
        assert schemas == {"leaddesk_copilot"}
    finally:
        engine.dispose()


def test_only_the_latest_checkpoint_is_kept(world, sf, prompts, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    with open_checkpointer(url) as memory:
        copilot = make_copilot(sf, prompts, clock, checkpointer=memory)
        for _ in range(6):
            copilot.ask(sarah, "t", f"qualify {lead}")
        copilot.ask(sarah, "t", f"archive {lead}")  # waiting on a question: that checkpoint is kept
        copilot.ask(sarah, "other", "/hot")
    with sqlite3.connect(tmp_path / "leaddesk-copilot.sqlite") as db:
        rows = db.execute(
            "SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id ORDER BY 1"
        ).fetchall()
    assert rows == [("other", 1), ("t", 1)]
    with open_checkpointer(url) as memory:
        assert make_copilot(sf, prompts, clock, checkpointer=memory).ask(
            sarah, "t", "yes"
        ).reply == (f"Archived #{lead} Dana Smith.")
