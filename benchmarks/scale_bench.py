"""Scale-out benchmark: the load scenario of tests/scale, end to end, for 1 and 2 workers on
PostgreSQL.

For each worker count it starts a fresh PostgreSQL database, `leaddesk serve --workers 2` and N
`leaddesk worker --concurrency 1` processes (`--concurrency` to change) on a Redis database, a
zero-latency fake model and a fake Graph API on loopback, fires signed WhatsApp webhooks (bursts,
10% duplicate deliveries) and reports:

- messages per second end to end: customer messages / (first webhook sent -> last reply accepted
  by the Graph API), and the time the workers needed after the last webhook;
- queueing delay (message stored -> the run that answered it started) p50/p99, and end-to-end
  latency (webhook sent -> its reply accepted) p50/p99;
- with --profile, where a worker's time goes: py-spy samples of one worker's pool process (falls
  back to nothing when py-spy is not installed; `pip install py-spy`);
- where the machine's CPU went over the timed part (read from /proc, on Linux): the workers'
  processes, PostgreSQL's, the web processes' and this process's (the fake model and Graph API),
  per bot run, and how many of the machine's cores that kept busy. A backlog's runs per second are
  bounded by the machine: when the cores are full, only less CPU a run makes more runs;
- the floor (`../shared/bench/floor.py`, run first in the same go; skipped where it is absent):
  the machine's speed, to set figures from different machines side by side.

It checks the run as the scale tests do (stored once, in order, one reply per burst, none sent
twice).

    python benchmarks/scale_bench.py             # 5000 messages, 500 conversations, 2 then 1 worker
    python benchmarks/scale_bench.py --messages 1000 --conversations 100 --workers 2 --profile

Needs PostgreSQL and Redis on 127.0.0.1 (Redis database 12 is flushed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import text  # noqa: E402

from tests.scale import harness as h  # noqa: E402

REDIS_DB = 12
FLOOR = REPO_ROOT.parent / "shared" / "bench" / "floor.py"
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user and system) process `pid` has used, or None (gone, or no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its backends and its own workers)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuLedger:
    """CPU seconds by part of the stack between `mark()` and `total()`: each part a set of
    processes, looked up at both ends (a process gone by the end counts for nothing)."""

    def __init__(self, parts: dict[str, Any]) -> None:
        self._parts = parts  # name -> callable giving the part's pids now
        self._start: dict[str, dict[int, float]] = {}
        self._self_start = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        now: dict[str, dict[int, float]] = {}
        for name, pids in self._parts.items():
            now[name] = {}
            for pid in pids():
                cpu = process_cpu(pid)
                if cpu is not None:
                    now[name][pid] = cpu
        return now

    def mark(self) -> None:
        self._start = self._read()
        self._self_start = time.process_time()

    def total(self) -> dict[str, float]:
        end = self._read()
        used = {
            name: sum(cpu - self._start.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in end.items()
        }
        used["benchmark (fakes)"] = time.process_time() - self._self_start
        return used


def run_floor() -> float | None:
    """The floor's milliseconds a message on this machine (its own figure), or None without it."""
    if not FLOOR.exists():
        return None
    done = subprocess.run(
        [sys.executable, str(FLOOR)], capture_output=True, text=True, timeout=600, check=False
    )
    try:
        return float(done.stdout.split()[-1])
    except (IndexError, ValueError):
        return None


