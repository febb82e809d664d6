"""The lead store's tables: leads, their channel identities, conversations, messages and history.

The schema is created only by the Alembic migrations in `store/migrations`; keep the two in sync
(`tests/store/test_migrations.py` compares them).

A row is linked to another by its own foreign key column (`lead_id`, `assigned_agent_id`), which
the code that makes or moves it sets. The relationships are there to read (`viewonly`), an
agent's memberships excepted: a flush then has no relationship to work out (they were over a
third of the work of the bot's flushes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    func,
    select,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.tenancy import FIRST_WORKSPACE, current_workspace

CHANNELS = ("web", "messenger", "instagram", "whatsapp", "manual")
NOTE_CATEGORIES = ("General", "Qualification", "Follow-up", "Objection", "Positive Signal")
AGENT_ROLES = ("agent", "admin")
AUTHORS = ("customer", "bot", "agent")
# How a contact detail or channel identity is known: vouched for by a channel, or only said.
VERIFIED, CLAIMED = "verified", "claimed"
TRUST_LEVELS = (VERIFIED, CLAIMED)
SUGGESTION_STATES = ("open", "accepted", "dismissed")
HOT_SCORE = 75


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """`value` as a timezone-aware UTC datetime (a naive one is taken to be UTC already)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements the store builds once (typed as the `Table` it is)."""
    return cast(Table, model.__table__)


class Workspace(Base):
    """One business served by this install: its own team, channels, prompts and data.

    The first (`store.tenancy.FIRST_WORKSPACE`) is the install's own, configured by the environment
    and `LEADDESK_PROMPTS_DIR` as before workspaces existed; others keep their prompts in
    `LEADDESK_PROMPTS_DIR/<slug>/` and their channel connections in `channel_connections`. A
    workspace is disabled, never deleted: its data stays, its channels stop being answered.
    """

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkspaceMember(Base):
    """An agent's place in a workspace, with the role they have there (agent or admin)."""

    __tablename__ = "workspace_members"
    __table_args__ = (Index("ix_workspace_members_agent_id", "agent_id"),)

    # No foreign key to `workspaces`, like every workspace_id: workspaces are disabled, never
    # deleted, and the first one exists whether or not its row does.
    workspace_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20), default="agent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelConnection(Base):
    """How a workspace is reached on a channel: the account the channel names in its events (a
    WhatsApp phone number id, a Facebook Page id, an Instagram account id, a web widget's key) and
    the credentials to answer through it, encrypted (`secrets`: a Fernet token of a JSON object)."""

    __tablename__ = "channel_connections"
    __table_args__ = (
        UniqueConstraint("channel", "account_id", name="uq_channel_connections_account"),
        Index("ix_channel_connections_workspace", "workspace_id", "channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[str] = mapped_column(String(200))
    secrets: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkspaceScoped:
    """A row of one workspace's data: stamped with the workspace in force when it is created and
    seen only from it (`store.tenancy`)."""

    workspace_id: Mapped[int] = mapped_column(
        Integer, default=current_workspace, server_default=text(str(FIRST_WORKSPACE))
    )


@event.listens_for(WorkspaceScoped, "init", propagate=True)
def _stamp_workspace(target: WorkspaceScoped, _args: Any, kwargs: dict[str, Any]) -> None:
    """A row belongs to the workspace in force when it is made (not when it is flushed: one
    session may work in several workspaces in turn, as the inbox drain does)."""
    if kwargs.get("workspace_id") is None:
        kwargs["workspace_id"] = current_workspace()  # the constructor sets it, as if given


class Agent(Base):
    """A person who works leads: signs in once, belongs to one or more workspaces (`memberships`)
    with a role in each. `role` is their role in the workspace in force."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity: Mapped[int] = mapped_column(Integer, default=50)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    link_code_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    # The workspace the Telegram copilot works in, chosen with `/workspace <slug>` (None: their
    # only one).
    copilot_workspace_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    leads: Mapped[list[Lead]] = relationship(back_populates="assigned_agent", viewonly=True)
    memberships: Mapped[list[WorkspaceMember]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="WorkspaceMember.workspace_id"
    )

    def __init__(self, *, role: str = "agent", **fields: Any) -> None:
        super().__init__(**fields)
        self.role = role

    @hybrid_property
    def role(self) -> str:
        """The agent's role in the workspace in force ("" when not a member of it)."""
        workspace_id = current_workspace()
        for member in self.memberships:
            if member.workspace_id == workspace_id:
                return member.role
        return ""

    @role.inplace.setter
    def _role_setter(self, value: str) -> None:
        workspace_id = current_workspace()
        for member in self.memberships:
            if member.workspace_id == workspace_id:
                member.role = value
                return
        self.memberships.append(WorkspaceMember(workspace_id=workspace_id, role=value))

    @role.inplace.expression
    @classmethod
    def _role_expression(cls) -> ColumnElement[str]:
        return (
            select(WorkspaceMember.role)
            .where(
                WorkspaceMember.agent_id == cls.id,
                WorkspaceMember.workspace_id == current_workspace(),
            )
            .scalar_subquery()
        )


_LIVE: dict[str, Any] = {
    "sqlite_where": text("merged_into_id IS NULL"),
    "postgresql_where": text("merged_into_id IS NULL"),
}


class Lead(WorkspaceScoped, Base):
    __tablename__ = "leads"
    __table_args__ = (
        # Every list filter looks at living leads (not merged away): partial indexes leave the
        # tombstones out, and leading with `archived` lets counts run on the index alone.
        # Measured by benchmarks/lead_query.py.
        # Newest first in the sort's full order (created_at, id), then the stale filter's
        # expression, whether the lead was heard from since: a stale page skips the recent leads
        # inside the index. On PostgreSQL it carries the columns the usual filters read (INCLUDE),
        # so a page's ids come from the index alone, however many leads a filter skips.
        Index(
            "ix_leads_live_created",
            "archived",
            "created_at",
            "id",
            func.coalesce(text("last_contacted_at"), text("created_at")),
            "workspace_id",
            postgresql_include=["status", "score", "assigned_agent_id", "last_contacted_at"],
            **_LIVE,
        ),
        # With id, the whole sort key (score, id): a page by score reads the index in order.
        Index("ix_leads_live_score", "archived", "score", "id", "workspace_id", **_LIVE),
        # The living leads by id: a channel's count merges this with the identities' channel
        # index, both read on the index alone.
        Index("ix_leads_live_id", "archived", "id", "workspace_id", **_LIVE),
        # Status, score and assignment: "hot, unassigned, Interested" is counted on the index alone.
        Index(
            "ix_leads_live_status",
            "archived",
            "status",
            "score",
            "assigned_agent_id",
            "workspace_id",
            **_LIVE,
        ),
        # An agent's leads by score (the copilot's and a rep's usual order) read in index order.
        Index(
            "ix_leads_live_agent",
            "archived",
            "assigned_agent_id",
            "score",
            "id",
            "workspace_id",
            **_LIVE,
        ),
        Index(
            "ix_leads_live_contacted",
            "archived",
            "last_contacted_at",
            "created_at",
            "workspace_id",
            **_LIVE,
        ),
        Index("ix_leads_live_name", "archived", "name", "workspace_id", **_LIVE),
        # Tombstones by the lead they point to. Partial, so that SQLite's planner never mistakes
        # it for a way to find the (nearly all) living leads, whose merged_into_id IS NULL.
        Index(
            "ix_leads_merged_into",
            "merged_into_id",
            sqlite_where=text("merged_into_id IS NOT NULL"),
            postgresql_where=text("merged_into_id IS NOT NULL"),
        ),
        # Substring search (ILIKE '%text%') on PostgreSQL: trigram GIN over the searched columns.
        Index(
            "ix_leads_search_trgm",
            "name",
            "email",
            "company",
            "phone",
            postgresql_using="gin",
            postgresql_ops=dict.fromkeys(("name", "email", "company", "phone"), "gin_trgm_ops"),
            info={"only_on": "postgresql"},
        ).ddl_if(dialect="postgresql"),
        # One lead per email whatever its case (in a workspace): stored as typed, unique in
        # lower case.
        Index("uq_leads_email_lower", "workspace_id", func.lower(text("email")), unique=True),
        # One lead per phone number in a workspace (the same customer writing to two businesses is
        # two leads).
        UniqueConstraint("workspace_id", "phone", name="uq_leads_workspace_phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))
    company: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(60), default="New")
    score: Mapped[int] = mapped_column(Integer, default=0)
    score_factors: Mapped[list[Any]] = mapped_column(default=list)
    interests: Mapped[list[Any]] = mapped_column(default=list)
    objections: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[str | None] = mapped_column(Text)
    conversion_probability: Mapped[float | None] = mapped_column(Float)
    next_best_action: Mapped[str | None] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str | None] = mapped_column(String(100))
    assigned_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    ai_paused_until: Mapped[datetime | None]
    ai_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_pause_reason: Mapped[str | None] = mapped_column(String(60))
    ai_resume_notice_due: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_asks: Mapped[int] = mapped_column(Integer, default=0)
    phone_declined: Mapped[bool] = mapped_column(Boolean, default=False)
    last_reply_asked_phone: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_contacted_at: Mapped[datetime | None]
    converted_at: Mapped[datetime | None]
    # Why the lead was lost (one of statuses.yaml's lost_reasons) and the agent's own words.
    lost_reason: Mapped[str | None] = mapped_column(String(100))
    lost_note: Mapped[str | None] = mapped_column(Text)

    assigned_agent: Mapped[Agent | None] = relationship(back_populates="leads", viewonly=True)
    identities: Mapped[list[Identity]] = relationship(
        back_populates="lead", order_by="Identity.id", viewonly=True
    )
    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="lead", order_by="Conversation.id", viewonly=True
    )
    notes: Mapped[list[Note]] = relationship(
        back_populates="lead", order_by="Note.id", viewonly=True
    )
    contacts: Mapped[list[ContactDetail]] = relationship(
        back_populates="lead", order_by="ContactDetail.id", viewonly=True
    )

    @property
    def channels(self) -> list[str]:
        return sorted({identity.channel for identity in self.identities})

    @property
    def is_hot(self) -> bool:
        return self.score >= HOT_SCORE


# "Last contact, newest first" keeps never-contacted leads last (DESC NULLS LAST), an order only
# PostgreSQL can give an index; SQLite's DESC already puts NULLs last and reads the plain one.
Index(
    "ix_leads_live_contacted_desc",
    Lead.archived,
    Lead.last_contacted_at.desc().nulls_last(),
    Lead.id.desc(),
    Lead.workspace_id,
    postgresql_where=text("merged_into_id IS NULL"),
    info={"only_on": "postgresql"},
).ddl_if(dialect="postgresql")


class Identity(WorkspaceScoped, Base):
    """One way of reaching a person: (channel, the channel's id for them), and how it is known.

    `trust` is `verified` when the channel vouches for the id (a WhatsApp number, a Messenger PSID,
    an Instagram IGSID, a web chat identity signed by the business's site) and `claimed` otherwise
    (an anonymous web chat session, a lead typed in by hand). `alias_of_id` names the identity
    whose conversation this one shares (the WhatsApp BSUID beside the phone, a signed visitor's
    chat session beside the site's user id).
    """

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "channel", "external_id", name="uq_identities_channel_external"
        ),
        # The channel filter's EXISTS (channel = ? AND lead_id = leads.id), answered from the index.
        Index("ix_identities_channel_lead", "channel", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    trust: Mapped[str] = mapped_column(String(10), default=CLAIMED)
    alias_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="identities", viewonly=True)

    @property
    def verified(self) -> bool:
        return self.trust == VERIFIED


