"""`leaddesk eval CASES.jsonl|DIR [--prompts DIR] [--json]`: replay labelled conversations through
the bot (the same pipeline as `leaddesk replay`, a fresh in-memory database per case) and report
whether each outcome matched its expectation, per case and per kind of expectation.

A case is one JSON object per line (blank lines and lines starting with `#` or `//` are skipped):
`{"id": "...", "messages": [replay lines], "expect": {...}, "region": "GB", "note": "..."}`.
Expectations (all optional) are about the lead of the last message's sender: `status_in`,
`score_min`, `score_max`, `phone` (E.164 or null), `name` and `company` (text or null),
`ai_paused`; about the whole case: `leads` (how many leads it left), `reply_count` (how many
replies it got: a burst is answered once, a sticker not at all); about the last reply the case got:
`reply_contains` and `reply_must_not_contain` (texts, matched case- and accent-insensitively),
`reply_language` (the ISO 639-1 code it was written in) and `reply_knowledge` (the ids of the
knowledge sections it quoted, `[]` for none).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import phonenumbers

from bot import BotService, LocalOutbox
from bot.text import normalize
from leaddesk.cli.bot import (
    BadLine,
    ReplayClock,
    Replayer,
    _region,
    lead_report,
    load_checked_prompts,
    parse_line,
)
from leaddesk.cli.common import UserError
from leaddesk.llm import engine_name, make_chat_model
from leaddesk.settings import Settings
from store import make_engine, make_session_factory, upgrade
from store.leads import find_identity, get_lead

EXPECTATIONS = (
    "status_in",
    "score_min",
    "score_max",
    "phone",
    "leads",
    "ai_paused",
    "reply_contains",
    "reply_must_not_contain",
    "reply_language",
    "reply_knowledge",
    "reply_count",
    "name",
    "company",
)
CASE_KEYS = ("id", "messages", "expect", "region", "note")
IN_MEMORY = "sqlite://"
# Cases whose messages carry no time run on a fixed weekday morning, so that a result never
# depends on when the eval runs (opening hours change the replies).
REFERENCE_TIME = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="replay labelled conversations and check the outcomes (test a prompts change)",
        description="Replay labelled conversations (JSON lines: id, messages, expect) through the "
        "bot, each in a fresh in-memory database, and report which outcomes matched. Exit 1 when "
        "any case fails.",
    )
    parser.add_argument(
        "cases",
        nargs="*",
        metavar="CASES.jsonl",
        help="case files, or directories of .jsonl files (e.g. prompts/eval; with --copilot "
        "the default is the prompts directory's eval/copilot)",
    )
    parser.add_argument(
        "--copilot",
        action="store_true",
        help="evaluate the agents' copilot instead of the bot: labelled chats on a seeded desk "
        "of leads and agents (eval/copilot/desk.yaml)",
    )
    parser.add_argument(
        "--prompts",
        metavar="DIR",
        default=None,
        help="prompts directory to test (default: LEADDESK_PROMPTS_DIR)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"cases": [...], "summary": {...}} as JSON',
    )
    parser.add_argument(
        "--region",
        metavar="CC",
        default=None,
        help="region for national phone numbers when a case sets none "
        "(default: LEADDESK_DEFAULT_REGION)",
    )
    parser.set_defaults(func=run_eval)


# --------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    id: str
    file: str
    line: int
    messages: list[Any] = field(default_factory=list)  # ReplayLine
    expect: dict[str, Any] = field(default_factory=dict)
    region: str | None = None
    problems: list[str] = field(default_factory=list)  # why the case itself is invalid


@dataclass(frozen=True)
class CaseProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """The .jsonl files named, directories expanded (sorted); UserError for a missing path."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.jsonl") if p.is_file())
            if not found:
                raise UserError(f"{path} holds no .jsonl case files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"cannot read {path}: no such file or directory")
    return files


class _CaseLike(Protocol):
    id: str
    problems: list[str]


CaseT = TypeVar("CaseT", bound=_CaseLike)


def read_cases(
    files: Iterable[Path], *, statuses: Iterable[str] | None = None
) -> tuple[list[Case], list[CaseProblem]]:
    """Parse case files; every invalid case is returned with its problems (and also listed as
    `file:line: message`), so that it counts as failed instead of being skipped silently."""
    known_statuses = {s.lower(): s for s in statuses} if statuses is not None else None
    return read_case_files(
        files, lambda file, number, raw: _parse_case(file, number, raw, known_statuses)
    )


def read_case_files(
    files: Iterable[Path], parse: Callable[[str, int, str], CaseT]
) -> tuple[list[CaseT], list[CaseProblem]]:
    """Every case line of the files (blank lines and `#` or `//` comments skipped), parsed by
    `parse(file, line number, text)`; a repeated id is a problem of the later case."""
    cases: list[CaseT] = []
    problems: list[CaseProblem] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith(("#", "//")):
                continue
            case = parse(str(path), number, stripped)
            if case.id in seen:
                case.problems.append(f"the id {case.id!r} is already used at {seen[case.id]}")
            else:
                seen[case.id] = f"{path}:{number}"
            problems.extend(CaseProblem(str(path), number, p) for p in case.problems)
            cases.append(case)
    return cases, problems


def case_object(case: CaseT, raw: str, keys: Sequence[str], what: str) -> dict[str, Any] | None:
    """The case line's JSON object with the case's id taken from it, or None when the line is not
    an object; every problem is noted on the case (`what` names the keys a case needs)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        case.problems.append(f"invalid JSON ({exc.msg} at column {exc.colno})")
        return None
    if not isinstance(data, dict):
        case.problems.append(f"a case must be a JSON object with {what}")
        return None
    for key in data:
        if key not in keys:
            case.problems.append(f"unknown key {key!r}; a case has {', '.join(keys)}")
    if isinstance(data.get("id"), str) and data["id"].strip():
        case.id = data["id"].strip()
    else:
        case.problems.append("missing id (a short unique name for the case)")
    return data


def _parse_case(file: str, number: int, raw: str, known_statuses: dict[str, str] | None) -> Case:
    case = Case(id=f"{Path(file).name}:{number}", file=file, line=number)
    data = case_object(case, raw, CASE_KEYS, "id, messages and expect")
    if data is None:
        return case
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        case.problems.append("messages must be a non-empty list of replay lines")
        messages = []
    for index, message in enumerate(messages, start=1):
        try:
            case.messages.append(parse_line(index, json.dumps(message)))
        except BadLine as exc:
            case.problems.append(f"message {index}: {exc}")
    region = data.get("region")
    if region is not None:
        if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            case.problems.append(f"region {region!r} is not an ISO country code like GB")
        else:
            case.region = region.upper()
    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        case.problems.append("expect must be an object")
        expect = {}
    case.expect = _check_expectations(expect, case.problems, known_statuses)
    return case


def _check_expectations(
    expect: dict[str, Any], problems: list[str], known_statuses: dict[str, str] | None
) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in expect.items():
        if key not in EXPECTATIONS:
            problems.append(f"unknown expectation {key!r}; use {', '.join(EXPECTATIONS)}")
            continue
        if key == "status_in":
            if isinstance(value, str):
                value = [value]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                problems.append("status_in must be a list of status names")
                continue
            names = []
            for name in value:
                if known_statuses is not None and name.lower() not in known_statuses:
                    problems.append(
                        f"status_in: {name!r} is not a status in statuses.yaml "
                        f"({', '.join(known_statuses.values())})"
                    )
                names.append(known_statuses.get(name.lower(), name) if known_statuses else name)
            checked[key] = names
        elif key in ("score_min", "score_max"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                problems.append(f"{key} must be a whole number from 0 to 100")
                continue
            checked[key] = value
        elif key == "reply_count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append("reply_count must be a whole number (how many replies it gets)")
                continue
            checked[key] = value
        elif key in ("name", "company"):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                problems.append(f"{key} must be a text, or null for none")
                continue
            checked[key] = value.strip() if isinstance(value, str) else None
        elif key == "leads":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append("leads must be a whole number (how many leads the case leaves)")
                continue
            checked[key] = value
        elif key == "phone":
            if value is not None and (
                not isinstance(value, str) or not value.startswith("+") or not value[1:].isdigit()
            ):
                problems.append('phone must be an E.164 number like "+34612345678", or null')
                continue
            checked[key] = value
        elif key == "ai_paused":
            if not isinstance(value, bool):
                problems.append("ai_paused must be true or false")
                continue
            checked[key] = value
        elif key == "reply_language":
            if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2,3}", value):
                problems.append('reply_language must be a language code like "es"')
                continue
            checked[key] = value
        elif key == "reply_knowledge":
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.strip() for v in value
            ):
                problems.append("reply_knowledge must be a list of section ids ([] for none)")
                continue
            checked[key] = list(value)
        else:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.strip() for v in value
            ):
                problems.append(f"{key} must be a list of texts")
                continue
            checked[key] = list(value)
    if (
        "score_min" in checked
        and "score_max" in checked
        and checked["score_min"] > checked["score_max"]
    ):
        problems.append("score_min is above score_max")
    return checked


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    id: str
    passed: bool
    problems: list[str]
    # Per expectation kind: whether it held (invalid cases have none).
    checks: dict[str, bool] = field(default_factory=dict)


def reference_time(config: Any) -> datetime:
    """A fixed moment the business is open (so opening hours do not change the outcome)."""
    hours = config.business.hours
    if hours.is_open(REFERENCE_TIME):
        return REFERENCE_TIME
    opening: datetime | None = hours.next_opening(REFERENCE_TIME)
    if opening is None:
        return REFERENCE_TIME
    return opening.astimezone(UTC) + timedelta(minutes=1)


class CaseDatabases:
    """Fresh in-memory databases, each a copy of one migrated template (migrating each case's
    database from scratch would cost more than replaying the case)."""

    def __init__(self) -> None:
        self.template = make_engine(IN_MEMORY)
        upgrade(self.template)

    def fresh(self) -> Any:
        engine = make_engine(IN_MEMORY)
        source = self.template.raw_connection()
        target = engine.raw_connection()
        try:
            source.driver_connection.backup(target.driver_connection)  # type: ignore[union-attr]
        finally:
            target.close()
            source.close()
        return engine

    def close(self) -> None:
        self.template.dispose()


def run_case(
    case: Case,
    *,
    config: Any,
    settings: Settings,
    region: str,
    databases: CaseDatabases,
    model: Any = None,
) -> Outcome:
    """Replay one case into a fresh in-memory database and compare the outcome."""
    if case.problems:
        return Outcome(case.id, False, [f"invalid case: {p}" for p in case.problems])
    clock = ReplayClock()
    clock.current = reference_time(config)
    engine = databases.fresh()
    session_factory = make_session_factory(engine)
    # The same service `leaddesk replay` builds: what the webhooks run, with a local outbox.
    service = BotService(
        session_factory=session_factory,
        prompts=config,
        model=model,
        outbox=LocalOutbox(session_factory),
        clock=clock,
        region=case.region or region,
        takeover_minutes=settings.takeover_minutes,
    )
    replies: list[dict[str, Any]] = []
    try:
        player = Replayer(service, clock)
        for index, line in enumerate(case.messages):
            replies.extend(player.play(line, index=index))
        replies.extend(player.finish())
        leads = lead_report(session_factory, now=clock())
        last = case.messages[-1]
        with session_factory() as session:
            identity = find_identity(last.channel, last.sender, session=session)
            lead = get_lead(identity.lead_id, session=session) if identity else None
            lead_id = lead.id if lead is not None else None
    finally:
        engine.dispose()
    subject = next((item for item in leads if item["id"] == lead_id), None)
    return compare(case, subject=subject, leads=leads, replies=replies)


def compare(
    case: Case,
    *,
    subject: dict[str, Any] | None,
    leads: list[dict[str, Any]],
    replies: list[dict[str, Any]],
) -> Outcome:
    """Check each expectation against the replay's outcome; a problem per unmet one."""
    problems: list[str] = []
    checks: dict[str, bool] = {}
    expect = case.expect

    def check(kind: str, ok: bool, problem: str) -> None:
        checks[kind] = ok
        if not ok:
            problems.append(problem)

    lead_keys = ("status_in", "score_min", "score_max", "phone", "ai_paused", "name", "company")
    if subject is None and any(k in expect for k in lead_keys):
        for kind in lead_keys:
            if kind in expect:
                check(kind, False, f"{kind}: the last sender has no lead")
    elif subject is not None:
        if "status_in" in expect:
            wanted = expect["status_in"]
            check(
                "status_in",
                subject["status"] in wanted,
                f"status is {subject['status']}, expected {' or '.join(wanted)}",
            )
        if "score_min" in expect:
            check(
                "score_min",
                subject["score"] >= expect["score_min"],
                f"score {subject['score']} is below {expect['score_min']}",
            )
        if "score_max" in expect:
            check(
                "score_max",
                subject["score"] <= expect["score_max"],
                f"score {subject['score']} is above {expect['score_max']}",
            )
        if "phone" in expect:
            check(
                "phone",
                subject["phone"] == expect["phone"],
                f"phone is {subject['phone'] or 'none'}, expected {expect['phone'] or 'none'}",
            )
        for kind in ("name", "company"):
            if kind in expect:
                check(
                    kind,
                    subject[kind] == expect[kind],
                    f"{kind} is {subject[kind] or 'none'}, expected {expect[kind] or 'none'}",
                )
        if "ai_paused" in expect:
            check(
                "ai_paused",
                subject["ai_paused"] == expect["ai_paused"],
                "the bot is paused, expected it to answer"
                if subject["ai_paused"]
                else "the bot still answers, expected a pause",
            )
    if "reply_count" in expect:
        check(
            "reply_count",
            len(replies) == expect["reply_count"],
            f"{len(replies)} reply(ies), expected {expect['reply_count']}",
        )
    if "leads" in expect:
        check(
            "leads",
            len(leads) == expect["leads"],
            f"{len(leads)} lead(s), expected {expect['leads']}",
        )
    if "reply_contains" in expect:
        last = normalize(replies[-1]["text"]) if replies else ""
        missing = [t for t in expect["reply_contains"] if normalize(t) not in last]
        check(
            "reply_contains",
            not missing,
            ("no reply at all" if not replies else "the last reply lacks ")
            + (", ".join(repr(t) for t in missing) if replies else ""),
        )
    if "reply_must_not_contain" in expect:
        last = normalize(replies[-1]["text"]) if replies else ""
        found = [t for t in expect["reply_must_not_contain"] if normalize(t) in last]
        check(
            "reply_must_not_contain",
            not found,
            "the last reply contains " + ", ".join(repr(t) for t in found),
        )
    if "reply_language" in expect:
        written = replies[-1].get("language") if replies else None
        check(
            "reply_language",
            written == expect["reply_language"],
            f"the last reply is in {written or 'no language (no reply)'}, "
            f"expected {expect['reply_language']}",
        )
    if "reply_knowledge" in expect:
        used = list(replies[-1].get("knowledge") or []) if replies else []
        wanted = expect["reply_knowledge"]
        ok = (not used) if not wanted else all(section in used for section in wanted)
        check(
            "reply_knowledge",
            ok and bool(replies),
            f"the last reply used sections {used or 'none'}, expected {wanted or 'none'}",
        )
    return Outcome(case.id, not problems, problems, checks)


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    by_expectation: dict[str, dict[str, Any]] = {}
    for kind in EXPECTATIONS:
        results = [o.checks[kind] for o in outcomes if kind in o.checks]
        if not results:
            continue
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
    cases: list[Case], *, config: Any, settings: Settings, region: str
) -> tuple[list[Outcome], dict[str, Any]]:
    """Run every case (with the model when one is configured, else the offline engine)."""
    model = make_chat_model(settings)
    databases = CaseDatabases()
    try:
        outcomes = [
            run_case(
                case,
                config=config,
                settings=settings,
                region=region,
                databases=databases,
                model=model,
            )
            for case in cases
        ]
    finally:
        databases.close()
    return outcomes, summarize(outcomes)


