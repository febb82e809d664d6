"""How much database work one bot run does: a bounded number of SQL statements per run, on SQLite
and PostgreSQL, that does not grow with the conversation's length or the number of leads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, PromptConfig
from bot import nodes as bot_nodes
from store import make_session_factory
from store import messages as store_messages
from store.agents import create_agent
from store.messages import Inbound, TurnMessages, ingest, record_outbound
from store.models import Conversation, Lead, Message, Notification, ScoreEvent, Task
from tests.bot.support import SOLAR_SHOPPER, Clock

# A steady-state run (no status change, no new contact): read the conversation (2), then claim,
# lock and load, score event, audit rows, lead, conversation, reply (7); a local outbox's reply is
# recorded as sent in that transaction (no statement of its own).
MAX_STATEMENTS_PER_RUN = 10
QUESTIONS = [
    "What packages do you offer?",
    "Does it work with a flat roof?",
    "How long does installation take?",
    "What happens on cloudy days?",
    "Is there a monitoring app?",
]


class Statements:
    """Counts the statements an engine executes inside `counting()` (transaction control aside:
    BEGIN is a statement on SQLite and a protocol message on PostgreSQL)."""

    def __init__(self, engine: Engine):
        self.seen: list[str] = []
        self._on = False
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if self._on and not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            self.seen.append(statement)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.seen = []
        self._on = True
        try:
            yield self.seen
        finally:
            self._on = False


@pytest.fixture
def factory(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture
def service(factory: sessionmaker[Session], prompts: PromptConfig) -> BotService:
    return BotService(
        session_factory=factory,
        prompts=prompts,
        outbox=LocalOutbox(factory),
        clock=Clock(),
        region="US",
    )


def _run(service: BotService, counter: Statements, sender: str, text: str) -> int:
    """Store one customer message as a webhook does, then count the statements of the bot run."""
    conversation_id = service.store(Inbound(channel="web", external_id=sender, text=text))
    assert conversation_id is not None
    with counter.counting() as seen:
        replies = service.process_conversation(conversation_id)
    assert len(replies) == 1
    return len(seen)


def _long_history(factory: sessionmaker[Session], sender: str, exchanges: int) -> None:
    """A conversation that has gone on for a while: `exchanges` answered questions."""
    with factory.begin() as session:
        for number in range(exchanges):
            stored = ingest(
                Inbound(channel="web", external_id=sender, text=f"Question {number}"),
                session=session,
            )
            stored.message.processed_at = stored.message.sent_at
            record_outbound(stored.conversation, f"Answer {number}", session=session)


def test_a_steady_state_run_stays_within_the_statement_budget(
    service: BotService, db_engine: Engine
) -> None:
    counter = Statements(db_engine)
    # The first question moves the lead on (a status change with its action): not steady state.
    for text in ("Hi there", "I'm thinking about solar panels for my house"):
        service.handle(Inbound(channel="web", external_id="visitor", text=text))
    counts = [_run(service, counter, "visitor", text) for text in QUESTIONS]
    assert max(counts) <= MAX_STATEMENTS_PER_RUN, counts


def test_a_run_that_moves_the_lead_on_adds_only_the_read_of_its_action(
    service: BotService, db_engine: Engine
) -> None:
    """A status change with its action (Interested: notify the admins of an unassigned lead): the
    action's read of whom to tell, and still one UPDATE of the lead and one INSERT per table."""
    counter = Statements(db_engine)
    service.handle(Inbound(channel="web", external_id="visitor", text="Hi there"))
    conversation_id = service.store(
        Inbound(
            channel="web",
            external_id="visitor",
            text="I'm thinking about solar panels for my house",
        )
    )
    assert conversation_id is not None
    with counter.counting() as seen:
        [_reply] = service.process_conversation(conversation_id)
    with Session(db_engine) as session:
        status = session.scalars(
            select(Lead.status)
            .join(Conversation, Conversation.lead_id == Lead.id)
            .where(Conversation.id == conversation_id)
        ).one()
    assert status == "Interested"
    writes = [s.split()[0:3] for s in seen if not s.lstrip().upper().startswith("SELECT")]
    assert len(seen) <= MAX_STATEMENTS_PER_RUN + 1, seen
    assert [w for w in writes if w[:2] == ["UPDATE", "leads"]] == [["UPDATE", "leads", "SET"]]
    for table in ("score_events", "audit_events", "messages"):
        assert sum(1 for w in writes if w[:3] == ["INSERT", "INTO", table]) == 1, (table, writes)


