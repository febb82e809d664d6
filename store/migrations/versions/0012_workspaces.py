"""workspaces

Revision ID: 0012_workspaces
Revises: 0011_email_lost

Several businesses on one install. `workspaces` (the existing data becomes the first, id 1),
`workspace_members` (an agent's role in each workspace: the agents' `role` moves there),
`channel_connections` (which channel account reaches which workspace, its credentials encrypted),
a `workspace_id` on every table of a business's data, and uniqueness per workspace (phones, emails,
channel identities, channel message ids), so the same customer writing to two businesses is two
leads. The lead lists' indexes end with the workspace: a page or count is still read from the
index alone, filtered on it.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012_workspaces"
down_revision = "0011_email_lost"
branch_labels = None
depends_on = None

# Tables of one workspace's data (task_digests and calendar_tokens get it in their primary key).
SCOPED = (
    "leads",
    "identities",
    "conversations",
    "messages",
    "contact_details",
    "merge_suggestions",
    "notes",
    "score_events",
    "audit_events",
    "notifications",
    "chat_sessions",
    "tasks",
    "inbox",
)
LIVE: dict[str, Any] = {
    "sqlite_where": sa.text("merged_into_id IS NULL"),
    "postgresql_where": sa.text("merged_into_id IS NULL"),
}
# SQLite names the unnamed unique constraints of the first schema by this convention in a batch.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _workspace_column() -> sa.Column[Any]:
    return sa.Column("workspace_id", sa.Integer(), server_default=sa.text("1"), nullable=False)


def _unnamed_unique(table: str, column: str) -> str:
    """The name the first schema's unnamed UNIQUE(column) has on this database."""
    if op.get_bind().dialect.name == "postgresql":
        return f"{table}_{column}_key"
    return NAMING["uq"] % {"table_name": table, "column_0_name": column}


def _lead_indexes(postgresql: bool) -> None:
    coalesce = sa.text("coalesce(last_contacted_at, created_at)")
    extra: dict[str, Any] = {}
    if postgresql:
        extra = {
            "postgresql_include": ["status", "score", "assigned_agent_id", "last_contacted_at"]
        }
    op.create_index(
        "ix_leads_live_created",
        "leads",
        ["archived", "created_at", "id", coalesce, "workspace_id"],
        **extra,
        **LIVE,
    )
    op.create_index(
        "ix_leads_live_score", "leads", ["archived", "score", "id", "workspace_id"], **LIVE
    )
    op.create_index("ix_leads_live_id", "leads", ["archived", "id", "workspace_id"], **LIVE)
    op.create_index(
        "ix_leads_live_status",
        "leads",
        ["archived", "status", "score", "assigned_agent_id", "workspace_id"],
        **LIVE,
    )
    op.create_index(
        "ix_leads_live_agent",
        "leads",
        ["archived", "assigned_agent_id", "score", "id", "workspace_id"],
        **LIVE,
    )
    op.create_index(
        "ix_leads_live_contacted",
        "leads",
        ["archived", "last_contacted_at", "created_at", "workspace_id"],
        **LIVE,
    )
    op.create_index("ix_leads_live_name", "leads", ["archived", "name", "workspace_id"], **LIVE)
    op.create_index(
        "uq_leads_email_lower", "leads", ["workspace_id", sa.text("lower(email)")], unique=True
    )
    if postgresql:
        op.create_index(
            "ix_leads_live_contacted_desc",
            "leads",
            [
                "archived",
                sa.text("last_contacted_at DESC NULLS LAST"),
                sa.text("id DESC"),
                "workspace_id",
            ],
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )
        op.create_index(
            "ix_leads_live_agent_created",
            "leads",
            ["archived", "assigned_agent_id", "created_at", "id", coalesce, "workspace_id"],
            postgresql_include=["last_contacted_at", "status"],
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )


LEAD_INDEXES = (
    "ix_leads_live_created",
    "ix_leads_live_score",
    "ix_leads_live_id",
    "ix_leads_live_status",
    "ix_leads_live_agent",
    "ix_leads_live_contacted",
    "ix_leads_live_name",
    "uq_leads_email_lower",
)
PG_LEAD_INDEXES = ("ix_leads_live_contacted_desc", "ix_leads_live_agent_created")


# The partial indexes a SQLite table copy would lose: (name, table, columns, condition, unique).
PARTIAL_INDEXES = (
    (
        "ix_messages_unprocessed",
        "messages",
        ["conversation_id", "id"],
        "direction = 'in' AND processed_at IS NULL",
        False,
    ),
    ("ix_inbox_unprocessed", "inbox", ["id"], "processed_at IS NULL", False),
    ("ix_tasks_unreminded", "tasks", ["due_at"], "reminded_at IS NULL AND done_at IS NULL", False),
    ("uq_conversations_lead_email", "conversations", ["lead_id"], "channel = 'email'", True),
)


def _partial_indexes() -> None:
    """`PARTIAL_INDEXES`, made again after the table copies (the same both ways)."""
    for name, table, columns, condition, unique in PARTIAL_INDEXES:
        op.create_index(
            name,
            table,
            columns,
            unique=unique,
            sqlite_where=sa.text(condition),
            postgresql_where=sa.text(condition),
        )


