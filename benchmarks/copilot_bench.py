"""Copilot benchmark: how long the offline copilot takes to answer agents' requests on a SQLite
store of a realistic size, with per-chat memory in a SQLite checkpointer file (as in production).

    python benchmarks/copilot_bench.py [--leads 2000] [--rounds 30] [--bulk 300] [--json]

Reported per request type (summary, BANT, hot check, /hot list, lookup by phone, note, and the way
reps type: a name without its accents, a typo in the command, a Spanish follow-up with a pronoun,
the day's digest, a request not understood): median and p95 answer time, and the median over all
of them (target: under 100 ms at 2,000 leads, fuzzy name lookup on); plus the time of a confirmed
bulk reassignment of `--bulk` leads, and the checkpoint size after all rounds (memory must not
make answers slower as the chat grows).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot import load_prompts  # noqa: E402
from copilot import Copilot, build_graph, open_checkpointer  # noqa: E402
from copilot.text import fold  # noqa: E402
from store import make_engine, make_session_factory, upgrade  # noqa: E402
from store.agents import create_agent  # noqa: E402
from store.leads import update_lead  # noqa: E402
from store.messages import Inbound, ingest  # noqa: E402
from store.work import record_score  # noqa: E402

FIRST = [
    "María",
    "José",
    "Zoë",
    "François",
    "Jürgen",
    "João",
    "Aïsha",
    "Renée",
    "Seán",
    "Dana",
    "Kim",
    "Li",
    "Ahmed",
    "Marie-Claire",
    "Olga",
    "Peter",
    "Nina",
    "Carla",
    "Bob",
    "Ana",
]
LAST = [
    "Fernández",
    "García-Márquez",
    "O'Neil",
    "Lefèvre",
    "Müller",
    "Gonçalves",
    "Ben-Ali",
    "Dubois",
    "Ó Briain",
    "Smith",
    "Nguyen",
    "Wei",
    "Al-Farsi",
    "Dupont",
    "Ivanova",
    "Parker",
    "Díaz",
    "Ruiz",
    "Lee",
    "Costa",
    "Rossi",
    "Novak",
    "Kowalski",
    "Jensen",
    "Moreau",
]
SAYS = [
    "Hi, how much is the Home package?",
    "We need it installed this month, budget around $12k.",
    "I'm the owner, can someone call me?",
    "Just browsing for now, maybe next year.",
]


def name_of(i: int) -> str:
    """A realistic, mostly unique name: accents, hyphens and apostrophes included."""
    return f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}" + (
        f" {i}" if i >= 500 else ""
    )


def seed(sf: Any, leads: int, bulk: int) -> tuple[int, int, int, list[int]]:
    rng = random.Random(7)
    with sf.begin() as session:
        sarah, _ = create_agent("Sarah Connor", session=session)
        mike, _ = create_agent("Mike Ross", session=session)
        admin, _ = create_agent("Ada Admin", session=session, role="admin")
        ids = []
        for i in range(leads):
            phone = f"+1415555{i:04d}" if i < 10000 else None
            got = ingest(
                Inbound(
                    "whatsapp" if phone else "web",
                    phone.lstrip("+") if phone else f"v{i}",
                    rng.choice(SAYS),
                    name=name_of(i),
                    phone=phone,
                    channel_message_id=f"m{i}",
                ),
                session=session,
            )
            record_score(
                got.lead,
                rng.randint(0, 100),
                [{"factor": "pricing", "points": 10, "evidence": "how much"}],
                session=session,
                message_id=got.message.id,
            )
            owner = sarah.id if i < bulk else (mike.id if i % 3 == 0 else None)
            update_lead(got.lead, {"assigned_agent_id": owner}, session=session, actor="system")
            ids.append(got.lead.id)
        return sarah.id, mike.id, admin.id, ids


def _plain(name: str) -> str:
    """The name as reps type it: lower case, no accents, hyphens and apostrophes as spaces."""
    return fold(name)


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--bulk", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        upgrade(engine)
        sf = make_session_factory(engine)
        started = time.perf_counter()
        sarah, _mike, admin, ids = seed(sf, args.leads, args.bulk)
        seeded = time.perf_counter() - started
        prompts = load_prompts(REPO_ROOT / "prompts")
        results: dict[str, Any] = {
            "leads": args.leads,
            "rounds": args.rounds,
            "seed_seconds": round(seeded, 1),
        }
        with open_checkpointer(url) as memory:
            copilot = Copilot(build_graph(session_factory=sf, prompts=prompts, checkpointer=memory))
            own = ids[: args.bulk]
            rng = random.Random(11)
            requests = {
                "summary": lambda: copilot.ask(sarah, "bench", f"summarise lead {rng.choice(own)}"),
                "qualify": lambda: copilot.ask(sarah, "bench", f"qualify {rng.choice(own)}"),
                "hot_check": lambda: copilot.ask(sarah, "bench", f"is {rng.choice(own)} hot?"),
                "hot_list": lambda: copilot.ask(sarah, "bench", "/hot"),
                "by_phone": lambda: copilot.ask(
                    sarah, "bench", f"/lead (415) 555-{rng.randrange(args.bulk):04d}"
                ),
                "note": lambda: copilot.ask(
                    sarah, "bench", f"/note {rng.choice(own)} called, no answer"
                ),
                # the way reps type: no accents, lower case, typos, pronouns, other languages
                "name_lookup": lambda: copilot.ask(
                    sarah, "bench", f"summarise {_plain(name_of(rng.randrange(args.bulk)))}"
                ),
                "typo_command": lambda: copilot.ask(
                    sarah, "bench", f"qualfy {_plain(name_of(rng.randrange(args.bulk)))}"
                ),
                "pronoun_es": lambda: copilot.ask(
                    sarah, "bench", "¿está caliente ese lead?, me llamó ayer"
                ),
                "digest": lambda: copilot.ask(sarah, "bench", "what happened today?"),
                "not_understood": lambda: copilot.ask(sarah, "bench", "kwalify the purple one"),
            }
            everything: list[float] = []
            for name, request in requests.items():
                request()  # warm up
                times = sorted(timed(request) for _ in range(args.rounds))
                everything += times
                results[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                }
            results["all"] = {
                "median_ms": round(statistics.median(everything), 1),
                "p95_ms": round(sorted(everything)[int(0.95 * (len(everything) - 1))], 1),
            }
            ask = copilot.ask(admin, "bulk", "move all of Sarah's leads to Mike")
            assert ask.pending is not None, ask.reply
            bulk_ms = timed(lambda: copilot.ask(admin, "bulk", "yes"))
            results["bulk_reassign"] = {"leads": args.bulk, "ms": round(bulk_ms, 1)}
        results["memory_kb"] = round(Path(f"{tmp}/bench-copilot.sqlite").stat().st_size / 1024)
        engine.dispose()

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"copilot on SQLite, {args.leads} leads (seeded in {results['seed_seconds']} s), "
            f"{args.rounds} rounds each, offline engine"
        )
        for name in (
            "summary",
            "qualify",
            "hot_check",
            "hot_list",
            "by_phone",
            "note",
            "name_lookup",
            "typo_command",
            "pronoun_es",
            "digest",
            "not_understood",
            "all",
        ):
            median, p95 = results[name]["median_ms"], results[name]["p95_ms"]
            print(f"  {name:14s} median {median:7.1f} ms   p95 {p95:7.1f} ms")
        bulk_ms = results["bulk_reassign"]["ms"]
        print(f"  bulk reassign of {args.bulk} leads (confirmed): {bulk_ms:.0f} ms")
        print(f"  chat memory after all rounds: {results['memory_kb']} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
