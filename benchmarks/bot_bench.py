"""Bot benchmark: how fast the inbound graph handles customer messages, against the framework floor
(`../shared/bench/floor.py`, run in the same go), with the offline engine and with a zero-latency
fake model (a real `ChatOpenAI` client talking HTTP to the loopback fake OpenAI-compatible server,
which answers instantly), and whether cost, prompt or memory grow with the conversation.

    python benchmarks/bot_bench.py [--conversations 20] [--messages 10] [--long 50]
        [--customers 40] [--per-customer 20] [--database URL] [--floor-database URL] [--rss 20000]
        [--pairs 8] [--json]

Each message goes through `BotService.handle` exactly as `leaddesk replay` feeds it (store, score,
status, reply, commit, local delivery), on a temporary SQLite file (WAL), or with `--database` on
PostgreSQL (`postgresql+psycopg://postgres@127.0.0.1:5432/h_botcpu`: the offline runs use scratch
databases `<name>_short`, `<name>_worker` and `<name>_long`, created and dropped here; with
`--floor-database` the floor's graph of the rounds in turns runs on `<name>_floor` too). Reported:
the floor, messages per second, median and p95 wall time and CPU time per message and their ratio
to the floor, SQL statements per message (an engine `before_cursor_execute` listener), a long
conversation (800 messages over 40 customers, interleaved) with its first and last 100 messages
side by side, the Python calls of a steady message beside the floor's (a measure of work the
machine's load does not move), the CPU ratio of steady messages measured in turns with the floor
(`--pairs` pairs of 100-message rounds, floor then bot, in this process: what the machine's load
does to one round of a pair it does to the other), the same for the short run (`--pairs` new short
runs of 10 customers x 10 messages, each after 100 messages of the floor) and for the long run
(run again on new customers, in rounds of 100 messages, each after 100 of the floor), model
calls, the prompt size (characters of all messages sent to the model) at message 5 and message
`--long` of one conversation, and the worker path: the short run's messages stored as a webhook
stores them, then answered as a worker's task runs a conversation, with the SQL statements of
each part (the store, the task's first question, the bot run).

`--rss N` sends N messages (over `--rss-customers` customers) through one `BotService` and prints
the process's resident memory every 2,000 messages and its spread from message 4,000 on.

The retrieval line times what the bot does per message to answer from the knowledge base, on the
shipped multilingual knowledge base: detect the language, rank the sections, pick the part that
answers (CPU time per message; the language models load once per process, timed apart).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import resource
import runpy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy import text as sql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
FLOOR = REPO_ROOT.parent / "shared" / "bench" / "floor.py"

from bot import BotService, LocalOutbox, load_prompts  # noqa: E402
from bot.knowledge import answer, knowledge_index  # noqa: E402
from bot.language import detect_language  # noqa: E402
from store import make_engine, make_session_factory, upgrade  # noqa: E402
from store.messages import Inbound, in_conversation_workspace  # noqa: E402
from store.pending import reading, waiting_workspace  # noqa: E402
from tests.bot.support import SOLAR_SHOPPER as SCRIPT  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402

# Questions in every shipped language, for the retrieval line.
QUESTIONS = [
    ("How much is the Home package?", "en"),
    ("What does the Plus 8 kW with battery cost?", "en"),
    ("do you install batteries only?", "en"),
    ("Do you install in Miami?", "en"),
    ("Hola, ¿cuánto cuesta el paquete Plus?", "es"),
    ("¿Qué garantía tienen los paneles?", "es"),
    ("Combien coûte le pack Home ?", "fr"),
    ("Vous installez à Lyon ?", "fr"),
    ("Was kostet das Plus 8 kW mit Batterie?", "de"),
    ("Wie lange dauert die Installation?", "de"),
    ("Quanto custa o pacote Plus 8 kW com bateria?", "pt"),
    ("Posso cancelar depois de assinar?", "pt"),
    ("كم سعر البطارية وحدها؟", "ar"),
    ("هل تعملون في دبي؟", "ar"),
]

MODEL_ANSWER = {
    "reasoning": "The customer is asking detailed questions about packages and prices.",
    "intent_evidence": "",
    "intent_level": "moderate",
    "intent_score": 55,
    "status": "Interested",
    "interests": ["Solar panels"],
    "objections": [],
    "summary": "Homeowner researching solar packages, prices and installation.",
    "next_best_action": "Offer a free site survey.",
    "language": "en",
    "reply": "Happy to help! Our Home 6.5 kW package is the most popular choice.",
}


# Messages whose Python calls are counted, for the floor and for the bot (after as many, or a
# first message a conversation, not counted).
CALLS_COUNTED = 200


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class StatementCounter:
    """Counts the SQL statements an engine sends (an engine `before_cursor_execute` listener)."""

    def __init__(self, engine: Engine):
        self.count = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.count += 1

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Not listening inside the block: the bot's Python calls are counted without the
        benchmark's own (on PostgreSQL the listener is the engine's only one, and makes
        SQLAlchemy run its event hooks at every statement)."""
        event.remove(self.engine, "before_cursor_execute", self._count)
        try:
            yield
        finally:
            event.listen(self.engine, "before_cursor_execute", self._count)


