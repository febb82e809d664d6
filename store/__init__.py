"""The lead store: SQLAlchemy models, sessions, repository functions and Alembic migrations.

Repository modules: `store.leads` (resolve, merge, audited updates), `store.messages` (ingest,
pending queue, outbound records), `store.agents`, `store.contacts` (phone and email normalisation).
"""

from store.db import ensure_schema, make_engine, make_session_factory, read_session, upgrade

__all__ = ["ensure_schema", "make_engine", "make_session_factory", "read_session", "upgrade"]
