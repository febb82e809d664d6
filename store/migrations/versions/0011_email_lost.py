"""email and lost reasons

Revision ID: 0011_email_lost
Revises: 0010_tasks

A lead's email conversation (one per lead: sent mail is its outbound messages, the Message-ID in
`channel_message_id`), and why a lead was lost (`lost_reason` from statuses.yaml's list, with the
agent's own words in `lost_note`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_email_lost"
down_revision = "0010_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite has both): a batch copy of `leads` would lose its expression
    # indexes.
    op.add_column("leads", sa.Column("lost_reason", sa.String(length=100), nullable=True))
    op.add_column("leads", sa.Column("lost_note", sa.Text(), nullable=True))
    op.create_index(
        "uq_conversations_lead_email",
        "conversations",
        ["lead_id"],
        unique=True,
        sqlite_where=sa.text("channel = 'email'"),
        postgresql_where=sa.text("channel = 'email'"),
    )


def downgrade() -> None:
    op.drop_index("uq_conversations_lead_email", table_name="conversations")
    op.drop_column("leads", "lost_note")
    op.drop_column("leads", "lost_reason")
