"""`leaddesk eval --copilot [CASES.jsonl|DIR]`: play labelled chats with the agents' copilot on a
seeded desk of leads and agents (`desk.yaml` beside the cases; a fresh in-memory copy per case) and
report, like the bot's eval, whether each turn referred to the right lead, chose the right tool,
and changed exactly what it should (nothing before the agent's "yes").

A case is one JSON object per line (blank lines and `#` / `//` lines are skipped):
`{"id": "...", "agent": "sarah", "turns": [{"say": "...", <expectations>}], "note": "..."}`.
Expectations of a turn (all optional): `tool` (the tool the turn called, null for a plain answer),
`lead` (the desk key of the lead it referred to: the one in focus afterwards, or the one a pending
question is about), `pending` (whether a question waits for the agent), `changes`
(`{lead key: {field: value}}`, exactly what the turn changed; without it the turn must change
nothing), `reply_contains` and `reply_must_not_contain` (matched case- and accent-insensitively).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import func, select

from bot import LocalOutbox
from copilot import Copilot, build_graph
from copilot.text import fold
from leaddesk.cli.common import UserError
from leaddesk.cli.eval import (
    CaseDatabases,
    CaseProblem,
    Outcome,
    case_files,
    case_object,
    print_table,
    read_case_files,
)
from leaddesk.llm import engine_name, make_chat_model
from leaddesk.settings import Settings
from store import make_session_factory
from store.agents import create_agent
from store.leads import resolve, update_lead
from store.messages import Inbound, ingest
from store.models import Agent, Lead, Note, Task
from store.work import add_note, record_score

EXPECTATIONS = ("tool", "lead", "pending", "changes", "reply_contains", "reply_must_not_contain")
TURN_KEYS = ("say", *EXPECTATIONS)
CASE_KEYS = ("id", "agent", "turns", "note")
DESK_FILE = "desk.yaml"
EVAL_EMAIL_FROM = "sales@desk.example"
# Every case runs at the same moment (a Wednesday afternoon), so dates never depend on the clock.
REFERENCE_TIME = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)
TRACKED = (
    "name",
    "company",
    "email",
    "phone",
    "status",
    "agent",
    "archived",
    "notes",
    "custom_fields",
    "lost_reason",
)


@dataclass
class Turn:
    say: str
    expect: dict[str, Any]


@dataclass
class CopilotCase:
    id: str
    file: str
    line: int
    agent: str = ""
    turns: list[Turn] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The desk


@dataclass
class Desk:
    """The seeded leads and agents, by the keys the cases use."""

    agents: dict[str, dict[str, Any]]
    leads: dict[str, dict[str, Any]]


def read_desk(directory: Path) -> Desk:
    path = directory / DESK_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise UserError(
            f"cannot read {path}: the copilot eval needs its desk of leads and agents"
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("agents"), dict)
        or not isinstance(data.get("leads"), dict)
    ):
        raise UserError(f"{path} must map agents: and leads: by key")
    return Desk(agents=data["agents"], leads=data["leads"])


def _ago(text: Any) -> timedelta:
    value = str(text or "1h").strip()
    unit = value[-1]
    amount = float(value[:-1])
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
    }[unit]


def seed_desk(
    desk: Desk, session_factory: Any, *, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """Create the desk's agents and leads; returns their ids by key."""
    agent_ids: dict[str, int] = {}
    lead_ids: dict[str, int] = {}
    with session_factory.begin() as session:
        for key, spec in desk.agents.items():
            agent, _token = create_agent(
                str(spec["name"]), session=session, role=str(spec.get("role", "agent"))
            )
            agent.active = bool(spec.get("active", True))
            agent_ids[key] = agent.id
        for number, (key, spec) in enumerate(desk.leads.items(), start=1):
            channel = str(spec.get("channel", "web"))
            sender = f"{channel}-{number}"
            says = [str(text) for text in spec.get("says", ["Hi, I'd like some information"])]
            created = now - _ago(spec.get("created", "2h"))
            lead = None
            message_id = None
            for i, text in enumerate(says):
                got = ingest(
                    Inbound(
                        channel,
                        sender,
                        text,
                        name=spec.get("name"),
                        channel_message_id=f"{sender}-{i}",
                        sent_at=created + timedelta(minutes=i + 1),
                    ),
                    session=session,
                )
                got.message.processed_at = got.message.sent_at
                lead, message_id = got.lead, got.message.id
            assert lead is not None
            lead.created_at = created
            if spec.get("phone"):
                lead = resolve(
                    channel, sender, phone=str(spec["phone"]), session=session, region="US"
                )
            if spec.get("email"):
                lead = resolve(channel, sender, email=str(spec["email"]), session=session)
            if spec.get("score") is not None:
                record_score(lead, int(spec["score"]), [], session=session, message_id=message_id)
            changes: dict[str, Any] = {}
            for name in ("status", "company", "next_best_action", "summary"):
                if spec.get(name) is not None:
                    changes[name] = spec[name]
            if spec.get("agent"):
                changes["assigned_agent_id"] = agent_ids[str(spec["agent"])]
            if spec.get("archived"):
                changes["archived"] = True
            if spec.get("locked"):
                changes["locked"] = True
            if spec.get("custom_fields"):
                changes["custom_fields"] = dict(spec["custom_fields"])
            if spec.get("contacted"):
                changes["last_contacted_at"] = now - _ago(spec["contacted"])
            else:
                changes["last_contacted_at"] = created + timedelta(minutes=len(says))
            update_lead(lead, changes, session=session, actor="system")
            for note in spec.get("notes", []):
                add_note(lead, str(note), session=session, category="General")
            lead_ids[key] = lead.id
        session.flush()
        assert all(session.get(Agent, i) for i in agent_ids.values())
    return agent_ids, lead_ids


def snapshot(
    session_factory: Any, lead_ids: dict[str, int], agent_keys: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """What the cases can see change, per lead key."""

    state: dict[str, dict[str, Any]] = {}
    with session_factory() as session:
        counts = dict(
            session.execute(select(Note.lead_id, func.count()).group_by(Note.lead_id)).all()
        )
        task_counts = dict(
            session.execute(select(Task.lead_id, func.count()).group_by(Task.lead_id)).all()
        )
        for key, lead_id in lead_ids.items():
            lead = session.get(Lead, lead_id)
            assert lead is not None
            state[key] = {
                "name": lead.name,
                "company": lead.company,
                "email": lead.email,
                "phone": lead.phone,
                "status": lead.status,
                "agent": agent_keys.get(lead.assigned_agent_id or -1),
                "archived": bool(lead.archived),
                "notes": int(counts.get(lead_id, 0)),
                "tasks": int(task_counts.get(lead_id, 0)),
                "custom_fields": dict(lead.custom_fields or {}),
                "lost_reason": lead.lost_reason,
            }
    return state


def diff(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    changed: dict[str, dict[str, Any]] = {}
    for key, fields in after.items():
        for name, value in fields.items():
            if before[key][name] != value:
                changed.setdefault(key, {})[name] = value
    return changed


# --------------------------------------------------------------------------------------------
# Cases


def read_copilot_cases(
    files: list[Path], desk: Desk
) -> tuple[list[CopilotCase], list[CaseProblem]]:
    return read_case_files(files, lambda file, number, raw: _parse(file, number, raw, desk))


def _parse(file: str, number: int, raw: str, desk: Desk) -> CopilotCase:
    case = CopilotCase(id=f"{Path(file).name}:{number}", file=file, line=number)
    data = case_object(case, raw, CASE_KEYS, "id, agent and turns")
    if data is None:
        return case
    case.agent = str(data.get("agent", ""))
    if case.agent not in desk.agents:
        case.problems.append(f"agent {case.agent!r} is not on the desk ({', '.join(desk.agents)})")
    turns = data.get("turns")
    if not isinstance(turns, list) or not turns:
        case.problems.append("turns must be a non-empty list of {say, expectations}")
        turns = []
    for index, turn in enumerate(turns, start=1):
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("say"), str)
            or not turn["say"].strip()
        ):
            case.problems.append(f"turn {index}: needs 'say' (what the agent writes)")
            continue
        for key in turn:
            if key not in TURN_KEYS:
                case.problems.append(
                    f"turn {index}: unknown key {key!r}; a turn has {', '.join(TURN_KEYS)}"
                )
        lead = turn.get("lead")
        if lead is not None and lead not in desk.leads:
            case.problems.append(f"turn {index}: lead {lead!r} is not on the desk")
        for key in turn.get("changes") or {}:
            if key not in desk.leads:
                case.problems.append(
                    f"turn {index}: changes name {key!r}, which is not on the desk"
                )
        case.turns.append(Turn(turn["say"], {k: v for k, v in turn.items() if k != "say"}))
    return case


