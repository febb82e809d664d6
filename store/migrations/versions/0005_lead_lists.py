"""lead lists at a million leads: indexes for stale, score and last-contact pages

Revision ID: 0005_lead_lists
Revises: 0004_language

Measured with benchmarks/lead_query.py at 1,000,000 leads on PostgreSQL. The newest-first index
holds the sort's whole key (created_at, id; SQLite had the id implicitly) and then each lead's
last activity (last contact, or creation if never contacted), so a stale
page skips the recent leads inside the index instead of visiting their rows; the score index ends
with the id, the sort's tie-breaker, so a page by score reads it in order; an agent's leads are
indexed by score (an agent's list by score, stale or not, reads in order); the status index also
carries the assignment, so "hot, unassigned, Interested" is counted on the index alone; the living
leads by id let a channel's count merge with the identities' index without visiting rows; and on
PostgreSQL "last contact, newest first" (never-contacted leads last) gets an index in that order,
and the searched columns get finer statistics (a 1,000-bucket sample instead of 100): with the
coarse one, whether a rare company name happened to be in the sample decided between reading 200
matches from the trigram index and walking 200,000 leads newest first. Data is untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_lead_lists"
down_revision = "0004_language"
branch_labels = None
depends_on = None

LIVE = {
    "sqlite_where": sa.text("merged_into_id IS NULL"),
    "postgresql_where": sa.text("merged_into_id IS NULL"),
}


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_live_created")
        batch_op.drop_index("ix_leads_live_score")
        batch_op.drop_index("ix_leads_live_status")
        batch_op.drop_index("ix_leads_live_agent")
        batch_op.create_index(
            "ix_leads_live_created",
            ["archived", "created_at", "id", sa.text("coalesce(last_contacted_at, created_at)")],
            unique=False,
            **LIVE,
        )
        batch_op.create_index(
            "ix_leads_live_score", ["archived", "score", "id"], unique=False, **LIVE
        )
        batch_op.create_index(
            "ix_leads_live_status",
            ["archived", "status", "score", "assigned_agent_id"],
            unique=False,
            **LIVE,
        )
        batch_op.create_index(
            "ix_leads_live_agent",
            ["archived", "assigned_agent_id", "score", "id"],
            unique=False,
            **LIVE,
        )
        batch_op.create_index("ix_leads_live_id", ["archived", "id"], unique=False, **LIVE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE leads ALTER COLUMN name SET STATISTICS 1000, "
            "ALTER COLUMN email SET STATISTICS 1000, "
            "ALTER COLUMN company SET STATISTICS 1000"
        )
        op.create_index(
            "ix_leads_live_contacted_desc",
            "leads",
            ["archived", sa.text("last_contacted_at DESC NULLS LAST"), sa.text("id DESC")],
            unique=False,
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_leads_live_contacted_desc", table_name="leads")
        op.execute(
            "ALTER TABLE leads ALTER COLUMN name SET STATISTICS -1, "
            "ALTER COLUMN email SET STATISTICS -1, "
            "ALTER COLUMN company SET STATISTICS -1"
        )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_live_id")
        batch_op.drop_index("ix_leads_live_agent")
        batch_op.drop_index("ix_leads_live_status")
        batch_op.drop_index("ix_leads_live_score")
        batch_op.drop_index("ix_leads_live_created")
        batch_op.create_index(
            "ix_leads_live_agent", ["archived", "assigned_agent_id", "status"], unique=False, **LIVE
        )
        batch_op.create_index(
            "ix_leads_live_status", ["archived", "status", "score"], unique=False, **LIVE
        )
        batch_op.create_index("ix_leads_live_score", ["archived", "score"], unique=False, **LIVE)
        batch_op.create_index(
            "ix_leads_live_created", ["archived", "created_at"], unique=False, **LIVE
        )