class Conversation(WorkspaceScoped, Base):
    """The messages exchanged with one identity of a lead: a room of its own, whatever the lead is
    merged from. Its pause and stop are the bot's for this room only (the lead's apply to all)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("identity_id", name="uq_conversations_identity"),
        Index("ix_conversations_lead_id", "lead_id"),
        # One email conversation per lead: the mail agents send it (store.mail).
        Index(
            "uq_conversations_lead_email",
            "lead_id",
            unique=True,
            sqlite_where=text("channel = 'email'"),
            postgresql_where=text("channel = 'email'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    ai_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_paused_until: Mapped[datetime | None]
    # The language the bot writes in (ISO 639-1), kept until the customer clearly switches.
    language: Mapped[str | None] = mapped_column(String(8))
    last_inbound_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="conversations", viewonly=True)
    identity: Mapped[Identity | None] = relationship(viewonly=True)
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id", viewonly=True
    )


class Message(WorkspaceScoped, Base):
    """One message in or out. Inbound messages wait with `processed_at` NULL until the bot ran."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "channel", "channel_message_id", name="uq_messages_channel_message"
        ),
        UniqueConstraint("workspace_id", "idempotency_key", name="uq_messages_idempotency_key"),
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        Index("ix_messages_pending", "direction", "processed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(3))
    author: Mapped[str] = mapped_column(String(10))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(30), default="text")
    channel_message_id: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]

    conversation: Mapped[Conversation] = relationship(back_populates="messages", viewonly=True)


