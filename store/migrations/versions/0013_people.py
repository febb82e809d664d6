"""people: the copilot's chosen workspace

Revision ID: 0013_people
Revises: 0012_workspaces

The workspace an agent chose for the Telegram copilot with `/workspace <slug>` (None: their only
one).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_people"
down_revision = "0012_workspaces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("copilot_workspace_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("agents", "copilot_workspace_id")