# --------------------------------------------------------------------------------------------
# The command


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    config = load_checked_prompts(args.prompts, settings)
    region = _region(args.region, settings)
    if getattr(args, "copilot", False):
        # An import cycle: copilot_eval builds on this module's case readers.
        from leaddesk.cli.copilot_eval import run_copilot_eval  # noqa: PLC0415 - import cycle

        return run_copilot_eval(args, settings, config, region=region)
    if not args.cases:
        raise UserError("name the case files or directories (e.g. prompts/eval)")
    files = case_files(args.cases)
    cases, problems = read_cases(files, statuses=config.status_names)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not cases:
        raise UserError("no cases found (one JSON object per line: id, messages, expect)")
    # Per-message notes (e.g. "no agent available" in an empty database) are noise here.
    # Quieted only for the run: the levels are process-wide and put back afterwards.
    quieted = {name: logging.getLogger(name).level for name in ("bot", "store", "alembic")}
    print(f"engine: {engine_name(settings)}", file=sys.stderr if args.json else sys.stdout)
    try:
        for name in quieted:
            logging.getLogger(name).setLevel(logging.ERROR)
        outcomes, summary = evaluate(cases, config=config, settings=settings, region=region)
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


def print_table(outcomes: list[Outcome], summary: dict[str, Any]) -> None:
    width = max([4, *(len(o.id) for o in outcomes)])
    print(f"{'case'.ljust(width)}  result  why")
    for outcome in outcomes:
        result = "pass" if outcome.passed else "FAIL"
        why = "; ".join(outcome.problems) if outcome.problems else "-"
        print(f"{outcome.id.ljust(width)}  {result:<6}  {why}")
    print("\nAccuracy per expectation")
    for kind, counts in summary["by_expectation"].items():
        print(
            f"  {kind:<24} {counts['passed']:>4}/{counts['total']:<4} "
            f"{100 * counts['accuracy']:5.1f}%"
        )
    total = summary["total"]
    share = 100 * summary["passed"] / total if total else 0.0
    print(f"\n{summary['passed']}/{total} cases passed ({share:.1f}%)")
