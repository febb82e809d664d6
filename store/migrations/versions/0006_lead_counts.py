"""lead list counts at a million leads: an agent's leads newest first, with their last activity

Revision ID: 0006_lead_counts
Revises: 0005_lead_lists

Measured with benchmarks/lead_query.py at 1,000,000 leads on PostgreSQL: counting an agent's stale
leads (up to the lists' cap of 10,000) visited every one of those rows, and an agent's page newest
first walked the whole desk's newest-first index for the agent's 2% (3,260 rows for 50), since no
index held the agent with the creation date or the last activity (last contact, or creation if
never contacted). This one holds the agent's leads newest first and then the last activity, as
ix_leads_live_created does for the whole desk; on PostgreSQL it also carries (INCLUDE) the last
contact and the status, so the stale count is an index-only scan: PostgreSQL's planner takes one
only when every column the query names is in the index as itself. PostgreSQL only: SQLite's
planner, without statistics, took the new index for every scan of the living leads (a text
search read them in creation order, 6x slower than in table order), and its desks are small.

On PostgreSQL the newest-first index of the whole desk carries the columns the usual filters read
(status, score, assignment, last contact) the same way, and a page finds its 50 ids on the index
before loading those leads: "hot, unassigned, Interested" skipped 7,600 rows to find 50 (50-100 ms
on a loaded machine), now 7,600 index entries (1.5 ms). Data is untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_lead_counts"
down_revision = "0005_lead_lists"
branch_labels = None
depends_on = None


CREATED: list[str | sa.TextClause] = [
    "archived",
    "created_at",
    "id",
    sa.text("coalesce(last_contacted_at, created_at)"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_leads_live_created", table_name="leads")
        op.create_index(
            "ix_leads_live_created",
            "leads",
            CREATED,
            unique=False,
            postgresql_include=["status", "score", "assigned_agent_id", "last_contacted_at"],
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )
        op.create_index(
            "ix_leads_live_agent_created",
            "leads",
            [
                "archived",
                "assigned_agent_id",
                "created_at",
                "id",
                sa.text("coalesce(last_contacted_at, created_at)"),
            ],
            unique=False,
            postgresql_include=["last_contacted_at", "status"],
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_leads_live_agent_created", table_name="leads")
        op.drop_index("ix_leads_live_created", table_name="leads")
        op.create_index(
            "ix_leads_live_created",
            "leads",
            CREATED,
            unique=False,
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )
