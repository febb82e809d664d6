"""Webhook acknowledgement benchmark: how fast `leaddesk serve` acknowledges signed WhatsApp
webhooks, beside a bare Flask endpoint that returns 200 under the same server (waitress, same
thread count).

    python benchmarks/webhook_bench.py [--count 1000] [--rounds 3] [--concurrency 8]
        [--customers 100] [--database postgresql://postgres@127.0.0.1:5432/h_inbox_bench]
        [--compare-with DIR]

Both servers run as child processes on 127.0.0.1; this process fires pre-signed requests over
keep-alive connections (bounded count, loopback only) and measures each request until its answer.
`leaddesk serve` runs the offline engine with META_APP_SECRET set on a temporary SQLite file, or
with `--database` on a scratch PostgreSQL database (created and dropped by the script; its name is
the URL's), and sends its replies to a local stand-in for the Graph API. Some webhooks are
delivered twice, as Meta does; afterwards the script checks that every message was stored exactly
once and answered. `--compare-with DIR` also runs the server from another checkout (e.g. the
commit before a change) on a database of its own, so both figures come from one run. The load
comes in `--rounds` rounds (new message ids each time), each round sent to bare Flask and then to
each server (starting with another server each round), so that a moment of the shared machine's
load does not decide the ratio; a rate is the median round's, the latencies those of every round.
Every server is warmed up alike before the rounds: bare Flask with 200 requests, each `leaddesk
serve` with 200 webhooks of their own (new message ids, counted in the check), and the rounds
start once the bot has answered those. Beside each rate, the CPU time the HTTP server's process
spent per acknowledgement (from /proc; leaddesk's bot process not counted): under this load the
server is bound by its own CPU (one interpreter lock), so that figure says where its rate comes
from. Exit code 0 when every check passes.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

SECRET = "bench-app-secret"
HTTP_THREADS = 16

BARE_SERVER = """
import sys
from flask import Flask
from waitress import serve
app = Flask("bare")
@app.post("/webhooks/whatsapp")
def ack():
    return "{}", 200, {"Content-Type": "application/json"}
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), _quiet=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def make_bodies(
    count: int, customers: int, duplicates: float, seed: int = 7, first_id: int = 0
) -> tuple[list[bytes], int]:
    """Signed-ready WhatsApp text webhook bodies (message ids from `first_id`); a share of them are
    redeliveries of earlier ones."""
    rng = random.Random(seed)
    unique = max(1, int(count * (1 - duplicates)))
    bodies = []
    now = int(time.time())
    for index in range(unique):
        wa_id = f"1415555{(index % customers):04d}"
        body = {
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
                                    "display_phone_number": "15550001111",
                                    "phone_number_id": "1065",
                                },
                                "contacts": [
                                    {
                                        "profile": {"name": f"Bench Customer {index % customers}"},
                                        "wa_id": wa_id,
                                    }
                                ],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": f"wamid.bench{first_id + index:07d}",
                                        "timestamp": str(now),
                                        "type": "text",
                                        "text": {
                                            "body": rng.choice(
                                                [
                                                    "Hi, how much is a solar system?",
                                                    "Do you install batteries?",
                                                    "What areas do you cover?",
                                                    "Can I get a quote?",
                                                ]
                                            )
                                        },
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        bodies.append(json.dumps(body).encode("utf-8"))
    redelivered = [bodies[rng.randrange(unique)] for _ in range(count - unique)]
    everything = bodies + redelivered
    # Redeliveries arrive later than the original, as they do from Meta.
    head, tail = everything[:unique], everything[unique:]
    return head + tail, unique


def fire(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    """Send every body once over `concurrency` keep-alive connections; (seconds, latencies,
    failures)."""
    signed = [
        (body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest())
        for body in bodies
    ]
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    cursor = iter(range(len(signed)))

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            body, signature = signed[index]
            started = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    "/webhooks/whatsapp",
                    body=body,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
                )
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    failures[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures[0]


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system) the process has used so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fire_measured(
    port: int, bodies: list[bytes], concurrency: int, pid: int
) -> tuple[float, list[float], int, float | None]:
    """`fire`, with the CPU time the server process `pid` spent meanwhile (its children not
    counted: `leaddesk serve`'s bot process works beside it)."""
    before = cpu_seconds(pid)
    seconds, latencies, failures = fire(port, bodies, concurrency)
    after = cpu_seconds(pid)
    cpu = after - before if before is not None and after is not None else None
    return seconds, latencies, failures, cpu


def summarise(name: str, seconds: float, latencies: list[float], failures: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "name": name,
        "acks_per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "failures": failures,
    }


class FakeGraph(ThreadingHTTPServer):
    """Answers Graph API sends with a message id, so that replies really go out."""

    daemon_threads = True

    def __init__(self) -> None:
        counter = iter(range(1, 10**9))
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the second waits for
            # the client's delayed ACK, 40 ms on every answer of a kept connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    number = next(counter)
                data = json.dumps(
                    {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.out{number}"}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v21.0"


def start_bare() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(port), str(HTTP_THREADS)], stdin=subprocess.DEVNULL
    )
    wait_http(port, "/")
    return process, port


def start_leaddesk(
    database_url: str, graph_url: str, workers: int, code: Path, extra: dict[str, str]
) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("META_", "WHATSAPP_", "MESSENGER_", "INSTAGRAM_", "OPENAI_", "LEADDESK_", "TELEGRAM_")
        )
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(code),
            "META_APP_SECRET": SECRET,
            "META_VERIFY_TOKEN": "bench",
            "META_APP_ID": "1",
            "WHATSAPP_ACCESS_TOKEN": "bench-token",
            "WHATSAPP_PHONE_NUMBER_ID": "1065",
            "META_GRAPH_URL": graph_url,
            "LEADDESK_WORKER_THREADS": str(workers),
            **extra,
        }
    )
    command = [
        sys.executable,
        "-c",
        "from leaddesk.cli import run; run()",
        "serve",
        "--port",
        "0",
        "--threads",
        str(HTTP_THREADS),
    ]
    env["LEADDESK_LOG_LEVEL"] = "INFO"  # the start-up line tells the port
    process = subprocess.Popen(
        command,
        env=env,
        cwd=str(code),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            match = re.search(r"listening on http://[^:]+:(\d+)", line)
            if match:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(90) or not found:
        process.kill()
        raise RuntimeError("leaddesk serve did not start:\n" + "\n".join(lines[-20:]))
    return process, found[0], lines


def verify(
    database_url: str, unique: int, customers: int, timeout: float
) -> tuple[bool, str, float]:
    """Wait until every stored message is processed; check it was stored once and answered."""
    started = time.monotonic()
    deadline = started + timeout
    engine = create_engine(database_url)

    def one(connection: Any, sql: str) -> Any:
        return connection.execute(text(sql)).one()

    try:
        with engine.connect() as connection:
            while True:
                inbound, pending = one(
                    connection,
                    "SELECT COUNT(*), SUM(CASE WHEN processed_at IS NULL THEN 1 ELSE 0 END) "
                    "FROM messages WHERE direction = 'in'",
                )
                unsent = one(
                    connection,
                    "SELECT COUNT(*) FROM messages WHERE direction = 'out' "
                    "AND delivery_status IN ('pending', 'sending')",
                )[0]
                connection.rollback()
                if (inbound == unique and not pending and not unsent) or (
                    time.monotonic() > deadline
                ):
                    break
                time.sleep(0.5)
            waited = time.monotonic() - started
            distinct = one(
                connection,
                "SELECT COUNT(DISTINCT channel_message_id) FROM messages WHERE direction = 'in'",
            )[0]
            conversations = one(connection, "SELECT COUNT(*) FROM conversations")[0]
            # A conversation is answered when a bot reply follows its last customer message.
            unanswered = one(
                connection,
                """
                SELECT COUNT(*) FROM conversations c
                WHERE NOT EXISTS (
                    SELECT 1 FROM messages b WHERE b.conversation_id = c.id AND b.author = 'bot'
                    AND b.id > (SELECT MAX(i.id) FROM messages i
                                WHERE i.conversation_id = c.id AND i.direction = 'in'))
                """,
            )[0]
            replies, sent = one(
                connection,
                "SELECT COUNT(*), SUM(CASE WHEN delivery_status = 'sent' THEN 1 ELSE 0 END) "
                "FROM messages WHERE author = 'bot'",
            )
    finally:
        engine.dispose()
    ok = (
        inbound == unique == distinct
        and not pending
        and conversations == customers
        and unanswered == 0
    )
    report = (
        f"{inbound} messages stored for {unique} unique deliveries ({distinct} distinct ids), "
        f"{pending or 0} unprocessed; {conversations - unanswered}/{conversations} conversations "
        f"answered with {replies} bot replies ({sent or 0} sent through the Graph API stand-in)"
    )
    return ok, report, waited


class ScratchDatabase:
    """A fresh database per run: a temporary SQLite file, or a PostgreSQL database created (and
    dropped afterwards) under the URL's name."""

    def __init__(self, url: str | None, suffix: str) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._admin: str | None = None
        if url is None:
            self._folder = tempfile.TemporaryDirectory(prefix="leaddesk-bench-")
            self.url = f"sqlite:///{Path(self._folder.name) / 'bench.db'}"
            return
        parsed = make_url(url)
        self._name = f"{parsed.database}{suffix}"
        self.url = parsed.set(database=self._name).render_as_string(hide_password=False)
        self._admin = parsed.set(database="postgres").render_as_string(hide_password=False)
        self._execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{self._name}"')

    def _execute(self, sql: str) -> None:
        assert self._admin is not None
        engine = create_engine(self._admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
        else:
            self._execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


class LeaddeskRun:
    """One `leaddesk serve` from `code` on a scratch database, with its Graph API stand-in."""

    def __init__(
        self, name: str, code: Path, args: argparse.Namespace, suffix: str, env: list[str]
    ) -> None:
        self.name = name
        self.graph = FakeGraph()
        self.scratch = ScratchDatabase(args.database, suffix)
        extra = dict(item.split("=", 1) for item in env)
        self.process, self.port, self.lines = start_leaddesk(
            self.scratch.url, self.graph.url, args.workers, code, extra
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.graph.shutdown()
        self.scratch.drop()


def combine(
    name: str, rounds: list[tuple[float, list[float], int, float | None]]
) -> dict[str, Any]:
    """The median round's rate; latencies over every round; the server process's CPU time per
    acknowledgement over every round (None where /proc cannot tell)."""
    rates = sorted(len(latencies) / seconds for seconds, latencies, _, _ in rounds)
    row = summarise(name, 1.0, [x for _, latencies, _, _ in rounds for x in latencies], 0)
    row["acks_per_s"] = rates[len(rates) // 2]
    row["rates"] = rates
    row["failures"] = sum(failures for _, _, failures, _ in rounds)
    cpus = [cpu for _, _, _, cpu in rounds]
    acks = sum(len(latencies) for _, latencies, _, _ in rounds)
    row["cpu_ms_per_ack"] = (
        sum(cpu for cpu in cpus if cpu is not None) / acks * 1000
        if acks and None not in cpus
        else None
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count", type=int, default=1000, help="webhook requests to send (default 1000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="parallel connections (default 8)"
    )
    parser.add_argument(
        "--customers", type=int, default=100, help="distinct WhatsApp users (default 100)"
    )
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="share of redeliveries (default 0.05)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds, each of --count webhooks with new message ids to every server (default 3)",
    )
    parser.add_argument("--workers", type=int, default=4, help="bot worker threads (default 4)")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the bot (default 600)"
    )
    parser.add_argument(
        "--database",
        default=None,
        help="a PostgreSQL URL whose database name is used for scratch databases (created and "
        "dropped); default: a temporary SQLite file",
    )
    parser.add_argument(
        "--compare-with",
        default=None,
        metavar="DIR",
        help="also run the server from this checkout (before/after in one run)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for this checkout's server (e.g. LEADDESK_BOT_NICE=10); repeatable",
    )
    parser.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the --compare-with server; repeatable",
    )
    args = parser.parse_args(argv)
    label = "PostgreSQL" if args.database else "SQLite"
    if any("=" not in item for item in [*args.env, *args.compare_env]):
        parser.error("--env and --compare-env take NAME=VALUE")
    if (
        not 1 <= args.count <= 100_000
        or not 1 <= args.concurrency <= 64
        or not 0 <= args.duplicates < 0.5
        or not 1 <= args.rounds <= 20
    ):
        parser.error(
            "use --count 1..100000, --concurrency 1..64, --duplicates 0..0.5, --rounds 1..20"
        )
    customers = min(args.customers, max(1, int(args.count * (1 - args.duplicates))))
    per_round = [
        make_bodies(args.count, customers, args.duplicates, seed=7 + r, first_id=r * args.count)
        for r in range(args.rounds)
    ]
    warm_bodies, warm_unique = make_bodies(
        min(200, args.count), customers, 0.0, seed=5, first_id=args.rounds * args.count
    )
    unique = sum(count for _, count in per_round) + warm_unique

    print(
        f"{args.rounds} round(s) of {args.count} signed WhatsApp text webhooks "
        f"({args.count - per_round[0][1]} redeliveries each) from {customers} customers, "
        f"{args.concurrency} keep-alive connections, waitress with {HTTP_THREADS} threads, "
        f"loopback; each round goes to bare Flask, then to each server"
    )
    bare_process, bare_port = start_bare()
    runs: list[LeaddeskRun] = []
    try:
        fire(bare_port, per_round[0][0][: min(200, args.count)], args.concurrency)  # warm up
        if args.compare_with is not None:
            runs.append(
                LeaddeskRun(
                    "leaddesk serve (compared)",
                    Path(args.compare_with).resolve(),
                    args,
                    "_before",
                    args.compare_env,
                )
            )
        runs.append(LeaddeskRun(f"leaddesk serve ({label})", REPO_ROOT, args, "", args.env))
        for run in runs:  # as bare Flask was, with webhooks the check counts
            fire(run.port, warm_bodies, args.concurrency)
        for run in runs:  # and answered before the rounds, which start on an idle bot
            verify(run.scratch.url, warm_unique, customers, args.timeout)
        measured: dict[str, list[tuple[float, list[float], int, float | None]]] = {}
        for index, (bodies, _) in enumerate(per_round):
            measured.setdefault("bare", []).append(
                fire_measured(bare_port, bodies, args.concurrency, bare_process.pid)
            )
            # Each round in turn starts with another server: the one after it meets the first
            # one's bot at work, and the order must not decide the comparison.
            for run in runs[index % len(runs) :] + runs[: index % len(runs)]:
                measured.setdefault(run.name, []).append(
                    fire_measured(run.port, bodies, args.concurrency, run.process.pid)
                )
        bare = combine("bare Flask endpoint", measured["bare"])
        rows = [combine(run.name, measured[run.name]) for run in runs]
        checks = [verify(run.scratch.url, unique, customers, args.timeout) for run in runs]
    finally:
        bare_process.terminate()
        bare_process.wait(10)
        for run in runs:
            run.stop()

    print(
        f"\n{'':36} {'acks/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'of bare':>7}"
        f" {'cpu ms':>7}  (acks/s: the median round; rounds)"
    )
    for row in [bare, *rows]:
        ratio = row["acks_per_s"] / bare["acks_per_s"] * 100
        cpu = row["cpu_ms_per_ack"]
        print(
            f"{row['name']:36} {row['acks_per_s']:9.0f} {row['p50_ms']:9.1f} "
            f"{row['p99_ms']:9.1f} {row['failures']:7d} {ratio:6.1f}% "
            f"{'' if cpu is None else f'{cpu:7.3f}':>7}  "
            + " ".join(f"{rate:.0f}" for rate in row["rates"])
        )
    print(
        "  (cpu ms: CPU time of the HTTP server's process per acknowledgement, over every round; "
        "leaddesk's bot process, which answers meanwhile, not counted)"
    )
    passed = True
    for run, row, (ok, report, waited) in zip(runs, rows, checks, strict=True):
        print(
            f"\n{row['name']}, after the load: {report}; the workers finished {waited:.1f}s after "
            "the last acknowledgement"
        )
        errors = [line for line in run.lines if " ERROR " in line]
        if errors:
            print(f"{len(errors)} error line(s) in the server log, first: {errors[0]}")
        passed = passed and ok and not row["failures"] and not errors
    print("check: PASSED" if passed else "check: FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