def test_statements_per_run_do_not_grow_with_the_conversation_or_the_leads(
    service: BotService, factory: sessionmaker[Session], db_engine: Engine
) -> None:
    counter = Statements(db_engine)
    for sender in ("short", "long"):
        for text in ("Hi there", "I'm thinking about solar panels for my house"):
            service.handle(Inbound(channel="web", external_id=sender, text=text))
    short = _run(service, counter, "short", QUESTIONS[0])
    _long_history(factory, "long", 120)
    for number in range(30):
        service.store(Inbound(channel="web", external_id=f"other-{number}", text="Hi"))
    long = _run(service, counter, "long", QUESTIONS[0])
    assert long == short
    with factory() as session:
        assert session.query(Message).count() > 250


def test_a_run_reads_only_a_window_of_a_long_conversation(
    service: BotService,
    factory: sessionmaker[Session],
    db_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _long_history(factory, "long", 80)
    conversation_id = service.store(Inbound(channel="web", external_id="long", text="Hi again"))
    assert conversation_id is not None
    loaded: list[int] = []  # messages read as ORM objects, or as the turn's rows

    @event.listens_for(Session, "loaded_as_persistent")
    def count_loaded(_session: Session, instance: object) -> None:
        if isinstance(instance, Message):
            loaded.append(instance.id)

    def turn_messages(*args: Any, **kwargs: Any) -> TurnMessages:
        found = store_messages.turn_messages(*args, **kwargs)
        loaded.extend(m.id for m in [*found.pending, *found.window])
        return found

    monkeypatch.setattr(bot_nodes, "turn_messages", turn_messages)
    try:
        assert len(service.process_conversation(conversation_id)) == 1
    finally:
        event.remove(Session, "loaded_as_persistent", count_loaded)
    # The window (12 messages) with the pending one among them: never the 160 before.
    assert 0 < len(set(loaded)) <= 12


def test_a_reply_key_taken_after_all_keeps_that_reply_and_scores_once(
    service: BotService, factory: sessionmaker[Session]
) -> None:
    conversation_id = service.store(Inbound(channel="web", external_id="visitor", text="Hi there"))
    assert conversation_id is not None
    with factory.begin() as session:
        pending = session.scalars(
            select(Message).where(Message.conversation_id == conversation_id)
        ).one()
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        earlier = record_outbound(
            conversation, "Hello again!", session=session, idempotency_key=f"bot-reply:{pending.id}"
        ).id

    replies = service.process_conversation(conversation_id)

    assert [r.message_id for r in replies] == [earlier]
    with factory() as session:
        assert session.get(Message, pending.id).processed_at is not None  # type: ignore[union-attr]
        assert len(session.scalars(select(ScoreEvent)).all()) == 1
        assert len(session.scalars(select(Message).where(Message.direction == "out")).all()) == 1
    assert service.process_conversation(conversation_id) == []


def test_a_new_message_and_its_turn_are_one_transaction(
    service: BotService, factory: sessionmaker[Session], db_engine: Engine
) -> None:
    """`handle` (replay, the terminal chat, the eval): the message, the reads of its turn and the
    answer are one transaction (`bot.transaction`). A steady message from a known customer: 8
    statements besides BEGIN and COMMIT, the conversation's standing read once (on PostgreSQL
    with the lead's row locked) and the contact dates in the turn's UPDATEs of the lead and the
    conversation."""
    for text in ("Hi there", "I'm thinking about solar panels for my house"):
        service.handle(Inbound(channel="web", external_id="visitor", text=text))
    transactions: list[str] = []

    def begun(connection: object) -> None:
        transactions.append("begin")

    event.listen(db_engine, "begin", begun)
    counter = Statements(db_engine)
    try:
        with counter.counting() as seen:
            [reply] = service.handle(
                Inbound(channel="web", external_id="visitor", text=QUESTIONS[1])
            )
    finally:
        event.remove(db_engine, "begin", begun)
    assert len(transactions) == 1
    assert [s for s in seen if "FROM conversations JOIN leads" in s] == []
    [sender] = [s for s in seen if "FROM identities JOIN leads" in s]
    if db_engine.dialect.name == "postgresql":
        assert "FOR UPDATE OF leads" in sender
    updated = sorted(s.split()[1] for s in seen if s.startswith("UPDATE"))
    assert updated == ["conversations", "leads", "messages"]  # messages: the claim
    assert len(seen) <= 8, seen
    with factory() as session:
        stored = session.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id.desc())
        ).first()
        assert stored is not None and stored.text == QUESTIONS[1]
        assert stored.processed_at is not None
        assert session.get(Message, reply.message_id) is not None
        conversation = session.get(Conversation, stored.conversation_id)
        assert conversation is not None
        assert conversation.last_inbound_at == stored.sent_at
        assert conversation.lead.last_contacted_at == stored.sent_at


