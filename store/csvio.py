"""CSV export and import of leads, shared by the CLI and the REST API.

Export streams rows from one read snapshot (never all leads in memory). Import creates or merges
leads with the same deduplication rules as the channels (`store.leads.resolve_contact`), each row
in its own savepoint so that a bad row is rejected whole and never stops the others.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import func, select, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.contacts import InvalidContact, normalize_email, normalize_phone
from store.db import read_session
from store.domain.errors import Invalid
from store.leads import resolve_contact, update_lead
from store.models import Agent, Identity, Lead, Note
from store.query import LeadQuery, build_lead_query, order_leads
from store.tenancy import current_workspace
from store.text import clean_text
from store.work import add_note

log = logging.getLogger(__name__)

EXPORT_HEADER: tuple[str, ...] = (
    "id",
    "name",
    "email",
    "phone",
    "company",
    "status",
    "score",
    "assigned_agent",
    "channels",
    "created_at",
    "last_contacted_at",
)
IMPORT_COLUMNS: tuple[str, ...] = ("name", "email", "phone", "company", "status", "source", "note")
# Columns an export writes that an import cannot set (they are computed or owned by the store).
EXPORT_ONLY_COLUMNS: tuple[str, ...] = tuple(c for c in EXPORT_HEADER if c not in IMPORT_COLUMNS)
_DEFAULT_STATUS = "New"
_LIMITS = {"name": 200, "company": 200, "status": 60, "source": 100, "note": 10000}
# Spreadsheets run a cell that starts with one of these as a formula: a customer who calls
# themselves "=HYPERLINK(...)" must not get code executed on an agent's machine.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A spreadsheet in a semicolon (or comma) locale splits an unquoted cell at these, and a piece that
# then starts with a formula character runs too: "Ann;=cmd|' /C calc'!A0".
_INNER_FORMULA = re.compile(r"([,;] *)(?=[=+\-@\t\r])")
_INNER_DEFUSED = re.compile(r"([,;] *)'(?=[=+\-@\t\r])")
# Quoted on export: what splits a cell in any spreadsheet locale, quotes and line breaks.
_NEEDS_QUOTES = re.compile(r'[,;"\r\n]')


class CsvImportError(ValueError):
    """The file as a whole cannot be imported (no header, not UTF-8, nothing recognisable)."""

    def __init__(self, message: str, report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    rows: int
    columns: list[str]


def custom_field_keys(session: Session) -> list[str]:
    """Every custom field name used by any lead of the workspace in force, sorted (one SQL
    query, no rows loaded)."""
    dialect = session.get_bind().dialect.name
    # Text SQL escapes the session's workspace filter: it says the workspace itself.
    workspace = {"workspace_id": current_workspace()}
    if dialect == "sqlite":
        rows = session.execute(
            text(
                "SELECT DISTINCT j.key FROM leads, json_each(leads.custom_fields) AS j "
                "WHERE json_type(leads.custom_fields) = 'object' "
                "AND leads.workspace_id = :workspace_id"
            ),
            workspace,
        )
    elif dialect == "postgresql":
        rows = session.execute(
            text(
                "SELECT DISTINCT json_object_keys(custom_fields) FROM leads "
                "WHERE json_typeof(custom_fields) = 'object' AND workspace_id = :workspace_id"
            ),
            workspace,
        )
    else:  # pragma: no cover - other backends: a streamed pass over the column
        keys: set[str] = set()
        for value in session.scalars(select(Lead.custom_fields).execution_options(yield_per=2000)):
            keys.update((value or {}).keys())
        return sorted(keys)
    return sorted(str(key) for (key,) in rows)


def export_columns(session: Session, custom_fields: Sequence[str] = ()) -> list[str]:
    """The export header: fixed columns, the defined custom fields, then any other key in use."""
    defined = [name for name in custom_fields if name not in EXPORT_HEADER]
    used = [
        key for key in custom_field_keys(session) if key not in defined and key not in EXPORT_HEADER
    ]
    return [*EXPORT_HEADER, *defined, *used]


def export_leads(
    out: TextIO,
    query: LeadQuery,
    *,
    session_factory: sessionmaker[Session],
    custom_fields: Sequence[str] = (),
    batch_size: int = 1000,
    now: datetime | None = None,
) -> ExportReport:
    """Write every lead matching `query` (its filters and sort; paging ignored) as CSV to `out`."""
    report = ExportReport(rows=0, columns=[])
    for chunk in iter_export(
        query,
        session_factory=session_factory,
        custom_fields=custom_fields,
        batch_size=batch_size,
        now=now,
        report=report,
    ):
        out.write(chunk)
    return report


def iter_export(
    query: LeadQuery,
    *,
    session_factory: sessionmaker[Session],
    custom_fields: Sequence[str] = (),
    batch_size: int = 1000,
    now: datetime | None = None,
    report: ExportReport | None = None,
) -> Iterator[str]:
    """The export as chunks of CSV text (about `batch_size` rows each), for a streamed response.

    One read snapshot stays open while the consumer iterates; it never takes the write lock.
    `report`, when given, is filled in as the rows go out.
    """
    report = report if report is not None else ExportReport(rows=0, columns=[])
    buffer = _ChunkWriter()
    writer = _CsvWriter(buffer)
    with read_session(session_factory) as session:
        report.columns = export_columns(session, custom_fields)
        writer.writerow(report.columns)
        extra = report.columns[len(EXPORT_HEADER) :]
        agents = dict(session.execute(select(Agent.id, Agent.name)).all())
        # Only the exported columns, as plain rows: no ORM objects to build and forget, and no
        # JSON to decode but the custom fields.
        stmt = order_leads(build_lead_query(query, now=now), query.sort)
        stmt = stmt.with_only_columns(*_EXPORT_COLUMNS).execution_options(yield_per=batch_size)
        for partition in session.execute(stmt).partitions():
            channels = _channels(session, [row.id for row in partition])
            for row in partition:
                writer.writerow(_export_row(row, channels.get(row.id, ()), agents, extra))
                report.rows += 1
            yield buffer.take()
    rest = buffer.take()
    if rest:
        yield rest


class _CsvWriter:
    """Comma-separated rows like `csv.writer`, also quoting every cell that holds a semicolon.

    `csv.writer` quotes only what splits a cell with its own delimiter; Excel in a semicolon
    locale opens the same file split at `;` and would run a formula in the middle of a cell.
    """

    def __init__(self, out: _ChunkWriter) -> None:
        self._out = out

    def writerow(self, cells: Sequence[str]) -> None:
        self._out.write(",".join(_quoted(cell) for cell in cells) + "\r\n")


def _quoted(cell: str) -> str:
    if _NEEDS_QUOTES.search(cell):
        return '"' + cell.replace('"', '""') + '"'
    return cell


class _ChunkWriter:
    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, value: str) -> int:
        self._parts.append(value)
        return len(value)

    def take(self) -> str:
        chunk = "".join(self._parts)
        self._parts.clear()
        return chunk


_EXPORT_COLUMNS = (
    Lead.id,
    Lead.name,
    Lead.email,
    Lead.phone,
    Lead.company,
    Lead.status,
    Lead.score,
    Lead.assigned_agent_id,
    Lead.created_at,
    Lead.last_contacted_at,
    Lead.custom_fields,
)


def _channels(session: Session, lead_ids: list[int]) -> dict[int, list[str]]:
    """The sorted channels of each of these leads (one query per batch)."""
    found: dict[int, set[str]] = {}
    if lead_ids:
        rows = session.execute(
            select(Identity.lead_id, Identity.channel).where(Identity.lead_id.in_(lead_ids))
        )
        for lead_id, channel in rows:
            found.setdefault(lead_id, set()).add(channel)
    return {lead_id: sorted(names) for lead_id, names in found.items()}


def _export_row(
    row: Any, channels: Sequence[str], agents: dict[int, str], extra: Sequence[str]
) -> list[str]:
    custom = row.custom_fields if isinstance(row.custom_fields, dict) else {}
    return [
        str(row.id),
        _cell(row.name),
        _cell(row.email),
        row.phone or "",  # E.164 is validated; its "+" must stay as it is.
        _cell(row.company),
        _cell(row.status),
        str(row.score),
        _cell(agents.get(row.assigned_agent_id) if row.assigned_agent_id else None),
        ";".join(channels),
        _timestamp(row.created_at),
        _timestamp(row.last_contacted_at),
        *(_cell(_custom_value(custom.get(key))) for key in extra),
    ]


def _timestamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _custom_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cell(value: str | None) -> str:
    """Defuse a formula at the start of the cell and after every `,` or `;` inside it."""
    if not value:
        return ""
    value = _INNER_FORMULA.sub(r"\1'", value)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _uncell(value: str) -> str:
    """Undo `_cell`: an exported file imports back to the values it came from."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_START):
        value = value[1:]
    return _INNER_DEFUSED.sub(r"\1", value)