class ContactDetail(WorkspaceScoped, Base):
    """A phone number or email of a lead and how it is known (verified by a channel, or claimed).

    `key` is the compared form (E.164 for phones, the lower-cased address for emails); `value` is
    as it was given. `identity_id` is the identity whose conversation supplied it, if any.
    """

    __tablename__ = "contact_details"
    __table_args__ = (
        UniqueConstraint("lead_id", "kind", "key", name="uq_contact_details_lead_kind_key"),
        Index("ix_contact_details_kind_key", "workspace_id", "kind", "key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # phone, email
    value: Mapped[str] = mapped_column(String(320))
    key: Mapped[str] = mapped_column(String(320))
    trust: Mapped[str] = mapped_column(String(10), default=CLAIMED)
    source: Mapped[str] = mapped_column(String(40))  # a channel, "agent" or "import"
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="contacts", viewonly=True)

    @property
    def verified(self) -> bool:
        return self.trust == VERIFIED


class MergeSuggestion(WorkspaceScoped, Base):
    """Two leads that may be one person, on a detail only claimed: an agent decides."""

    __tablename__ = "merge_suggestions"
    __table_args__ = (
        UniqueConstraint("lead_id", "other_lead_id", name="uq_merge_suggestions_pair"),
        Index("ix_merge_suggestions_other", "other_lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    other_lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # the detail both have: phone, email
    source: Mapped[str] = mapped_column(String(40))  # where it was claimed
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="open")
    resolved_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Note(WorkspaceScoped, Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(30), default="General")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="notes", viewonly=True)


class ScoreEvent(WorkspaceScoped, Base):
    """One score update with the factors (and quoted evidence) behind it."""

    __tablename__ = "score_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    # The last inbound message the assessment covered: a retried job cannot score it twice.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    previous_score: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer)
    factors: Mapped[list[Any]] = mapped_column(default=list)
    engine: Mapped[str] = mapped_column(String(20), default="offline")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(WorkspaceScoped, Base):
    """Who changed which field of which lead, from what to what, and when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(20))  # bot, agent, import, merge, system
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(30))  # create, update, merge, assign, note, delete
    field: Mapped[str | None] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(WorkspaceScoped, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_agent_read", "agent_id", "read"),
        # The Telegram copilot polls for due, undelivered notifications.
        Index("ix_notifications_undelivered", "delivered_at", "id"),
        # Merging and deleting leads find their notifications by lead.
        Index("ix_notifications_lead_id", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    deliver_after: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatSession(WorkspaceScoped, Base):
    """A web chat widget session: the bearer token (hashed) and the visitor's identity."""

    __tablename__ = "chat_sessions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id", name="uq_chat_sessions_external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Base):
    """A web console sign-in: its cookie holds the random key, the server decides whether it counts.

    Deleting the row signs that browser out; sign-out, "sign out everywhere", a new token or
    password and disabling the agent delete them.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_agent_id", "agent_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # The workspace this browser works in (the console's switcher); None: the agent's first.
    workspace_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


# An agent's leads newest first (a rep's own list), then each lead's last activity (last contact,
# or creation if never contacted), as ix_leads_live_created has them for the whole desk: the page
# reads in order and an agent's stale leads are skipped to inside the index. The last contact and
# the status ride along (INCLUDE), so counting an agent's stale leads is an index-only scan;
# PostgreSQL takes one only when every column the query names is in the index. Not on SQLite:
# without statistics its planner took this index for every "archived = 0" scan (a text search
# read 100,000 rows in creation order instead of in table order: 6x slower), and SQLite desks
# are not the large ones.
Index(
    "ix_leads_live_agent_created",
    Lead.archived,
    Lead.assigned_agent_id,
    Lead.created_at,
    Lead.id,
    func.coalesce(Lead.last_contacted_at, Lead.created_at),
    Lead.workspace_id,
    postgresql_include=["last_contacted_at", "status"],
    postgresql_where=text("merged_into_id IS NULL"),
    info={"only_on": "postgresql"},
).ddl_if(dialect="postgresql")


class ConversationRead(Base):
    """How far an agent has read a conversation: its unread count is the customer's messages
    after `last_read_message_id`."""

    __tablename__ = "conversation_reads"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_message_id: Mapped[int] = mapped_column(default=0)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


# The bot's reads of one conversation: its unprocessed customer messages, from an index that holds
# only those (a run never walks the conversation's history, nor the other conversations' backlog).
Index(
    "ix_messages_unprocessed",
    Message.conversation_id,
    Message.id,
    sqlite_where=text("direction = 'in' AND processed_at IS NULL"),
    postgresql_where=text("direction = 'in' AND processed_at IS NULL"),
)


class Inbox(Base):
    """A webhook event acknowledged to its channel and waiting to be ingested (the Meta channels).

    The request only inserts here (deduplicated by the channel's message id); a drain ingests the
    rows oldest first and sets `processed_at`. An event that keeps failing is set aside after a few
    `attempts` with its `last_error`, still unprocessed: it neither blocks the others nor is lost.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "channel", "dedupe_key", name="uq_inbox_channel_dedupe_key"
        ),
        Index(
            "ix_inbox_unprocessed",
            "id",
            sqlite_where=text("processed_at IS NULL"),
            postgresql_where=text("processed_at IS NULL"),
        ),
        Index("ix_inbox_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The workspace the event was routed to (the drain spans workspaces: not filtered).
    workspace_id: Mapped[int] = mapped_column(
        Integer, default=current_workspace, server_default=text(str(FIRST_WORKSPACE))
    )
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))  # message, echo (an agent's reply), status
    dedupe_key: Mapped[str | None] = mapped_column(String(255))  # the channel's message id
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


