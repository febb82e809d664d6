"""How long the task reminder sweep and an agent's "My tasks" take on a large desk, with and
without the indexes that serve them (the reference, measured in the same run).

    python benchmarks/task_reminders.py [--tasks 200000] [--database URL] [--repeat 25]

Seeds `--tasks` tasks over 30 agents and 20,000 leads (70% done, the open ones due from 60 days
ago to 30 days ahead, all past ones already reminded), then times, `--repeat` times each:
a reminder round with nothing new due and today's digests sent (what `leaddesk serve` and the
sweeper run every cycle, the common case) and one agent's plate (overdue, today, this week). Then
it drops the two task indexes and times both again. Without `--database`: a temporary SQLite
file.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text

from store import make_engine, make_session_factory, upgrade
from store.domain import tasks
from store.models import Agent, Lead, Task, TaskDigest

NOW = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/Chicago")


def seed(session_factory: object, count: int) -> int:
    rng = random.Random(7)
    with session_factory.begin() as session:  # type: ignore[attr-defined]
        session.execute(
            insert(Agent),
            [{"name": f"Agent {i}", "token_hash": f"h{i}", "role": "agent"} for i in range(30)],
        )
        agents = list(session.scalars(select(Agent.id)))
        session.execute(
            insert(Lead),
            [{"name": f"Lead {i}", "assigned_agent_id": agents[i % 30]} for i in range(20_000)],
        )
        leads = list(session.scalars(select(Lead.id)))
        rows = []
        for i in range(count):
            lead = leads[i % len(leads)]
            due = NOW + timedelta(minutes=rng.randint(-60 * 24 * 60, 30 * 24 * 60))
            done = rng.random() < 0.7
            rows.append(
                {
                    "lead_id": lead,
                    "agent_id": agents[(lead - 1) % 30],
                    "kind": "call",
                    "title": f"Call lead {lead}",
                    "notes": "",
                    "due_at": due,
                    "done_at": due if done else None,
                    "reminded_at": due if due <= NOW else None,
                    "source": "agent",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            if len(rows) == 10_000:
                session.execute(insert(Task), rows)
                rows = []
        if rows:
            session.execute(insert(Task), rows)
        # Today's digests went out at opening: a round in the day finds them sent.
        day = NOW.astimezone(ZONE).date().isoformat()
        session.execute(
            insert(TaskDigest), [{"agent_id": a, "day": day, "sent_at": NOW} for a in agents]
        )
        return agents[0]


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def measure(session_factory: object, agent_id: int, repeat: int) -> dict[str, tuple[float, float]]:
    def sweep() -> None:
        with session_factory() as session:  # type: ignore[attr-defined]
            report = tasks.send_reminders(session=session, now=NOW, zone=ZONE)
            assert not report.reminded
            assert not report.digests
            session.rollback()

    def plate() -> None:
        with session_factory() as session:  # type: ignore[attr-defined]
            agent = session.get(Agent, agent_id)
            tasks.my_plate(agent, session=session, now=NOW, zone=ZONE)

    return {"reminder round": timed(sweep, repeat), "my plate": timed(plate, repeat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--database")
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'tasks.db'}"
        engine = make_engine(url)
        upgrade(engine)
        session_factory = make_session_factory(engine)
        started = time.perf_counter()
        agent_id = seed(session_factory, args.tasks)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(
            f"{engine.dialect.name}: {args.tasks} tasks seeded "
            f"in {time.perf_counter() - started:.0f}s"
        )
        indexed = measure(session_factory, agent_id, args.repeat)
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_tasks_unreminded"))
            conn.execute(text("DROP INDEX ix_tasks_agent_due"))
        bare = measure(session_factory, agent_id, args.repeat)
        print("| query | with the task indexes p50 / p95 | without (reference) p50 / p95 |")
        print("| --- | ---: | ---: |")
        for name in indexed:
            (a50, a95), (b50, b95) = indexed[name], bare[name]
            print(f"| {name} | {a50:.2f} / {a95:.2f} ms | {b50:.2f} / {b95:.2f} ms |")
        engine.dispose()


if __name__ == "__main__":
    main()
