"""Messages: storing inbound events exactly once, the pending queue, outbound records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import RowMapping, bindparam, insert, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import instance_dict, manager_of_class, set_committed_value

from store.contacts import try_normalize_phone
from store.db import insert_for
from store.events import inserted
from store.identity import Standing
from store.leads import (
    KnownSender,
    get_conversation,
    known_sender,
    resolve_identity,
    settled_sender,
)
from store.models import VERIFIED, Conversation, Lead, Message, as_utc, table_of, utcnow
from store.tenancy import all_workspaces, current_workspace, in_workspace
from store.text import clean_json, clean_text


@dataclass
class Inbound:
    """One inbound event as every channel adapter hands it over, channel-neutral."""

    channel: str
    external_id: str
    text: str = ""
    kind: str = "text"
    channel_message_id: str | None = None
    name: str | None = None
    phone: str | None = None  # supplied by the channel itself (e.g. the WhatsApp wa_id): verified
    email: str | None = None
    sent_at: datetime | None = None
    payload: dict[str, Any] | None = None
    author: str = "customer"  # "agent" for a human reply echoed from a native app
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Channels pass on whatever a sender typed: a NUL or a lone surrogate would fail the whole
        # batch (PostgreSQL and UTF-8 cannot store them), and neither carries meaning.
        for name in ("external_id", "text", "channel_message_id", "name", "phone", "email"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, clean_text(value))
        self.payload = clean_json(self.payload)
        self.extra = clean_json(self.extra)


@dataclass
class Ingested:
    message: Message
    lead: Lead
    conversation: Conversation
    duplicate: bool
    # The conversation's standing among the lead's, where the sender's lookup read it.
    standing: Standing | None = None


def ingest(
    inbound: Inbound,
    *,
    session: Session,
    region: str = "US",
    received_at: datetime | None = None,
    turn_follows: bool = False,
    sender_absent: bool = False,
) -> Ingested:
    """Store an inbound event once; a repeated channel message id returns the stored one, marked
    duplicate.

    The phone the channel supplies is trusted (verified) only when it is valid; an invalid one is
    kept in the payload and ignored for identity. The message lands in the conversation of its
    identity (each identity of a lead is a room of its own). `received_at` dates its arrival
    (when its webhook came, for a message ingested later); now by default. A customer's message
    dates its lead's and its conversation's last contact.

    `turn_follows`: the caller's turn on the message follows in this transaction (the bot's).
    A known sender's lead is then locked as it is read (PostgreSQL), and the contact dates are
    set on the rows for the session's next flush (the turn changes the rows again: one UPDATE
    of each) instead of written now.

    `sender_absent`: the caller has just read, in this transaction, that no identity of this
    customer's sender exists (the inbox drain's plan of a batch): it is registered without a
    look of its own (a concurrent registration still wins, and is met).
    """
    phone = try_normalize_phone(inbound.phone, region) if inbound.phone else None
    now = utcnow()
    direction = "in" if inbound.author == "customer" else "out"
    sent_at = inbound.sent_at or now
    known: KnownSender | None = None
    standing: Standing | None = None
    asked = inbound.author == "customer" and not (inbound.phone and phone is None)
    if asked and not sender_absent:
        # A customer already known, with nothing to claim, is found with its conversation in one
        # statement (the common case: a customer's second message and on).
        known = known_sender(
            inbound.channel,
            inbound.external_id,
            phone=phone,
            session=session,
            lock_lead=turn_follows,
        )
    if settled_sender(known, phone=phone, name=inbound.name, region=region):
        assert known is not None
        assert known.conversation is not None
        lead, conversation = known.lead, known.conversation
        standing = known.standing()
    else:
        # A sender `known_sender` found absent is registered without a second look, and its
        # conversation created without a look first (a concurrent registration still wins).
        unknown = asked and known is None
        # An inbound message dates its lead's and its conversation's last contact: written with
        # the rows when this message creates them.
        contacted_at = as_utc(sent_at) if direction == "in" else None
        lead, identity = resolve_identity(
            inbound.channel,
            inbound.external_id,
            phone=phone,
            name=inbound.name,
            session=session,
            region=region,
            trust=VERIFIED,
            absent=unknown,
            contacted_at=contacted_at,
        )
        conversation = get_conversation(
            lead,
            inbound.channel,
            session=session,
            identity=identity,
            likely_new=unknown,
            inbound_at=contacted_at,
        )
    values: dict[str, Any] = {
        "conversation_id": conversation.id,
        "channel": inbound.channel,
        "external_id": inbound.external_id,
        "direction": direction,
        "author": inbound.author,
        "text": (inbound.text or "")[:20000],
        "kind": inbound.kind,
        "channel_message_id": inbound.channel_message_id,
        "payload": inbound.payload,
        "sent_at": sent_at,
        "created_at": received_at or now,
        "delivery_status": "received" if direction == "in" else "sent",
        # Agent echoes need no bot processing.
        "processed_at": None if direction == "in" else now,
    }
    if not inbound.channel_message_id:
        # Nothing unique to collide on.
        message = _stored(session, _insert(), [values])[0]
        _date_contact(message, lead, conversation, session, with_flush=turn_follows)
        return Ingested(message, lead, conversation, False, standing)
    # One statement: the unique index decides whether the channel sent it before (no
    # read-then-write, no savepoint).
    found = _stored(session, _insert_once(session), [values])
    stored = found[0] if found else None
    if stored is None:
        existing = _by_channel_id(session, inbound.channel, inbound.channel_message_id)
        assert existing is not None
        before = session.get(Conversation, existing.conversation_id)
        assert before is not None
        return Ingested(existing, before.lead, before, True)
    _date_contact(stored, lead, conversation, session, with_flush=turn_follows)
    return Ingested(stored, lead, conversation, False, standing)


def ingest_known(
    items: Sequence[tuple[Inbound, KnownSender, datetime | None]], *, session: Session
) -> list[Ingested]:
    """Store customer messages from settled senders (`store.leads.settled_sender`: `ingest` would
    find their lead, identity and conversation and write nothing else) in one
    `INSERT ... ON CONFLICT DO NOTHING RETURNING`: the unique index decides which the channel
    sent before, and those come back marked duplicate, as from `ingest`. Each item needs a
    channel message id; the messages get ids in the items' order."""
    if not items:
        return []
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for inbound, known, received_at in items:
        assert inbound.channel_message_id
        assert known.conversation is not None
        rows.append(
            {
                "conversation_id": known.conversation.id,
                "channel": inbound.channel,
                "external_id": inbound.external_id,
                "direction": "in",
                "author": "customer",
                "text": (inbound.text or "")[:20000],
                "kind": inbound.kind,
                "channel_message_id": inbound.channel_message_id,
                "payload": inbound.payload,
                "sent_at": inbound.sent_at or now,
                "created_at": received_at or now,
                "delivery_status": "received",
                "processed_at": None,
            }
        )
    stored = {
        (m.channel, m.channel_message_id): m for m in _stored(session, _insert_once(session), rows)
    }
    results: list[Ingested] = []
    for inbound, known, _received_at in items:
        conversation = known.conversation
        assert conversation is not None
        message = stored.pop((inbound.channel, inbound.channel_message_id), None)
        if message is not None:
            results.append(_arrived(message, known.lead, conversation))
            continue
        existing = _by_channel_id(session, inbound.channel, inbound.channel_message_id or "")
        assert existing is not None
        before = session.get(Conversation, existing.conversation_id)
        assert before is not None
        results.append(Ingested(existing, before.lead, before, True))
    return results


