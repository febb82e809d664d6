"""Nothing lost, nothing twice: concurrent runs, retries after a crash, and failed deliveries, on
SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from sqlalchemy import select

import bot.nodes
from bot import BotService, LocalOutbox
from bot.outbox import pending_deliveries
from store.db import read_session
from store.messages import Inbound, ingest
from store.models import Message, ScoreEvent
from tests.bot.support import Clock


def _store_burst(session_factory, sender: str, *texts: str) -> int:
    with session_factory.begin() as session:
        for text in texts:
            stored = ingest(Inbound("web", sender, text), session=session)
        return stored.conversation.id


def _counts(session_factory) -> tuple[int, int, int]:
    with session_factory() as session:
        replies = len(session.scalars(select(Message).where(Message.direction == "out")).all())
        pending = len(
            session.scalars(
                select(Message).where(Message.direction == "in", Message.processed_at.is_(None))
            ).all()
        )
        scores = len(session.scalars(select(ScoreEvent)).all())
    return replies, pending, scores


def test_concurrent_runs_on_one_conversation_reply_once(session_factory, prompts):
    service = BotService(
        session_factory=session_factory,
        prompts=prompts,
        outbox=LocalOutbox(session_factory),
        clock=Clock(),
    )
    conversation_id = _store_burst(session_factory, "race", "Hi", "How much is the Home package?")
    barrier = threading.Barrier(4)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(service.process_conversation(conversation_id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(len(r) for r in results) == 1
    assert _counts(session_factory) == (1, 0, 1)


class _Crash(GenericFakeChatModel):
    """A model call during which the worker process dies."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise SystemExit("worker killed")


def test_a_run_killed_mid_way_leaves_the_messages_pending_and_the_retry_replies_once(
    session_factory, prompts
):
    conversation_id = _store_burst(session_factory, "crash", "How much is the Home package?")
    crashing = BotService(
        session_factory=session_factory,
        prompts=prompts,
        clock=Clock(),
        model=_Crash(messages=iter([])),
    )
    with pytest.raises(SystemExit):
        crashing.process_conversation(conversation_id)
    assert _counts(session_factory) == (0, 1, 0)
    healthy = BotService(
        session_factory=session_factory,
        prompts=prompts,
        outbox=LocalOutbox(session_factory),
        clock=Clock(),
    )
    assert len(healthy.process_conversation(conversation_id)) == 1
    assert healthy.process_conversation(conversation_id) == []
    assert _counts(session_factory) == (1, 0, 1)


class _BrokenOutbox:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def deliver(self, message_ids: list[int]) -> None:
        self.calls.append(list(message_ids))
        raise ConnectionError("channel down")


def test_a_failed_delivery_keeps_the_reply_pending_for_a_retry_and_never_answers_twice(
    session_factory, prompts
):
    outbox = _BrokenOutbox()
    service = BotService(
        session_factory=session_factory, prompts=prompts, outbox=outbox, clock=Clock()
    )
    replies = service.handle(
        Inbound("web", "v", "How much is the Home package?", channel_message_id="m-1")
    )
    assert len(replies) == 1 and outbox.calls == [[replies[0].message_id]]
    assert (
        service.handle(
            Inbound("web", "v", "How much is the Home package?", channel_message_id="m-1")
        )
        == []
    )
    with session_factory() as session:
        assert pending_deliveries(session=session, older_than_seconds=-60) == [
            replies[0].message_id
        ]
    LocalOutbox(session_factory).deliver([replies[0].message_id])
    with session_factory() as session:
        assert pending_deliveries(session=session, older_than_seconds=-60) == []


def test_process_pending_picks_up_everything_stored_before_a_restart(session_factory, prompts):
    for sender in ("a", "b", "c"):
        _store_burst(session_factory, sender, "Hi", "What packages do you offer?")
    service = BotService(
        session_factory=session_factory,
        prompts=prompts,
        outbox=LocalOutbox(session_factory),
        clock=Clock(),
    )
    assert len(service.process_pending()) == 3
    assert _counts(session_factory) == (3, 0, 3)


class _FailingTurns:
    """`apply_turn` failing its first `failures` calls (a bug, a lost connection) and then
    applying turns as it does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self._apply = bot.nodes.apply_turn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("the turn failed")
        return self._apply(*args, **kwargs)


def _service(session_factory, prompts, **kwargs: Any) -> BotService:
    return BotService(
        session_factory=session_factory,
        prompts=prompts,
        outbox=LocalOutbox(session_factory),
        clock=Clock(),
        **kwargs,
    )


def test_a_turn_that_fails_in_its_message_s_transaction_keeps_the_message(
    session_factory, prompts, monkeypatch
):
    """The message and its turn are one transaction (`bot.transaction`): when the turn fails, the
    rolled-back message is stored again on its own, and stays for a later run."""
    failing = _FailingTurns(failures=2)
    monkeypatch.setattr(bot.nodes, "apply_turn", failing)
    service = _service(session_factory, prompts)
    inbound = Inbound("web", "v", "How much is the Home package?", channel_message_id="m-1")
    with pytest.raises(RuntimeError, match="the turn failed"):
        service.handle(inbound)
    assert failing.calls == 2  # once in the run's transaction, once in a transaction of its own
    assert _counts(session_factory) == (0, 1, 0)
    with session_factory() as session:
        [stored] = session.scalars(select(Message)).all()
        assert (stored.text, stored.channel_message_id) == (inbound.text, "m-1")

    assert len(service.process_pending()) == 1
    assert service.handle(inbound) == []  # the channel's redelivery: a duplicate
    assert _counts(session_factory) == (1, 0, 1)


def test_a_turn_that_fails_once_in_its_message_s_transaction_is_answered_once(
    session_factory, prompts, monkeypatch
):
    failing = _FailingTurns(failures=1)
    monkeypatch.setattr(bot.nodes, "apply_turn", failing)
    service = _service(session_factory, prompts)
    replies = service.handle(Inbound("web", "v", "How much is the Home package?"))
    assert len(replies) == 1 and failing.calls == 2
    assert _counts(session_factory) == (1, 0, 1)
    with session_factory() as session:
        assert len(session.scalars(select(Message).where(Message.direction == "in")).all()) == 1


class _Watching(GenericFakeChatModel):
    """A model that looks, from a session of its own, at what is stored while it is called."""

    seen: list[int]
    session_factory: Any

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        with read_session(self.session_factory) as session:
            self.seen.append(len(session.scalars(select(Message)).all()))
        return super()._generate(*args, **kwargs)


def test_a_message_is_committed_before_the_model_is_called(session_factory, prompts):
    """Only the step that saves continues the message's transaction: a model call (seconds on
    the network) never holds it, nor SQLite's write lock."""
    model = _Watching(
        messages=iter([AIMessage(content="Hello! The Home package is $12,400.")]),
        seen=[],
        session_factory=session_factory,
    )
    service = _service(session_factory, prompts, model=model)
    assert len(service.handle(Inbound("web", "v", "How much is the Home package?"))) == 1
    assert model.seen == [1]
    assert _counts(session_factory) == (1, 0, 1)