# --------------------------------------------------------------------------------------------
# Running


class DeskDatabases(CaseDatabases):
    """One migrated, seeded template; each case gets an in-memory copy of it."""

    def __init__(self, desk: Desk, *, now: datetime) -> None:
        super().__init__()
        self.agent_ids, self.lead_ids = seed_desk(
            desk, make_session_factory(self.template), now=now
        )


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run_case(
    case: CopilotCase,
    *,
    config: Any,
    databases: DeskDatabases,
    model: Any = None,
    region: str = "US",
) -> Outcome:
    if case.problems:
        return Outcome(case.id, False, [f"invalid case: {p}" for p in case.problems])
    engine = databases.fresh()
    problems: list[str] = []
    checks: dict[str, bool] = {}
    try:
        session_factory = make_session_factory(engine)
        graph = build_graph(
            session_factory=session_factory,
            prompts=config,
            checkpointer=InMemorySaver(),
            model=model,
            clock=FixedClock(REFERENCE_TIME),
            region=region,
            takeover_minutes=60,
            # Email is set up on the desk: the intro email can be sent (marked sent, nothing
            # leaves the machine).
            outbox=LocalOutbox(session_factory),
            email_from=EVAL_EMAIL_FROM,
        )
        copilot = Copilot(graph)
        agent_id = databases.agent_ids[case.agent]
        thread = f"eval:{agent_id}:{case.id}"
        keys_by_id = {lead_id: key for key, lead_id in databases.lead_ids.items()}
        agent_keys = {agent: key for key, agent in databases.agent_ids.items()}
        for number, turn in enumerate(case.turns, start=1):
            before = snapshot(session_factory, databases.lead_ids, agent_keys)
            answer = copilot.ask(agent_id, thread, turn.say)
            after = snapshot(session_factory, databases.lead_ids, agent_keys)
            state = graph.get_state({"configurable": {"thread_id": thread}}).values
            messages = state.get("messages", [])
            turn_messages: list[Any] = []
            for message in reversed(messages):
                if isinstance(message, HumanMessage):
                    break
                turn_messages.append(message)
            tools = [
                c["name"]
                for m in reversed(turn_messages)
                if isinstance(m, AIMessage)
                for c in m.tool_calls
            ]
            if answer.pending is not None and len(answer.pending.get("lead_ids") or []) == 1:
                referred = keys_by_id.get(int(answer.pending["lead_ids"][0]))
            else:
                focus = state.get("focus_lead_id")
                referred = keys_by_id.get(int(focus)) if focus is not None else None

            def check(kind: str, ok: bool, problem: str, turn_number: int = number) -> None:
                checks[kind] = checks.get(kind, True) and ok
                if not ok:
                    problems.append(f"turn {turn_number}: {problem}")

            expect = turn.expect
            if "tool" in expect:
                wanted = expect["tool"]
                got = tools[0] if tools else None
                check(
                    "tool",
                    got == wanted,
                    f"expected tool {wanted}, got {got} ({_short(answer.reply)})",
                )
            if "lead" in expect:
                check(
                    "lead",
                    referred == expect["lead"],
                    f"expected lead {expect['lead']}, got {referred}",
                )
            if "pending" in expect:
                check(
                    "pending",
                    (answer.pending is not None) == bool(expect["pending"]),
                    f"expected {'a' if expect['pending'] else 'no'} question, "
                    f"got {_short(answer.reply)}",
                )
            changed = diff(before, after)
            wanted_changes = expect.get("changes") or {}
            check(
                "changes",
                changed == wanted_changes,
                f"expected changes {wanted_changes}, got {changed}"
                if wanted_changes
                else f"nothing should change yet, but {changed}",
            )
            folded = _fold(answer.reply)
            for text in expect.get("reply_contains", []):
                check(
                    "reply_contains",
                    _fold(text) in folded,
                    f"the reply lacks {text!r} ({_short(answer.reply)})",
                )
            for text in expect.get("reply_must_not_contain", []):
                check(
                    "reply_must_not_contain",
                    _fold(text) not in folded,
                    f"the reply contains {text!r}",
                )
    finally:
        engine.dispose()
    return Outcome(case.id, not problems, problems, checks)