def _stored(session: Session, statement: Any, rows: list[dict[str, Any]]) -> list[Message]:
    """Insert message `rows` with `statement` (an INSERT ... RETURNING every column) and give
    back the rows it stored as the session's own messages, as if loaded: persistent, with nothing
    to flush, their store events announced with the transaction's others (`inserted`).

    A Core statement on the session's connection, after a flush (what the session holds is written
    first, as an ORM statement's autoflush would: a message recorded before this one keeps the
    lower id). The ORM's own INSERT ... RETURNING of the entity, and then its constructor, cost
    the bot's message more than any of its other statements."""
    session.flush()
    result = session.connection().execute(statement, rows)
    messages = [_as_loaded(row, session) for row in result.mappings()]
    inserted(session, messages)
    return messages


_MANAGER = manager_of_class(Message)


def _as_loaded(row: RowMapping, session: Session) -> Message:
    """The message of a row its statement returned, in `session` as if loaded: made as the ORM's
    loading makes an entity (no constructor: its attribute events and the workspace stamp have
    nothing to do for a row already written), every column committed."""
    message: Message = _MANAGER.new_instance()
    instance_dict(message).update(row)
    make_transient_to_detached(message)
    session.add(message)
    return message


@cache
def _insert() -> Any:
    """INSERT ... RETURNING the message's every column, built once (its cache key worked out
    once)."""
    table = table_of(Message)
    return insert(table).returning(*table.c)


