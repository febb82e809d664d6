"""`leaddesk leads list|show|export|import`: the lead store from the terminal."""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import phonenumbers
from sqlalchemy import func, select

from leaddesk.cli.common import (
    UserError,
    int_in,
    lower_bound,
    moment,
    open_store,
    print_json,
    table,
    upper_bound,
)
from leaddesk.settings import Settings
from store import identity as identity_rules
from store.agents import find_agent
from store.csvio import CsvImportError, ImportReport, export_leads, import_leads
from store.db import read_session
from store.leads import LeadNotFound, get_lead
from store.models import CHANNELS, Conversation, Lead, Message
from store.query import SORT_KEYS, LeadQuery, count_leads, query_leads
from store.work import audit_trail, list_notes, score_history


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    leads = subparsers.add_parser(
        "leads",
        help="list, show, export and import leads",
        description="List, show, export and import leads.",
    )
    sub = leads.add_subparsers(dest="leads_command", metavar="ACTION")
    sub.required = True

    ls = sub.add_parser(
        "list",
        help="list leads matching filters",
        description="List one page of the leads matching the filters.",
    )
    _add_filters(ls)
    ls.add_argument(
        "--limit", type=int_in(1, 1000), default=50, help="page size (default 50, at most 1000)"
    )
    ls.add_argument("--offset", type=int_in(0, 10**9), default=0, help="skip this many leads")
    ls.add_argument("--json", action="store_true", help="print a JSON array of leads")
    ls.set_defaults(func=run_list)

    show = sub.add_parser(
        "show",
        help="show one lead with its identities, notes and history",
        description="Show one lead: profile, identities, conversations, notes, "
        "score history and audit trail. A merged-away id shows the "
        "lead it was merged into.",
    )
    show.add_argument("lead_id", metavar="ID", type=int_in(1, 2**31 - 1), help="the lead's id")
    show.add_argument("--json", action="store_true", help="print the lead as JSON")
    show.set_defaults(func=run_show)

    export = sub.add_parser(
        "export",
        help="export leads matching filters as CSV",
        description="Stream the leads matching the filters as CSV (header: id, name, email, phone, "
        "company, status, score, assigned_agent, channels, created_at, "
        "last_contacted_at, then one column per custom field).",
    )
    _add_filters(export)
    export.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write to FILE (replaced only once the export is complete); default stdout",
    )
    export.set_defaults(func=run_export)

    imp = sub.add_parser(
        "import",
        help="create or merge leads from a CSV file",
        description="Import leads from a CSV file with a header row. Recognised columns: name, "
        "email, phone, company, status, source, note, and custom field names; other "
        "columns are reported and skipped. A row whose phone or email belongs to a lead "
        "merges into it (empty fields are filled); a bad row is rejected with its line "
        "number and never stops the others.",
    )
    imp.add_argument(
        "file", metavar="FILE.csv", help="the CSV file (UTF-8; comma, semicolon or tab separated)"
    )
    imp.add_argument(
        "--region",
        help="country for national-format phone numbers (default LEADDESK_DEFAULT_REGION)",
    )
    imp.add_argument(
        "--custom-field",
        dest="custom_fields",
        action="append",
        default=[],
        metavar="NAME",
        help="treat column NAME as a custom field (repeatable); columns already used as "
        "custom fields and those of a Leaddesk export are recognised anyway",
    )
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(func=run_import)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="only these statuses (repeatable or comma-separated)",
    )
    group.add_argument("--min-score", type=int_in(0, 100), metavar="N", help="score at least N")
    group.add_argument("--max-score", type=int_in(0, 100), metavar="N", help="score at most N")
    group.add_argument("--hot", action="store_true", help="only hot leads (score >= 75)")
    who = group.add_mutually_exclusive_group()
    who.add_argument("--agent", metavar="AGENT", help="assigned to this agent (id, email or name)")
    who.add_argument("--unassigned", action="store_true", help="only leads nobody is assigned to")
    group.add_argument(
        "--channel",
        action="append",
        default=[],
        choices=CHANNELS,
        help="with an identity on this channel (repeatable)",
    )
    group.add_argument(
        "--created-from",
        type=moment,
        metavar="WHEN",
        help="created at or after (date or date-time, UTC)",
    )
    group.add_argument(
        "--created-to",
        type=moment,
        metavar="WHEN",
        help="created before (a date includes that whole day)",
    )
    group.add_argument(
        "--contacted-from", type=moment, metavar="WHEN", help="last contact at or after"
    )
    group.add_argument(
        "--contacted-to",
        type=moment,
        metavar="WHEN",
        help="last contact before (a date includes that whole day)",
    )
    group.add_argument(
        "--stale",
        type=int_in(0, 36500),
        metavar="DAYS",
        help="no contact for DAYS days and not in a terminal status",
    )
    archived = group.add_mutually_exclusive_group()
    archived.add_argument("--archived", action="store_true", help="only archived leads")
    archived.add_argument(
        "--include-archived", action="store_true", help="archived and active leads"
    )
    group.add_argument(
        "--search",
        metavar="TEXT",
        help="text in name, email or company, or a phone number in any format",
    )
    group.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="-created_at",
        metavar="KEY",
        help="created_at, score, last_contacted_at, name or id; descending with "
        "--desc or a leading '-' written as --sort=-score (default: newest first)",
    )
    group.add_argument("--desc", action="store_true", help="sort descending")


