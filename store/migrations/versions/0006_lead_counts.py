"""lead list counts at a million leads: an agent's leads by last activity

Revision ID: 0006_lead_counts
Revises: 0005_lead_lists

Measured with benchmarks/lead_query.py at 1,000,000 leads on PostgreSQL: counting an agent's stale
leads (up to the lists' cap of 10,000) visited every one of those rows, since no index held both
the agent and the last activity (last contact, or creation if never contacted). This index does,
over the living leads, and on PostgreSQL it also carries (INCLUDE) the columns the expression reads,
the status and the id, so the count is an index-only scan: PostgreSQL's planner only takes an
index-only scan when every column the query names is in the index as itself. Data is untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_lead_counts"
down_revision = "0005_lead_lists"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_leads_live_agent_activity",
            [
                "archived",
                "assigned_agent_id",
                sa.text("coalesce(last_contacted_at, created_at)"),
            ],
            unique=False,
            postgresql_include=["last_contacted_at", "created_at", "status", "id"],
            sqlite_where=sa.text("merged_into_id IS NULL"),
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_live_agent_activity")