def _insert_once(session: Session) -> Any:
    """INSERT ... ON CONFLICT (channel, channel_message_id) DO NOTHING RETURNING the message's
    every column."""
    return _insert_once_for(session.get_bind().dialect.name)


@cache
def _insert_once_for(dialect: str) -> Any:
    """`_insert_once`'s statement for a dialect, built once (and its cache key worked out once)."""
    table = table_of(Message)
    return (
        insert_for(dialect)(table)
        .on_conflict_do_nothing(index_elements=["workspace_id", "channel", "channel_message_id"])
        .returning(*table.c)
    )


def _arrived(message: Message, lead: Lead, conversation: Conversation) -> Ingested:
    """A newly stored message of a batch: an inbound one dates the conversation's and the lead's
    last contact, written with the batch's flush (one UPDATE per row for all its messages)."""
    if message.direction == "in":
        conversation.last_inbound_at = max(
            filter(None, [conversation.last_inbound_at, message.sent_at])
        )
        lead.last_contacted_at = max(filter(None, [lead.last_contacted_at, message.sent_at]))
    return Ingested(message, lead, conversation, False)


def _date_contact(
    message: Message,
    lead: Lead,
    conversation: Conversation,
    session: Session,
    *,
    with_flush: bool = False,
) -> None:
    """A newly stored inbound message dates the conversation's and the lead's last contact: set on
    the rows for the session's next flush (`with_flush`), or each by an UPDATE of its own (built
    once), the loaded rows told the values as written. A message at a time, the ORM's flush of two
    changed rows cost more than the message's other statements; where the rows are flushed anyway
    (the turn that follows in the same transaction), the dates go in their UPDATEs."""
    if message.direction != "in":
        return
    sent_at, now = message.sent_at, utcnow()
    connection = None if with_flush else session.connection()
    for row, column, statement in (
        (conversation, "last_inbound_at", _contact_update(Conversation, "last_inbound_at")),
        (lead, "last_contacted_at", _contact_update(Lead, "last_contacted_at")),
    ):
        before = getattr(row, column)
        if before is not None and before >= sent_at:
            continue
        if connection is None:
            setattr(row, column, sent_at)
            continue
        connection.execute(statement, {"row_id": row.id, "at": sent_at, "now": now})
        set_committed_value(row, column, sent_at)
        set_committed_value(row, "updated_at", now)


@cache
def _contact_update(model: type[Conversation] | type[Lead], column: str) -> Any:
    """`_date_contact`'s UPDATE of one row's date (and its `updated_at`, as a flush would)."""
    table = table_of(model)
    return (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({column: bindparam("at"), "updated_at": bindparam("now")})
    )


def _by_channel_id(session: Session, channel: str, channel_message_id: str) -> Message | None:
    return session.scalars(
        select(Message).where(
            Message.channel == channel, Message.channel_message_id == channel_message_id
        )
    ).first()