def _definitions(
    settings: Settings, *, strict: bool
) -> tuple[list[str], list[str] | None, list[str]]:
    """The admin-defined custom field names, statuses and lost statuses (which ask for a reason)
    from the prompts directory.

    `strict` (import): files that do not validate are a user error, since statuses could not be
    checked. Otherwise (export) a warning, and the export uses the custom fields found on leads.
    """
    # Imported here: the bot package brings LangGraph, which `leads list` does not need.
    from bot.config import PromptError, load_prompts  # noqa: PLC0415 - brings LangGraph

    try:
        config = load_prompts(settings.prompts_dir)
    except PromptError as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid prompts"
        if strict:
            raise UserError(
                f"the prompts in {settings.prompts_dir} do not validate ({problem}); "
                "fix them first (leaddesk prompts check)"
            ) from None
        print(
            f"leaddesk: warning: prompts not loaded ({problem}); "
            "exporting the custom fields in use",
            file=sys.stderr,
        )
        return [], None, []
    return (
        [f.name for f in config.custom_fields],
        [s.name for s in config.statuses] or None,
        [s.name for s in config.statuses if s.asks_reason],
    )


def terminal_statuses(settings: Settings) -> tuple[str, ...]:
    """The configured terminal statuses: `--stale` leaves them out and capacity does not count
    them. A user error when the prompts do not validate."""
    # Imported here: the bot package brings LangGraph, which most lead commands do not need.
    from bot.config import PromptError, load_prompts  # noqa: PLC0415 - brings LangGraph

    try:
        return load_prompts(settings.prompts_dir).terminal_statuses
    except PromptError:
        raise UserError(
            f"the prompts in {settings.prompts_dir} do not validate, so the terminal statuses are "
            "unknown; fix them first (leaddesk prompts check)"
        ) from None


def _query(args: argparse.Namespace, settings: Settings, session_factory: Any) -> LeadQuery:
    if (
        args.min_score is not None
        and args.max_score is not None
        and args.min_score > args.max_score
    ):
        raise UserError(f"--min-score {args.min_score} is above --max-score {args.max_score}")
    agent_id: int | None = None
    if args.agent:
        with read_session(session_factory) as session:
            agent = find_agent(args.agent, session=session)
            if agent is None:
                raise UserError(
                    f"no agent matches {args.agent!r} (use an id, an email or an exact name)"
                )
            agent_id = agent.id
    statuses = _stored_statuses(
        session_factory, [s.strip() for value in args.status for s in value.split(",") if s.strip()]
    )
    return LeadQuery(
        status=statuses,
        score_min=args.min_score,
        score_max=args.max_score,
        hot=args.hot,
        agent_id=agent_id,
        unassigned=args.unassigned,
        channel=list(dict.fromkeys(args.channel)),
        created_from=lower_bound(args.created_from),
        created_to=upper_bound(args.created_to),
        contacted_from=lower_bound(args.contacted_from),
        contacted_to=upper_bound(args.contacted_to),
        stale_days=args.stale,
        terminal_statuses=terminal_statuses(settings) if args.stale is not None else (),
        archived=True if args.archived else (None if args.include_archived else False),
        search=args.search,
        sort=f"-{args.sort}" if args.desc and not args.sort.startswith("-") else args.sort,
        limit=getattr(args, "limit", 50),
        offset=getattr(args, "offset", 0),
    )