# --------------------------------------------------------------------------- import


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did; `rows` counts data rows read (blank lines are not rows)."""

    rows: int = 0
    created: int = 0
    merged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    custom_columns: list[str] = field(default_factory=list)
    delimiter: str = ","

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected_count"] = len(self.rejected)
        return data


class _Rejected(Exception):
    """Raised inside a row's savepoint to undo everything the row did."""


@dataclass
class _Columns:
    index: dict[str, int]  # recognised import column -> position
    custom: dict[str, int]  # custom field name -> position
    width: int


def import_leads(
    stream: Iterable[str],
    *,
    session_factory: sessionmaker[Session],
    region: str = "US",
    custom_fields: Sequence[str] = (),
    statuses: Sequence[str] | None = None,
    lost_statuses: Sequence[str] = (),
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
    actor: str = "import",
    agent_id: int | None = None,
    file_name: str | None = None,
) -> ImportReport:
    """Import leads from CSV text (`stream`: an open text file or any iterable of lines).

    The header row names the columns: `name, email, phone, company, status, source, note`, the
    custom fields (those in `custom_fields`, those already used by leads, and the columns after
    the fixed ones of a Leaddesk export), case-insensitive. Other columns are reported in
    `unknown_columns` and skipped. Each row creates a lead or merges into the lead that owns its
    phone or email: empty fields of that lead are filled, existing values are kept, the status is
    applied to new leads and to leads still `New`, a note is added unless the lead already has it.
    `statuses`, when given, is the list of valid statuses (matched case-insensitively); a row in
    one of `lost_statuses` is rejected (a lost status needs a reason a person gives). An import
    is an admin's deliberate act: it merges on its own details, whoever owns the leads (the other
    owner is told), and each merge's audit names `file_name`. Emails match whatever their case.
    Raises CsvImportError (nothing written) when the header is missing or unusable.
    """
    report = ImportReport()
    lines = iter(stream)
    try:
        first = next(lines, "")
    except UnicodeDecodeError:
        raise CsvImportError(
            'line 1: the file is not UTF-8 text (save it as "CSV UTF-8")'
        ) from None
    first = first.lstrip("\ufeff")
    if not first.strip():
        raise CsvImportError(
            "the file is empty: the first line must be a header row (e.g. name,email,phone)"
        )
    with read_session(session_factory) as session:
        known_custom = [*custom_fields, *custom_field_keys(session)]
    report.delimiter, header = _read_header(first, known_custom)
    columns = _map_columns(header, known_custom, report)
    reader = csv.reader(itertools.chain([first], lines), delimiter=report.delimiter)
    next(reader)  # the header, already read
    canonical_status = {s.lower(): s for s in statuses} if statuses is not None else None

    rows = _numbered_rows(reader, report)
    done = 0
    while True:
        batch = list(itertools.islice(rows, batch_size))
        if not batch:
            break
        # One short transaction per batch; one savepoint per row inside it.
        with session_factory.begin() as session:
            for line, row in batch:
                try:
                    with session.begin_nested():
                        created = _import_row(
                            row,
                            columns,
                            session=session,
                            region=region,
                            statuses=canonical_status,
                            lost={name.lower() for name in lost_statuses},
                            actor=actor,
                            agent_id=agent_id,
                            reason=f"import of {file_name}" if file_name else "import",
                        )
                except (_Rejected, InvalidContact, Invalid) as exc:
                    report.rejected.append(Rejection(line, str(exc)))
                except (IntegrityError, DataError) as exc:
                    log.warning("import row at line %s refused by the database: %s", line, exc.orig)
                    report.rejected.append(
                        Rejection(line, f"refused by the database: {_first_line(exc.orig)}")
                    )
                else:
                    if created:
                        report.created += 1
                    else:
                        report.merged += 1
                done += 1
                if progress is not None:
                    progress(done)
    return report