def pending_messages(conversation_id: int, *, session: Session) -> list[Message]:
    """Inbound messages of a conversation that the bot has not processed yet, oldest first."""
    return list(
        session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "in",
                Message.processed_at.is_(None),
            )
            .order_by(Message.id)
        )
    )


class MessageFields(Protocol):
    """What a turn reads of a message: a `Message`, or a row of `turn_messages` (which loads these
    columns only, no ORM object)."""

    id: int
    channel: str
    external_id: str | None
    direction: str
    author: str
    text: str
    kind: str
    payload: Any
    sent_at: datetime
    processed_at: datetime | None


# The columns of `MessageFields`, which `turn_messages` loads.
_TURN_COLUMNS = tuple(MessageFields.__annotations__)


@dataclass
class TurnMessages:
    """What a bot turn reads of its conversation: the unprocessed customer messages and the most
    recent messages (any author), each oldest first."""

    pending: list[MessageFields]
    window: list[MessageFields]


def turn_messages(conversation_id: int, *, session: Session, window: int = 12) -> TurnMessages:
    """The conversation's pending messages and its last `window` messages, in one statement; both
    parts come from indexes on the conversation, whatever its length. Read as rows of the columns
    a turn uses: building a dozen ORM objects per turn cost more than the statement."""
    found = session.execute(
        _turn_statement(),
        {
            "conversation_id": conversation_id,
            "window": max(window, 0),
            "workspace": current_workspace(),
        },
    )
    # A pending message inside the window comes twice (once from each part).
    rows: list[MessageFields] = list({m.id: m for m in found}.values())
    return TurnMessages(
        pending=[m for m in rows if m.direction == "in" and m.processed_at is None],
        # The `window` newest rows of the union are the conversation's `window` newest messages.
        window=rows[-window:] if window > 0 else [],
    )


@cache
def _turn_statement() -> Any:
    """`turn_messages`' statement, built once (composing it costs more than running it): the
    window and the pending messages as two index scans, in one statement. Core columns, so the
    workspace's filter is written in."""
    conversation_id: Any = bindparam("conversation_id")
    table = table_of(Message).c
    columns = [getattr(table, name) for name in _TURN_COLUMNS]
    mine = (table.conversation_id == conversation_id, table.workspace_id == bindparam("workspace"))
    recent = (
        select(*columns)
        .where(*mine)
        .order_by(table.id.desc())
        .limit(bindparam("window"))
        .subquery()
    )
    unprocessed = select(*columns).where(
        *mine, table.direction == "in", table.processed_at.is_(None)
    )
    both = union_all(select(recent), unprocessed).subquery()
    return select(both).order_by(both.c.id)


def conversations_with_pending(
    *, session: Session, limit: int = 10000, every_workspace: bool = False
) -> list[int]:
    """Conversations with stored but unprocessed inbound messages (picked up after a restart):
    the workspace in force's, or with `every_workspace` all of them (a starting dispatcher, whose
    jobs each enter their conversation's workspace)."""
    statement = (
        select(Message.conversation_id)
        .where(Message.direction == "in", Message.processed_at.is_(None))
        .group_by(Message.conversation_id)
        .order_by(Message.conversation_id)
        .limit(limit)
    )
    if every_workspace:
        statement = statement.execution_options(**all_workspaces())
    return list(session.scalars(statement))


def conversation_workspace(conversation_id: int, *, session: Session) -> int | None:
    """The workspace conversation `conversation_id` belongs to (None: no such conversation),
    whatever workspace is in force: a background job's first question."""
    return session.scalar(
        select(Conversation.workspace_id)
        .where(Conversation.id == conversation_id)
        .execution_options(**all_workspaces())
    )


# The conversation whose workspace the work in hand already entered: a job enters it, then the
# bot's own entry (process_conversation, for callers outside any job) need not look it up again.
_entered_for: ContextVar[tuple[int, int] | None] = ContextVar(
    "leaddesk_conversation_workspace", default=None
)


