"""The scale-out scenario shared by the scale tests and `benchmarks/scale_bench.py`.

A cluster of real processes on loopback (`leaddesk serve --workers N` and `leaddesk worker`
processes on a fresh PostgreSQL database and a Redis database), the fake OpenAI-compatible server
and the fake Graph API as the outside world, a load of signed WhatsApp webhooks with bursts and
duplicate deliveries, and the checks that nothing was lost, reordered or answered twice.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.fakes.fake_graph import FakeGraph, Reply
from tests.fakes.fake_openai import FakeOpenAI, FakeReply, as_json, error, malformed
from webhooks.meta import signature_for

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# The command the machine's Redis was started with (it keeps nothing on disk).
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
APP_SECRET = "scale-app-secret"
VERIFY_TOKEN = "scale-verify-token"
PHONE_NUMBER_ID = "106540352242922"
GRAPH_TOKEN = "scale-graph-token"
LLM_KEY = "scale-llm-key"
REF = re.compile(r"ref-(\d+)-(\d+)\b")


# -- services --------------------------------------------------------------------------------------


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def services_missing() -> str | None:
    """Why the scale scenario cannot run here (None when PostgreSQL, Redis and psycopg answer)."""
    if not port_open("127.0.0.1", 5432):
        return "PostgreSQL is not reachable on 127.0.0.1:5432"
    if not port_open(REDIS_HOST, REDIS_PORT):
        return "Redis is not reachable on 127.0.0.1:6379"
    try:
        import psycopg  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return None


@contextmanager
def fresh_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A new, migrated PostgreSQL database for one scenario; dropped (connections and all)
    afterwards."""
    from store import make_engine, upgrade

    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"leaddesk_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def terminate_backends(engine: Engine) -> int:
    """pg_terminate_backend on every other connection to the engine's database (a database restart,
    as the applications see it); returns how many were cut."""
    with engine.connect() as conn:
        count = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
        conn.commit()
    return int(count or 0)


def redis_client(db: int) -> Any:
    import redis

    return redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5, socket_connect_timeout=2
    )


def queue_name() -> str:
    """A queue of one's own: runs sharing a Redis or RabbitMQ never see each other's jobs."""
    return f"leaddesk-test-{uuid.uuid4().hex[:10]}"


def drop_queue(broker_url: str, queue: str) -> None:
    """Remove a run's queue (and, on Redis, its queued marks) from the shared broker."""
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
            with suppress(connection.channel_errors):
                connection.default_channel.queue_delete(queue)
        if broker_url.startswith("redis://"):
            import redis

            client = redis.Redis.from_url(broker_url, socket_timeout=5)
            try:
                for key in client.scan_iter(match=f"{queue}*"):
                    client.delete(key)
            finally:
                client.close()
    except Exception:  # noqa: BLE001 - best effort: a stopped broker keeps nothing anyway
        pass


def stop_redis() -> None:
    """Stop the machine's Redis at once, losing what it held (it runs without persistence)."""
    subprocess.run(
        ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "shutdown", "nosave"],
        check=False,
        capture_output=True,
        timeout=15,
    )
    deadline = time.monotonic() + 10
    while port_open(REDIS_HOST, REDIS_PORT, 0.2) and time.monotonic() < deadline:
        time.sleep(0.1)


