"""identity trust: verified and claimed identities and contact details, conversations per
identity, merge suggestions, emails unique whatever their case

Revision ID: 0002_identity
Revises: 0001

Existing data: identities from WhatsApp, Messenger and Instagram become verified, web chat and
manual ones claimed; each lead's phone and email become contact details (a phone is verified when
a WhatsApp identity of the lead is that number, otherwise claimed, as it was typed in a chat);
each conversation is tied to the first identity of its lead on its channel, and the lead's other
identities on that channel share it. Leads stay as they are, except that of two leads whose emails
differ only in case the newer keeps its address as a claimed detail beside a merge suggestion.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_identity"
down_revision = "0001"
branch_labels = None
depends_on = None

VERIFIED_CHANNELS = ("whatsapp", "messenger", "instagram")


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
    _foreign_keys(False)
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trust", sa.String(length=10), nullable=False, server_default="claimed")
        )
        batch_op.add_column(sa.Column("alias_of_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_identities_alias_of_id_identities",
            "identities",
            ["alias_of_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.alter_column("trust", server_default=None)

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ai_stopped", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("ai_paused_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_conversations_lead_channel", type_="unique")
        batch_op.create_unique_constraint("uq_conversations_identity", ["identity_id"])
        batch_op.create_index("ix_conversations_lead_id", ["lead_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_conversations_identity_id_identities",
            "identities",
            ["identity_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.alter_column("ai_stopped", server_default=None)

    op.create_table(
        "contact_details",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("trust", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "kind", "key", name="uq_contact_details_lead_kind_key"),
    )
    with op.batch_alter_table("contact_details", schema=None) as batch_op:
        batch_op.create_index("ix_contact_details_kind_key", ["kind", "key"], unique=False)

    op.create_table(
        "merge_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("other_lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("resolved_by_agent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["other_lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resolved_by_agent_id"], ["agents.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "other_lead_id", name="uq_merge_suggestions_pair"),
    )
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.create_index("ix_merge_suggestions_other", ["other_lead_id"], unique=False)

    _move_existing_data()
    op.create_index("uq_leads_email_lower", "leads", [sa.text("lower(email)")], unique=True)
    _foreign_keys(True)


def _move_existing_data() -> None:
    bind = op.get_bind()
    now = sa.func.now() if bind.dialect.name == "postgresql" else sa.text("CURRENT_TIMESTAMP")
    identities = sa.table(
        "identities",
        sa.column("id", sa.Integer),
        sa.column("lead_id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("external_id", sa.String),
        sa.column("trust", sa.String),
        sa.column("alias_of_id", sa.Integer),
    )
    conversations = sa.table(
        "conversations",
        sa.column("id", sa.Integer),
        sa.column("lead_id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("identity_id", sa.Integer),
    )
    leads = sa.table(
        "leads",
        sa.column("id", sa.Integer),
        sa.column("phone", sa.String),
        sa.column("email", sa.String),
        sa.column("merged_into_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    contacts = sa.table(
        "contact_details",
        sa.column("lead_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("value", sa.String),
        sa.column("key", sa.String),
        sa.column("trust", sa.String),
        sa.column("source", sa.String),
        sa.column("identity_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    suggestions = sa.table(
        "merge_suggestions",
        sa.column("lead_id", sa.Integer),
        sa.column("other_lead_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("source", sa.String),
        sa.column("reason", sa.Text),
        sa.column("state", sa.String),
        sa.column("created_at", sa.DateTime),
    )

    bind.execute(
        identities.update()
        .where(identities.c.channel.in_(VERIFIED_CHANNELS))
        .values(trust="verified")
    )

    # Each conversation talks with the first identity of its lead on its channel; the lead's other
    # identities on that channel (e.g. a WhatsApp BSUID beside the phone) share it.
    first: dict[tuple[int, str], int] = {}
    for identity_id, lead_id, channel in bind.execute(
        sa.select(identities.c.id, identities.c.lead_id, identities.c.channel).order_by(
            identities.c.id
        )
    ):
        key = (lead_id, channel)
        if key in first:
            bind.execute(
                identities.update()
                .where(identities.c.id == identity_id)
                .values(alias_of_id=first[key])
            )
        else:
            first[key] = identity_id
    for conversation_id, lead_id, channel in bind.execute(
        sa.select(conversations.c.id, conversations.c.lead_id, conversations.c.channel)
    ).all():
        if (lead_id, channel) in first:
            bind.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(identity_id=first[(lead_id, channel)])
            )

    whatsapp_numbers: dict[int, dict[str, int]] = {}
    for identity_id, lead_id, external_id in bind.execute(
        sa.select(identities.c.id, identities.c.lead_id, identities.c.external_id).where(
            identities.c.channel == "whatsapp"
        )
    ):
        digits = "".join(ch for ch in external_id if ch.isdigit())
        whatsapp_numbers.setdefault(lead_id, {})["+" + digits] = identity_id

    seen_emails: dict[str, int] = {}
    for lead_id, phone, email, created_at in bind.execute(
        sa.select(leads.c.id, leads.c.phone, leads.c.email, leads.c.created_at).order_by(
            leads.c.created_at, leads.c.id
        )
    ).all():
        if phone:
            vouched = whatsapp_numbers.get(lead_id, {}).get(phone)
            bind.execute(
                contacts.insert().values(
                    lead_id=lead_id,
                    kind="phone",
                    value=phone,
                    key=phone,
                    trust="verified" if vouched else "claimed",
                    source="whatsapp" if vouched else "chat",
                    identity_id=vouched,
                    created_at=created_at,
                )
            )
        if email:
            key = email.lower()
            bind.execute(
                contacts.insert().values(
                    lead_id=lead_id,
                    kind="email",
                    value=email,
                    key=key,
                    trust="claimed",
                    source="chat",
                    identity_id=None,
                    created_at=created_at,
                )
            )
            older = seen_emails.get(key)
            if older is None:
                seen_emails[key] = lead_id
                continue
            # The same address in another case: one lead keeps it, the other a suggestion.
            bind.execute(leads.update().where(leads.c.id == lead_id).values(email=None))
            bind.execute(
                suggestions.insert().values(
                    lead_id=lead_id,
                    other_lead_id=older,
                    kind="email",
                    source="chat",
                    reason=(
                        f"#{lead_id} may be the same person as #{older}: "
                        "same email, in another case"
                    ),
                    state="open",
                    created_at=now,
                )
            )


def downgrade() -> None:
    _foreign_keys(False)
    op.drop_index("uq_leads_email_lower", table_name="leads")
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.drop_index("ix_merge_suggestions_other")
    op.drop_table("merge_suggestions")
    with op.batch_alter_table("contact_details", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_details_kind_key")
    op.drop_table("contact_details")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint("fk_conversations_identity_id_identities", type_="foreignkey")
        batch_op.drop_index("ix_conversations_lead_id")
        batch_op.drop_constraint("uq_conversations_identity", type_="unique")
        batch_op.drop_column("ai_paused_until")
        batch_op.drop_column("ai_stopped")
        batch_op.drop_column("identity_id")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_constraint("fk_identities_alias_of_id_identities", type_="foreignkey")
        batch_op.drop_column("alias_of_id")
        batch_op.drop_column("trust")
    _foreign_keys(True)