def _stored_statuses(session_factory: Any, wanted: list[str]) -> list[str]:
    """The statuses as stored, matched ignoring case (`--status interested` finds Interested)."""
    if not wanted:
        return []
    with read_session(session_factory) as session:
        stored = list(session.scalars(select(Lead.status).distinct()))
    lowered = {w.lower() for w in wanted}
    return sorted({*wanted, *(s for s in stored if s.lower() in lowered)})


def lead_dict(lead: Lead) -> dict[str, Any]:
    """Every column of the lead, plus its channels and the assigned agent's name."""
    data: dict[str, Any] = {
        column.key: getattr(lead, column.key) for column in Lead.__table__.columns
    }
    data["channels"] = lead.channels
    data["assigned_agent"] = lead.assigned_agent.name if lead.assigned_agent else None
    data["hot"] = lead.is_hot
    return data


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory:
        q = _query(args, settings, session_factory)
        with read_session(session_factory) as session:
            leads = query_leads(q, session=session)
            rows = [lead_dict(lead) for lead in leads]
            total = count_leads(q, session=session) if not args.json else None
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no leads match" if total == 0 else f"no leads on this page ({total} match)")
        return 0
    cells = [
        [
            str(r["id"]),
            (r["name"] or "")[:30],
            r["phone"] or "",
            (r["email"] or "")[:32],
            r["status"],
            str(r["score"]),
            r["assigned_agent"] or "-",
            ",".join(r["channels"]),
            _when(r["last_contacted_at"]),
        ]
        for r in rows
    ]
    print(
        table(
            cells,
            [
                "ID",
                "NAME",
                "PHONE",
                "EMAIL",
                "STATUS",
                "SCORE",
                "AGENT",
                "CHANNELS",
                "LAST CONTACT",
            ],
        )
    )
    first = q.offset + 1
    print(
        f"\n{first}-{q.offset + len(rows)} of {total}"
        + (
            f"; next page: --offset {q.offset + len(rows)}"
            if q.offset + len(rows) < (total or 0)
            else ""
        )
    )
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as session_factory, read_session(session_factory) as session:
        try:
            lead = get_lead(args.lead_id, session=session)
        except LeadNotFound:
            raise UserError(f"no lead with id {args.lead_id}") from None
        data = lead_dict(lead)
        data["identities"] = [
            {
                "channel": i.channel,
                "external_id": i.external_id,
                "display_name": i.display_name,
                "trust": i.trust,
                "created_at": i.created_at,
            }
            for i in lead.identities
        ]
        data["phone_trust"] = identity_rules.detail_trust(lead, "phone", session=session)
        data["email_trust"] = identity_rules.detail_trust(lead, "email", session=session)
        data["contacts"] = [
            {"kind": c.kind, "value": c.value, "trust": c.trust, "source": c.source}
            for c in lead.contacts
        ]
        data["merge_suggestions"] = [
            {"other_lead_id": s.other_lead_id, "reason": s.reason}
            for s in identity_rules.open_suggestions(lead, session=session)
        ]
        message_counts = dict(
            session.execute(
                select(Message.conversation_id, func.count())
                .join(Conversation)
                .where(Conversation.lead_id == lead.id)
                .group_by(Message.conversation_id)
            ).all()
        )
        data["conversations"] = [
            {
                "id": c.id,
                "channel": c.channel,
                "trust": identity_rules.conversation_trust(c, session=session),
                "messages": message_counts.get(c.id, 0),
                "last_inbound_at": c.last_inbound_at,
                "summary": c.summary,
            }
            for c in lead.conversations
        ]
        data["notes"] = [
            {
                "id": n.id,
                "category": n.category,
                "author": n.author,
                "text": n.text,
                "created_at": n.created_at,
            }
            for n in list_notes(lead.id, session=session)
        ]
        data["score_history"] = [
            {
                "score": e.score,
                "previous_score": e.previous_score,
                "factors": e.factors,
                "engine": e.engine,
                "created_at": e.created_at,
            }
            for e in score_history(lead.id, session=session)
        ]
        data["audit"] = [
            {
                "actor": a.actor,
                "agent_id": a.agent_id,
                "action": a.action,
                "field": a.field,
                "old": a.old_value,
                "new": a.new_value,
                "created_at": a.created_at,
            }
            for a in audit_trail(lead.id, session=session)
        ]
        merged_from = args.lead_id if lead.id != args.lead_id else None
    if args.json:
        data["requested_id"] = args.lead_id
        print_json(data)
        return 0
    _print_lead(data, merged_from)
    return 0