def make_service(url: str, model: Any | None) -> tuple[BotService, Engine, StatementCounter]:
    engine = make_engine(url)
    upgrade(engine)
    session_factory = make_session_factory(engine)
    service = BotService(
        session_factory=session_factory,
        prompts=load_prompts(),
        model=model,
        outbox=LocalOutbox(session_factory),
        region="US",
    )
    return service, engine, StatementCounter(engine)


@contextlib.contextmanager
def scratch_database(directory: Path, name: str, server: str | None) -> Iterator[str]:
    """A fresh database for one run: a SQLite file, or `<database>_<name>` on the PostgreSQL
    server of `server`'s URL, created here and dropped afterwards."""
    if server is None:
        yield f"sqlite:///{directory / (name + '.db')}"
        return
    url = make_url(server)
    database = f"{url.database}_{name}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sql(f'DROP DATABASE IF EXISTS "{database}"'))
        connection.execute(sql(f'CREATE DATABASE "{database}"'))
    try:
        yield url.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


class CallCounter:
    """Counts the Python function calls made inside `with counter:` (a `sys.setprofile` hook):
    a measure of the work done that, unlike CPU time, does not move with the machine or its
    load, so two runs, or two trees, compare call for call."""

    def __init__(self) -> None:
        self.calls = 0

    def _hook(self, _frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            self.calls += 1

    def __enter__(self) -> CallCounter:
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *_exc: object) -> None:
        sys.setprofile(None)


def run_floor(messages: int = 1000, counted: int = CALLS_COUNTED) -> dict[str, float] | None:
    """The floor in this process: its own figure (milliseconds per message, median of its 5
    rounds, wall time), its CPU time per message and the Python calls of a message (`counted`
    messages on a database of their own, after as many to warm up), or None when ../shared is
    absent."""
    if not FLOOR.exists():
        return None
    floor = runpy.run_path(str(FLOOR))  # its definitions; main() runs below
    printed = io.StringIO()
    cpu = time.process_time()
    with contextlib.redirect_stdout(printed):
        floor["main"](messages)
    cpu = time.process_time() - cpu
    with tempfile.TemporaryDirectory(prefix="leaddesk-floor-calls-") as tmp:
        message, engine = floor_messages(floor, f"sqlite:///{Path(tmp) / 'floor.db'}")
        for number in range(counted):
            message(number)
        with CallCounter() as counter:
            for number in range(counted, 2 * counted):
                message(number)
        engine.dispose()
    return {
        "median_ms": float(printed.getvalue().split()[-1]),
        "cpu_ms": cpu / messages * 1000,
        "calls": counter.calls / counted,
    }


