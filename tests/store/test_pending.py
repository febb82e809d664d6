"""The worker tier's queries: what still waits in the store (unprocessed messages, undelivered
replies, sends a crash cut off)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from store.messages import Inbound, ingest, record_outbound
from store.models import Conversation, Message, utcnow
from store.pending import (
    has_pending,
    mark_interrupted_sends,
    reading,
    stale_conversations,
    undelivered_replies,
    waiting_workspace,
)
from store.tenancy import in_workspace
from store.workspaces import create_workspace


def _say(session_factory: sessionmaker[Session], who: str, text: str, at: datetime) -> int:
    """Store a customer message sent at `at`; returns its conversation id."""
    with session_factory.begin() as session:
        ingested = ingest(Inbound(channel="web", external_id=who, text=text), session=session)
        ingested.message.created_at = at
        return ingested.message.conversation_id


def _processed(session_factory: sessionmaker[Session], conversation_id: int) -> None:
    with session_factory.begin() as session:
        session.execute(
            update(Message)
            .where(Message.conversation_id == conversation_id)
            .values(processed_at=utcnow())
        )


def test_a_conversation_is_pending_until_processed_and_its_replies_are_handed_over(
    session_factory: sessionmaker[Session],
) -> None:
    now = utcnow()
    conversation_id = _say(session_factory, "v1", "Hello", now)
    with reading(session_factory) as session:
        assert has_pending(conversation_id, session=session)
    _processed(session_factory, conversation_id)
    with reading(session_factory) as session:
        assert not has_pending(conversation_id, session=session)
        assert undelivered_replies(conversation_id, session=session) == []
    with session_factory.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        first = record_outbound(conversation, "one", session=session, idempotency_key="a").id
        second = record_outbound(conversation, "two", session=session, idempotency_key="b").id
        record_outbound(conversation, "sent", session=session, delivery_status="sent")
    with reading(session_factory) as session:
        assert has_pending(conversation_id, session=session), "a recorded reply still waits"
        assert undelivered_replies(conversation_id, session=session) == [first, second]


def test_stale_conversations_are_those_waiting_since_before_the_cutoff_oldest_first(
    session_factory: sessionmaker[Session],
) -> None:
    now = utcnow()
    older = _say(session_factory, "v1", "waiting long", now - timedelta(minutes=10))
    old = _say(session_factory, "v2", "waiting", now - timedelta(minutes=5))
    _say(session_factory, "v3", "just now", now)
    done = _say(session_factory, "v4", "answered", now - timedelta(minutes=20))
    _processed(session_factory, done)
    with reading(session_factory) as session:
        cutoff = now - timedelta(minutes=1)
        assert stale_conversations(cutoff, session=session) == [older, old]
        assert stale_conversations(cutoff, session=session, limit=1) == [older]


def test_only_sends_claimed_before_the_cutoff_are_marked_unknown(
    session_factory: sessionmaker[Session],
) -> None:
    now = utcnow()
    conversation_id = _say(session_factory, "v1", "Hello", now)
    with session_factory.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        cut_off = record_outbound(
            conversation, "cut off", session=session, delivery_status="sending"
        )
        cut_off.sent_at = now - timedelta(minutes=10)
        running = record_outbound(
            conversation, "running", session=session, delivery_status="sending"
        )
        running.sent_at = now
        cut_off_id, running_id = cut_off.id, running.id
    with session_factory.begin() as session:
        assert mark_interrupted_sends(now - timedelta(minutes=5), session=session) == 1
    with session_factory() as session:
        marked, still = session.get(Message, cut_off_id), session.get(Message, running_id)
        assert marked is not None and still is not None
        assert marked.delivery_status == "unknown" and "not sent again" in (marked.error or "")
        assert still.delivery_status == "sending"


def test_a_jobs_first_question_names_the_workspace_of_a_conversation_with_something_waiting(
    session_factory: sessionmaker[Session],
) -> None:
    """Asked from any workspace: the conversation's own while a message or a reply waits, None
    once nothing does (or for no such conversation)."""
    with session_factory.begin() as session:
        other = create_workspace("acme", "Acme", session=session).id
    with in_workspace(other):
        conversation_id = _say(session_factory, "visitor", "Hello", utcnow())
    with reading(session_factory) as session:
        assert waiting_workspace(conversation_id, session=session) == other
        assert waiting_workspace(conversation_id + 1000, session=session) is None
    with in_workspace(other):
        _processed(session_factory, conversation_id)
    with reading(session_factory) as session:
        assert waiting_workspace(conversation_id, session=session) is None
    with in_workspace(other), session_factory.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        record_outbound(conversation, "An answer on its way", session=session)
    with reading(session_factory) as session:
        assert waiting_workspace(conversation_id, session=session) == other
