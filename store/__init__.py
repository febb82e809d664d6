"""The lead store: SQLAlchemy models, sessions, repository functions and Alembic migrations.

Repository modules: `store.leads` (resolve, merge, audited updates), `store.messages` (ingest,
pending queue, outbound records), `store.agents`, `store.contacts` (phone and email normalisation).
"""

from store.db import make_engine, make_session_factory, upgrade

__all__ = ["make_engine", "make_session_factory", "upgrade"]