def profile_summary(raw: Path, top: int = 18) -> list[str]:
    """Fold py-spy's raw stacks into shares of samples: per leaf function (self) and per Leaddesk or
    library area on the stack (inclusive)."""
    leaves: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaves[_short(frames[-1])] += count
        seen = set()
        for frame in frames:
            area = _area(frame)
            if area and area not in seen:
                seen.add(area)
                areas[area] += count
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples; inclusive share by area:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in areas.most_common(top)]
    lines.append("self time by function:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return lines


def _short(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


AREAS = (
    ("bot/nodes.py", "bot nodes"),
    ("bot/replies.py", "bot offline replies"),
    ("bot/scoring.py", "bot scoring"),
    ("leaddesk/worker/", "leaddesk worker tier (locks, runner, sweeper)"),
    ("store/pending.py", "pending-work queries"),
    ("webhooks/outbound.py", "channel outbox (Graph API sends)"),
    ("store/", "store repository functions"),
    ("langgraph/", "langgraph runtime"),
    ("langchain_openai/", "langchain-openai client"),
    ("openai/", "openai client"),
    ("sqlalchemy/orm/", "sqlalchemy ORM"),
    ("sqlalchemy/", "sqlalchemy (all)"),
    ("psycopg/", "psycopg (PostgreSQL round trips)"),
    ("pydantic", "pydantic"),
    ("kombu/", "kombu (broker)"),
    ("celery/", "celery"),
    ("httpx", "httpx"),
)


def _area(frame: str) -> str | None:
    for needle, name in AREAS:
        if needle in frame:
            return name
    return None


def _inbox_messages(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM inbox WHERE dedupe_key IS NOT NULL")
            ).scalar_one()
        )


def run_once(workers: int, args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    with h.running_stack(redis_db=REDIS_DB, log_dir=log_dir) as stack:
        cluster, engine, graph = stack.cluster, stack.engine, stack.graph
        cluster.start_web(processes=2)
        scenario = h.build_scenario(args.conversations, args.messages, seed=args.seed)
        if args.drain:
            # The backlog first (no worker running), then the workers alone are timed.
            load = h.send_load(cluster.web_url or "", scenario, threads=args.threads)
            # Acknowledged webhooks wait in the inbox (the workers ingest them): the backlog is
            # there once the inbox holds every message, and the timed part includes the ingest.
            while _inbox_messages(engine) < args.messages:
                time.sleep(0.2)
        procs = [cluster.start_worker(concurrency=args.concurrency) for _ in range(workers)]
        web = [proc for proc in cluster.procs if proc not in procs]
        ledger = CpuLedger(
            {
                "workers": lambda: [p for proc in procs for p in (proc.pid, *proc.descendants())],
                "PostgreSQL": postgres_pids,
                "web": lambda: [p for proc in web for p in (proc.pid, *proc.descendants())],
            }
        )
        profiler = None
        raw = log_dir / f"profile-{workers}.txt"
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if args.profile and Path(spy).exists():
            target = procs[0].descendants()[0]  # the pool process that runs the tasks
            profiler = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(target),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--nonblocking",
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        started = time.time()
        ledger.mark()
        if not args.drain:
            load = h.send_load(cluster.web_url or "", scenario, threads=args.threads)
        sent_done = time.time()
        h.wait_caught_up(engine, args.messages, timeout=args.timeout)
        caught_up = time.time()
        used = ledger.total()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file
            profiler.wait(60)
        outcome = h.verify(engine, scenario, graph, model_replies=True)
        lat = h.latencies(engine, scenario, graph, load)
        accepted = graph.accepted()
        last_reply = max((at for _, _, at in accepted), default=caught_up)
        first_reply = min((at for _, _, at in accepted), default=started)
        elapsed = last_reply - started
    queueing, end_to_end = lat["queueing"], lat["end_to_end"]
    busy = max(last_reply - first_reply, 1e-9)
    if args.drain:
        print(
            f"\n== drain, {workers} worker(s): {args.messages} stored messages over "
            f"{args.conversations} conversations answered in {elapsed:.1f}s: "
            f"{args.messages / elapsed:.1f} messages/s, {outcome.replies} bot runs "
            f"({outcome.replies / elapsed:.1f} runs/s)"
        )
    else:
        sending = max(sent_done - started, 1e-9)
        print(
            f"\n== {workers} worker(s): {args.messages} messages over {args.conversations} "
            f"conversations, {load.deliveries} webhooks + {load.duplicates} duplicate deliveries"
        )
        print(
            f"   webhooks sent in {sending:.1f}s ({load.deliveries / sending:.0f}/s); "
            f"last reply {last_reply - sent_done:.1f}s after the last webhook"
        )
        print(
            f"   end to end: {args.messages / elapsed:.1f} messages/s ({elapsed:.1f}s); "
            f"{outcome.replies} replies ({args.messages / max(outcome.replies, 1):.1f} messages "
            f"per reply: bursts coalesced)"
        )
        print(
            f"   bot runs (one reply each): {outcome.replies} in {busy:.1f}s, first reply to last "
            f"({outcome.replies / busy:.1f} runs/s)"
        )
        print(
            f"   queueing delay p50 {h.percentile(queueing, 0.5):.2f}s "
            f"p99 {h.percentile(queueing, 0.99):.2f}s; end-to-end latency "
            f"p50 {h.percentile(end_to_end, 0.5):.2f}s p99 {h.percentile(end_to_end, 0.99):.2f}s"
        )
    print(f"   checks: {'OK' if not outcome.problems else '; '.join(outcome.problems[:5])}")
    timed = max(caught_up - started, 1e-9)
    runs = max(outcome.replies, 1)
    print(
        f"   CPU over the {timed:.1f}s timed: "
        + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in used.items())
    )
    print(
        f"   a bot run: {1000 * used['workers'] / runs:.0f} CPU ms in the workers, "
        f"{1000 * sum(used.values()) / runs:.0f} in all; "
        f"{sum(used.values()) / timed:.2f} of the machine's {os.cpu_count()} cores busy on average"
    )
    if args.profile:
        if raw.exists():
            print("   profile of one worker's pool process (py-spy):")
            for line in profile_summary(raw):
                print("   " + line)
        else:
            print("   (no profile: install py-spy)")
    return {"messages_per_s": args.messages / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (default: 1 2)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="pool processes per worker (default 1, as the issue's figures; Celery's own default "
        "is the number of CPUs)",
    )
    parser.add_argument("--threads", type=int, default=24, help="load-generator threads")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the workers to catch up"
    )
    parser.add_argument("--profile", action="store_true", help="sample one worker with py-spy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drain",
        action="store_true",
        help="store the whole load first, then time the workers alone working off the backlog",
    )
    args = parser.parse_args()
    missing = h.services_missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="leaddesk-scale-bench-"))
    print(f"logs in {log_dir}")
    floor = run_floor()
    if floor is None:
        print(f"floor: not run ({FLOOR} is absent)")
    else:
        print(f"floor (../shared/bench/floor.py, this machine): {floor:.2f} ms a message")
    for workers in args.workers:
        run_once(workers, args, log_dir)
    threading.Event().wait(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
