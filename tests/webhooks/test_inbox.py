"""The webhook inbox: what a request queues, what the drain makes of it, and the safety nets
(sweeper, start-up recovery, /healthz)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from leaddesk.wiring import DRAIN_BUDGET, DRAIN_BUSY, DRAIN_LAG, drain_gives_way
from leaddesk.worker.dispatcher import ThreadDispatcher
from leaddesk.worker.locks import make_locks
from leaddesk.worker.sweeper import Sweeper
from store import inbox
from store.inbox import INBOX_KEY, MAX_ATTEMPTS
from store.messages import Inbound, record_outbound
from store.models import Conversation, Inbox, Message
from tests.webhooks.meta_payloads import wa_body, wa_change, wa_contact, wa_message, wa_status
from tests.webhooks.support import Clock
from webhooks.events import ParsedBatch, StatusUpdate
from webhooks.intake import InboxDrain, inbox_health, queue_batch
from webhooks.whatsapp import parse_whatsapp


def parsed(body: dict[str, Any]) -> ParsedBatch:
    return parse_whatsapp(body)


def make_drain(
    session_factory: sessionmaker[Session],
    clock: Clock,
    submitted: list[int],
    human_replies: list[int] | None = None,
) -> InboxDrain:
    def record_takeover(lead: Any, *, session: Session, now: datetime, minutes: int) -> None:
        assert human_replies is not None
        human_replies.append(lead.id)

    return InboxDrain(
        session_factory=session_factory,
        region="US",
        takeover_minutes=60,
        clock=clock,
        submit=submitted.append,
        on_human_reply=record_takeover if human_replies is not None else None,
        batch_size=2,  # small, so that several batches run
    )


def inbox_rows(session_factory: sessionmaker[Session]) -> list[Inbox]:
    with session_factory() as session:
        return list(session.scalars(select(Inbox).order_by(Inbox.id)))


def inbound_texts(session_factory: sessionmaker[Session]) -> list[str]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(Message.text).where(Message.direction == "in").order_by(Message.id)
            )
        )


def text_batch(*texts: str, wa_id: str = "16505550001", mids: list[str] | None = None) -> Any:
    mids = mids or [f"wamid.{wa_id}.{i}" for i in range(len(texts))]
    return parsed(
        wa_body(
            wa_change(
                contacts=[wa_contact(wa_id, "A")],
                messages=[
                    wa_message(wa_id=wa_id, body=text, mid=mid)
                    for text, mid in zip(texts, mids, strict=True)
                ],
            )
        )
    )


def test_a_redelivery_is_deduplicated_at_the_inbox(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    first = queue_batch(text_batch("hello", "again"), engine=db_engine, now=now)
    second = queue_batch(text_batch("hello", "again"), engine=db_engine, now=now)
    assert (first.stored, first.duplicates) == (2, 0)
    assert (second.stored, second.duplicates) == (0, 2)
    rows = inbox_rows(session_factory)
    assert [r.dedupe_key for r in rows] == ["wamid.16505550001.0", "wamid.16505550001.1"]
    assert all(r.processed_at is None and r.kind == "message" for r in rows)


def test_every_entry_change_message_and_status_of_a_batch_is_queued_then_ingested(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    body = wa_body(
        wa_change(
            contacts=[wa_contact("16505550001", "A")],
            messages=[
                wa_message(wa_id="16505550001", body="first"),
                wa_message(wa_id="16505550001", body="second"),
            ],
            statuses=[wa_status("wamid.OURS", "delivered")],
        ),
        wa_change(
            contacts=[wa_contact("16505550002", "B")],
            messages=[wa_message(wa_id="16505550002", body="hello")],
        ),
        wa_change(
            contacts=[wa_contact("16505550003", "C")],
            messages=[wa_message(wa_id="16505550003", body="third entry")],
        ),
        entries=3,
    )
    result = queue_batch(parsed(body), engine=db_engine, now=datetime.now(UTC))
    assert (result.stored, result.statuses) == (4, 1)
    assert sorted(r.kind for r in inbox_rows(session_factory)) == ["message"] * 4 + ["status"]

    submitted: list[int] = []
    report = make_drain(session_factory, Clock(), submitted).drain()
    assert report.processed == 5 and report.failed == 0
    assert sorted(inbound_texts(session_factory)) == ["first", "hello", "second", "third entry"]
    assert len(submitted) == 3 and len(set(submitted)) == 3
    assert all(r.processed_at is not None for r in inbox_rows(session_factory))


def test_a_crash_between_ingest_and_mark_runs_the_batch_again_without_duplicates(
    db_engine: Engine, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_batch(text_batch("one", "two", "three"), engine=db_engine, now=datetime.now(UTC))
    real_mark = inbox.mark_processed

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(inbox, "mark_processed", crash)
    submitted: list[int] = []
    drain = make_drain(session_factory, Clock(), submitted)
    with pytest.raises(RuntimeError):
        drain.drain()
    assert inbound_texts(session_factory) == []  # one transaction: the ingest went with it
    assert submitted == []

    monkeypatch.setattr(inbox, "mark_processed", real_mark)
    drain.drain()
    drain.drain()
    assert inbound_texts(session_factory) == ["one", "two", "three"]
    assert len(set(submitted)) == 1
    with session_factory() as session:
        assert not inbox.has_work(session=session)


def test_messages_ingested_before_a_crash_are_not_stored_twice_when_redelivered(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """An inbox row whose message is already stored (its mark was lost) dedupes at ingest."""
    queue_batch(text_batch("one"), engine=db_engine, now=datetime.now(UTC))
    submitted: list[int] = []
    make_drain(session_factory, Clock(), submitted).drain()
    with session_factory.begin() as session:
        session.execute(Inbox.__table__.update().values(processed_at=None))
    report = make_drain(session_factory, Clock(), submitted).drain()
    assert report.processed == 1 and report.result.duplicates == 1
    assert inbound_texts(session_factory) == ["one"]


def test_a_poison_event_is_set_aside_while_the_rest_are_processed(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    queue_batch(text_batch("before"), engine=db_engine, now=now)
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
    queue_batch(text_batch("after", wa_id="16505550002"), engine=db_engine, now=now)
    clock = Clock(now)
    submitted: list[int] = []
    drain = make_drain(session_factory, clock, submitted)
    for _ in range(MAX_ATTEMPTS + 1):
        drain.drain()
    assert inbound_texts(session_factory) == ["before", "after"]
    poison = next(r for r in inbox_rows(session_factory) if r.dedupe_key == "wamid.poison")
    assert poison.processed_at is None and poison.attempts == MAX_ATTEMPTS
    assert poison.last_error and "TypeError" in poison.last_error
    with session_factory() as session:
        assert not inbox.has_work(session=session)  # set aside: never retried

    health = inbox_health(session_factory, clock)()
    assert health["status"] == "degraded"
    assert health["unprocessed"] == 0 and health["set_aside"] == 1
    assert health["set_aside_events"][0]["id"] == poison.id
    assert "TypeError" in health["set_aside_events"][0]["error"]


def test_an_agent_echo_pauses_the_bot_through_the_drain(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    customer = Inbound(
        channel="messenger", external_id="PSID1", text="hi", channel_message_id="m.1"
    )
    echo = Inbound(
        channel="messenger",
        external_id="PSID1",
        text="Hello, this is Sam",
        channel_message_id="m.echo",
        author="agent",
    )
    result = queue_batch(
        ParsedBatch(messages=[customer, echo]), engine=db_engine, now=datetime.now(UTC)
    )
    assert result.stored == 2
    assert [r.kind for r in inbox_rows(session_factory)] == ["message", "echo"]
    human_replies: list[int] = []
    submitted: list[int] = []
    report = make_drain(session_factory, Clock(), submitted, human_replies).drain()
    assert report.result.agent_replies == 1
    assert len(human_replies) == 1
    with session_factory() as session:
        authors = list(session.scalars(select(Message.author).order_by(Message.id)))
    assert authors == ["customer", "agent"]


def test_delivery_statuses_are_applied_by_the_drain(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    queue_batch(text_batch("hi"), engine=db_engine, now=datetime.now(UTC))
    make_drain(session_factory, Clock(), []).drain()
    with session_factory.begin() as session:
        conversation = session.scalars(select(Conversation)).one()
        out = record_outbound(conversation, "reply", session=session, external_id="16505550001")
        out.delivery_status = "sent"
        out.channel_message_id = "wamid.OURS"
    batch = ParsedBatch(
        statuses=[
            StatusUpdate(channel="whatsapp", status="read", channel_message_id="wamid.OURS"),
            StatusUpdate(channel="whatsapp", status="delivered", channel_message_id="wamid.OURS"),
        ]
    )
    assert queue_batch(batch, engine=db_engine, now=datetime.now(UTC)).statuses == 2
    report = make_drain(session_factory, Clock(), []).drain()
    assert report.result.statuses == 1  # read; the late "delivered" never moves it back
    with session_factory() as session:
        status = session.scalars(
            select(Message.delivery_status).where(Message.channel_message_id == "wamid.OURS")
        ).one()
    assert status == "read"


def test_the_sweeper_drains_leftovers_and_prunes_old_processed_events(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    clock = Clock()
    queue_batch(text_batch("old"), engine=db_engine, now=clock.now - timedelta(days=8))
    make_drain(session_factory, clock, []).drain()
    with session_factory.begin() as session:
        session.execute(Inbox.__table__.update().values(processed_at=clock.now - timedelta(days=8)))
    queue_batch(text_batch("left over", wa_id="16505550002"), engine=db_engine, now=clock.now)
    submitted: list[int] = []
    sweeper = Sweeper(
        session_factory=session_factory,
        locks=make_locks(db_engine),
        submit=submitted.append,
        clock=clock,
        inbox_stale_after=timedelta(seconds=5),
    )
    report = sweeper.sweep()
    assert INBOX_KEY not in submitted  # only just arrived: its own drain job is on its way
    assert report.pruned == 1
    assert [r.dedupe_key for r in inbox_rows(session_factory)] == ["wamid.16505550002.0"]

    clock.advance(seconds=6)
    sweeper.sweep()
    assert INBOX_KEY in submitted
    make_drain(session_factory, clock, []).drain()
    assert inbound_texts(session_factory) == ["old", "left over"]


def test_a_deferred_key_runs_after_a_lull_once_for_a_stream_of_submits() -> None:
    runs: list[int] = []
    ran = threading.Event()

    def handler(key: int) -> None:
        runs.append(key)
        ran.set()

    pool = ThreadDispatcher(handler, threads=2, deferred={INBOX_KEY: (0.1, 5.0)})
    pool.start()
    try:
        for _ in range(5):
            pool.submit(INBOX_KEY)
            time.sleep(0.02)
        assert runs == []  # still arriving
        assert not pool.idle()  # a deferred run counts as pending work
        assert ran.wait(2.0)
        assert pool.wait_idle(2.0)
        assert runs == [INBOX_KEY]
        pool.submit(7)  # other keys are not deferred
        assert pool.wait_idle(2.0) and runs == [INBOX_KEY, 7]
    finally:
        pool.stop()


def test_a_deferred_key_runs_at_the_latest_after_max_delay_under_sustained_submits() -> None:
    runs: list[float] = []
    pool = ThreadDispatcher(
        lambda key: runs.append(time.monotonic()), threads=1, deferred={INBOX_KEY: (0.2, 0.3)}
    )
    pool.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            pool.submit(INBOX_KEY)
            time.sleep(0.02)
        assert len(runs) >= 2  # the lull never came; the max delay did
        assert pool.wait_idle(2.0)
    finally:
        pool.stop()


def test_webhooks_that_come_while_the_drain_runs_count_as_coming() -> None:
    # The in-process drain gives way to webhooks only while they keep coming (`drain_gives_way`'s
    # `since_webhook`, which `seconds_since_submit` gives): those stored while its job runs, as
    # under a steady stream, are the ones it gives way to.
    now = [100.0]
    started, finish = threading.Event(), threading.Event()
    runs: list[int] = []

    def handler(key: int) -> None:
        runs.append(key)
        started.set()
        assert finish.wait(5.0)

    pool = ThreadDispatcher(
        handler, threads=1, monotonic=lambda: now[0], deferred={INBOX_KEY: (0.0, 0.0)}
    )
    pool.start()
    try:
        pool.submit(INBOX_KEY)
        assert started.wait(2.0)
        now[0] += 10 * DRAIN_BUSY
        assert pool.seconds_since_submit(INBOX_KEY) == 10 * DRAIN_BUSY
        pool.submit(INBOX_KEY)  # a webhook stored while the drain runs
        assert pool.seconds_since_submit(INBOX_KEY) == 0.0
        now[0] += DRAIN_BUSY / 2
        assert pool.seconds_since_submit(INBOX_KEY) == DRAIN_BUSY / 2
        finish.set()
        assert pool.wait_idle(2.0)
        assert runs == [INBOX_KEY, INBOX_KEY]  # and its events are drained by a run after
    finally:
        finish.set()
        pool.stop()


def test_start_drains_events_left_in_the_inbox(tmp_path: Path) -> None:
    from leaddesk.settings import load_settings
    from leaddesk.wiring import build_runtime
    from store import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    queue_batch(text_batch("left by a crash"), engine=engine, now=datetime.now(UTC))
    engine.dispose()

    settings = load_settings(
        database_url=url,
        openai_api_key=None,
        whatsapp_access_token=None,
        telegram_bot_token=None,
        prompts_dir=str(Path(__file__).resolve().parents[2] / "prompts"),
    )
    runtime = build_runtime(settings)
    try:
        runtime.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if inbound_texts(runtime.session_factory) == ["left by a crash"]:
                break
            time.sleep(0.05)
        assert inbound_texts(runtime.session_factory) == ["left by a crash"]
        with runtime.session_factory() as session:
            assert not inbox.has_work(session=session)
            assert session.scalar(select(func.count()).select_from(Inbox)) == 1
    finally:
        runtime.stop()


def test_a_drain_gives_way_between_batches_when_asked_and_resumes_where_it_left(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    queue_batch(text_batch("a", "b", "c", "d", "e"), engine=db_engine, now=datetime.now(UTC))
    submitted: list[int] = []
    drain = make_drain(session_factory, Clock(), submitted)  # two events per batch
    first = drain.drain(pause=lambda spent: True)
    assert first.more and first.processed == 2
    assert inbound_texts(session_factory) == ["a", "b"]
    assert len(submitted) == 1  # what it ingested is handed over before it gives way
    rest = drain.drain(pause=lambda spent: False)
    assert not rest.more and rest.processed == 3
    assert inbound_texts(session_factory) == ["a", "b", "c", "d", "e"]


def test_a_drain_knows_how_long_its_last_batch_waited(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    clock = Clock()
    queue_batch(text_batch("a", "b", "c"), engine=db_engine, now=clock.now)
    drain = make_drain(session_factory, clock, [])  # two events per batch
    assert drain.lag == 0.0
    clock.advance(seconds=3)
    drain.drain(pause=lambda spent: True)
    assert drain.lag == pytest.approx(3.0)


def test_the_in_process_drain_gives_way_to_a_waiting_webhook_only_while_the_inbox_keeps_up() -> (
    None
):
    def gives_way(spent: float, since: float, lag: float, waits: bool) -> bool:
        return drain_gives_way(spent, since_webhook=since, lag=lag, writer_waits=lambda: waits)

    # Webhooks stopped coming: the drain goes on to the end, whoever waits.
    assert not gives_way(spent=1.0, since=DRAIN_BUSY, lag=0.0, waits=True)
    # They keep coming: a stretch ends after DRAIN_BUDGET seconds...
    assert gives_way(spent=DRAIN_BUDGET, since=0.01, lag=5.0, waits=False)
    assert not gives_way(spent=0.0, since=0.01, lag=0.2, waits=False)
    # ...and sooner for a webhook waiting for the write turn, while the inbox keeps up.
    assert gives_way(spent=0.0, since=0.01, lag=0.2, waits=True)
    assert not gives_way(spent=0.0, since=0.01, lag=DRAIN_LAG, waits=True)


def test_the_bot_waits_for_a_lagging_drain_but_not_for_events_in_flight_or_an_old_backlog(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    clock = Clock()
    drain = make_drain(session_factory, clock, [])
    assert drain.settling() == 0.0  # nothing waits
    queue_batch(text_batch("just now"), engine=db_engine, now=clock.now)
    assert drain.settling() == 0.0  # in flight: the quiet window covers it
    clock.advance(seconds=5)
    assert drain.settling() > 0  # the drain lags: the customer's next words may be waiting
    clock.advance(seconds=60)
    assert drain.settling() == 0.0  # a backlog this old does not hold answers back


def test_the_bots_look_at_the_drains_lag_never_takes_the_write_turn(
    db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # Every answer looks first (`settling`): on SQLite that look must not queue for the write
    # turn behind the webhooks and the drain, nor hold them up.
    clock = Clock()
    drain = make_drain(session_factory, clock, [])
    queue_batch(text_batch("waiting"), engine=db_engine, now=clock.now)
    clock.advance(seconds=5)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        assert drain.settling() > 0
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert statements
    assert not [s for s in statements if s.startswith("BEGIN IMMEDIATE")]
