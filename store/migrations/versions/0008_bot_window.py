"""the bot's pending messages per conversation from an index of their own

Revision ID: 0008_bot_window
Revises: 0007_inbox

A bot run reads its conversation's unprocessed customer messages and asks whether more arrived
while it ran. With only (direction, processed_at) indexed, both walked every unprocessed message of
every conversation (a backlog of 20,000 made each run read 20,000 index entries); with only
(conversation_id, id) they walk the conversation's whole history. This partial index holds the
unprocessed inbound messages alone, by conversation. Data is untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_bot_window"
down_revision = "0007_inbox"
branch_labels = None
depends_on = None

UNPROCESSED = sa.text("direction = 'in' AND processed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_unprocessed",
            ["conversation_id", "id"],
            unique=False,
            sqlite_where=UNPROCESSED,
            postgresql_where=UNPROCESSED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_unprocessed")