TASK_KINDS = ("call", "email", "meeting", "other")
TASK_SOURCES = ("agent", "copilot", "bot")


class Task(WorkspaceScoped, Base):
    """A follow-up an agent owes a lead: a call, email, meeting or other, due at a time.

    `reminded_at` is set, atomically, by the one process that raises the "due now" reminder (a
    reschedule clears it); `source_key` names what proposed the task (the bot's status change) so
    that a redelivered job cannot propose it twice.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        # An agent's tasks by due time (my tasks: today, overdue, this week; the calendar feed).
        # Not (agent_id, done_at, due_at): SQLite's planner took "done_at IS NULL" for a selective
        # equality and skip-scanned that index for the reminder sweep instead of the partial one
        # below (benchmarks/task_reminders.py).
        Index("ix_tasks_agent_due", "agent_id", "due_at"),
        Index("ix_tasks_lead_id", "lead_id"),
        # The reminder sweep: open tasks not yet reminded, by due time.
        Index(
            "ix_tasks_unreminded",
            "due_at",
            sqlite_where=text("reminded_at IS NULL AND done_at IS NULL"),
            postgresql_where=text("reminded_at IS NULL AND done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default="call")
    title: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    # How a call or meeting went (a logged one, or a task completed with an outcome).
    outcome: Mapped[str | None] = mapped_column(String(30))
    reminded_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(10), default="agent")
    source_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lead: Mapped[Lead] = relationship(viewonly=True)
    agent: Mapped[Agent] = relationship(foreign_keys=[agent_id], viewonly=True)

    @property
    def done(self) -> bool:
        return self.done_at is not None


class TaskDigest(WorkspaceScoped, Base):
    """The morning digest of overdue tasks sent to an agent on a (business-local) day: its primary
    key is the claim, so two workers cannot both send it."""

    __tablename__ = "task_digests"

    workspace_id: Mapped[int] = mapped_column(
        Integer,
        primary_key=True,
        default=current_workspace,
        server_default=text(str(FIRST_WORKSPACE)),
    )
    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, business zone
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalendarToken(WorkspaceScoped, Base):
    """An agent's read-only calendar token (hashed): it opens the .ics feed and nothing else."""

    __tablename__ = "calendar_tokens"

    workspace_id: Mapped[int] = mapped_column(
        Integer,
        primary_key=True,
        default=current_workspace,
        server_default=text(str(FIRST_WORKSPACE)),
    )
    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