def floor_messages(floor: dict[str, Any], url: str) -> tuple[Any, Engine]:
    """The floor's graph on the empty database `url` (the floor's own is a SQLite file): a
    function that sends its message `number` (the messages the floor's own `main()` sends, in its
    order), and the engine to dispose of."""
    engine = create_engine(url)
    floor["Base"].metadata.create_all(engine)
    graph = floor["build"](sessionmaker(engine))
    texts = [
        "hi there",
        "how much is the pro plan?",
        "call me at (415) 555-0132",
        "we need it by next month",
    ]

    def message(number: int) -> None:
        text = texts[number % len(texts)]
        graph.invoke({"sender": f"s{number % 50}", "text": text, "ext": f"m{number}"})

    return message, engine


def steady_text(index: int, conversations: int) -> str:
    """The text of steady message `index` over `conversations` conversations: the customer
    script after its first message, a conversation's turn at a time."""
    return SCRIPT[1 + (index // conversations) % (len(SCRIPT) - 1)]


class FloorRounds:
    """The floor's graph in this process, on an empty database of its own (`url`: a SQLite file,
    as the floor's own, or with `--floor-database` on PostgreSQL), sending its messages in
    rounds: each round's CPU time per message, to set beside a round of the bot's that runs a few
    hundred milliseconds later (what the machine's load does to one it does to the other; the
    floor's single run before the bot's, the table's "x floor", can fall on a quieter or a busier
    second)."""

    def __init__(self, url: str) -> None:
        floor = runpy.run_path(str(FLOOR))
        self._message, self._engine = floor_messages(floor, url)
        self._sent = 0
        self.round()  # warm-up of the floor's graph and file

    def round(self, messages: int = 100) -> float:
        cpu = time.process_time()
        for _ in range(messages):
            self._message(self._sent)
            self._sent += 1
        return (time.process_time() - cpu) / messages * 1000

    def close(self) -> None:
        self._engine.dispose()


def in_turns(floor: FloorRounds, bot_rounds: Iterable[Callable[[], float]]) -> dict[str, Any]:
    """Each of the bot's rounds (a function: its CPU ms per message) after a floor round of as
    many messages: the ratio of each pair, their median and range, and the ratio of the sums."""
    rounds = []
    for bot_round in bot_rounds:
        floor_cpu = floor.round()
        rounds.append((floor_cpu, bot_round()))
    ratios = sorted(bot / floor_cpu for floor_cpu, bot in rounds)
    return {
        "pairs": len(rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "ratio_of_sums": sum(b for _, b in rounds) / sum(f for f, _ in rounds),
        "floor_cpu_ms": statistics.median(f for f, _ in rounds),
        "bot_cpu_ms": statistics.median(b for _, b in rounds),
    }


def timed_round(messages: Iterable[Inbound], service: BotService) -> float:
    """Send `messages` to the bot; its CPU ms per message."""
    sent = 0
    cpu = time.process_time()
    for inbound in messages:
        service.handle(inbound)
        sent += 1
    return (time.process_time() - cpu) / sent * 1000


def run_paired(
    service: BotService, floor: FloorRounds, conversations: int, pairs: int, per_round: int = 100
) -> dict[str, Any]:
    """Steady messages in turns with the floor: `pairs` rounds of `per_round` messages of the
    customer script over `conversations` conversations whose first message went before."""
    sent = [0]

    def steady_round() -> float:
        start, sent[0] = sent[0], sent[0] + per_round
        return timed_round(
            (
                Inbound(
                    channel="web",
                    external_id=f"paired-{index % conversations}",
                    text=steady_text(index, conversations),
                )
                for index in range(start, start + per_round)
            ),
            service,
        )

    for number in range(conversations):
        service.handle(Inbound(channel="web", external_id=f"paired-{number}", text=SCRIPT[0]))
    return {**in_turns(floor, (steady_round for _ in range(pairs))), "per_round": per_round}


def short_run(conversations: int, messages: int, name: str) -> list[Inbound]:
    """The short run's messages: `messages` of the customer script from each of `conversations`
    new customers, interleaved (every message answered; the first ones create leads)."""
    return [
        Inbound(channel="web", external_id=f"{name}-{number}", text=SCRIPT[turn % len(SCRIPT)])
        for turn in range(messages)
        for number in range(conversations)
    ]


def long_run(customers: int, per_customer: int, name: str) -> list[Inbound]:
    """The long run's messages: `per_customer` messages from each of `customers` customers,
    interleaved."""
    return [
        Inbound(
            channel="web",
            external_id=f"{name}-{number}",
            text=f"{SCRIPT[(turn + number) % len(SCRIPT)]} ({turn + 1})",
        )
        for turn in range(per_customer)
        for number in range(customers)
    ]


def run_short_in_turns(service: BotService, floor: FloorRounds, pairs: int) -> dict[str, Any]:
    """Short runs in turns with the floor: `pairs` new short runs of 10 customers x 10 messages
    (100 messages, every one answered), each after 100 messages of the floor."""
    runs = (partial(timed_round, short_run(10, 10, f"short-{n}"), service) for n in range(pairs))
    return in_turns(floor, runs)


def run_long_in_turns(
    service: BotService, floor: FloorRounds, customers: int, per_customer: int
) -> dict[str, Any]:
    """The long run in turns with the floor: its messages in rounds of 100, each after 100
    messages of the floor."""
    messages = long_run(customers, per_customer, "turns")
    runs = (
        partial(timed_round, messages[start : start + 100], service)
        for start in range(0, len(messages), 100)
    )
    return in_turns(floor, runs)


def run_calls(service: BotService, conversations: int, counted: int = CALLS_COUNTED) -> float:
    """Python calls per message of the bot, steady: `counted` messages of the customer script
    over `conversations` conversations whose first message went before (not counted)."""
    for number in range(conversations):
        service.handle(Inbound(channel="web", external_id=f"calls-{number}", text=SCRIPT[0]))
    with CallCounter() as counter:
        for index in range(counted):
            number = index % conversations
            text = steady_text(index, conversations)
            service.handle(Inbound(channel="web", external_id=f"calls-{number}", text=text))
    return counter.calls / counted


def handle_timed(
    service: BotService, inbound: Inbound, counter: StatementCounter
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and SQL statements of one message."""
    statements = counter.count
    cpu = time.process_time()
    wall = time.perf_counter()
    service.handle(inbound)
    return time.perf_counter() - wall, time.process_time() - cpu, counter.count - statements


def summary(
    walls: list[float], cpus: list[float], statements: list[int], elapsed: float
) -> dict[str, float]:
    return {
        "messages": len(walls),
        "messages_per_second": len(walls) / elapsed,
        "median_ms": statistics.median(walls) * 1000,
        "mean_ms": statistics.fmean(walls) * 1000,
        "p95_ms": percentile(walls, 0.95) * 1000,
        # CPU time of this process (the server side of the fake model runs in it too): a figure
        # that does not depend on how busy the machine is.
        "cpu_ms_per_message": sum(cpus) / len(cpus) * 1000,
        "statements_per_message": sum(statements) / len(statements),
    }


def run_throughput(
    service: BotService, counter: StatementCounter, conversations: int, messages: int
) -> dict[str, float]:
    walls: list[float] = []
    cpus: list[float] = []
    statements: list[int] = []
    started = time.perf_counter()
    # Interleave conversations, as real traffic does.
    for inbound in short_run(conversations, messages, "visitor"):
        wall, cpu, count = handle_timed(service, inbound, counter)
        walls.append(wall)
        cpus.append(cpu)
        statements.append(count)
    return summary(walls, cpus, statements, time.perf_counter() - started)


def run_worker_path(
    service: BotService, counter: StatementCounter, conversations: int, messages: int
) -> dict[str, float]:
    """The short run's messages the way the service takes them apart: each stored as a webhook's
    ingest stores it, then its conversation run as a worker's task runs it: the task's first
    question (whether anything waits, which names the conversation's workspace), then the bot
    run in that workspace. SQL statements of each part (the issue counts those of a bot run),
    CPU of the run."""
    session_factory = service.session_factory
    stores: list[int] = []
    entries: list[int] = []
    runs: list[int] = []
    cpus: list[float] = []
    for turn in range(messages):
        for number in range(conversations):
            text = SCRIPT[turn % len(SCRIPT)]
            inbound = Inbound(channel="web", external_id=f"worker-{number}", text=text)
            before = counter.count
            conversation_id = service.store(inbound)
            stores.append(counter.count - before)
            assert conversation_id is not None
            before = counter.count
            with reading(session_factory) as session:
                workspace_id = waiting_workspace(conversation_id, session=session)
            entries.append(counter.count - before)
            before, cpu = counter.count, time.process_time()
            with in_conversation_workspace(
                conversation_id, session_factory=session_factory, known=workspace_id
            ):
                service.process_conversation(conversation_id)
            cpus.append(time.process_time() - cpu)
            runs.append(counter.count - before)
    steady = runs[conversations:]  # after each conversation's first message
    return {
        "messages": len(runs),
        "store_statements": sum(stores) / len(stores),
        "entry_statements": sum(entries) / len(entries),
        "run_statements": sum(runs) / len(runs),
        "run_statements_steady": sum(steady) / max(len(steady), 1),
        "run_statements_max": max(runs),
        "run_cpu_ms": sum(cpus) / len(cpus) * 1000,
    }


def run_many_leads(
    service: BotService, counter: StatementCounter, customers: int, per_customer: int
) -> dict[str, Any]:
    """A long run: `per_customer` messages from each of `customers` customers, interleaved; the
    cost of the first and the last 100 messages side by side."""
    walls: list[float] = []
    cpus: list[float] = []
    statements: list[int] = []
    started = time.perf_counter()
    for inbound in long_run(customers, per_customer, "customer"):
        wall, cpu, count = handle_timed(service, inbound, counter)
        walls.append(wall)
        cpus.append(cpu)
        statements.append(count)
    result: dict[str, Any] = summary(walls, cpus, statements, time.perf_counter() - started)
    window = min(100, len(walls) // 2)
    for name, part in (("first", slice(0, window)), ("last", slice(len(walls) - window, None))):
        result[name] = summary(walls[part], cpus[part], statements[part], sum(walls[part]))
    result["window"] = window
    return result


def rss_mb() -> float:
    """The process's resident set size now, in MB (from /proc, else the peak from `resource`)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rss(service: BotService, messages: int, customers: int) -> dict[str, Any]:
    """Resident memory every 2,000 messages (a tenth of a shorter run) through one service, and
    its spread from the fourth mark on (caches fill during the first ones)."""
    every = min(2000, max(1, messages // 10))
    marks: list[tuple[int, float]] = [(0, rss_mb())]
    for number in range(1, messages + 1):
        customer = number % customers
        text = f"{SCRIPT[number % len(SCRIPT)]} #{number}"
        service.handle(Inbound(channel="web", external_id=f"rss-{customer}", text=text))
        if number % every == 0:
            marks.append((number, rss_mb()))
            # As it goes (a long run): the marks so far survive an interrupted run.
            print(f"  rss after {number} messages: {marks[-1][1]:.1f} MB", file=sys.stderr)
    warm_from = min(2 * every, messages)
    warm = [mb for number, mb in marks if number >= warm_from]
    middle = statistics.fmean(warm)
    return {
        "marks": marks,
        "warm_from": warm_from,
        "spread_percent": (max(warm) - min(warm)) / 2 / middle * 100,
        "growth_percent": (warm[-1] - warm[0]) / warm[0] * 100,
    }


def run_retrieval(rounds: int) -> dict[str, float]:
    """CPU time per message of language detection plus retrieval of the answering part."""
    config = load_prompts()
    languages = config.business.languages
    started = time.process_time()
    knowledge_index(config)
    index_ms = (time.process_time() - started) * 1000
    started = time.process_time()
    detect_language(
        ["warm up the language models"], languages=languages, current=None, default="en"
    )
    models_ms = (time.process_time() - started) * 1000
    answered = 0
    started = time.process_time()
    for number in range(rounds):
        for text, _expected in QUESTIONS:
            # A different text each round (trailing spaces change no word), so that no cache of
            # earlier texts makes a round cheaper than a new message.
            question = text + " " * number
            language = detect_language(
                [question], languages=languages, current=None, default="en"
            ).language
            answered += answer(config, question, language=language) is not None
    cpu = time.process_time() - started
    messages = rounds * len(QUESTIONS)
    return {
        "messages": messages,
        "answered": answered,
        "sections": len(config.knowledge),
        "cpu_ms_per_message": cpu / messages * 1000,
        "index_build_ms": index_ms,
        "language_models_load_ms": models_ms,
    }


def run_long_conversation(
    service: BotService, fake: FakeOpenAI, length: int
) -> dict[int, dict[str, int]]:
    marks: dict[int, dict[str, int]] = {}
    for number in range(1, length + 1):
        before = fake.calls
        service.handle(
            Inbound(
                channel="web",
                external_id="long-conversation",
                text=f"{SCRIPT[number % len(SCRIPT)]} (message {number})",
            )
        )
        if number in (5, length):
            marks[number] = {
                "model_calls_for_message": fake.calls - before,
                "model_calls_total": fake.calls,
                "prompt_chars": fake.prompt_chars(),
            }
    return marks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--conversations", type=int, default=20, help="conversations in the short run"
    )
    parser.add_argument(
        "--messages", type=int, default=10, help="messages per conversation in the short run"
    )
    parser.add_argument(
        "--customers", type=int, default=40, help="customers in the long offline run"
    )
    parser.add_argument(
        "--per-customer", type=int, default=20, help="messages per customer in the long run"
    )
    parser.add_argument(
        "--long", type=int, default=50, help="length of the conversation whose prompt is measured"
    )
    parser.add_argument(
        "--retrieval-rounds", type=int, default=50, help="rounds of the multilingual questions"
    )
    parser.add_argument(
        "--database",
        help="run the offline bot on this PostgreSQL server and database name prefix "
        "(scratch databases <name>_short, <name>_worker and <name>_long are created and dropped)",
    )
    parser.add_argument(
        "--rss", type=int, default=0, help="messages of the memory run (0: no memory run)"
    )
    parser.add_argument(
        "--rss-customers", type=int, default=400, help="customers of the memory run"
    )
    parser.add_argument("--no-floor", action="store_true", help="do not run the floor")
    parser.add_argument(
        "--floor-database",
        help="run the floor's graph of the interleaved rounds on this PostgreSQL server too (a "
        "scratch database <name>_floor): with --database, the ratios in turns then set the bot "
        "on PostgreSQL beside the floor on PostgreSQL; the floor's own figure stays SQLite's",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=8,
        help="pairs of 100-message rounds, floor then bot, for the interleaved CPU ratio",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    results: dict[str, Any] = {}
    results["floor"] = None if args.no_floor else run_floor()
    # Before the bot runs, so that the one-time load of the language models is not counted per
    # message below.
    results["retrieval"] = run_retrieval(args.retrieval_rounds)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leaddesk-bot-")))
        floor = None
        if results["floor"] is not None and args.pairs > 0:
            floor = FloorRounds(
                stack.enter_context(scratch_database(directory, "floor", args.floor_database))
            )
            stack.callback(floor.close)
        with scratch_database(directory, "short", args.database) as url:
            offline, engine, counter = make_service(url, None)
            results["offline"] = run_throughput(offline, counter, args.conversations, args.messages)
            with counter.paused():
                results["offline"]["calls"] = run_calls(offline, args.conversations)
                if floor is not None:
                    results["paired"] = run_paired(offline, floor, args.conversations, args.pairs)
                    results["short_in_turns"] = run_short_in_turns(offline, floor, args.pairs)
            engine.dispose()
        with scratch_database(directory, "worker", args.database) as url:
            offline, engine, counter = make_service(url, None)
            results["worker_path"] = run_worker_path(
                offline, counter, args.conversations, args.messages
            )
            engine.dispose()
        with scratch_database(directory, "long", args.database) as url:
            offline, engine, counter = make_service(url, None)
            results["many_leads"] = run_many_leads(
                offline, counter, args.customers, args.per_customer
            )
            if floor is not None:
                with counter.paused():
                    results["long_in_turns"] = run_long_in_turns(
                        offline, floor, args.customers, args.per_customer
                    )
            engine.dispose()

        with FakeOpenAI() as fake:
            fake.respond_with(lambda body: MODEL_ANSWER)
            model = fake.chat_model(timeout=10.0)
            llm, engine, counter = make_service(f"sqlite:///{directory / 'llm.db'}", model)
            results["fake_model"] = run_throughput(llm, counter, args.conversations, args.messages)
            results["fake_model"]["model_calls"] = fake.calls
            engine.dispose()

            fake.reset()
            fake.respond_with(lambda body: MODEL_ANSWER)
            long_service, engine, _ = make_service(f"sqlite:///{directory / 'long.db'}", model)
            results["prompt_growth"] = run_long_conversation(long_service, fake, args.long)
            engine.dispose()

        if args.rss:
            with scratch_database(directory, "rss", args.database) as url:
                service, engine, _ = make_service(url, None)
                results["rss"] = run_rss(service, args.rss, args.rss_customers)
                engine.dispose()

    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    report(results, args)
    return 0


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    floor = results["floor"]
    where = "PostgreSQL" if args.database else "SQLite file"
    floor_where = "'s graph on PostgreSQL" if args.floor_database else ""
    if floor is None:
        print(f"Floor: not run ({FLOOR} is absent or --no-floor); ratios left out")
    else:
        print(
            f"Floor ({FLOOR.name}: 8-node LangGraph + phonenumbers + one ORM transaction, SQLite):"
        )
        print(
            f"  {floor['median_ms']:.2f} ms/msg (its own figure: median of 5 rounds), "
            f"{floor['cpu_ms']:.2f} cpu ms/msg, {floor['calls']:.0f} Python calls/msg"
        )
    print(f"\nBot on {where}; short run: {args.conversations} conversations x {args.messages}")
    print(
        f"{'run':<18}{'msgs':>6}{'msg/s':>8}{'median ms':>11}{'mean ms':>9}{'p95 ms':>8}"
        f"{'cpu ms/msg':>12}{'SQL/msg':>9}{'x floor':>9}{'calls':>7}"
    )
    many = results["many_leads"]
    rows = [
        ("offline short", results["offline"]),
        (f"offline {many['messages']}", many),
        (f"  first {many['window']}", many["first"]),
        (f"  last {many['window']}", many["last"]),
        ("fake model*", results["fake_model"]),
    ]
    for name, row in rows:
        ratio = f"{row['cpu_ms_per_message'] / floor['cpu_ms']:.1f}x" if floor else "-"
        print(
            f"{name:<18}{row['messages']:>6}{row['messages_per_second']:>8.1f}"
            f"{row['median_ms']:>11.1f}{row['mean_ms']:>9.1f}{row['p95_ms']:>8.1f}"
            f"{row['cpu_ms_per_message']:>12.1f}{row['statements_per_message']:>9.1f}"
            f"{ratio:>9}{row.get('model_calls', 0):>7}"
        )
    print(
        f"  (x floor = cpu ms/msg over the floor's cpu ms/msg; offline {many['messages']} = "
        f"{args.customers} customers x {args.per_customer} messages, interleaved; "
        "* fake model always on SQLite)"
    )
    short = results["offline"]
    if floor:
        print(
            f"  offline short: median {short['median_ms'] / floor['median_ms']:.1f}x the floor's "
            f"median, cpu {short['cpu_ms_per_message'] / floor['cpu_ms']:.1f}x the floor's cpu"
        )
    calls = f"{short['calls'] / floor['calls']:.2f}x the floor's" if floor else "no floor"
    print(
        f"  offline, steady: {short['calls']:.0f} Python calls/msg ({calls}; "
        f"{CALLS_COUNTED} messages counted: a measure of work that the machine's load "
        "does not move)"
    )
    paired = results.get("paired")
    if paired:
        print(
            f"  offline, steady, interleaved with the floor{floor_where}: cpu "
            f"{paired['ratio_median']:.2f}x the floor's (median of {paired['pairs']} pairs of "
            f"{paired['per_round']}-message rounds, floor then bot; "
            f"{paired['ratio_min']:.2f}-{paired['ratio_max']:.2f}; "
            f"medians {paired['bot_cpu_ms']:.2f} and {paired['floor_cpu_ms']:.2f} cpu ms/msg)"
        )
    short_turns = results.get("short_in_turns")
    if short_turns:
        print(
            f"  offline short, interleaved with the floor{floor_where}: cpu "
            f"{short_turns['ratio_median']:.2f}x the floor's (median of {short_turns['pairs']} "
            "pairs: 100 messages of the floor, then a new short run of 10 customers x 10 "
            f"messages; {short_turns['ratio_min']:.2f}-{short_turns['ratio_max']:.2f}; sums "
            f"{short_turns['ratio_of_sums']:.2f}x; medians {short_turns['bot_cpu_ms']:.2f} and "
            f"{short_turns['floor_cpu_ms']:.2f} cpu ms/msg)"
        )
    long_turns = results.get("long_in_turns")
    if long_turns:
        print(
            f"  offline {many['messages']}, interleaved with the floor{floor_where}: cpu "
            f"{long_turns['ratio_of_sums']:.2f}x the floor's (the run again, {args.customers} "
            f"new customers, in {long_turns['pairs']} rounds of 100 messages, each after 100 of "
            f"the floor; sums; rounds {long_turns['ratio_min']:.2f}-"
            f"{long_turns['ratio_max']:.2f}, median {long_turns['ratio_median']:.2f}x)"
        )
    print(
        f"  growth: last/first {many['window']} cpu "
        f"{many['last']['cpu_ms_per_message'] / many['first']['cpu_ms_per_message']:.2f}, "
        f"{many['messages']}-message run/short run cpu "
        f"{many['cpu_ms_per_message'] / short['cpu_ms_per_message']:.2f}"
    )
    row = results["worker_path"]
    print(
        f"\nWorker path on {where} (the short run's messages stored as a webhook stores them, "
        f"then run as a worker runs them): SQL statements per store {row['store_statements']:.1f}, "
        f"per task's first question {row['entry_statements']:.1f}, "
        f"per bot run {row['run_statements']:.1f} (after a conversation's first message "
        f"{row['run_statements_steady']:.1f}, at most {row['run_statements_max']}); "
        f"{row['run_cpu_ms']:.1f} cpu ms per run"
    )
    row = results["retrieval"]
    print(
        f"\nRetrieval ({row['sections']} knowledge sections in all languages, {row['messages']} "
        f"questions in 6 languages, {row['answered']} answered): "
        f"{row['cpu_ms_per_message']:.2f} cpu ms/msg; index built once in "
        f"{row['index_build_ms']:.0f} ms, language models loaded once in "
        f"{row['language_models_load_ms']:.0f} ms"
    )
    print("\nOne conversation with the fake model (prompt = all characters sent to the model):")
    for number, mark in sorted(results["prompt_growth"].items()):
        print(
            f"  message {number:>3}: {mark['model_calls_for_message']} model call(s) for it, "
            f"{mark['model_calls_total']} in total, prompt {mark['prompt_chars']} chars"
        )
    if "rss" in results:
        rss = results["rss"]
        print(f"\nMemory: {args.rss} messages over {args.rss_customers} customers, one service")
        for number, mb in rss["marks"]:
            print(f"  after {number:>6} messages: RSS {mb:7.1f} MB")
        print(
            f"  from message {rss['warm_from']} on: spread ±{rss['spread_percent']:.1f}%, "
            f"growth {rss['growth_percent']:+.1f}% (target: flat within ±10%)"
        )


if __name__ == "__main__":
    sys.exit(main())
