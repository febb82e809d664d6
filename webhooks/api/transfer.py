"""CSV export (streamed, same filters as the list) and CSV import (same report as `leaddesk leads import`)."""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from typing import Any, Iterator

from flask import Response, g, request, stream_with_context
from sqlalchemy.orm import selectinload

from store.models import Agent, Lead
from store.query import LeadQuery, build_lead_query
from webhooks.api import catalog, ops, schemas
from webhooks.api.base import endpoint, now
from webhooks.api.leads import _after, _ordered
from webhooks.app import ApiError, services

log = logging.getLogger(__name__)

TAG = "Export and import"
HEADER = ("id", "name", "email", "phone", "company", "status", "score", "assigned_agent", "channels",
          "created_at", "last_contacted_at")
CHUNK = 500
MAX_IMPORT_BYTES = 2 * 1024 * 1024


def export_query(params: schemas.ExportParams, agent: Agent) -> LeadQuery:
    query = ops.lead_query(params, agent, now=now(), sort=params.sort, limit=CHUNK, ids=params.ids)
    return query


def csv_rows(query: LeadQuery, *, at: datetime) -> Iterator[str]:
    """The CSV text of every lead matching `query`, a chunk at a time.

    Each chunk is read in its own short transaction (keyset on the sort key), so a long export
    never holds the database (SQLite's write lock is taken by every transaction here).
    """
    fields = [f.name for f in catalog.custom_fields()]
    factory = services().session_factory
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*HEADER, *fields])
    yield _drain(buffer)
    cursor: tuple[Any, int] | None = None
    while True:
        with factory() as session:
            stmt = build_lead_query(query, now=at)
            if cursor is not None:
                stmt = _after(stmt, query.sort, *cursor)
            stmt = _ordered(stmt, query.sort).limit(CHUNK)
            stmt = stmt.options(selectinload(Lead.identities), selectinload(Lead.assigned_agent))
            leads = list(session.scalars(stmt))
            for lead in leads:
                writer.writerow(_row(lead, fields))
        if not leads:
            return
        yield _drain(buffer)
        last = leads[-1]
        cursor = (getattr(last, query.sort.lstrip("-")), last.id)
        if len(leads) < CHUNK:
            return


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _row(lead: Lead, fields: list[str]) -> list[str]:
    custom = lead.custom_fields or {}
    values: list[Any] = [
        lead.id, lead.name, lead.email, lead.phone, lead.company, lead.status, lead.score,
        lead.assigned_agent.name if lead.assigned_agent else None, ";".join(lead.channels),
        lead.created_at.isoformat() if lead.created_at else None,
        lead.last_contacted_at.isoformat() if lead.last_contacted_at else None,
        *[custom.get(name) for name in fields],
    ]
    return [_cell(v) for v in values]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A cell a spreadsheet would run as a formula gets a leading apostrophe (phones like +1... stay).
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not _numberish(text)):
        return "'" + text
    return text


def _numberish(text: str) -> bool:
    return all(c.isdigit() or c in "+-(). " for c in text)


def export_response(query: LeadQuery, *, filename: str = "leads.csv") -> Response:
    at = now()
    body = stream_with_context(csv_rows(query, at=at))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@endpoint("GET", "/leads/export.csv", summary="Export leads as CSV", tag=TAG, query=schemas.ExportParams,
          produces="text/csv", errors=(400, 401, 422))
def export_csv(params: schemas.ExportParams) -> Any:
    """Every lead matching the filters (the list's filters, plus `ids`), streamed as CSV with one
    column per custom field."""
    return export_response(export_query(params, g.agent))


def uploaded_csv() -> str:
    """The CSV text of the request: a multipart `file` field or a text/csv body."""
    upload = request.files.get("file")
    if upload is not None:
        raw = upload.read(MAX_IMPORT_BYTES + 1)
    elif request.mimetype in ("text/csv", "text/plain", "application/csv"):
        raw = request.get_data(cache=False)
    else:
        raise ApiError(400, "missing_file",
                       "upload the CSV as multipart field 'file' or as a text/csv body", "file")
    if len(raw) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", "the CSV file is larger than 2 MB; split it", "file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_csv", "the file is not UTF-8 text", "file") from None