def _foreign_keys(enabled: bool) -> None:
    """SQLite rebuilds a table to change its constraints, and dropping the old table would run
    ON DELETE CASCADE on every row that refers to it: foreign keys are off while it does
    (the pragma only works outside a transaction)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("COMMIT")
    op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    op.execute("BEGIN IMMEDIATE")


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    _foreign_keys(False)
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.execute(
        sa.text(
            "INSERT INTO workspaces (id, slug, name, active, created_at) "
            "VALUES (1, 'default', 'Default', :true, CURRENT_TIMESTAMP)"
        ).bindparams(true=True)
    )
    if postgresql:  # the next workspace gets id 2
        op.execute("SELECT setval('workspaces_id_seq', 1)")
    op.create_table(
        "workspace_members",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "agent_id"),
    )
    op.create_index("ix_workspace_members_agent_id", "workspace_members", ["agent_id"])
    op.execute(
        "INSERT INTO workspace_members (workspace_id, agent_id, role, created_at) "
        "SELECT 1, id, role, created_at FROM agents"
    )
    op.create_table(
        "channel_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "account_id", name="uq_channel_connections_account"),
    )
    op.create_index(
        "ix_channel_connections_workspace", "channel_connections", ["workspace_id", "channel"]
    )

    # Indexes a SQLite table copy would not carry over (expressions, partial), rebuilt below.
    for name in (*LEAD_INDEXES, "ix_leads_merged_into"):
        op.drop_index(name, table_name="leads")
    if postgresql:
        for name in PG_LEAD_INDEXES:
            op.drop_index(name, table_name="leads")
    op.drop_index("ix_messages_unprocessed", table_name="messages")
    op.drop_index("ix_inbox_unprocessed", table_name="inbox")
    op.drop_index("ix_tasks_unreminded", table_name="tasks")
    op.drop_index("uq_conversations_lead_email", table_name="conversations")

    for table in SCOPED:
        if postgresql:
            # PostgreSQL adds a column with a constant default without rewriting the table.
            op.add_column(table, _workspace_column())
            continue
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.add_column(_workspace_column())
    if postgresql:
        op.execute("ALTER TABLE leads ALTER COLUMN name SET STATISTICS 1000")

    with op.batch_alter_table("leads", naming_convention=NAMING) as batch:
        batch.drop_constraint(_unnamed_unique("leads", "email"), type_="unique")
        batch.drop_constraint(_unnamed_unique("leads", "phone"), type_="unique")
        batch.create_unique_constraint("uq_leads_workspace_phone", ["workspace_id", "phone"])
    with op.batch_alter_table("identities", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_identities_channel_external", type_="unique")
        batch.create_unique_constraint(
            "uq_identities_channel_external", ["workspace_id", "channel", "external_id"]
        )
    with op.batch_alter_table("messages", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_messages_channel_message", type_="unique")
        batch.drop_constraint(_unnamed_unique("messages", "idempotency_key"), type_="unique")
        batch.create_unique_constraint(
            "uq_messages_channel_message", ["workspace_id", "channel", "channel_message_id"]
        )
        batch.create_unique_constraint(
            "uq_messages_idempotency_key", ["workspace_id", "idempotency_key"]
        )
    with op.batch_alter_table("chat_sessions", naming_convention=NAMING) as batch:
        batch.drop_constraint(_unnamed_unique("chat_sessions", "external_id"), type_="unique")
        batch.create_unique_constraint(
            "uq_chat_sessions_external_id", ["workspace_id", "external_id"]
        )
    with op.batch_alter_table("inbox", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_inbox_channel_dedupe_key", type_="unique")
        batch.create_unique_constraint(
            "uq_inbox_channel_dedupe_key", ["workspace_id", "channel", "dedupe_key"]
        )
    with op.batch_alter_table("contact_details") as batch:
        batch.drop_index("ix_contact_details_kind_key")
        batch.create_index("ix_contact_details_kind_key", ["workspace_id", "kind", "key"])
    op.add_column("console_sessions", sa.Column("workspace_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("role")

    # Primary keys that gain the workspace: a copy of each small table.
    op.create_table(
        "task_digests_new",
        sa.Column("workspace_id", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "agent_id", "day"),
    )
    op.execute(
        "INSERT INTO task_digests_new (workspace_id, agent_id, day, sent_at) "
        "SELECT 1, agent_id, day, sent_at FROM task_digests"
    )
    op.drop_table("task_digests")
    op.rename_table("task_digests_new", "task_digests")
    op.create_table(
        "calendar_tokens_new",
        sa.Column("workspace_id", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "agent_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.execute(
        "INSERT INTO calendar_tokens_new (workspace_id, agent_id, token_hash, created_at) "
        "SELECT 1, agent_id, token_hash, created_at FROM calendar_tokens"
    )
    op.drop_table("calendar_tokens")
    op.rename_table("calendar_tokens_new", "calendar_tokens")

    _lead_indexes(postgresql)
    op.create_index(
        "ix_leads_merged_into",
        "leads",
        ["merged_into_id"],
        sqlite_where=sa.text("merged_into_id IS NOT NULL"),
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )
    _partial_indexes()
    _foreign_keys(True)


def downgrade() -> None:
    """Back to one business: only while the install has a single workspace."""
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if bind.execute(sa.text("SELECT count(*) FROM workspaces")).scalar_one() > 1:
        raise RuntimeError("this database has several workspaces: it cannot go back to one")
    _foreign_keys(False)
    for name in (*LEAD_INDEXES, "ix_leads_merged_into"):
        op.drop_index(name, table_name="leads")
    if postgresql:
        for name in PG_LEAD_INDEXES:
            op.drop_index(name, table_name="leads")
    op.drop_index("ix_messages_unprocessed", table_name="messages")
    op.drop_index("ix_inbox_unprocessed", table_name="inbox")
    op.drop_index("ix_tasks_unreminded", table_name="tasks")
    op.drop_index("uq_conversations_lead_email", table_name="conversations")

    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=20), server_default="agent", nullable=False)
        )
    op.execute(
        "UPDATE agents SET role = (SELECT role FROM workspace_members m "
        "WHERE m.agent_id = agents.id AND m.workspace_id = 1) "
        "WHERE id IN (SELECT agent_id FROM workspace_members WHERE workspace_id = 1)"
    )
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("workspace_id")
    with op.batch_alter_table("contact_details") as batch:
        batch.drop_index("ix_contact_details_kind_key")
        batch.create_index("ix_contact_details_kind_key", ["kind", "key"])
    with op.batch_alter_table("inbox") as batch:
        batch.drop_constraint("uq_inbox_channel_dedupe_key", type_="unique")
        batch.create_unique_constraint("uq_inbox_channel_dedupe_key", ["channel", "dedupe_key"])
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_constraint("uq_chat_sessions_external_id", type_="unique")
        batch.create_unique_constraint(
            _unnamed_unique("chat_sessions", "external_id"), ["external_id"]
        )
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_channel_message", type_="unique")
        batch.drop_constraint("uq_messages_idempotency_key", type_="unique")
        batch.create_unique_constraint(
            "uq_messages_channel_message", ["channel", "channel_message_id"]
        )
        batch.create_unique_constraint(
            _unnamed_unique("messages", "idempotency_key"), ["idempotency_key"]
        )
    with op.batch_alter_table("identities") as batch:
        batch.drop_constraint("uq_identities_channel_external", type_="unique")
        batch.create_unique_constraint("uq_identities_channel_external", ["channel", "external_id"])
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint("uq_leads_workspace_phone", type_="unique")
        batch.create_unique_constraint(_unnamed_unique("leads", "email"), ["email"])
        batch.create_unique_constraint(_unnamed_unique("leads", "phone"), ["phone"])
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("workspace_id")

    for table in ("task_digests", "calendar_tokens"):
        op.execute(f"DELETE FROM {table} WHERE workspace_id <> 1")
    with op.batch_alter_table("task_digests", recreate="always") as batch:
        batch.drop_column("workspace_id")
        batch.create_primary_key("task_digests_pkey", ["agent_id", "day"])
    with op.batch_alter_table("calendar_tokens", recreate="always") as batch:
        batch.drop_column("workspace_id")
        batch.create_primary_key("calendar_tokens_pkey", ["agent_id"])

    live: list[str | sa.TextClause] = [
        "archived",
        "created_at",
        "id",
        sa.text("coalesce(last_contacted_at, created_at)"),
    ]
    include: dict[str, Any] = {}
    if postgresql:
        include = {
            "postgresql_include": ["status", "score", "assigned_agent_id", "last_contacted_at"]
        }
    op.create_index("ix_leads_live_created", "leads", live, **include, **LIVE)
    op.create_index("ix_leads_live_score", "leads", ["archived", "score", "id"], **LIVE)
    op.create_index("ix_leads_live_id", "leads", ["archived", "id"], **LIVE)
    op.create_index(
        "ix_leads_live_status",
        "leads",
        ["archived", "status", "score", "assigned_agent_id"],
        **LIVE,
    )
    op.create_index(
        "ix_leads_live_agent", "leads", ["archived", "assigned_agent_id", "score", "id"], **LIVE
    )
    op.create_index(
        "ix_leads_live_contacted", "leads", ["archived", "last_contacted_at", "created_at"], **LIVE
    )
    op.create_index("ix_leads_live_name", "leads", ["archived", "name"], **LIVE)
    op.create_index("uq_leads_email_lower", "leads", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "ix_leads_merged_into",
        "leads",
        ["merged_into_id"],
        sqlite_where=sa.text("merged_into_id IS NOT NULL"),
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )
    if postgresql:
        op.create_index(
            "ix_leads_live_contacted_desc",
            "leads",
            ["archived", sa.text("last_contacted_at DESC NULLS LAST"), sa.text("id DESC")],
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
            postgresql_include=["last_contacted_at", "status"],
            postgresql_where=sa.text("merged_into_id IS NULL"),
        )
    _partial_indexes()
    op.drop_table("channel_connections")
    op.drop_table("workspace_members")
    op.drop_table("workspaces")
    _foreign_keys(True)
