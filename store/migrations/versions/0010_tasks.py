"""tasks, their morning digests and the agents' calendar tokens

Revision ID: 0010_tasks
Revises: 0009_conversation_reads

A task is a follow-up an agent owes a lead (call, email, meeting, other) with a due time; the
reminder sweep claims a due task by setting `reminded_at` (the partial index holds the ones still
waiting), a digest row per agent and business day is the claim on the morning digest, and a
calendar token (hashed) opens an agent's read-only .ics feed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_tasks"
down_revision = "0009_conversation_reads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("source_key", sa.String(length=120), nullable=True),
        sa.Column("created_by_agent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_agent_id"], ["agents.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_agent_due", ["agent_id", "due_at"], unique=False)
        batch_op.create_index("ix_tasks_lead_id", ["lead_id"], unique=False)
        batch_op.create_index(
            "ix_tasks_unreminded",
            ["due_at"],
            unique=False,
            sqlite_where=sa.text("reminded_at IS NULL AND done_at IS NULL"),
            postgresql_where=sa.text("reminded_at IS NULL AND done_at IS NULL"),
        )
    op.create_table(
        "task_digests",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id", "day"),
    )
    op.create_table(
        "calendar_tokens",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id"),
        sa.UniqueConstraint("token_hash"),
    )


def downgrade() -> None:
    op.drop_table("calendar_tokens")
    op.drop_table("task_digests")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_unreminded")
        batch_op.drop_index("ix_tasks_lead_id")
        batch_op.drop_index("ix_tasks_agent_due")
    op.drop_table("tasks")
