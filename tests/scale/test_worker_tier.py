"""The worker tier's parts, fast: per-conversation locks across processes and connections, a run
that coalesces late arrivals and hands over replies an interrupted run left behind, the sweeper that
finds work a broker lost, interrupted sends marked "unknown", the Celery dispatcher when the broker
is down, and `leaddesk serve --workers 2` with `leaddesk worker` answering a WhatsApp customer end
to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from leaddesk.cli import main as cli_main
from leaddesk.settings import load_settings
from leaddesk.worker.celery_app import PROCESS_TASK, CeleryDispatcher, make_celery
from leaddesk.worker.locks import FileLocks, PostgresLocks, make_locks
from leaddesk.worker.runner import ConversationRunner
from leaddesk.worker.sweeper import Sweeper
from store import make_engine, make_session_factory
from store.agents import create_agent
from store.domain.policy import Policy, StatusPolicy
from store.domain.waiting import assign_waiting_leads
from store.messages import Inbound, ingest, record_outbound
from store.models import Conversation, Lead, Message
from store.pending import mark_interrupted_sends
from tests.scale import harness

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def prompts() -> Any:
    return load_prompts(DEFAULT_PROMPTS_DIR)


@pytest.fixture
def bot(session_factory: sessionmaker[Session], prompts: Any) -> BotService:
    return BotService(
        session_factory=session_factory, prompts=prompts, outbox=LocalOutbox(session_factory)
    )


def say(session_factory: sessionmaker[Session], text_: str, sender: str = "visitor-1") -> int:
    """Store a customer message (as a webhook does) and return its conversation id."""
    with session_factory.begin() as session:
        stored = ingest(Inbound(channel="web", external_id=sender, text=text_), session=session)
        return stored.message.conversation_id


def pending_count(session_factory: sessionmaker[Session], conversation_id: int) -> int:
    with session_factory() as session:
        return len(
            session.scalars(
                select(Message.id).where(
                    Message.conversation_id == conversation_id,
                    Message.direction == "in",
                    Message.processed_at.is_(None),
                )
            ).all()
        )


def replies(session_factory: sessionmaker[Session], conversation_id: int) -> list[Message]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.direction == "out")
                .order_by(Message.id)
            )
        )


# -- a run -----------------------------------------------------------------------------------------


def test_a_run_answers_the_burst_once_and_takes_in_what_arrives_meanwhile(
    session_factory: sessionmaker[Session], db_engine: Engine, bot: BotService
) -> None:
    conversation_id = say(session_factory, "Hello there")
    say(session_factory, "are you open on Saturdays?")
    calls: list[int] = []

    def process(cid: int) -> Any:
        calls.append(cid)
        result = bot.process_conversation(cid)
        if len(calls) == 1:
            say(session_factory, "and do you deliver?")  # arrives while the first run finishes
        return result

    runner = ConversationRunner(
        session_factory=session_factory, process=process, deliver=None, locks=make_locks(db_engine)
    )
    assert runner.run(conversation_id) == "done"
    assert calls == [conversation_id, conversation_id]
    assert pending_count(session_factory, conversation_id) == 0
    out = replies(session_factory, conversation_id)
    assert len(out) == 2 and all(m.delivery_status == "sent" for m in out)
    # A repeated task (at least once delivery) finds nothing to do and answers nothing.
    assert runner.run(conversation_id) == "idle"
    assert len(replies(session_factory, conversation_id)) == 2


def test_a_conversation_held_elsewhere_is_left_for_later_not_dropped(
    session_factory: sessionmaker[Session], db_engine: Engine, bot: BotService
) -> None:
    conversation_id = say(session_factory, "Hello")
    locks = make_locks(db_engine)
    runner = ConversationRunner(
        session_factory=session_factory, process=bot.process_conversation, deliver=None, locks=locks
    )
    other = make_locks(
        db_engine
    )  # another worker (another connection, or another lock file handle)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.hold(conversation_id) as got:
            assert got
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert runner.run(conversation_id) == "busy"
        assert pending_count(session_factory, conversation_id) == 1
    finally:
        release.set()
        holder.join()
    assert runner.run(conversation_id) == "done"
    assert len(replies(session_factory, conversation_id)) == 1


def test_a_reply_recorded_but_never_sent_goes_out_before_anything_new(
    session_factory: sessionmaker[Session], db_engine: Engine, bot: BotService
) -> None:
    conversation_id = say(session_factory, "Hello")
    with session_factory.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        left = record_outbound(
            conversation,
            "the reply a crashed worker recorded",
            session=session,
            idempotency_key="bot-reply:crashed",
            external_id="visitor-1",
        ).id
        session.execute(update(Message).where(Message.direction == "in").values(processed_at=T0))
    delivered: list[list[int]] = []

    def deliver(ids: list[int]) -> None:
        delivered.append(list(ids))
        LocalOutbox(session_factory).deliver(ids)

    runner = ConversationRunner(
        session_factory=session_factory,
        process=bot.process_conversation,
        deliver=deliver,
        locks=make_locks(db_engine),
    )
    assert runner.run(conversation_id) == "done"
    assert delivered == [[left]]
    assert [m.delivery_status for m in replies(session_factory, conversation_id)] == ["sent"]


def test_messages_that_keep_coming_make_the_task_come_back(
    session_factory: sessionmaker[Session], db_engine: Engine, bot: BotService
) -> None:
    conversation_id = say(session_factory, "Hello")

    def process(cid: int) -> Any:
        bot.process_conversation(cid)
        say(session_factory, "one more thing")

    runner = ConversationRunner(
        session_factory=session_factory,
        process=process,
        deliver=None,
        locks=make_locks(db_engine),
        max_passes=2,
    )
    assert runner.run(conversation_id) == "more"
    assert pending_count(session_factory, conversation_id) == 1


# -- locks -----------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_burst_still_being_typed_waits_for_its_quiet_window(
    session_factory: sessionmaker[Session], db_engine: Engine, tmp_path: Path
) -> None:
    import shutil
    import time

    from tests.conftest import set_quiet_window

    directory = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, directory, ignore=shutil.ignore_patterns("eval"))
    set_quiet_window(directory, 0.3)
    bot = BotService(
        session_factory=session_factory,
        prompts=load_prompts(directory),
        outbox=LocalOutbox(session_factory),
    )
    runner = ConversationRunner(
        session_factory=session_factory,
        process=bot.process_conversation,
        deliver=None,
        locks=make_locks(db_engine),
        due_in=bot.seconds_until_due,
    )
    conversation_id = say(session_factory, "Hello")
    say(session_factory, "how much is the Home package?")
    assert 0 < runner.due_in(conversation_id) <= 0.3
    assert runner.run(conversation_id) == "later"
    assert replies(session_factory, conversation_id) == []
    time.sleep(runner.due_in(conversation_id) + 0.05)
    assert runner.due_in(conversation_id) == 0
    assert runner.run(conversation_id) == "done"
    assert len(replies(session_factory, conversation_id)) == 1
    assert pending_count(session_factory, conversation_id) == 0


def test_advisory_locks_exclude_other_machines_and_die_with_the_connection(
    postgres_url: str,
) -> None:
    one, two = make_engine(postgres_url), make_engine(postgres_url)  # two machines' pools
    try:
        first, second = PostgresLocks(one), PostgresLocks(two)
        with first.hold(41) as got:
            assert got
            with second.hold(41) as other:
                assert not other
            with second.hold(42) as other:
                assert other, "another conversation is free"
        with second.hold(41) as got:
            assert got, "released at the end of the run"

        # A holder whose connection is cut (a dead worker, a database failover) loses the lock.
        holding, done = threading.Event(), threading.Event()

        def hold() -> None:
            try:
                with first.hold(43):
                    holding.set()
                    done.wait(10)
            except Exception:  # noqa: BLE001 - the unlock on a cut connection may fail; that is the point
                pass

        thread = threading.Thread(target=hold)
        thread.start()
        assert holding.wait(10)
        with two.connect() as conn:
            cut = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
                    "WHERE l.locktype = 'advisory' AND l.objid = 43 AND l.pid <> pg_backend_pid()"
                )
            ).scalar()
            conn.commit()
        assert cut == 1
        deadline = time.monotonic() + 5
        while True:
            with second.hold(43) as got:
                if got:
                    break
            assert time.monotonic() < deadline, "the lock outlived its connection"
            time.sleep(0.05)
        done.set()
        thread.join()
    finally:
        one.dispose()
        two.dispose()


HOLDER = """
import sys, time
from pathlib import Path
from leaddesk.worker.locks import FileLocks
with FileLocks(Path(sys.argv[1])).hold(int(sys.argv[2])) as got:
    print("held" if got else "refused", flush=True)
    time.sleep(60)
