"""console sessions kept on the server (revocable, with idle and absolute timeouts)

Revision ID: 0003_sessions
Revises: 0002_identity

"""

import sqlalchemy as sa
from alembic import op

revision = "0003_sessions"
down_revision = "0002_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions signed before this revision lived only in the cookie; they are not carried over,
    # so everyone signs in to the console once more.
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_console_sessions_agent_id", ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_console_sessions_agent_id")
    op.drop_table("console_sessions")