def _first_line(value: Any) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else "unknown error"


def _numbered_rows(reader: Any, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, cells) for each non-blank data row."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise CsvImportError(
                f'line {start}: the file is not UTF-8 text (save it as "CSV UTF-8"); '
                f"rows before this line were imported",
                report,
            ) from None
        except csv.Error as exc:
            raise CsvImportError(
                f"line {start}: unreadable CSV ({exc}); rows before this line were imported", report
            ) from None
        row = [clean_text(cell) for cell in row]
        if not row or all(not cell.strip() for cell in row):
            continue
        report.rows += 1
        yield start, row


def _read_header(first: str, known_custom: Sequence[str]) -> tuple[str, list[str]]:
    """Pick the delimiter (comma, semicolon or tab) that makes the most sense of the header."""
    known = {c.lower() for c in (*IMPORT_COLUMNS, *EXPORT_HEADER, *known_custom)}
    best: tuple[int, int, str, list[str]] | None = None
    for delimiter in (",", ";", "\t"):
        header = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
        cells = [clean_text(cell).strip() for cell in header]
        score = (sum(1 for cell in cells if cell.lower() in known), len(cells))
        if best is None or score > best[:2]:
            best = (*score, delimiter, cells)
    assert best is not None
    return best[2], best[3]


def _map_columns(header: list[str], known_custom: Sequence[str], report: ImportReport) -> _Columns:
    lowered = [cell.lower() for cell in header]
    by_lower_custom = {name.lower(): name for name in known_custom}
    # A Leaddesk export: every column after the fixed ones is a custom field.
    is_export = tuple(lowered[: len(EXPORT_HEADER)]) == EXPORT_HEADER
    index: dict[str, int] = {}
    custom: dict[str, int] = {}
    seen: set[str] = set()
    for position, (cell, low) in enumerate(zip(header, lowered, strict=True)):
        if not cell:
            report.unknown_columns.append(f"(column {position + 1} has no name)")
            continue
        if low in seen:
            raise CsvImportError(f"line 1: column {cell!r} appears twice in the header")
        seen.add(low)
        if low in IMPORT_COLUMNS:
            index[low] = position
        elif low in EXPORT_ONLY_COLUMNS:
            report.ignored_columns.append(cell)
        elif low in by_lower_custom:
            custom[by_lower_custom[low]] = position
        elif is_export and position >= len(EXPORT_HEADER):
            custom[cell] = position
        else:
            report.unknown_columns.append(cell)
    if not index and not custom:
        raise CsvImportError(
            "line 1: no recognised column in the header; use name, email, phone, company, status, "
            "source, note or a custom field name"
        )
    report.custom_columns = list(custom)
    return _Columns(index=index, custom=custom, width=len(header))