"""


def test_file_locks_exclude_other_processes_and_die_with_them(tmp_path: Path) -> None:
    path = tmp_path / "leaddesk.db.locks"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "7"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(harness.REPO_ROOT),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        locks = FileLocks(path)
        with locks.hold(7) as got:
            assert not got, "another process holds conversation 7"
        with locks.hold(8) as got:
            assert got
            with FileLocks(path).hold(8) as again:
                assert not again, "nobody else in this process may run it either"
        child.send_signal(signal.SIGKILL)  # the holder dies without letting go
        child.wait(10)
        with locks.hold(7) as got:
            assert got, "the kernel drops a dead process's locks"
    finally:
        child.kill()
        child.wait(10)


# -- the sweeper -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_sweeper_resubmits_work_the_broker_lost_once_per_period(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    waiting = say(session_factory, "Hello", sender="a")
    fresh = say(session_factory, "Hello", sender="b")
    unsent = say(session_factory, "Hello", sender="c")
    with session_factory.begin() as session:
        old = datetime.now(UTC) - timedelta(minutes=5)
        session.execute(
            update(Message)
            .where(Message.conversation_id.in_([waiting, unsent]))
            .values(created_at=old)
        )
        session.execute(
            update(Message).where(Message.conversation_id == unsent).values(processed_at=old)
        )
        conversation = session.get(Conversation, unsent)
        assert conversation is not None
        reply = record_outbound(
            conversation, "recorded, never handed over", session=session, external_id="c"
        )
        reply.created_at = old
    submitted: list[int] = []
    clock = Clock(datetime.now(UTC))
    sweeper = Sweeper(
        session_factory=session_factory,
        locks=make_locks(db_engine),
        submit=submitted.append,
        stale_after=timedelta(seconds=60),
        clock=clock,
    )
    report = sweeper.sweep()
    assert sorted(report.resubmitted) == sorted([waiting, unsent]) == sorted(submitted)
    assert fresh not in submitted, "a message stored a moment ago is still on its way"
    assert sweeper.sweep().resubmitted == [], "not again while the first resubmission may be queued"
    clock.now += timedelta(seconds=61)
    assert sorted(sweeper.sweep().resubmitted) == sorted([waiting, unsent, fresh])


def test_the_sweeper_leaves_a_busy_or_unreachable_broker_alone(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    conversation_id = say(session_factory, "Hello")
    with session_factory.begin() as session:
        session.execute(update(Message).values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    queued: list[int | None] = [12]
    submitted: list[int] = []
    sweeper = Sweeper(
        session_factory=session_factory,
        locks=make_locks(db_engine),
        submit=submitted.append,
        backlog=lambda: queued[0],
        stale_after=timedelta(seconds=60),
    )
    assert sweeper.sweep().resubmitted == [], (
        "tasks are queued: the old message is most likely among them"
    )
    queued[0] = None
    assert sweeper.sweep().resubmitted == [], (
        "the broker cannot be reached: publishing would fail too"
    )
    queued[0] = 0
    assert sweeper.sweep().resubmitted == [conversation_id] == submitted


def test_only_one_sweeper_sweeps_at_a_time(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    locks = make_locks(db_engine)
    sweeper = Sweeper(
        session_factory=session_factory, locks=make_locks(db_engine), submit=lambda cid: None
    )
    with locks.hold(0) as got:
        assert got
        assert sweeper.sweep().skipped
    assert not sweeper.sweep().skipped


def test_a_send_cut_off_by_a_crash_is_marked_unknown_and_not_sent_again(
    session_factory: sessionmaker[Session],
) -> None:
    conversation_id = say(session_factory, "Hello")
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        stale = record_outbound(
            conversation,
            "claimed long ago",
            session=session,
            idempotency_key="k1",
            external_id="visitor-1",
            delivery_status="sending",
        )
        stale.sent_at = now - timedelta(minutes=10)
        busy = record_outbound(
            conversation,
            "being sent right now",
            session=session,
            idempotency_key="k2",
            external_id="visitor-1",
            delivery_status="sending",
        )
        busy.sent_at = now - timedelta(seconds=5)
        stale_id, busy_id = stale.id, busy.id
    with session_factory.begin() as session:
        marked_count = mark_interrupted_sends(now - timedelta(minutes=5), session=session)
    assert marked_count == 1
    with session_factory() as session:
        marked, running = session.get(Message, stale_id), session.get(Message, busy_id)
        assert marked is not None and running is not None
        assert marked.delivery_status == "unknown" and "not sent again" in (marked.error or "")
        assert running.delivery_status == "sending"
    # Nothing picks "unknown" up for sending: only "pending" replies are ever (re)sent.
    runner = ConversationRunner(
        session_factory=session_factory,
        process=lambda cid: None,
        deliver=None,
        locks=FileLocks(None),
    )
    assert runner.pending(conversation_id) is True  # the customer message itself is still pending


# -- the dispatcher --------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_webhook_is_not_held_up_or_failed_while_the_broker_is_down() -> None:
    settings = load_settings(
        broker_url=f"redis://127.0.0.1:{_closed_port()}/0", database_url="sqlite://"
    )
    dispatcher = CeleryDispatcher(make_celery(settings))
    started = time.monotonic()
    dispatcher.submit(5)  # must not raise: the message is stored, the sweeper submits it later
    assert time.monotonic() - started < 10
    health = dispatcher.health()
    assert health["status"] == "degraded" and health["publish_failures"] == 1 and health["error"]
    assert "redis://127.0.0.1" in health["broker"]
    dispatcher.stop()


def test_jobs_go_to_the_broker_acknowledged_late(services: None) -> None:
    db, queue = 14, harness.queue_name()
    settings = load_settings(
        broker_url=f"redis://:secret-pw@127.0.0.1:6379/{db}",
        broker_queue=queue,
        database_url="sqlite://",
    )
    app = make_celery(settings)
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    dispatcher = CeleryDispatcher(app)
    try:
        dispatcher.submit(17)
        health = dispatcher.health()
        assert health["status"] == "ok" and health["published"] == 1
        assert "secret-pw" not in json.dumps(health), "the broker password never shows"
        client = harness.redis_client(db)
        raw = client.lpop(queue)
        client.close()
        assert raw is not None
        message = json.loads(raw)
        assert message["headers"]["task"] == PROCESS_TASK
        assert json.loads(__import__("base64").b64decode(message["body"]))[0] == [17]
    finally:
        dispatcher.stop()
        harness.drop_queue(f"redis://127.0.0.1:6379/{db}", queue)


def test_a_burst_publishes_one_task_until_that_task_starts(services: None) -> None:
    db, queue = 14, harness.queue_name()
    broker = f"redis://127.0.0.1:6379/{db}"
    settings = load_settings(broker_url=broker, broker_queue=queue, database_url="sqlite://")
    web, worker = CeleryDispatcher(make_celery(settings)), CeleryDispatcher(make_celery(settings))
    client = harness.redis_client(db)
    try:
        for _ in range(5):
            web.submit(3)  # five messages of one burst, while the task waits in the queue
        web.submit(4)
        assert client.llen(queue) == 2 and web.health()["coalesced"] == 4
        worker.started(3)  # the task starts: from now on a new message needs a new task
        web.submit(3)
        assert client.llen(queue) == 3
        web.resubmit(4)  # the sweeper publishes even though a task looks queued
        assert client.llen(queue) == 4
    finally:
        client.close()
        web.stop()
        worker.stop()
        harness.drop_queue(broker, queue)


# -- the commands ----------------------------------------------------------------------------------


def test_workers_and_several_web_processes_need_a_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("LEADDESK_BROKER_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert cli_main(["worker"]) == 1
    assert "LEADDESK_BROKER_URL" in capsys.readouterr().err
    assert cli_main(["serve", "--workers", "2", "--port", "0"]) == 1
    assert "LEADDESK_BROKER_URL" in capsys.readouterr().err


@pytest.fixture
def graph() -> Iterator[harness.ScaleGraph]:
    fake = harness.ScaleGraph().start()
    yield fake
    fake.stop()


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_two_web_processes_and_a_worker_answer_a_customer_on_sqlite(
    services: None, graph: harness.ScaleGraph, tmp_path: Path, broker: str
) -> None:
    """The smallest scaled-out setup on one machine: SQLite, Redis (or RabbitMQ), `serve --workers
    2`, one worker."""
    db = 15
    other = None
    if broker == "rabbitmq":
        if not harness.port_open("127.0.0.1", 5672):
            pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
        other = RABBITMQ
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    cluster = harness.Cluster(
        database_url=url,
        redis_db=db,
        graph_url=graph.url,
        llm_url=None,
        log_dir=tmp_path,
        broker=other,
    )
    engine = make_engine(url)
    try:
        web = cluster.start_web(processes=2, threads=4)
        cluster.start_worker(concurrency=1, pool="solo")
        conversation = harness.build_scenario(1, 3, seed=5)[0]
        with httpx.Client(base_url=cluster.web_url or "") as client:
            health = client.get("/healthz").json()
            assert health["workers"]["kind"] == "celery" and health["workers"]["status"] == "ok", (
                health
            )
            body = harness.whatsapp_body(conversation, conversation.messages)
            headers = {
                "X-Hub-Signature-256": harness.signature_for(body, harness.APP_SECRET),
                "Content-Type": "application/json",
            }
            assert (
                client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
            )
            assert (
                client.post("/webhooks/whatsapp", content=body, headers=headers).json()[
                    "duplicates"
                ]
                == 3
            )
        deadline = time.monotonic() + 60
        while len(graph.accepted()) < 1:
            assert time.monotonic() < deadline, cluster.logs()[-4000:]
            time.sleep(0.1)
        time.sleep(1.0)
        accepted = graph.accepted()
        assert len(accepted) == 1 and accepted[0][0] == conversation.wa_id
        with make_session_factory(engine)() as session:
            assert all(
                m.processed_at
                for m in session.scalars(select(Message).where(Message.direction == "in"))
            )
        if broker == "redis":
            # A web process that dies is replaced; the port keeps answering meanwhile.
            victim = web.descendants()[0]
            os.kill(victim, signal.SIGKILL)
            web.wait_for(rf"web process {victim} exited with code -9; starting another")
            deadline = time.monotonic() + 60
            while len(re.findall(r"web process \d+ serving", web.log())) < 3:
                assert time.monotonic() < deadline, web.log()[-3000:]
                time.sleep(0.1)
            assert httpx.get(f"{cluster.web_url}/healthz").status_code == 200
        web.stop()
        assert web.process.returncode == 0, web.log()[-3000:]
        assert "Traceback" not in cluster.logs()
    finally:
        cluster.stop()
        engine.dispose()


def test_a_burst_over_the_broker_gets_one_reply_after_the_customer_stops(
    services: None, graph: harness.ScaleGraph, tmp_path: Path
) -> None:
    """Three webhooks a moment apart, a web process and a worker behind Redis: the worker's task
    comes back after the quiet window (the shipped 2.5 s) and answers the three at once."""
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    cluster = harness.Cluster(
        database_url=url, redis_db=15, graph_url=graph.url, llm_url=None, log_dir=tmp_path
    )
    engine = make_engine(url)
    try:
        cluster.start_web(processes=1, threads=4)
        cluster.start_worker(concurrency=1, pool="solo")
        conversation = harness.build_scenario(1, 3, seed=9)[0]
        first_sent = 0.0
        with httpx.Client(base_url=cluster.web_url or "") as client:
            for message in conversation.messages:
                body = harness.whatsapp_body(conversation, [message])
                headers = {
                    "X-Hub-Signature-256": harness.signature_for(body, harness.APP_SECRET),
                    "Content-Type": "application/json",
                }
                response = client.post("/webhooks/whatsapp", content=body, headers=headers)
                assert response.status_code == 200
                first_sent = first_sent or time.monotonic()
                time.sleep(0.3)
        deadline = time.monotonic() + 60
        while len(graph.accepted()) < 1:
            assert time.monotonic() < deadline, cluster.logs()[-4000:]
            time.sleep(0.05)
        answered_after = time.monotonic() - first_sent
        time.sleep(3.0)  # long enough for a second reply to show, were there one
        accepted = graph.accepted()
        assert len(accepted) == 1 and accepted[0][0] == conversation.wa_id
        assert answered_after >= 2.5  # not before the customer had been quiet for the window
        with make_session_factory(engine)() as session:
            inbound = list(session.scalars(select(Message).where(Message.direction == "in")))
            assert len(inbound) == 3 and all(m.processed_at for m in inbound)
        assert "Traceback" not in cluster.logs()
    finally:
        cluster.stop()
        engine.dispose()


def test_the_sweeper_hands_waiting_leads_the_room_closed_leads_freed(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    policy = Policy(
        statuses=(
            StatusPolicy("New"),
            StatusPolicy("Follow Up", action="auto_assign"),
            StatusPolicy("Lost", terminal=True),
        )
    )
    with session_factory.begin() as session:
        sarah, _token = create_agent("Sarah", session=session, capacity=1)
        session.flush()
        busy = Lead(name="Busy", status="Follow Up", assigned_agent_id=sarah.id)
        waiting = Lead(name="Waiting", status="Follow Up")
        session.add_all([busy, waiting])
        session.flush()
        sarah_id, busy_id, waiting_id = sarah.id, busy.id, waiting.id
    caught: list[list[int]] = []
    sweeper = Sweeper(
        session_factory=session_factory,
        locks=make_locks(db_engine),
        submit=lambda _key: None,
        catch_up=lambda session, now: caught.append(
            assign_waiting_leads(session=session, policy=policy, now=now)
        ),
    )
    sweeper.sweep()
    assert caught == [[]]  # Sarah has no room
    with session_factory.begin() as session:
        lead = session.get(Lead, busy_id)
        assert lead is not None
        lead.status = "Lost"
    sweeper.sweep()
    assert caught[-1] == [waiting_id]
    with session_factory() as session:
        assert session.get(Lead, waiting_id).assigned_agent_id == sarah_id  # type: ignore[union-attr]
