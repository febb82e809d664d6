"""Group commit of the webhooks' events (`webhooks.intake.InboxWriter`): requests that arrive while
a transaction is being written go into the inbox together, each answered with its own outcome, a
redelivery among them is stored once, and a batch that cannot be stored fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from store.messages import Inbound
from store.models import Inbox, utcnow
from tests.webhooks.test_inbox import text_batch
from webhooks.events import ParsedBatch
from webhooks.intake import InboxWriter, StoreResult


@contextmanager
def inbox_held(engine: Engine) -> Iterator[None]:
    """Keep every writer out of the inbox until the block ends."""
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE takes the write lock
        if engine.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE inbox IN SHARE ROW EXCLUSIVE MODE"))
        yield


def in_thread(writer: InboxWriter, batch: ParsedBatch, out: dict[str, Any], name: str) -> Any:
    def run() -> None:
        try:
            out[name] = writer.queue(batch, now=utcnow())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[name] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_requests_waiting_for_a_commit_are_stored_together_and_a_redelivery_once(
    db_engine: Engine,
) -> None:
    writer = InboxWriter(db_engine, writers=1)
    out: dict[str, Any] = {}
    with inbox_held(db_engine):
        first = in_thread(writer, text_batch("one", mids=["m1"]), out, "first")
        time.sleep(0.3)  # the writer has taken it and waits for the inbox
        others = [
            in_thread(writer, text_batch("two", "three", mids=["m2", "m3"]), out, "second"),
            in_thread(writer, text_batch("three again", mids=["m3"]), out, "redelivery"),
            in_thread(writer, text_batch("four", wa_id="16505550002", mids=["m4"]), out, "fourth"),
        ]
        time.sleep(0.3)
        assert not out, "nothing is answered before it is committed"
    for thread in [first, *others]:
        thread.join(10)
    assert writer.groups < 4, "the waiting requests shared a transaction"
    assert out["first"] == StoreResult(stored=1, duplicates=0)
    assert out["second"] == StoreResult(stored=2, duplicates=0)
    assert out["redelivery"] == StoreResult(stored=0, duplicates=1)
    assert out["fourth"] == StoreResult(stored=1, duplicates=0)
    with db_engine.connect() as connection:
        keys = list(connection.scalars(select(Inbox.dedupe_key).order_by(Inbox.id)))
    assert sorted(keys) == ["m1", "m2", "m3", "m4"]


def test_a_batch_that_cannot_be_stored_fails_alone(db_engine: Engine) -> None:
    writer = InboxWriter(db_engine, writers=1)
    broken = text_batch("fine so far", mids=["bad"])
    message = broken.messages[0]
    # Not JSON: the inbox row cannot be written (a 503 for this webhook alone).
    broken.messages[0] = Inbound(**{**vars(message), "payload": {"odd": object()}})
    out: dict[str, Any] = {}
    with inbox_held(db_engine):
        first = in_thread(writer, text_batch("before", mids=["m0"]), out, "first")
        time.sleep(0.3)
        threads = [
            in_thread(writer, broken, out, "broken"),
            in_thread(writer, text_batch("good", wa_id="16505550002", mids=["m1"]), out, "good"),
        ]
        time.sleep(0.3)
    for thread in [first, *threads]:
        thread.join(10)
    assert isinstance(out["broken"], Exception)
    assert out["good"] == StoreResult(stored=1, duplicates=0)
    assert out["first"] == StoreResult(stored=1, duplicates=0)
    with db_engine.connect() as connection:
        keys = sorted(connection.scalars(select(Inbox.dedupe_key)))
    assert keys == ["m0", "m1"]
    # The writer carries on.
    assert writer.queue(text_batch("after", mids=["m2"]), now=utcnow()).stored == 1


@pytest.mark.parametrize("count", [1, 3])
def test_messages_without_a_channel_id_are_always_stored(db_engine: Engine, count: int) -> None:
    writer = InboxWriter(db_engine)
    batch = text_batch(*[f"text {n}" for n in range(count)])
    for message in batch.messages:
        message.channel_message_id = None  # no key: always stored, never a duplicate
    result = writer.queue(batch, now=utcnow())
    assert result == StoreResult(stored=count, duplicates=0)