def _import_row(
    row: list[str],
    columns: _Columns,
    *,
    session: Session,
    region: str,
    statuses: dict[str, str] | None,
    lost: set[str],
    actor: str,
    agent_id: int | None,
    reason: str,
) -> bool:
    """Create or merge the row's lead; raise to reject it. Returns whether a lead was created."""
    if len(row) > columns.width:
        raise _Rejected(f"{len(row)} values but the header has {columns.width} columns")

    def cell(position: int) -> str:
        return _uncell(row[position].strip()) if position < len(row) else ""

    values = {name: cell(position) for name, position in columns.index.items()}
    for column, limit in _LIMITS.items():
        if len(values.get(column, "")) > limit:
            raise _Rejected(f"{column} is longer than {limit} characters")
    name, email, phone = values.get("name"), values.get("email"), values.get("phone")
    company, status, source = values.get("company"), values.get("status"), values.get("source")
    if not (name or email or phone or company):
        raise _Rejected("the row needs a name, an email, a phone or a company")
    if status and statuses is not None:
        if status.lower() not in statuses:
            raise _Rejected(
                f"unknown status {status!r}; use one of: {', '.join(statuses.values())}"
            )
        status = statuses[status.lower()]
    if status and status.lower() in lost:
        raise _Rejected(
            f"status {status!r} needs a reason: import the lead, then set it in the console, "
            "the API or the copilot with its reason"
        )
    try:
        phone = normalize_phone(phone, region) if phone else None
    except InvalidContact as exc:
        raise _Rejected(f"phone {phone!r}: {exc}") from None
    try:
        email = normalize_email(email) if email else None
    except InvalidContact as exc:
        raise _Rejected(f"email {email!r}: {exc}") from None
    lead, created = resolve_contact(
        phone,
        email,
        name or None,
        session=session,
        region=region,
        source=source or actor,
        actor=actor,
        agent_id=agent_id,
        reason=reason,
    )
    if lead.locked:
        raise _Rejected(f"matches lead {lead.id}, which is converted and read-only")

    changes: dict[str, Any] = {}
    if company and not lead.company:
        changes["company"] = company
    if source and not created and not lead.source:
        changes["source"] = source
    if status and (created or lead.status == _DEFAULT_STATUS) and status != lead.status:
        changes["status"] = status
    custom = dict(lead.custom_fields or {})
    for key, position in columns.custom.items():
        value = cell(position)
        if value and custom.get(key) in (None, ""):
            custom[key] = _parse_custom(value)
    if custom != (lead.custom_fields or {}):
        changes["custom_fields"] = custom
    if changes:
        update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id)
    note = values.get("note")
    if note and not _has_note(session, lead.id, note):
        add_note(lead, note, session=session, author=actor)
    return created


def _parse_custom(value: str) -> Any:
    """JSON lists and objects (as an export writes them) come back as such; the rest stays text."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _has_note(session: Session, lead_id: int, note: str) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(Note)
            .where(Note.lead_id == lead_id, Note.text == note.strip())
        )
    )
