"""conversation language

Revision ID: 0004_language
Revises: 0003_sessions

The language the bot writes in, per conversation. Existing conversations start without one: the
bot detects it from the customer's next message, as for a new conversation.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_language"
down_revision = "0003_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("language")
