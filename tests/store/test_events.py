"""Live events from the store: published after commit (never on rollback), in order, resumable by
id, shared between processes through Redis."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.agents import create_agent
from store.events import EventBus, LocalBus, RedisBus, StoreEvent, watch
from store.messages import Inbound, ingest
from store.models import Conversation, Lead, Message, Notification, utcnow

REDIS_URL = "redis://127.0.0.1:6379/8"


def _redis_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def bus() -> LocalBus:
    return LocalBus(keep=50)


@pytest.fixture
def watched(session_factory: sessionmaker[Session], bus: LocalBus) -> sessionmaker[Session]:
    watch(session_factory, bus)
    return session_factory


def _message(session: Session, sender: str, text: str, message_id: str) -> int:
    stored = ingest(
        Inbound(channel="whatsapp", external_id=sender, text=text, channel_message_id=message_id),
        session=session,
    )
    return stored.lead.id


def test_a_stored_message_and_its_new_lead_are_announced_after_commit(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    start = bus.last_id()
    with watched.begin() as session:
        lead_id = _message(session, "14155550123", "Hi, how much?", "wamid.1")
        assert bus.read(start, timeout=0) == []  # nothing before the commit
    events = bus.read(start, timeout=0)
    kinds = [e.kind for e in events]
    assert "message" in kinds and "lead" in kinds
    created = next(e for e in events if e.kind == "lead")
    assert created.lead_id == lead_id and created.data == {"created": True}
    message = next(e for e in events if e.kind == "message")
    assert message.conversation_id is not None
    assert message.data["direction"] == "in" and message.data["author"] == "customer"


def test_a_rolled_back_change_is_never_announced(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    start = bus.last_id()
    session = watched()
    with session.begin():
        _message(session, "14155550124", "Hello", "wamid.2")
        session.flush()
        session.rollback()  # the request failed
    session.close()
    assert bus.read(start, timeout=0) == []


def test_a_redelivered_message_is_not_announced_twice(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    with watched.begin() as session:
        _message(session, "14155550126", "Hi", "wamid.4")
    start = bus.last_id()
    with watched.begin() as session:
        # The insert fails on the unique index inside a savepoint that is rolled back.
        _message(session, "14155550126", "Hi", "wamid.4")
        _message(session, "14155550126", "Still there?", "wamid.5")
    messages = [e for e in bus.read(start, timeout=0) if e.kind == "message"]
    assert len(messages) == 1


def test_a_message_stored_in_a_savepoint_that_rolls_back_is_not_announced(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    start = bus.last_id()
    with watched.begin() as session:
        # The drain takes each inbox row in a savepoint; one that fails after its message was
        # stored is rolled back with it, and the rest of the batch commits.
        savepoint = session.begin_nested()
        _message(session, "14155550127", "Lost with its savepoint", "wamid.6")
        inner = session.begin_nested()
        _message(session, "14155550128", "Inside it too", "wamid.7")
        inner.commit()
        savepoint.rollback()
        with session.begin_nested():
            _message(session, "14155550129", "Kept", "wamid.8")
    messages = [e for e in bus.read(start, timeout=0) if e.kind == "message"]
    assert len(messages) == 1
    with watched() as session:
        kept = session.get(Message, messages[0].data["message_id"])
        assert kept is not None and kept.text == "Kept"


def test_status_assignment_and_notifications_are_announced(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    with watched.begin() as session:
        lead_id = _message(session, "14155550125", "Hi", "wamid.3")
        agent, _token = create_agent("Sarah", session=session)
        agent_id = agent.id
    start = bus.last_id()
    with watched.begin() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        lead.status = "Interested"
        lead.assigned_agent_id = agent_id
        session.add(Notification(agent_id=agent_id, lead_id=lead_id, kind="assigned", text="x"))
    events = bus.read(start, timeout=0)
    change = next(e for e in events if e.kind == "lead")
    assert sorted(change.data["changed"]) == ["assigned_agent_id", "status"]
    notice = next(e for e in events if e.kind == "notification")
    assert notice.agent_id == agent_id and notice.lead_id == lead_id
    # A lead touched without a watched change makes no event.
    start = bus.last_id()
    with watched.begin() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        lead.company = "Acme"
    assert bus.read(start, timeout=0) == []


def test_the_bot_paused_or_resumed_is_announced_for_the_lead_and_for_one_conversation(
    watched: sessionmaker[Session], bus: LocalBus
) -> None:
    with watched.begin() as session:
        lead_id = _message(session, "14155550126", "Hi", "wamid.4")
    start = bus.last_id()
    with watched.begin() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        lead.ai_paused_until = utcnow() + timedelta(minutes=60)
    [paused] = bus.read(start, timeout=0)
    assert (paused.kind, paused.lead_id, paused.data) == (
        "lead",
        lead_id,
        {"changed": ["ai_paused_until"]},
    )
    start = bus.last_id()
    with watched.begin() as session:
        room = session.scalars(select(Conversation).where(Conversation.lead_id == lead_id)).one()
        room.ai_stopped = True  # a "stop" in this room only
        room_id = room.id
    [stopped] = bus.read(start, timeout=0)
    assert (stopped.kind, stopped.lead_id, stopped.conversation_id, stopped.data) == (
        "lead",
        lead_id,
        room_id,
        {"changed": ["ai_stopped"]},
    )


def test_a_reader_waits_for_the_next_event(bus: LocalBus) -> None:
    start = bus.last_id()
    threading.Timer(0.05, lambda: bus.publish([StoreEvent("typing", conversation_id=3)])).start()
    events = bus.read(start, timeout=5)
    assert [e.kind for e in events] == ["typing"]
    assert bus.read(events[-1].id, timeout=0.05) == []


def test_resuming_from_an_id_the_bus_no_longer_has_says_reset(bus: LocalBus) -> None:
    first = bus.last_id()
    bus.publish([StoreEvent("typing", conversation_id=i) for i in range(60)])  # keeps 50
    assert [e.kind for e in bus.read(first, timeout=0)] == ["reset"]
    # An id from another run (the server restarted) cannot be resumed either.
    assert [e.kind for e in LocalBus().read("abcdef12-3", timeout=0)] == ["reset"]
    # A recent id resumes exactly after itself.
    events = bus.read(bus.last_id(), timeout=0)
    assert events == []
    bus.publish([StoreEvent("typing", conversation_id=99)])
    tail = bus.read(first.split("-")[0] + "-59", timeout=0)
    assert [e.conversation_id for e in tail] == [59, 99]


@pytest.fixture
def redis_bus() -> Iterator[RedisBus]:
    if not _redis_answers():
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    key = f"leaddesk:test-events:{uuid.uuid4().hex}"
    yield RedisBus(REDIS_URL, key=key, keep=1000)
    redis.Redis.from_url(REDIS_URL).delete(key)


def test_two_processes_share_one_stream_through_redis(redis_bus: RedisBus) -> None:
    # A second bus on the same key stands for another process (a worker, another web process).
    other: EventBus = RedisBus(REDIS_URL, key=redis_bus._key)
    start = redis_bus.last_id()
    received: list[StoreEvent] = []
    reader = threading.Thread(target=lambda: received.extend(redis_bus.read(start, timeout=5)))
    reader.start()
    time.sleep(0.1)
    other.publish([StoreEvent("message", conversation_id=7, data={"message_id": 1})])
    reader.join(6)
    assert [(e.kind, e.conversation_id) for e in received] == [("message", 7)]
    assert received[0].id == redis_bus.last_id()
    assert redis_bus.read(received[0].id, timeout=0.05) == []
    assert [e.kind for e in redis_bus.read("nonsense", timeout=0)] == ["reset"]