def _fold(text: str) -> str:
    return fold(text)


def _short(text: str) -> str:
    line = " ".join((text or "").split())
    return repr(line[:120] + ("…" if len(line) > 120 else ""))


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    by_expectation: dict[str, dict[str, Any]] = {}
    for kind in EXPECTATIONS:
        results = [o.checks[kind] for o in outcomes if kind in o.checks]
        if results:
            passed = sum(results)
            by_expectation[kind] = {
                "passed": passed,
                "total": len(results),
                "accuracy": round(passed / len(results), 3),
            }
    return {
        "passed": sum(o.passed for o in outcomes),
        "total": len(outcomes),
        "by_expectation": by_expectation,
    }


def evaluate(
    cases: list[CopilotCase], desk: Desk, *, config: Any, model: Any = None, region: str = "US"
) -> tuple[list[Outcome], dict[str, Any]]:
    databases = DeskDatabases(desk, now=REFERENCE_TIME)
    try:
        outcomes = [
            run_case(case, config=config, databases=databases, model=model, region=region)
            for case in cases
        ]
    finally:
        databases.close()
    return outcomes, summarize(outcomes)


def default_cases_dir(config: Any) -> Path:
    return Path(config.directory) / "eval" / "copilot"


def run_copilot_eval(args: Any, settings: Settings, config: Any, *, region: str = "US") -> int:
    paths = [Path(p) for p in args.cases] if args.cases else [default_cases_dir(config)]
    files = case_files(paths)
    directory = next((p if p.is_dir() else p.parent for p in paths), paths[0])
    desk = read_desk(directory)
    cases, problems = read_copilot_cases(files, desk)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not cases:
        raise UserError("no cases found (one JSON object per line: id, agent, turns)")
    quieted = {
        name: logging.getLogger(name).level for name in ("bot", "store", "alembic", "copilot")
    }
    print(f"engine: {engine_name(settings)}", file=sys.stderr if args.json else sys.stdout)
    try:
        for name in quieted:
            logging.getLogger(name).setLevel(logging.ERROR)
        outcomes, summary = evaluate(
            cases, desk, config=config, model=make_chat_model(settings), region=region
        )
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)
    if args.json:
        json.dump(
            {
                "cases": [
                    {"id": o.id, "passed": o.passed, "problems": o.problems} for o in outcomes
                ],
                "summary": summary,
            },
            sys.stdout,
            ensure_ascii=False,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        print_table(outcomes, summary)
    return 0 if summary["passed"] == summary["total"] else 1