# A customer who goes on asking: the ninth message moves the lead to Follow Up (auto-assign).
TOWARDS_FOLLOW_UP = SOLAR_SHOPPER[:9]


@pytest.mark.parametrize("free", [True, False], ids=["agents-free", "nobody-free"])
def test_a_run_that_assigns_the_lead_reads_the_team_once(
    service: BotService, factory: sessionmaker[Session], db_engine: Engine, free: bool
) -> None:
    """Follow Up (auto-assign): who has room, with their roles and open leads, comes in one read
    (no membership loads); with nobody free the admins told come from that same read; the owner's
    follow-up task is one INSERT keyed by the burst's own message (no read of it, no savepoint)."""
    with factory.begin() as session:
        create_agent("Boss", session=session, role="admin", capacity=1 if free else 0)
        create_agent("Sarah", session=session, capacity=1 if free else 0)
    for text in TOWARDS_FOLLOW_UP[:-1]:
        service.handle(Inbound(channel="web", external_id="visitor", text=text))
    conversation_id = service.store(
        Inbound(channel="web", external_id="visitor", text=TOWARDS_FOLLOW_UP[-1])
    )
    assert conversation_id is not None
    counter = Statements(db_engine)
    with counter.counting() as seen:
        [_reply] = service.process_conversation(conversation_id)
    with factory() as session:
        lead = session.scalars(
            select(Lead).join(Conversation, Conversation.lead_id == Lead.id)
        ).one()
        assert lead.status == "Follow Up"
        assert (lead.assigned_agent_id is not None) == free
        # The earlier statuses told the admins too: the run's own notification is the last.
        notified = session.scalars(select(Notification.kind).order_by(Notification.id)).all()
        tasks = session.scalars(select(Task.source_key)).all()
        last_in = session.scalar(select(func.max(Message.id)).where(Message.direction == "in"))
    assert notified[-1] == ("assigned" if free else "unassigned")
    assert tasks == ([f"status:{lead.id}:Follow Up:{last_in}"] if free else [])
    reads = [s.split() for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert sum(1 for words in reads if "agents" in words and "audit_events" not in words) == 1
    assert not any(words[1].startswith("workspace_members.") for words in reads), seen
    assert not any("max(messages.id)" in " ".join(words) for words in reads), seen
    assert not any(s.lstrip().upper().startswith("SAVEPOINT") for s in seen), seen
    # The steady run, the team, the notification; with an owner: the tie between two agents with
    # room (their last assignments), the assignment, the task.
    assert len(seen) <= MAX_STATEMENTS_PER_RUN + (5 if free else 2), seen
