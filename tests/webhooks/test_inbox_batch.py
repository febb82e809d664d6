"""The drain stores a batch in one go: messages from senders it already knows (lead, identity and
conversation settled) go into one INSERT the unique index decides, without a savepoint per row;
any other row takes the ordinary path in order; a row that fails makes the batch run again row by
row, so that it alone is set aside."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session, sessionmaker

from store import inbox
from store.events import LocalBus, watch
from store.inbox import MAX_ATTEMPTS
from store.models import Conversation, Inbox, Lead, Message
from tests.webhooks.meta_payloads import wa_body, wa_change, wa_contact, wa_message
from tests.webhooks.support import Clock
from tests.webhooks.test_inbox import inbound_texts, inbox_rows, parsed, text_batch
from webhooks.intake import InboxDrain, queue_batch

CUSTOMERS = ("16505550001", "16505550002", "16505550003")


def make_drain(session_factory: sessionmaker[Session], submitted: list[int]) -> InboxDrain:
    return InboxDrain(
        session_factory=session_factory,
        region="US",
        takeover_minutes=60,
        clock=Clock(),
        submit=submitted.append,
        batch_size=16,
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


def known_customers(db_engine: Engine, session_factory: sessionmaker[Session]) -> None:
    """Each customer's first message, drained: their leads, identities and conversations exist."""
    for wa_id in CUSTOMERS:
        queue_batch(
            text_batch("hello", wa_id=wa_id, mids=[f"first.{wa_id}"]),
            engine=db_engine,
            now=datetime.now(UTC),
        )
    make_drain(session_factory, []).drain()


def queue_interleaved(db_engine: Engine, rounds: int, prefix: str = "m") -> list[str]:
    texts: list[str] = []
    for number in range(rounds):
        for wa_id in CUSTOMERS:
            text = f"{prefix} {number} from {wa_id}"
            queue_batch(
                text_batch(text, wa_id=wa_id, mids=[f"{prefix}.{wa_id}.{number}"]),
                engine=db_engine,
                now=datetime.now(UTC),
            )
            texts.append(text)
    return texts


def conversation_texts(session_factory: sessionmaker[Session]) -> dict[str, list[str]]:
    with session_factory() as session:
        rows = session.execute(
            select(Message.external_id, Message.text)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.direction == "in")
            .order_by(Message.id)
        ).all()
    found: dict[str, list[str]] = {}
    for external_id, text in rows:
        found.setdefault(external_id, []).append(text)
    return found