def _print_lead(data: dict[str, Any], merged_from: int | None) -> None:
    if merged_from is not None:
        print(f"(lead {merged_from} was merged into lead {data['id']})")
    print(f"Lead {data['id']}: {data['name'] or '(no name)'}")
    profile = [
        ("Status", data["status"]),
        ("Score", f"{data['score']}" + (" (hot)" if data["hot"] else "")),
        ("Phone", f"{data['phone']} ({data.get('phone_trust')})" if data["phone"] else None),
        ("Email", f"{data['email']} ({data.get('email_trust')})" if data["email"] else None),
        ("Company", data["company"]),
        ("Agent", data["assigned_agent"]),
        ("Channels", ", ".join(data["channels"])),
        ("Source", data["source"]),
        ("Tags", ", ".join(map(str, data["tags"]))),
        ("Interests", ", ".join(map(str, data["interests"]))),
        ("Objections", ", ".join(map(str, data["objections"]))),
        ("Summary", data["summary"]),
        ("Next action", data["next_best_action"]),
        (
            "AI",
            "stopped"
            if data["ai_stopped"]
            else (
                f"paused until {_when(data['ai_paused_until'])}"
                if data["ai_paused_until"]
                else "active"
            ),
        ),
        ("Archived", "yes" if data["archived"] else None),
        ("Created", _when(data["created_at"])),
        ("Last contact", _when(data["last_contacted_at"])),
    ]
    for key, value in profile:
        if value:
            print(f"  {key + ':':<13} {value}")
    for key, value in sorted((data["custom_fields"] or {}).items()):
        print(f"  {key + ':':<13} {value}")
    if data["score_factors"]:
        print("Why this score:")
        for factor in data["score_factors"]:
            if isinstance(factor, dict):
                evidence = f' — "{factor.get("evidence")}"' if factor.get("evidence") else ""
                print(f"  {factor.get('points', 0):+} {factor.get('factor', '')}{evidence}")
    print("Identities:")
    for identity in data["identities"]:
        print(f"  {identity['channel']}: {identity['external_id']} ({identity['trust']})")
    others = [
        c for c in data.get("contacts", []) if c["value"] not in (data["phone"], data["email"])
    ]
    if others:
        print("Other contact details:")
        for c in others:
            print(f"  {c['kind']}: {c['value']} ({c['trust']}, from {c['source']})")
    if data.get("merge_suggestions"):
        print("Merge suggestions:")
        for suggestion in data["merge_suggestions"]:
            print(f"  {suggestion['reason']}")
    if data["conversations"]:
        print("Conversations:")
        for c in data["conversations"]:
            print(
                f"  #{c['id']} {c['channel']} ({c['trust']}): {c['messages']} messages, "
                f"last inbound {_when(c['last_inbound_at'])}"
            )
    if data["notes"]:
        print("Notes:")
        for note in data["notes"]:
            print(
                f"  [{_when(note['created_at'])}] {note['category']} by {note['author']}: "
                f"{note['text']}"
            )
    if data["score_history"]:
        print("Score history:")
        for event in data["score_history"]:
            print(
                f"  [{_when(event['created_at'])}] {event['previous_score']} -> {event['score']} "
                f"({event['engine']})"
            )
    if data["audit"]:
        print("History (newest first):")
        for a in data["audit"][:50]:
            what = a["action"] + (f" {a['field']}" if a["field"] else "")
            change = f": {a['old'] or '-'} -> {a['new'] or '-'}" if a["field"] else ""
            print(f"  [{_when(a['created_at'])}] {a['actor']}: {what}{change}"[:200])
        if len(data["audit"]) > 50:
            print(f"  ... {len(data['audit']) - 50} older entries (use --json for all)")


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    fields, _statuses, _lost = _definitions(settings, strict=False)
    with open_store(settings) as session_factory:
        q = _query(args, settings, session_factory)
        if not args.output:
            try:
                export_leads(sys.stdout, q, session_factory=session_factory, custom_fields=fields)
                sys.stdout.flush()
            except BrokenPipeError:
                # `leaddesk leads export | head`: the reader has all it wanted; no traceback.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        target = Path(args.output)
        partial = target.with_name(target.name + ".partial")
        try:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                report = export_leads(out, q, session_factory=session_factory, custom_fields=fields)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    print(f"exported {report.rows} leads to {target}", file=sys.stderr)
    return 0


