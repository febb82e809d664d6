"""Group commit of the webhooks' events (`webhooks.intake.InboxWriter`): requests that arrive while
a transaction is being written go into the inbox together, each answered with its own outcome, a
redelivery among them is stored once, and a batch that cannot be stored fails alone. The requests
write the groups themselves: one that waits for nobody is written by its own thread, and one whose
writer cannot commit in time fails without being written later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import OperationalError, StatementError

from store import db as store_db
from store.messages import Inbound
from store.models import Inbox, utcnow
from tests.webhooks.test_inbox import text_batch
from webhooks import intake
from webhooks.events import ParsedBatch
from webhooks.intake import InboxWriter, StoreResult


@contextmanager
def inbox_held(engine: Engine) -> Iterator[None]:
    """Keep every writer out of the inbox until the block ends."""
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE takes the write lock
        if engine.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE inbox IN SHARE ROW EXCLUSIVE MODE"))
        yield


def unstorable_batch() -> ParsedBatch:
    """A batch whose inbox row cannot be written: its payload is not JSON."""
    broken = text_batch("fine so far", mids=["bad"])
    broken.messages[0] = Inbound(**{**vars(broken.messages[0]), "payload": {"odd": object()}})
    return broken


def counted_checkouts(engine: Engine) -> list[int]:
    """A list that grows by one at each check-out from the engine's pool."""
    checkouts: list[int] = []
    event.listen(engine.pool, "checkout", lambda *_args: checkouts.append(1))
    return checkouts


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
    broken = unstorable_batch()  # a 503 for this webhook alone
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
    assert isinstance(out["broken"], StatementError)  # a 503, as a database error is
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


def test_a_request_that_waits_for_nobody_is_written_by_its_own_thread(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = InboxWriter(db_engine)
    inserting: list[threading.Thread] = []
    enqueue = intake.inbox.enqueue

    def seen(*args: Any, **kwargs: Any) -> Any:
        inserting.append(threading.current_thread())
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(intake.inbox, "enqueue", seen)
    assert writer.queue(text_batch("hello", mids=["m1"]), now=utcnow()).stored == 1
    out: dict[str, Any] = {}
    in_thread(writer, text_batch("again", mids=["m2"]), out, "other").join(10)
    assert out["other"] == StoreResult(stored=1, duplicates=0)
    assert len(inserting) == 2 and inserting[0] is threading.main_thread()
    assert inserting[1] is not threading.main_thread()


def test_a_request_whose_writer_cannot_commit_in_time_fails_and_is_not_written(
    db_engine: Engine,
) -> None:
    writer = InboxWriter(db_engine, writers=1, timeout=0.5)
    out: dict[str, Any] = {}
    with inbox_held(db_engine):
        first = in_thread(writer, text_batch("one", mids=["m1"]), out, "first")
        time.sleep(0.2)  # it writes, and waits for the inbox
        late = in_thread(writer, text_batch("two", wa_id="16505550002", mids=["m2"]), out, "late")
        late.join(10)
        assert isinstance(out["late"], OperationalError)
    first.join(10)
    assert out["first"] == StoreResult(stored=1, duplicates=0)
    with db_engine.connect() as connection:
        assert list(connection.scalars(select(Inbox.dedupe_key))) == ["m1"]
    # The writer carries on: the next request writes (nobody is left waiting to).
    assert writer.queue(text_batch("three", mids=["m3"]), now=utcnow()).stored == 1


def test_many_concurrent_requests_are_each_stored_once_and_answered(db_engine: Engine) -> None:
    writer = InboxWriter(db_engine)
    answers: list[tuple[str, StoreResult | Exception]] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        for index in range(25):
            # Every third request redelivers the one before it (as Meta does).
            mid = f"c{number}-{index - 1 if index % 3 == 2 else index}"
            try:
                result: StoreResult | Exception = writer.queue(
                    text_batch(f"text {index}", wa_id=f"165055500{number:02d}", mids=[mid]),
                    now=utcnow(),
                )
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                result = exc
            with lock:
                answers.append((mid, result))

    threads = [threading.Thread(target=client, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 12 * 25
    assert not [result for _, result in answers if isinstance(result, Exception)]
    stored = sorted(
        mid for mid, result in answers if isinstance(result, StoreResult) and result.stored
    )
    duplicates = [
        mid for mid, result in answers if isinstance(result, StoreResult) and result.duplicates
    ]
    with db_engine.connect() as connection:
        keys = sorted(connection.scalars(select(Inbox.dedupe_key)))
    assert stored == keys == sorted({mid for mid, _ in answers})
    assert len(duplicates) == 12 * 8
    assert writer.groups <= len(keys)


def test_writers_keep_their_connection_between_groups_only_for_a_moment(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkouts = counted_checkouts(db_engine)
    writer = InboxWriter(db_engine)
    assert writer.queue(text_batch("one", mids=["m1"]), now=utcnow()).stored == 1
    assert writer.queue(text_batch("two", mids=["m2"]), now=utcnow()).stored == 1
    assert len(checkouts) == 1, "the second group used the connection the first one kept"
    monkeypatch.setattr(store_db, "PING_AFTER_IDLE", 0.0)
    time.sleep(0.01)
    assert writer.queue(text_batch("three", mids=["m3"]), now=utcnow()).stored == 1
    assert len(checkouts) == 2, "one kept longer than that went back; the pool gave one again"


def test_a_kept_connection_gives_the_write_turn_back_after_each_group(db_engine: Engine) -> None:
    writer = InboxWriter(db_engine)
    assert writer.queue(text_batch("one", mids=["m1"]), now=utcnow()).stored == 1
    # Another writer of the process (an API request) goes at once, not after the turn's timeout.
    started = time.monotonic()
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE inbox SET attempts = attempts"))
    assert time.monotonic() - started < 2.0
    assert writer.queue(text_batch("two", mids=["m2"]), now=utcnow()).stored == 1


def test_a_group_that_fails_lets_every_kept_connection_go(db_engine: Engine) -> None:
    checkouts = counted_checkouts(db_engine)
    writer = InboxWriter(db_engine, writers=2)
    out: dict[str, Any] = {}
    with inbox_held(db_engine):  # two requests write side by side: two connections kept
        checkouts.clear()
        threads = [
            in_thread(writer, text_batch("one", mids=["m1"]), out, "one"),
            in_thread(writer, text_batch("two", wa_id="16505550002", mids=["m2"]), out, "two"),
        ]
        time.sleep(0.3)
    for thread in threads:
        thread.join(10)
    assert out["one"].stored == out["two"].stored == 1 and len(checkouts) == 2
    with pytest.raises((StatementError, TypeError)):  # not JSON: the row cannot be written
        writer.queue(unstorable_batch(), now=utcnow())
    assert len(checkouts) == 2, "the failed group used a kept connection"
    # A failure can be a cut connection, and the other kept one went with it: the next group
    # asks the pool, which checks what it hands out.
    assert writer.queue(text_batch("three", mids=["m3"]), now=utcnow()).stored == 1
    assert len(checkouts) == 3
