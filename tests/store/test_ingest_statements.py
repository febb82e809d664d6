"""Storing an inbound message does the least the database needs: a detail the lead already holds
verified is not claimed again, a channel message id is deduplicated by one INSERT the unique index
decides, and the arrival time is written with the row (no UPDATE after it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from store import messages as store_messages
from store.leads import get_lead, resolve
from store.messages import Inbound, add_outbound, ingest
from store.models import (
    CLAIMED,
    VERIFIED,
    ContactDetail,
    Conversation,
    Identity,
    Lead,
    MergeSuggestion,
    Message,
    utcnow,
)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _whatsapp(sender: str, number: int, **fields: object) -> Inbound:
    return Inbound(
        channel="whatsapp",
        external_id=sender,
        text=f"Message {number}",
        phone=f"+{sender}",
        channel_message_id=f"wamid.{sender}.{number}",
        **fields,  # type: ignore[arg-type]
    )


def _no_phone(message_id: str) -> Inbound:
    return Inbound(
        channel="whatsapp", external_id="14155550999", text="Hi", channel_message_id=message_id
    )


def test_a_verified_phone_the_lead_holds_costs_no_statement_on_later_messages(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    with session_factory.begin() as session:
        first = ingest(_whatsapp("14155550123", 1), session=session)
        assert first.lead.phone == "+14155550123"
    with session_factory.begin() as session, statements(db_engine) as with_phone:
        again = ingest(_whatsapp("14155550123", 2), session=session)
    with session_factory.begin() as session:
        ingest(_no_phone("x"), session=session)
    with session_factory.begin() as session, statements(db_engine) as without_phone:
        ingest(_no_phone("y"), session=session)
    assert again.lead.id == first.lead.id and not again.duplicate
    # The identity with its lead, its conversation and whether the lead holds the phone verified
    # (one statement), the message, the lead's and the conversation's last contact: the same
    # whether or not the channel vouches for a phone the lead already has.
    assert len(with_phone) == len(without_phone) <= 4, with_phone


def test_a_claimed_phone_the_channel_then_vouches_for_becomes_verified(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        lead = resolve("whatsapp", "14155550124", session=session)
        resolve("whatsapp", "14155550124", phone="+14155550124", session=session, trust=CLAIMED)
        lead_id = lead.id
    with session_factory.begin() as session:
        stored = ingest(_whatsapp("14155550124", 1), session=session)
        assert stored.lead.id == lead_id
    with session_factory() as session:
        trust = session.scalars(
            select(ContactDetail.trust).where(
                ContactDetail.lead_id == lead_id, ContactDetail.kind == "phone"
            )
        ).one()
    assert trust == VERIFIED


def test_a_repeated_channel_message_id_is_stored_once_and_reported_duplicate(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        first = ingest(_whatsapp("14155550125", 1), session=session)
        again = ingest(_whatsapp("14155550125", 1), session=session)
        first_id = first.message.id
        assert again.duplicate and again.message.id == first_id
    with session_factory.begin() as session:
        later = ingest(_whatsapp("14155550125", 1), session=session)
        assert later.duplicate and later.message.id == first_id
        assert later.conversation.id == first.conversation.id
    with session_factory() as session:
        assert session.scalars(select(Message.id)).all() == [first_id]


def test_the_arrival_time_is_written_with_the_message(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    arrived = (utcnow() - timedelta(minutes=3)).replace(microsecond=0)
    with session_factory.begin() as session, statements(db_engine) as seen:
        stored = ingest(_whatsapp("14155550126", 1), session=session, received_at=arrived)
        message_id = stored.message.id
    assert not any(s.lstrip().upper().startswith("UPDATE MESSAGES") for s in seen)
    with session_factory() as session:
        created = session.get(Message, message_id).created_at  # type: ignore[union-attr]
    assert created.replace(tzinfo=None) == arrived.replace(tzinfo=None)


def test_a_new_customers_first_message_looks_the_sender_up_once(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    """The sender read absent is registered without a second look, and its conversation created
    by one INSERT without a look first: the only savepoint is the registration's, and the two
    rows carry the message's date from the start."""
    with session_factory.begin() as session, statements(db_engine) as seen:
        stored = ingest(_no_phone("first"), session=session)
        assert not stored.duplicate and stored.conversation.identity_id is not None
    reads = [" ".join(s.split()) for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert sum(1 for r in reads if r.startswith("SELECT identities.")) == 1, reads
    assert not any(r.startswith("SELECT conversations.") for r in reads), reads
    savepoints = [s for s in seen if s.lstrip().upper().startswith("SAVEPOINT")]
    assert len(savepoints) == 1, seen
    # The lead and the conversation are created with the message's date as their last contact:
    # nothing updates them after.
    assert not any(s.lstrip().upper().startswith("UPDATE") for s in seen), seen
    # The sender, the registration (savepoint, lead, its audit row, identity, release), the
    # conversation, the message.
    assert len(seen) <= 8, seen


def test_a_new_customers_first_message_dates_its_lead_and_conversation(
    session_factory: sessionmaker[Session],
) -> None:
    """The message that creates the lead and its conversation is their last contact, as the
    channel dated it (a naive date is UTC); a later, older one (a redelivery out of order)
    leaves it, a newer one moves it."""
    sent = datetime(2026, 3, 2, 9, 30)
    with session_factory.begin() as session:
        first = ingest(_whatsapp("14155550127", 1, sent_at=sent), session=session)
        assert first.lead.last_contacted_at == sent.replace(tzinfo=UTC)
        lead_id, conversation_id = first.lead.id, first.conversation.id
    with session_factory.begin() as session:
        ingest(_whatsapp("14155550127", 2, sent_at=sent - timedelta(hours=1)), session=session)
    assert _last_contact(session_factory, lead_id, conversation_id) == (
        sent.replace(tzinfo=UTC),
        sent.replace(tzinfo=UTC),
    )
    later = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    with session_factory.begin() as session:
        ingest(_whatsapp("14155550127", 3, sent_at=later), session=session)
    assert _last_contact(session_factory, lead_id, conversation_id) == (later, later)


def test_an_agents_echo_that_creates_the_lead_is_no_contact_from_the_customer(
    session_factory: sessionmaker[Session],
) -> None:
    """A human reply echoed from a native app may be the first the store hears of a person: it
    creates the lead and conversation without dating a contact from the customer."""
    with session_factory.begin() as session:
        echoed = ingest(
            Inbound(
                channel="messenger",
                external_id="psid-echo-first",
                text="Hello from the shop",
                author="agent",
                channel_message_id="m_echo_first",
            ),
            session=session,
        )
        lead_id, conversation_id = echoed.lead.id, echoed.conversation.id
    assert _last_contact(session_factory, lead_id, conversation_id) == (None, None)


def _last_contact(
    session_factory: sessionmaker[Session], lead_id: int, conversation_id: int
) -> tuple[datetime | None, datetime | None]:
    """The lead's last contact and its conversation's last inbound message, as stored."""
    with session_factory() as session:
        lead = session.get(Lead, lead_id)
        conversation = session.get(Conversation, conversation_id)
        assert lead is not None and conversation is not None
        return lead.last_contacted_at, conversation.last_inbound_at


def test_a_sender_registered_meanwhile_keeps_its_lead_and_conversation(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process registered the sender (and stored its first message) between this
    ingest's look and its registration: the message joins that lead and that conversation."""
    with session_factory.begin() as session:
        earlier = ingest(_no_phone("theirs"), session=session)
        lead_id, conversation_id = earlier.lead.id, earlier.conversation.id
    # This ingest's look ran before that registration was committed: it saw nobody.
    monkeypatch.setattr(store_messages, "known_sender", lambda *args, **kwargs: None)
    with session_factory.begin() as session:
        stored = ingest(_no_phone("ours"), session=session)
        assert (stored.lead.id, stored.conversation.id) == (lead_id, conversation_id)
    with session_factory() as session:
        assert session.scalars(select(func.count()).select_from(Lead)).one() == 1
        assert session.scalars(select(func.count()).select_from(Conversation)).one() == 1
        assert session.scalars(select(func.count()).select_from(Message)).one() == 2


@pytest.mark.parametrize(
    "kind", ["channel-id", "no-channel-id", "bot-reply"], ids=lambda kind: kind
)
def test_a_stored_message_is_the_row_the_database_holds_with_nothing_left_to_write(
    session_factory: sessionmaker[Session], db_engine: Engine, kind: str
) -> None:
    inbound = _whatsapp("14155550131", 1)
    if kind != "channel-id":
        inbound = Inbound(channel="web", external_id="visitor-131", text="Hello there")
    columns = [column.key for column in inspect(Message).column_attrs]
    with session_factory.begin() as session:
        stored = ingest(inbound, session=session).message
        if kind == "bot-reply":
            stored = add_outbound(
                session.get_one(Conversation, stored.conversation_id),
                "Hi! How can we help?",
                session=session,
                idempotency_key="bot-reply:131",
            )
            assert stored.direction == "out" and stored.workspace_id is not None
        state = inspect(stored)
        assert state.persistent and not state.expired_attributes
        with statements(db_engine) as seen:
            held = {name: getattr(stored, name) for name in columns}
            session.flush()
        assert seen == [], "reading the message loaded or wrote something"
        assert stored in session and not session.new and not session.dirty
    with session_factory() as session:
        loaded = session.get(Message, held["id"])
        assert loaded is not None
        assert {name: getattr(loaded, name) for name in columns} == held


def test_what_the_session_holds_is_written_before_the_message_it_stores(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        first = ingest(_whatsapp("14155550132", 1), session=session)
        greeting = Message(
            conversation_id=first.conversation.id,
            channel="whatsapp",
            direction="out",
            author="agent",
            text="Welcome back!",
            kind="text",
            delivery_status="pending",
            sent_at=utcnow(),
            created_at=utcnow(),
        )
        session.add(greeting)
        later = ingest(_whatsapp("14155550132", 2), session=session)
        # The agent's message went in first: the message's INSERT is a Core statement, which
        # no autoflush precedes, so `ingest` writes what the session holds before it.
        assert first.message.id < greeting.id < later.message.id
    with session_factory() as session:
        texts = session.scalars(
            select(Message.text)
            .where(Message.conversation_id == first.conversation.id)
            .order_by(Message.id)
        ).all()
    assert texts == ["Message 1", "Welcome back!", "Message 2"]


def test_a_new_customers_verified_phone_is_looked_for_once(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    """A new sender whose channel vouches for a phone nobody holds: the look for the phone's holder
    before the lead is created is the only one (its claim does not look again), and the lead
    ends up holding the phone, verified."""
    with session_factory.begin() as session, statements(db_engine) as seen:
        stored = ingest(_whatsapp("14155550140", 1), session=session)
        lead_id = stored.lead.id
    reads = [" ".join(s.split()) for s in seen if s.lstrip().upper().startswith("SELECT")]
    holders = [r for r in reads if r.startswith("SELECT leads.") and "leads.phone =" in r]
    assert len(holders) == 1, reads
    with session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.phone == "+14155550140"
        details = session.scalars(
            select(ContactDetail).where(ContactDetail.lead_id == lead_id)
        ).all()
        assert [(d.kind, d.key, d.trust) for d in details] == [("phone", "+14155550140", VERIFIED)]


def test_a_phone_holder_committed_meanwhile_is_met_not_duplicated(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process committed a lead holding the phone between this registration's look for a
    holder and its write of the new lead (which carries the phone): the unique index refuses the
    second holder, and the next attempt meets the first one, as if it had been seen in time. The
    sender joins that lead; no second lead is left behind, no suggestion stays open."""
    from store import leads as store_leads

    with session_factory.begin() as session:
        theirs = resolve("messenger", "psid-holder", phone="+14155550141", session=session)
        theirs_id = theirs.id
    looks: list[str] = []
    real_holder = store_leads._holder

    def holder_committed_after_the_first_look(session: Session, field: str, value: str) -> Any:
        looks.append(value)
        return None if len(looks) == 1 else real_holder(session, field, value)

    monkeypatch.setattr(store_leads, "_holder", holder_committed_after_the_first_look)
    with session_factory.begin() as session:
        stored = ingest(_whatsapp("14155550141", 1), session=session)
        assert not stored.duplicate
        assert get_lead(stored.lead.id, session=session).id == theirs_id
    assert len(looks) > 1, looks  # the next attempt looked again
    with session_factory() as session:
        living = session.scalars(select(Lead.id).where(Lead.merged_into_id.is_(None))).all()
        assert living == [theirs_id]
        identity = session.scalars(
            select(Identity).where(Identity.external_id == "14155550141")
        ).one()
        assert get_lead(identity.lead_id, session=session).id == theirs_id
        assert not session.scalars(
            select(MergeSuggestion).where(MergeSuggestion.state == "open")
        ).all()
