"""Lead query benchmark: seed N leads (default 100,000), time every filter of the shared query.

    python benchmarks/lead_query.py [--leads N] [--database URL [--reuse]] [--repeat R]
                                    [--json FILE]

Without --database it runs on a temporary SQLite file and, when PostgreSQL answers on
127.0.0.1:5432 (or at --postgres-admin-url), on a temporary PostgreSQL database that is dropped
afterwards. With --database it runs on that database only, which must have no leads yet, unless
--reuse is given: then a database this benchmark seeded before (same --leads) is brought up to the
current schema and timed again without seeding, so a 1,000,000-lead desk is built once.

For each filter it reports how many leads match and the p50/p95 wall time of one page (50 leads,
identities and agent loaded, in a fresh read session, as the CLI and API do) and of the count the
lists show (`count_leads_capped`: exact up to 10,000, "10,000+" beyond; a text search up to 1,000,
"1,000+" beyond). A cursor's count is its list's. On PostgreSQL it also reports the server's own
time for each (EXPLAIN ANALYZE of the statements sent, median of 5), which a loaded machine
does not inflate the way it does the wall clock.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import phonenumbers  # noqa: E402
from sqlalchemy import Engine, event, func, insert, select, text  # noqa: E402

from store import make_engine, make_session_factory, read_session, upgrade  # noqa: E402
from store.models import Agent, Identity, Lead  # noqa: E402
from store.query import (  # noqa: E402
    LeadQuery,
    build_lead_query,
    count_leads,
    count_leads_capped,
    order_leads,
    query_leads,
)

NOW = datetime.now(UTC).replace(microsecond=0)
STATUSES = [
    ("New", 0.38, 15),
    ("Interested", 0.18, 60),
    ("Scouting", 0.12, 45),
    ("Follow Up", 0.10, 70),
    ("Not Interested", 0.14, 10),
    ("Converted", 0.08, 88),
]
CHANNELS = [
    ("web", 0.40),
    ("whatsapp", 0.30),
    ("messenger", 0.15),
    ("instagram", 0.10),
    ("manual", 0.05),
]
FIRST = [
    "Fatima",
    "Omar",
    "Sara",
    "John",
    "Maria",
    "Wei",
    "Aisha",
    "Carlos",
    "Priya",
    "Liam",
    "Noor",
    "Yusuf",
    "Emma",
    "Hana",
    "Mateo",
    "Olga",
    "Kwame",
    "Sofia",
    "Ali",
    "Chen",
    "Lea",
    "Ivan",
]
LAST = [
    "Haddad",
    "Smith",
    "Garcia",
    "Khan",
    "Nguyen",
    "Rossi",
    "Okafor",
    "Silva",
    "Kim",
    "Novak",
    "Mansour",
    "Brown",
    "Sato",
    "Dubois",
    "Patel",
    "Jensen",
    "Costa",
    "Yilmaz",
    "Ahmed",
    "Lopez",
]
COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Pied Piper",
]
DOMAINS = ["example.com", "mail.example", "corp.example", "shop.example"]
COUNTRIES = [("+1415", 7), ("+44207", 7), ("+96650", 7), ("+4930", 7), ("+3314", 7)]


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    r, acc = rng.random(), 0.0
    for item in weighted:
        acc += item[1]
        if r <= acc:
            return item
    return weighted[-1]


def seed(engine: Engine, leads: int, rng: random.Random) -> dict[str, Any]:
    """Bulk-insert agents, `leads` leads with 1-2 identities each, and some merged tombstones."""
    agents = [
        {
            "name": f"Agent {i}",
            "email": f"agent{i}@desk.example",
            "role": "admin" if i == 0 else "agent",
            "active": True,
            "capacity": 500,
            "token_hash": f"bench-{i}-{uuid.uuid4().hex}",
            "created_at": NOW,
        }
        for i in range(30)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Agent), agents)
        agent_ids = list(conn.scalars(select(Agent.id)))
    batch: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    samples: dict[str, Any] = {}
    started = time.perf_counter()

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(Lead), batch)
            conn.execute(insert(Identity), identities)
        batch.clear()
        identities.clear()

    for i in range(leads):
        lead_id = i + 1
        status, _, mean = _pick(rng, STATUSES)
        score = max(0, min(100, int(rng.gauss(mean, 15))))
        age = min(rng.expovariate(1 / 120), 730)  # more recent leads than old ones
        created = NOW - timedelta(days=age, seconds=rng.randint(0, 86399))
        contacted = None if rng.random() < 0.1 else created + (NOW - created) * rng.random()
        first, last = rng.choice(FIRST), rng.choice(LAST)
        prefix, digits = COUNTRIES[i % len(COUNTRIES)]
        phone = f"{prefix}{i:0{digits}d}" if rng.random() < 0.55 else None
        assigned = rng.random() < (0.2 if status == "New" else 0.8)
        channel = _pick(rng, CHANNELS)[0]
        if channel == "whatsapp" and phone is None:
            phone = f"{prefix}{i:0{digits}d}"
        batch.append(
            {
                "id": lead_id,
                "name": f"{first} {last}",
                "phone": phone,
                "email": f"{first}.{last}{i}@{rng.choice(DOMAINS)}".lower()
                if rng.random() < 0.35
                else None,
                "company": rng.choice(COMPANIES) + f" {i % 997}" if rng.random() < 0.3 else None,
                "status": status,
                "score": score,
                "score_factors": [],
                "interests": [],
                "objections": [],
                "tags": [],
                "custom_fields": {"budget": str(rng.randint(1, 50) * 1000)}
                if rng.random() < 0.2
                else {},
                "source": channel,
                "assigned_agent_id": rng.choice(agent_ids) if assigned else None,
                "ai_stopped": False,
                "ai_resume_notice_due": False,
                "phone_asks": 0,
                "phone_declined": False,
                "last_reply_asked_phone": False,
                "archived": rng.random() < 0.04,
                "locked": status == "Converted",
                "created_at": created,
                "updated_at": contacted or created,
                "last_contacted_at": contacted,
            }
        )
        identities.append(
            {
                "lead_id": lead_id,
                "channel": channel,
                "external_id": f"{channel}-{i}",
                "created_at": created,
            }
        )
        if rng.random() < 0.15:
            second = _pick(rng, CHANNELS)[0]
            if second != channel:
                identities.append(
                    {
                        "lead_id": lead_id,
                        "channel": second,
                        "external_id": f"{second}-x{i}",
                        "created_at": created,
                    }
                )
        if phone and "phone" not in samples and i > leads // 2:
            samples["phone"] = phone
            samples["name"] = first
        if len(batch) >= 5000:
            flush()
    if batch:
        flush()
    # About 1% merged duplicates: tombstones the query must never show.
    with engine.begin() as conn:
        tombstones = [
            {
                "id": leads + k + 1,
                "name": "dup",
                "status": "New",
                "score": 0,
                "score_factors": [],
                "interests": [],
                "objections": [],
                "tags": [],
                "custom_fields": {},
                "ai_stopped": False,
                "ai_resume_notice_due": False,
                "phone_asks": 0,
                "phone_declined": False,
                "last_reply_asked_phone": False,
                "archived": True,
                "locked": False,
                "merged_into_id": rng.randint(1, leads),
                "created_at": NOW,
                "updated_at": NOW,
            }
            for k in range(leads // 100)
        ]
        if tombstones:
            conn.execute(insert(Lead), tombstones)
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('leads', 'id'), :n)"),
                {"n": leads + len(tombstones)},
            )
    # Statistics (and on PostgreSQL the visibility map) as a running desk would have them.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    samples["agent_id"] = agent_ids[3]
    samples["seconds"] = time.perf_counter() - started
    return samples


def seeded_samples(engine: Engine, leads: int) -> dict[str, Any]:
    """The samples `seed` picked, read back from a database it seeded (for --reuse).

    `seed` takes the first lead with a phone past the middle (lead ids are the loop index + 1)
    and the fourth agent.
    """
    with engine.connect() as conn:
        seeded = conn.scalar(select(func.count()).select_from(Lead).where(Lead.id <= leads))
        if seeded != leads:
            raise SystemExit(f"--reuse: the database has {seeded:,} seeded leads, not {leads:,}")
        row = conn.execute(
            select(Lead.phone, Lead.name)
            .where(Lead.id > leads // 2 + 1, Lead.id <= leads, Lead.phone.is_not(None))
            .order_by(Lead.id)
            .limit(1)
        ).one()
        agent_ids = list(conn.scalars(select(Agent.id).order_by(Agent.id).limit(4)))
    return {"phone": row.phone, "name": row.name.split()[0], "agent_id": agent_ids[3], "seconds": 0}


def cursors(engine: Engine, leads: int) -> dict[str, Any]:
    """Keyset cursors (sort value, id) by last contact, newest first: 5,000 leads deep (at most
    half the desk), and at the last lead ever contacted (the next page is the never-contacted
    leads, which come last).
    """
    sort = "-last_contacted_at"
    ordered = order_leads(build_lead_query(LeadQuery(), now=NOW), sort)
    with engine.connect() as conn:
        deep = conn.execute(
            ordered.with_only_columns(Lead.last_contacted_at, Lead.id)
            .offset(min(4999, leads // 2))
            .limit(1)
        ).one()
        last = conn.execute(
            build_lead_query(LeadQuery(), now=NOW)
            .with_only_columns(Lead.last_contacted_at, Lead.id)
            .where(Lead.last_contacted_at.is_not(None))
            .order_by(Lead.last_contacted_at, Lead.id)
            .limit(1)
        ).one()
    return {"deep_contact": tuple(deep), "last_contact": tuple(last)}


def national_format(phone: str) -> str:
    """The lead's number as a person of its country types it (e.g. "020 7050 0001")."""
    number = phonenumbers.parse(phone)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def filters(samples: dict[str, Any]) -> list[tuple[str, LeadQuery]]:
    national = national_format(samples["phone"])
    return [
        ("default (active, newest)", LeadQuery()),
        ("status=Interested", LeadQuery(status=["Interested"])),
        ("status in 2", LeadQuery(status=["Follow Up", "Scouting"])),
        ("score 40-60", LeadQuery(score_min=40, score_max=60)),
        ("hot", LeadQuery(hot=True)),
        ("agent", LeadQuery(agent_id=samples["agent_id"])),
        ("unassigned", LeadQuery(unassigned=True)),
        ("channel=instagram", LeadQuery(channel=["instagram"])),
        ("channel=whatsapp", LeadQuery(channel=["whatsapp"])),
        ("created last 7d", LeadQuery(created_from=NOW - timedelta(days=7))),
        ("contacted last 30d", LeadQuery(contacted_from=NOW - timedelta(days=30))),
        ("stale 14d", LeadQuery(stale_days=14)),
        ("archived", LeadQuery(archived=True)),
        ("search name", LeadQuery(search=samples["name"])),
        ("search email", LeadQuery(search="haddad12")),
        ("search phone (national)", LeadQuery(search=national)),
        ("search company", LeadQuery(search="globex 12")),
        ("hot+unassigned+status", LeadQuery(hot=True, unassigned=True, status=["Interested"])),
        (
            "agent+stale, by score",
            LeadQuery(agent_id=samples["agent_id"], stale_days=7, sort="-score"),
        ),
        ("sort -score", LeadQuery(sort="-score")),
        ("sort last_contacted", LeadQuery(sort="last_contacted_at")),
        ("sort -last_contacted", LeadQuery(sort="-last_contacted_at")),
        ("page at offset 5000", LeadQuery(offset=5000)),
        ("page at offset 50000", LeadQuery(offset=50000)),
        # The API's and console's next page (a keyset cursor): by last contact, newest first,
        # 5,000 leads deep, and from the last contacted lead into the never-contacted ones.
        (
            "cursor 5000 deep, -contact",
            LeadQuery(sort="-last_contacted_at", after=samples["deep_contact"]),
        ),
        (
            "cursor into never-contacted",
            LeadQuery(sort="-last_contacted_at", after=samples["last_contact"]),
        ),
        # Not a list: one lead by its key, the fixed cost of a page and a count on this machine
        # at this moment (sessions, loading, the machine's load), to read the others against.
        ("one lead by id (floor)", LeadQuery(ids=[samples["agent_id"]])),
    ]


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def server_ms(engine: Engine, fn: Callable[[], Any], repeat: int = 5) -> float | None:
    """PostgreSQL's own time for what `fn` sends: every SELECT it runs (a page's query, its
    identities and agents), run again under EXPLAIN ANALYZE, execution times summed; the median of
    `repeat` runs. It leaves out the client (Python, the driver, waiting for a core), which on a
    loaded machine is most of the wall clock. None on other backends.
    """
    if engine.dialect.name != "postgresql":
        return None
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    totals = []
    for _ in range(repeat):
        sent.clear()
        event.listen(engine, "before_cursor_execute", grab)
        try:
            fn()
        finally:
            event.remove(engine, "before_cursor_execute", grab)
        total = 0.0
        with engine.connect() as conn:
            for statement, parameters in sent:
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE) " + statement, parameters).all()
                found = re.search(r"Execution Time: ([\d.]+)", plan[-1][0])
                total += float(found.group(1)) if found else 0.0
        totals.append(total)
    return statistics.median(totals)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    url: str, leads: int, repeat: int, rng_seed: int, label: str, reuse: bool = False
) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            seeded = bool(conn.scalar(select(func.count()).select_from(Lead)))
        if seeded and not reuse:
            raise SystemExit(f"{label}: the database already has leads; give an empty one")
        if seeded:
            samples = seeded_samples(engine, leads)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))  # new indexes (an expression's statistics)
            print(f"\n[{label}] reusing the {leads:,} seeded leads", flush=True)
        else:
            print(f"\n[{label}] seeding {leads:,} leads ...", flush=True)
            samples = seed(engine, leads, random.Random(rng_seed))
            print(f"[{label}] seeded in {samples['seconds']:.1f}s", flush=True)
        samples.update(cursors(engine, leads))
        print(f"[{label}] national-format phone search: {national_format(samples['phone'])!r}")
        factory = make_session_factory(engine)
        results = []
        for name, q in filters(samples):

            def page(q: LeadQuery = q) -> int:
                with read_session(factory) as session:
                    return len(query_leads(q, session=session))

            def count(q: LeadQuery = q) -> str:
                with read_session(factory) as session:
                    return str(count_leads_capped(q, session=session))

            page()  # warm the statement cache
            page_times, rows = _timed(page, repeat)
            count_times, shown = _timed(count, max(3, repeat // 3))
            with read_session(factory) as session:
                matches = count_leads(q, session=session)  # exact, untimed: the table's column
            page_server, count_server = server_ms(engine, page), server_ms(engine, count)
            results.append(
                {
                    "filter": name,
                    "matches": matches,
                    "shown": shown,
                    "rows": rows,
                    "page_p50": _p(page_times, 0.5),
                    "page_p95": _p(page_times, 0.95),
                    "count_p50": _p(count_times, 0.5),
                    "count_p95": _p(count_times, 0.95),
                    "page_server": page_server,
                    "count_server": count_server,
                }
            )
        _print(label, leads, results)
        return {
            "backend": label,
            "leads": leads,
            "seed_seconds": samples["seconds"],
            "results": results,
        }
    finally:
        engine.dispose()


def _print(label: str, leads: int, results: list[dict[str, Any]]) -> None:
    print(f"\n{label}: {leads:,} leads; milliseconds per query (page = 50 leads with identities)")
    print("(server: the database's own execution time, EXPLAIN ANALYZE, median of 5)")
    print(
        f"{'filter':<28}{'matches':>9}{'shown':>9}{'page p50':>10}{'page p95':>10}"
        f"{'count p50':>11}{'count p95':>11}{'server page':>13}{'server count':>14}"
    )

    def server(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for r in results:
        print(
            f"{r['filter']:<28}{r['matches']:>9,}{r['shown']:>9}{r['page_p50']:>10.1f}"
            f"{r['page_p95']:>10.1f}{r['count_p50']:>11.1f}{r['count_p95']:>11.1f}"
            f"{server(r['page_server']):>13}{server(r['count_server']):>14}"
        )


@contextmanager
def temporary_postgres(admin_url: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database, dropped at the end; None when PostgreSQL is not reachable."""
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    host, port = engine.url.host or "127.0.0.1", engine.url.port or 5432
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        engine.dispose()
        yield None
        return
    name = f"leaddesk_bench_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="leads to seed (default 100000)")
    parser.add_argument("--database", help="benchmark this (empty) database only")
    parser.add_argument(
        "--postgres-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="where to create the temporary PostgreSQL database",
    )
    parser.add_argument("--repeat", type=int, default=25, help="timed runs per filter (default 25)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the data")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --database: time a database this benchmark seeded before, without seeding",
    )
    args = parser.parse_args(argv)
    reports = []
    if args.database:
        url = args.database.replace("postgresql://", "postgresql+psycopg://", 1)
        label = make_engine(url).dialect.name
        reports.append(run(url, args.leads, args.repeat, args.seed, label, reuse=args.reuse))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            reports.append(
                run(f"sqlite:///{tmp}/bench.db", args.leads, args.repeat, args.seed, "sqlite")
            )
        with temporary_postgres(args.postgres_admin_url) as pg_url:
            if pg_url is None:
                print("\npostgresql: not reachable, skipped")
            else:
                reports.append(run(pg_url, args.leads, args.repeat, args.seed, "postgresql"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