def start_redis(timeout: float = 20.0) -> None:
    """Start Redis again with the machine's own command, and wait until it answers."""
    if not port_open(REDIS_HOST, REDIS_PORT, 0.2):
        subprocess.run(REDIS_START, check=False, capture_output=True, timeout=15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(REDIS_HOST, REDIS_PORT, 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("Redis did not come back on 127.0.0.1:6379")


# -- the outside world -----------------------------------------------------------------------------


class ScaleGraph:
    """The fake Graph API with a failure plan: request i gets plan[i] (then 200s). A send counts as
    accepted only when answered 200; every accepted send is kept with its arrival time."""

    def __init__(
        self,
        *,
        fail_share: float = 0.0,
        drop_share: float = 0.0,
        seed: int = 7,
        plan_length: int = 20000,
    ) -> None:
        rng = random.Random(seed)
        self.plan: list[Reply] = []
        for _ in range(plan_length if (fail_share or drop_share) else 0):
            roll = rng.random()
            if roll < fail_share:
                self.plan.append(Reply(status=rng.choice((500, 502, 503))))
            elif roll < fail_share + drop_share:
                self.plan.append(Reply(drop=True))
            else:
                self.plan.append(Reply())
        self._times: dict[int, float] = {}
        self.fake = FakeGraph(on_request=self._arrived)
        if self.plan:
            self.fake.script(*self.plan)

    def _arrived(self, recorded: Any) -> None:
        self._times[id(recorded)] = time.time()

    def start(self) -> ScaleGraph:
        self.fake.start()
        return self

    def stop(self) -> None:
        self.fake.stop()

    @property
    def url(self) -> str:
        return self.fake.url

    def accepted(self) -> list[tuple[str, str, float]]:
        """(recipient, text, arrival time) of every send answered 200, in arrival order."""
        return [(to, body, at) for _account, _token, to, body, at in self.accepted_sends()]

    def accepted_sends(self) -> list[tuple[str, str, str, str, float]]:
        """(sending account, bearer token, recipient, text, arrival time) of every send answered
        200, in arrival order; the account is the phone number id or Page in the request's path."""
        out = []
        for index, request in enumerate(list(self.fake.requests)):
            reply = self.plan[index] if index < len(self.plan) else Reply()
            if reply.status != 200 or reply.drop or not isinstance(request.json, dict):
                continue
            body = request.json
            parts = [p for p in request.path.split("?")[0].split("/") if p]
            account = parts[-2] if len(parts) >= 2 else ""
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            out.append(
                (
                    account,
                    token,
                    str(body.get("to") or body.get("recipient")),
                    str((body.get("text") or {}).get("body")),
                    self._times.get(id(request), 0.0),
                )
            )
        return out


def turn_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A valid model answer that echoes the newest message reference it was shown, so that every
    sent reply says which burst it answers."""
    user = "\n".join(
        str(m.get("content") or "") for m in body.get("messages") or [] if m.get("role") == "user"
    )
    refs = [(int(c), int(n)) for c, n in REF.findall(user)]
    newest = f"ref-{max(refs)[0]}-{max(refs)[1]}" if refs else "ref-none"
    return {
        "reasoning": "The customer is saying hello and asking a general question.",
        "intent_evidence": "",
        "intent_level": "very_low",
        "intent_score": 5,
        "status": "New",
        "interests": [],
        "objections": [],
        "summary": "A customer wrote a few general messages.",
        "next_best_action": "",
        "language": "en",
        "reply": f"Thanks for writing, we have noted it (re {newest}).",
    }


def start_llm(*, fail_share: float = 0.0, slow_seconds: float = 3.0, seed: int = 11) -> FakeOpenAI:
    """The fake model: instant valid answers, or with `fail_share` a mix of 5xx, answers slower than
    the client's timeout, broken JSON and JSON that does not fit the schema."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> FakeReply:
        with lock:
            roll = rng.random()
            kind = rng.randrange(4)
        if roll < fail_share:
            if kind == 0:
                return error(rng.choice((500, 503)))
            if kind == 1:
                return FakeReply(content=json.dumps(turn_answer(body)), delay=slow_seconds)
            if kind == 2:
                return malformed()
            return as_json({"reasoning": "x", "intent_score": "very high", "reply": ""})
        return as_json(turn_answer(body))

    return FakeOpenAI().start().respond_with(respond)


# -- the processes ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Proc:
    """One `leaddesk ...` child process with its log in a file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        cwd: Path = REPO_ROOT,
        command: list[str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-c", "from leaddesk.cli import run; run()"]), *args],
            env=env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no {pattern!r} in its log:\n{self.log()[-4000:]}")

    def descendants(self) -> list[int]:
        out, todo = [], [self.pid]
        while todo:
            kids = _children(todo.pop())
            out += kids
            todo += kids
        return out

    def kill(self) -> None:
        """SIGKILL the process and everything it started (a machine that vanished)."""
        for pid in [self.pid, *self.descendants()]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in self.descendants():  # orphans of a killed parent
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


@dataclass
class Cluster:
    """Web processes and workers of one scenario, on one database and one Redis database."""

    database_url: str
    redis_db: int
    graph_url: str
    llm_url: str | None
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: str | None = None  # another broker URL (e.g. RabbitMQ) instead of the Redis database
    queue: str = field(default_factory=queue_name)
    procs: list[Proc] = field(default_factory=list)
    web_url: str | None = None
    _names: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def broker_url(self) -> str:
        return self.broker or f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}"

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                (
                    "META_",
                    "WHATSAPP_",
                    "MESSENGER_",
                    "INSTAGRAM_",
                    "OPENAI_",
                    "LEADDESK_",
                    "TELEGRAM_",
                    "DATABASE_URL",
                )
            )
        }
        env = {
            **base,
            "DATABASE_URL": self.database_url,
            "LEADDESK_BROKER_URL": self.broker_url,
            "LEADDESK_BROKER_QUEUE": self.queue,
            "LEADDESK_LOG_LEVEL": "INFO",
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_APP_ID": "555000111222333",
            "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "META_GRAPH_URL": self.graph_url,
            "LEADDESK_SWEEP_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if self.llm_url:
            env.update(
                OPENAI_API_KEY=LLM_KEY,
                OPENAI_BASE_URL=self.llm_url,
                LEADDESK_MODEL="fake-model",
                LEADDESK_LLM_TIMEOUT="1.5",
            )
        env.update(self.extra_env)
        return env

    def start_web(self, processes: int = 2, threads: int = 16) -> Proc:
        proc = Proc(
            f"web-{next(self._names)}",
            ["serve", "--port", "0", "--workers", str(processes), "--threads", str(threads)],
            self.env(),
            self.log_dir,
        )
        self.procs.append(proc)
        found = proc.wait_for(r"listening on (http://\S+?:\d+)")
        self.web_url = found.group(1)
        # Each web process reports when it serves; wait for all of them.
        deadline = time.monotonic() + 60
        while (
            len(re.findall(r"web process \d+ serving", proc.log())) < processes
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        return proc

    def start_worker(self, concurrency: int = 1, pool: str = "prefork") -> Proc:
        name = f"worker-{next(self._names)}"
        proc = Proc(
            name,
            [
                "worker",
                "--concurrency",
                str(concurrency),
                "--pool",
                pool,
                "--name",
                f"{name}@scale",
            ],
            self.env(),
            self.log_dir,
        )
        self.procs.append(proc)
        proc.wait_for(r"worker ready")
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        drop_queue(self.broker_url, self.queue)

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()}" for p in self.procs)


# -- the load --------------------------------------------------------------------------------------


@dataclass
class Stack:
    cluster: Cluster
    engine: Engine
    graph: ScaleGraph
    llm: FakeOpenAI


@contextmanager
def running_stack(
    *,
    redis_db: int,
    log_dir: Path,
    graph: ScaleGraph | None = None,
    llm: FakeOpenAI | None = None,
) -> Iterator[Stack]:
    """A fresh PostgreSQL database, the fake Graph API and model, and a cluster (not yet started)
    wired to them; everything is stopped and dropped afterwards."""
    from store import make_engine

    graph = (graph or ScaleGraph()).start()
    llm = llm or start_llm()
    try:
        with fresh_database() as url:
            engine = make_engine(url)
            cluster = Cluster(
                database_url=url,
                redis_db=redis_db,
                graph_url=graph.url,
                llm_url=llm.base_url,
                log_dir=log_dir,
            )
            try:
                yield Stack(cluster, engine, graph, llm)
            finally:
                cluster.stop()
                engine.dispose()
    finally:
        graph.stop()
        llm.close()


@dataclass
class Conversation:
    index: int
    wa_id: str
    name: str
    bursts: list[list[tuple[str, str]]]  # [(wamid, text)]
    account: str = PHONE_NUMBER_ID  # the business number written to

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [m for burst in self.bursts for m in burst]


def build_scenario(
    conversations: int,
    messages: int,
    *,
    seed: int = 1,
    max_burst: int = 5,
    accounts: tuple[str, ...] = (PHONE_NUMBER_ID,),
) -> list[Conversation]:
    """`messages` customer messages over `conversations` WhatsApp senders, in bursts of
    1..max_burst. With several business numbers (`accounts`), conversation i writes to
    accounts[i % n] and the same customers write to each (customer i // n)."""
    rng = random.Random(seed)
    per = [
        messages // conversations + (1 if i < messages % conversations else 0)
        for i in range(conversations)
    ]
    out = []
    run = uuid.uuid4().hex[:8]
    for index, count in enumerate(per):
        texts = [
            (f"wamid.{run}.{index}.{n}", f"Hello, a question for you ref-{index}-{n}")
            for n in range(1, count + 1)
        ]
        bursts, at = [], 0
        while at < count:
            size = min(count - at, rng.randint(1, max_burst))
            bursts.append(texts[at : at + size])
            at += size
        customer = index // len(accounts)
        out.append(
            Conversation(
                index,
                f"1650253{customer:04d}",
                f"Customer {customer}",
                bursts,
                accounts[index % len(accounts)],
            )
        )
    return out


def whatsapp_body(conversation: Conversation, messages: list[tuple[str, str]]) -> bytes:
    now = str(int(time.time()))
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": conversation.account,
                            },
                            "contacts": [
                                {
                                    "profile": {"name": conversation.name},
                                    "wa_id": conversation.wa_id,
                                }
                            ],
                            "messages": [
                                {
                                    "from": conversation.wa_id,
                                    "id": wamid,
                                    "timestamp": now,
                                    "type": "text",
                                    "text": {"body": body},
                                }
                                for wamid, body in messages
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


@dataclass
class LoadReport:
    deliveries: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sent_at: dict[str, float] = field(default_factory=dict)  # wamid -> first POST start (epoch)
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Hold:
    """Where the sender pauses: before its first delivery beyond `after` webhooks, every sending
    thread waits (`reached` is set) until the test sets `release`. A fault that must meet incoming
    webhooks (a broker outage) then meets them however far the workers lag behind the sender."""

    after: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def wait_turn(self, delivered: int) -> None:
        if delivered >= self.after and not self.release.is_set():
            self.reached.set()
            self.release.wait()


def send_load(
    url: str,
    scenario: list[Conversation],
    *,
    threads: int = 24,
    duplicate_share: float = 0.1,
    burst_gap: tuple[float, float] = (0.05, 0.6),
    seed: int = 3,
    hold: Hold | None = None,
) -> LoadReport:
    """Fire the scenario at /webhooks/whatsapp: each conversation in order from one thread at a
    time, bursts back to back, a pause between bursts; `duplicate_share` of the webhooks delivered
    twice (half right away from another thread, racing, half a little later); with `hold`, paused
    part way until the test lets it go on."""
    report = LoadReport()
    lock = threading.Lock()
    todo = list(scenario)
    random.Random(seed).shuffle(todo)
    queue_lock = threading.Lock()
    late: list[tuple[float, bytes]] = []
    rng_lock = threading.Lock()
    rng = random.Random(seed)
    endpoint = url.rstrip("/") + "/webhooks/whatsapp"

    def post(client: httpx.Client, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature_for(body, APP_SECRET),
        }
        for attempt in range(6):
            try:
                response = client.post(endpoint, content=body, headers=headers, timeout=30)
            except httpx.HTTPError as exc:
                status, problem = 0, type(exc).__name__
            else:
                status, problem = response.status_code, response.text[:200]
            with lock:
                report.statuses[status] += 1
            if status == 200:
                break
            # Like Meta: a failed delivery is retried later.
            time.sleep(0.5 * (attempt + 1))
        else:
            with lock:
                report.errors.append(f"{status}: {problem}")

    def duplicate(client: httpx.Client, body: bytes) -> None:
        with rng_lock:
            roll, racing = rng.random(), rng.random() < 0.5
        if roll >= duplicate_share:
            return
        with lock:
            report.duplicates += 1
        if racing:
            threading.Thread(target=lambda: post(httpx.Client(), body), daemon=True).start()
        else:
            with queue_lock:
                late.append((time.monotonic() + rng.uniform(0.5, 3.0), body))

    def worker() -> None:
        with httpx.Client() as client:
            while True:
                with queue_lock:
                    if not todo:
                        return
                    conversation = todo.pop()
                for burst in conversation.bursts:
                    at = 0
                    while at < len(burst):
                        with rng_lock:
                            size = (
                                2 if rng.random() < 0.2 else 1
                            )  # some webhooks carry two messages
                        chunk = burst[at : at + size]
                        at += size
                        body = whatsapp_body(conversation, chunk)
                        if hold is not None:
                            with lock:
                                delivered = report.deliveries
                            hold.wait_turn(delivered)
                        now = time.time()
                        with lock:
                            for wamid, _ in chunk:
                                report.sent_at.setdefault(wamid, now)
                            report.deliveries += 1
                        post(client, body)
                        duplicate(client, body)
                    with rng_lock:
                        gap = rng.uniform(*burst_gap)
                    time.sleep(gap)

    def late_sender() -> None:
        with httpx.Client() as client:
            while True:
                with queue_lock:
                    due = [item for item in late if item[0] <= time.monotonic()]
                    for item in due:
                        late.remove(item)
                    finished = not todo and not late and all(not t.is_alive() for t in pool)
                for _, body in due:
                    post(client, body)
                if finished:
                    return
                time.sleep(0.05)

    report.started = time.time()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    redeliver = threading.Thread(target=late_sender, daemon=True)
    redeliver.start()
    for thread in pool:
        thread.join()
    redeliver.join()
    report.finished = time.time()
    return report


# -- the verdict -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    inbound: int
    unprocessed: int
    replies: int
    by_status: dict[str, int]
    problems: list[str]


def progress(engine: Engine) -> tuple[int, int, int]:
    """(inbound messages stored, still unprocessed, replies not yet finished sending)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE direction = 'in'), "
                "count(*) FILTER (WHERE direction = 'in' AND processed_at IS NULL), "
                "count(*) FILTER (WHERE direction = 'out' AND delivery_status = 'pending') "
                "FROM messages"
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def wait_caught_up(
    engine: Engine, expected_inbound: int, timeout: float, settle: Callable[[], bool] = lambda: True
) -> float:
    """Wait until every expected message is stored and processed and every reply handed over;
    returns the time it took (raises AssertionError on timeout)."""
    started = time.monotonic()
    deadline = started + timeout
    last: tuple[int, int, int] = (0, 0, 0)
    while time.monotonic() < deadline:
        last = progress(engine)
        if last[0] >= expected_inbound and last[1] == 0 and last[2] == 0 and settle():
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(
        f"not caught up after {timeout:.0f}s: stored {last[0]}/{expected_inbound}, "
        f"{last[1]} unprocessed, {last[2]} replies pending"
    )


def verify(
    engine: Engine,
    scenario: list[Conversation],
    graph: ScaleGraph,
    *,
    model_replies: bool,
    accounts: dict[int, str] | None = None,
) -> Outcome:
    """Every message stored once and processed; each burst (the messages one run claimed together)
    has exactly one reply, in order; each reply sent at most once, and exactly once unless a crash
    cut it off mid-send ("unknown"/"sending"). With `model_replies`, also the order of the sends as
    the customer received them."""
    problems: list[str] = []
    expected = {wamid: (c.index, n) for c in scenario for n, (wamid, _) in enumerate(c.messages, 1)}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.id, m.conversation_id, m.direction, m.author, m.channel_message_id, "
                "m.text, m.processed_at, m.idempotency_key, m.delivery_status, m.external_id, "
                "m.workspace_id FROM messages m ORDER BY m.id"
            )
        ).all()
    inbound = [r for r in rows if r.direction == "in"]
    outbound = [r for r in rows if r.direction == "out"]
    seen = defaultdict(int)
    for r in inbound:
        seen[r.channel_message_id] += 1
    missing = [w for w in expected if seen.get(w, 0) == 0]
    doubled = [w for w, n in seen.items() if n > 1]
    unexpected = [w for w in seen if w not in expected]
    if missing:
        problems.append(f"{len(missing)} message(s) never stored, e.g. {missing[:3]}")
    if doubled:
        problems.append(f"{len(doubled)} message(s) stored more than once, e.g. {doubled[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected inbound message(s)")
    unprocessed = [r.id for r in inbound if r.processed_at is None]
    if unprocessed:
        problems.append(f"{len(unprocessed)} message(s) never processed")

    conv_in: dict[int, list[Any]] = defaultdict(list)
    for r in inbound:
        conv_in[r.conversation_id].append(r)
    replies_by_key = {}
    for r in outbound:
        if r.author != "bot":
            problems.append(
                f"outbound message {r.id} by {r.author!r}: only the bot should have written"
            )
            continue
        if not (r.idempotency_key or "").startswith("bot-reply:"):
            problems.append(f"bot reply {r.id} without a reply idempotency key")
            continue
        replies_by_key[int(r.idempotency_key.split(":", 1)[1])] = r
    by_status: dict[str, int] = defaultdict(int)
    for r in outbound:
        by_status[r.delivery_status or "none"] += 1
    for conversation_id, messages in conv_in.items():
        messages.sort(key=lambda r: r.id)
        # The customer's order is the order of the ids (each sender waits for the 200 before the
        # next).
        numbers = [expected.get(r.channel_message_id, (None, 0))[1] for r in messages]
        if numbers != sorted(numbers):
            problems.append(f"conversation {conversation_id}: messages stored out of order")
        ends = [r.id for r in messages if r.id in replies_by_key]
        if not messages or messages[-1].id not in replies_by_key:
            problems.append(f"conversation {conversation_id}: its last burst got no reply")
            continue
        start = 0
        reply_ids = []
        for end in ends:
            burst = [r for r in messages[start:] if r.id <= end]
            start += len(burst)
            claimed = {r.processed_at for r in burst}
            if len(claimed) != 1:
                problems.append(
                    f"conversation {conversation_id}: the burst ending at {end} was not claimed "
                    f"by one run (or a message of it was answered twice)"
                )
            reply_ids.append(replies_by_key[end].id)
        if reply_ids != sorted(reply_ids):
            problems.append(f"conversation {conversation_id}: replies recorded out of order")
    for reply in replies_by_key.values():
        if reply.delivery_status not in ("sent", "unknown", "sending"):
            problems.append(f"reply {reply.id}: delivery {reply.delivery_status!r}")

    # What the customers received.
    # A customer is a (business number, phone) pair: one person writing to several businesses
    # gets each one's replies from its own number. `accounts`: workspace id -> its number.
    accounts = accounts or {}
    per_recipient: dict[tuple[str, str], list[str]] = defaultdict(list)
    for account, _token, recipient, body, _ in graph.accepted_sends():
        per_recipient[(account if accounts else "", recipient)].append(body)
    recorded: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in replies_by_key.values():
        account = accounts.get(r.workspace_id, "?") if accounts else ""
        recorded[(account, r.external_id)][r.delivery_status] += 1
    for recipient in set(per_recipient) | set(recorded):
        got = len(per_recipient.get(recipient, []))
        sent = recorded[recipient].get("sent", 0)
        uncertain = recorded[recipient].get("unknown", 0) + recorded[recipient].get("sending", 0)
        if not sent <= got <= sent + uncertain:
            problems.append(
                f"recipient {recipient}: received {got} message(s) for {sent} sent reply(ies) "
                f"(+{uncertain} cut off by a crash)"
            )
        if model_replies:
            refs = [
                tuple(map(int, m.groups()))
                for body in per_recipient.get(recipient, [])
                for m in [REF.search(body)]
                if m
            ]
            if len(set(refs)) != len(refs):
                problems.append(f"recipient {recipient}: the same reply arrived twice")
            if refs != sorted(refs):
                problems.append(f"recipient {recipient}: replies arrived out of order")
    return Outcome(
        inbound=len(inbound),
        unprocessed=len(unprocessed),
        replies=len(replies_by_key),
        by_status=dict(by_status),
        problems=problems,
    )


def leaks(logs: str, scenario: list[Conversation]) -> list[str]:
    """Customer data and secrets found in the processes' logs (which run at INFO)."""
    found = [
        secret for secret in (APP_SECRET, VERIFY_TOKEN, GRAPH_TOKEN, LLM_KEY) if secret in logs
    ]
    for conversation in scenario[:50]:
        if conversation.wa_id in logs:
            found.append(f"phone {conversation.wa_id}")
        found += [f"message {text_}" for _, text_ in conversation.messages[:2] if text_ in logs]
    if "a question for you" in logs:
        found.append("message bodies")
    return found


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def latencies(
    engine: Engine, scenario: list[Conversation], graph: ScaleGraph, load: LoadReport
) -> dict[str, list[float]]:
    """Per message: queueing delay (stored -> the run that answered it started) and end to end
    (webhook POST -> its reply accepted by the Graph API), in seconds."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT channel_message_id, EXTRACT(EPOCH FROM created_at) AS stored, "
                "EXTRACT(EPOCH FROM processed_at) AS started FROM messages WHERE direction = 'in'"
            )
        ).all()
    queueing = [float(r.started) - float(r.stored) for r in rows if r.started is not None]
    arrivals: dict[tuple[int, int], float] = {}
    for _recipient, body, at in graph.accepted():
        found = REF.search(body)
        if found:
            arrivals[(int(found.group(1)), int(found.group(2)))] = at
    end_to_end = []
    for conversation in scenario:
        answered = sorted((n, at) for (c, n), at in arrivals.items() if c == conversation.index)
        for number, (wamid, _) in enumerate(conversation.messages, 1):
            at = next((t for n, t in answered if n >= number), None)
            if at is not None and wamid in load.sent_at:
                end_to_end.append(at - load.sent_at[wamid])
    return {"queueing": queueing, "end_to_end": end_to_end}


def run_cli(cluster: Cluster, *args: str, timeout: float = 120.0) -> str:
    """Run one `leaddesk ...` command against the cluster's database and environment; its output
    (raises with the output when it fails)."""
    done = subprocess.run(
        [sys.executable, "-c", "from leaddesk.cli import run; run()", *args],
        env=cluster.env(),
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"leaddesk {' '.join(args[:3])} failed: {done.stderr or done.stdout}")
    return done.stdout