@contextmanager
def in_conversation_workspace(
    conversation_id: int, *, session_factory: sessionmaker[Session], known: int | None = None
) -> Iterator[int]:
    """Run the block in the workspace of conversation `conversation_id` (the workspace in force
    when there is no such conversation: the block then finds nothing). Inside a block entered for
    the same conversation, the workspace is the one in force (no second lookup); `known` is the
    conversation's workspace when the caller has just read it."""
    if _entered_for.get() == (conversation_id, current_workspace()):
        yield current_workspace()
        return
    found = known
    if found is None:
        with session_factory() as session:
            found = conversation_workspace(conversation_id, session=session)
    with in_workspace(found if found is not None else current_workspace()) as workspace_id:
        token = _entered_for.set((conversation_id, workspace_id))
        try:
            yield workspace_id
        finally:
            _entered_for.reset(token)


def conversation_messages(
    conversation_id: int, *, session: Session, limit: int = 12
) -> list[Message]:
    """The last `limit` messages of one conversation, oldest first."""
    rows = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )
    rows.reverse()
    return rows


def recent_messages(lead_id: int, *, session: Session, limit: int = 12) -> list[Message]:
    """The last `limit` messages of a lead across its conversations, oldest first."""
    rows = list(
        session.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.lead_id == lead_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )
    rows.reverse()
    return rows


def add_outbound(
    conversation: Conversation,
    text: str,
    *,
    session: Session,
    idempotency_key: str,
    author: str = "bot",
    external_id: str | None = None,
    delivery_status: str = "pending",
) -> Message:
    """Store an outbound message whose idempotency key the caller knows to be new (the bot's
    reply to messages it has just claimed), by a Core statement as `ingest` stores a message
    (`_stored`: what the session holds is flushed first). Were the key taken after all, the
    statement fails on the unique index and the caller's transaction rolls back."""
    row = _outbound(
        conversation,
        text,
        author=author,
        agent_id=None,
        idempotency_key=idempotency_key,
        external_id=external_id,
        kind="text",
        delivery_status=delivery_status,
    )
    return _stored(session, _insert(), [row])[0]


def _outbound(
    conversation: Conversation,
    text: str,
    *,
    author: str,
    agent_id: int | None,
    idempotency_key: str | None,
    external_id: str | None,
    kind: str,
    delivery_status: str,
) -> dict[str, Any]:
    """The columns of a new outbound message on `conversation`, stamped now (nothing to process:
    it is ours): a row for `_stored`, or a `Message`'s arguments."""
    now = utcnow()
    return {
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "external_id": external_id,
        "direction": "out",
        "author": author,
        "agent_id": agent_id,
        # A model's or an agent's words: as untrusted as a customer's.
        "text": clean_text(text or ""),
        "kind": kind,
        "idempotency_key": idempotency_key,
        "delivery_status": delivery_status,
        "sent_at": now,
        "created_at": now,
        "processed_at": now,
    }


def record_outbound(
    conversation: Conversation,
    text: str,
    *,
    session: Session,
    author: str = "bot",
    agent_id: int | None = None,
    idempotency_key: str | None = None,
    external_id: str | None = None,
    kind: str = "text",
    delivery_status: str = "pending",
) -> Message:
    """Record an outbound message before it is sent; a repeated idempotency key gets the first."""
    if idempotency_key:
        existing = session.scalars(
            select(Message).where(Message.idempotency_key == idempotency_key)
        ).first()
        if existing is not None:
            return existing
    message = Message(
        **_outbound(
            conversation,
            text,
            author=author,
            agent_id=agent_id,
            idempotency_key=idempotency_key,
            external_id=external_id,
            kind=kind,
            delivery_status=delivery_status,
        )
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:
        existing = session.scalars(
            select(Message).where(Message.idempotency_key == idempotency_key)
        ).first()
        if existing is None:
            raise
        return existing
    return message
