"""the webhook inbox: Meta events acknowledged at once and ingested by a drain

Revision ID: 0007_inbox
Revises: 0006_lead_counts

A webhook request only inserts its events here (one multi-row insert, deduplicated by the unique
index on the channel's message id) and answers; the drain ingests unprocessed rows oldest first
(the partial index) and the processed ones are pruned after a week (the processed_at index).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_inbox"
down_revision = "0006_lead_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "dedupe_key", name="uq_inbox_channel_dedupe_key"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_unprocessed",
            ["id"],
            unique=False,
            sqlite_where=sa.text("processed_at IS NULL"),
            postgresql_where=sa.text("processed_at IS NULL"),
        )
        batch_op.create_index("ix_inbox_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_processed_at")
        batch_op.drop_index("ix_inbox_unprocessed")
    op.drop_table("inbox")
