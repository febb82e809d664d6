"""conversation reads

Revision ID: 0009_conversation_reads
Revises: 0008_bot_window

How far each agent has read each conversation, for the console inbox's unread counts. Nothing is
read before this revision: existing conversations start unread for everyone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_conversation_reads"
down_revision = "0008_bot_window"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_reads",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("last_read_message_id", sa.Integer(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id", "conversation_id"),
    )


def downgrade() -> None:
    op.drop_table("conversation_reads")