class _CountingReader(io.RawIOBase):
    """Counts the bytes read so that the progress bar can show how far through the file we are."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        super().close()
        self._raw.close()

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


class _ProgressBar:
    """A one-line bar on stderr, redrawn at most ten times a second."""

    def __init__(self, counter: _CountingReader, total: int) -> None:
        self._counter, self._total, self._last = counter, max(total, 1), 0.0

    def __call__(self, rows: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        fraction = 1.0 if final else min(self._counter.bytes_read / self._total, 1.0)
        filled = int(fraction * 30)
        sys.stderr.write(
            f"\rimporting [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {rows} rows"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    region = (args.region or settings.default_region).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise UserError(f"--region {args.region!r} is not an ISO country code (e.g. US, GB, SA)")
    fields, statuses, lost_statuses = _definitions(settings, strict=True)
    path = Path(args.file)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - `text.close()` below closes it, via the counter
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    counter = _CountingReader(raw)
    bar = _ProgressBar(counter, os.fstat(raw.fileno()).st_size) if sys.stderr.isatty() else None
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
    try:
        with open_store(settings) as session_factory:
            report = import_leads(
                text,
                session_factory=session_factory,
                region=region,
                custom_fields=[*fields, *args.custom_fields],
                statuses=statuses,
                lost_statuses=lost_statuses,
                progress=bar,
                file_name=path.name,
            )
    except CsvImportError as exc:
        if bar is not None:
            sys.stderr.write("\n")
        if exc.report is not None and exc.report.rows:
            _print_report(path, exc.report, args.json)
        raise UserError(f"{path}: {exc}") from None
    finally:
        text.close()
    if bar is not None:
        bar(report.rows, final=True)
    _print_report(path, report, args.json)
    return 0


def _print_report(path: Path, report: ImportReport, as_json: bool) -> None:
    if as_json:
        print_json({"file": str(path), **report.to_dict()})
        return
    print(
        f"{path}: {report.rows} rows: {report.created} created, {report.merged} merged, "
        f"{len(report.rejected)} rejected"
    )
    for rejection in report.rejected:
        print(f"  line {rejection.line}: {rejection.reason}")
    if report.unknown_columns:
        print(f"unknown columns (skipped): {', '.join(report.unknown_columns)}")
    if report.ignored_columns:
        print(f"columns set by Leaddesk, not imported: {', '.join(report.ignored_columns)}")
    if report.custom_columns:
        print(f"custom fields: {', '.join(report.custom_columns)}")