def test_a_batch_from_known_senders_is_stored_in_a_few_statements_without_savepoints(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    known_customers(db_engine, session_factory)
    texts = queue_interleaved(db_engine, rounds=4)  # 12 messages, one batch
    bus = LocalBus(keep=200)
    watch(session_factory, bus)
    start = bus.last_id()
    submitted: list[int] = []
    with statements(db_engine) as seen:
        report = make_drain(session_factory, submitted).drain()
    announced = [e for e in bus.read(start, timeout=0) if e.kind == "message"]
    assert len({e.data["message_id"] for e in announced}) == len(announced) == 12
    assert report.processed == 12 and report.failed == 0 and report.result.stored == 12
    assert not [s for s in seen if "SAVEPOINT" in s.upper()]
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1  # the twelve messages in one statement
    # claim, senders, their verified details, insert, the conversations' and leads' last contact,
    # mark processed (the second claim finds the inbox empty).
    assert len(seen) <= 8, seen
    assert len(set(submitted)) == 3
    by_sender = conversation_texts(session_factory)
    for wa_id in CUSTOMERS:
        assert by_sender[wa_id] == ["hello"] + [t for t in texts if t.endswith(wa_id)]
    with session_factory() as session:
        conversations = list(session.scalars(select(Conversation)))
        latest = session.scalars(select(Message.sent_at).order_by(Message.id.desc())).first()
    assert len(conversations) == 3
    assert all(c.last_inbound_at is not None for c in conversations)
    assert latest is not None


def test_new_senders_and_known_ones_in_one_batch_keep_each_conversations_order(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    known_customers(db_engine, session_factory)
    queue_batch(
        text_batch("new one", wa_id="16505550009", mids=["n.1"]),
        engine=db_engine,
        now=datetime.now(UTC),
    )
    texts = queue_interleaved(db_engine, rounds=2)
    queue_batch(
        text_batch("new two", wa_id="16505550009", mids=["n.2"]),
        engine=db_engine,
        now=datetime.now(UTC),
    )
    report = make_drain(session_factory, []).drain()
    assert report.processed == 8 and report.failed == 0
    by_sender = conversation_texts(session_factory)
    assert by_sender["16505550009"] == ["new one", "new two"]
    for wa_id in CUSTOMERS:
        assert by_sender[wa_id] == ["hello"] + [t for t in texts if t.endswith(wa_id)]


def test_a_bad_row_in_a_batch_is_set_aside_alone(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    known_customers(db_engine, session_factory)
    before = queue_interleaved(db_engine, rounds=2, prefix="before")
    now = datetime.now(UTC)
    with db_engine.begin() as connection:
        connection.execute(
            insert(Inbox.__table__).values(
                channel="whatsapp",
                kind="message",
                dedupe_key="wamid.poison",
                event={"channel": "whatsapp", "no_such_field": 1},
                received_at=now,
                attempts=0,
            )
        )
    after = queue_interleaved(db_engine, rounds=2, prefix="after")
    drain = make_drain(session_factory, [])
    for _ in range(MAX_ATTEMPTS + 1):
        drain.drain()
    texts = inbound_texts(session_factory)
    assert texts == ["hello"] * 3 + before + after  # each once, in order
    poison = next(r for r in inbox_rows(session_factory) if r.dedupe_key == "wamid.poison")
    assert poison.processed_at is None and poison.attempts == MAX_ATTEMPTS
    assert poison.last_error and "TypeError" in poison.last_error
    with session_factory() as session:
        assert not inbox.has_work(session=session)


def test_a_message_delivered_again_is_stored_once_within_a_batch_and_across_drains(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    known_customers(db_engine, session_factory)
    wa_id = CUSTOMERS[0]
    queue_batch(
        text_batch("one", wa_id=wa_id, mids=["r.1"]), engine=db_engine, now=datetime.now(UTC)
    )
    make_drain(session_factory, []).drain()
    # The same channel message again (a mark lost before a crash), and twice in one batch under
    # different inbox keys, beside a new one.
    event: dict[str, Any] = {}
    for row in inbox_rows(session_factory):
        if row.dedupe_key == "r.1":
            event = dict(row.event)
    now = datetime.now(UTC)
    with db_engine.begin() as connection:
        for key, mid in (("again.1", "r.1"), ("twice.a", "r.2"), ("twice.b", "r.2")):
            connection.execute(
                insert(Inbox.__table__).values(
                    channel="whatsapp",
                    kind="message",
                    dedupe_key=key,
                    event={**event, "channel_message_id": mid, "text": mid},
                    received_at=now,
                    attempts=0,
                )
            )
    submitted: list[int] = []
    report = make_drain(session_factory, submitted).drain()
    assert report.processed == 3 and report.failed == 0
    assert (report.result.stored, report.result.duplicates) == (1, 2)
    with session_factory() as session:
        mids = list(
            session.scalars(
                select(Message.channel_message_id)
                .where(Message.external_id == wa_id)
                .order_by(Message.id)
            )
        )
    assert mids == [f"first.{wa_id}", "r.1", "r.2"]
    assert len(set(submitted)) == 1


def test_messages_stored_in_a_batch_are_announced_once_and_a_failed_attempt_announces_none(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    known_customers(db_engine, session_factory)
    bus = LocalBus(keep=200)
    watch(session_factory, bus)
    start = bus.last_id()
    texts = queue_interleaved(db_engine, rounds=2)
    with db_engine.begin() as connection:  # fails the first, whole-batch attempt
        connection.execute(
            insert(Inbox.__table__).values(
                channel="whatsapp",
                kind="message",
                dedupe_key="wamid.poison",
                event={"channel": "whatsapp", "no_such_field": 1},
                received_at=datetime.now(UTC),
                attempts=0,
            )
        )
    texts += queue_interleaved(db_engine, rounds=1, prefix="later")
    make_drain(session_factory, []).drain()
    announced = [e.data["message_id"] for e in bus.read(start, timeout=0) if e.kind == "message"]
    with session_factory() as session:
        stored = list(
            session.scalars(select(Message.id).where(Message.text.in_(texts)).order_by(Message.id))
        )
    assert len(stored) == len(texts) == 9
    assert sorted(announced) == stored  # each stored message once, none from the failed attempt


def test_new_customers_in_a_batch_do_not_make_the_others_senders_read_again(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Three new customers, three messages each, interleaved: their senders are read before the
    batch and once more when the first of them writes again, not after every new customer."""
    texts = queue_interleaved(db_engine, rounds=3, prefix="new")
    with statements(db_engine) as seen:
        report = make_drain(session_factory, []).drain()
    assert report.processed == 9 and report.failed == 0
    reads = [s for s in seen if "(identities.channel, identities.external_id) IN" in s]
    assert len(reads) == 2, reads
    by_sender = conversation_texts(session_factory)
    for wa_id in CUSTOMERS:
        assert by_sender[wa_id] == [t for t in texts if t.endswith(wa_id)]


def test_new_customers_read_absent_for_the_batch_are_registered_without_a_look_of_their_own(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The batch's read of its senders found these customers unregistered: each first message
    registers its sender straight away (no second read of the one sender), and each lands in a
    conversation of its own."""
    texts = queue_interleaved(db_engine, rounds=1, prefix="first")
    with statements(db_engine) as seen:
        report = make_drain(session_factory, []).drain()
    assert report.processed == len(CUSTOMERS) and report.failed == 0
    reads = [" ".join(s.split()) for s in seen if s.lstrip().upper().startswith("SELECT")]
    batch = [r for r in reads if "(identities.channel, identities.external_id) IN" in r]
    one_by_one = [r for r in reads if r.startswith("SELECT identities.") and r not in batch]
    assert len(batch) == 1 and not one_by_one, reads
    by_sender = conversation_texts(session_factory)
    for wa_id in CUSTOMERS:
        assert by_sender[wa_id] == [t for t in texts if t.endswith(wa_id)]
    with session_factory() as session:
        leads = session.scalars(select(Lead)).all()
        assert sorted(lead.phone for lead in leads) == sorted(f"+{wa_id}" for wa_id in CUSTOMERS)


def test_a_new_customer_writing_again_makes_only_their_sender_read_again(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A known customer and a new one, interleaved in one batch: before the new customer's second
    message their sender alone is read again; the known one's plan stands."""
    known, new = CUSTOMERS[0], CUSTOMERS[1]
    queue_batch(
        text_batch("hello", wa_id=known, mids=[f"first.{known}"]),
        engine=db_engine,
        now=datetime.now(UTC),
    )
    make_drain(session_factory, []).drain()
    texts = []
    for number, wa_id in enumerate((known, new, known, new, known)):
        text = f"m {number} from {wa_id}"
        queue_batch(
            text_batch(text, wa_id=wa_id, mids=[f"m.{number}"]),
            engine=db_engine,
            now=datetime.now(UTC),
        )
        texts.append(text)
    reads: list[list[object]] = []

    def record(_conn: object, _cursor: object, statement: str, params: Any, *_args: object) -> None:
        if "(identities.channel, identities.external_id) IN" in statement:
            values = params.values() if isinstance(params, dict) else params
            reads.append([value for value in values if value in CUSTOMERS])

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        report = make_drain(session_factory, []).drain()
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert report.processed == 5 and report.failed == 0
    assert [sorted(map(str, senders)) for senders in reads] == [sorted([known, new]), [new]]
    by_sender = conversation_texts(session_factory)
    assert by_sender[known] == ["hello", *[t for t in texts if t.endswith(known)]]
    assert by_sender[new] == [t for t in texts if t.endswith(new)]


def test_a_merge_inside_a_batch_makes_the_senders_ahead_read_again(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A customer known by phone writes once by a WhatsApp user id alone (a lead of its own), then
    with both (the two leads become one), all in one batch with the phone's own messages between:
    every message after the merge lands on the one lead, each in its room, in order."""
    phone, bsuid = "5511987654321", "BR.777"

    def one(text: str, *, wa_id: str | None, user_id: str | None = None) -> None:
        body = wa_body(
            wa_change(
                contacts=[wa_contact(wa_id, "Ana", user_id=user_id)],
                messages=[wa_message(wa_id=wa_id, user_id=user_id, body=text, mid=f"m.{text}")],
            )
        )
        queue_batch(parsed(body), engine=db_engine, now=datetime.now(UTC))

    one("hello", wa_id=phone)
    make_drain(session_factory, []).drain()  # known by phone
    one("first", wa_id=None, user_id=bsuid)
    one("p1", wa_id=phone)
    one("second", wa_id=phone, user_id=bsuid)
    one("p2", wa_id=phone)
    one("third", wa_id=None, user_id=bsuid)
    report = make_drain(session_factory, []).drain()
    assert report.processed == 5 and report.failed == 0
    with session_factory() as session:
        live = list(session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))))
        assert len(live) == 1 and live[0].phone == "+" + phone
        owners = set(session.scalars(select(Conversation.lead_id)))
        texts = {
            conversation_id: list(found)
            for conversation_id, found in itertools.groupby(
                session.execute(
                    select(Conversation.id, Message.text)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .order_by(Conversation.id, Message.id)
                ),
                key=lambda row: row[0],
            )
        }
    # Both rooms (each identity's conversation stays its own) belong to the one lead.
    assert owners == {live[0].id}
    assert [[text for _, text in found] for found in texts.values()] == [
        ["hello", "p1", "second", "p2"],
        ["first", "third"],
    ]
