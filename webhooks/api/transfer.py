"""CSV export (streamed, same filters as the list) and CSV import (same report as `leaddesk leads
import`).
"""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Response, g, jsonify, request, stream_with_context

from store.csvio import CsvImportError, import_leads, iter_export
from store.models import Agent
from store.query import LeadQuery
from webhooks.api import catalog, schemas
from webhooks.api import lead_edits as edits
from webhooks.api.base import endpoint, now
from webhooks.api.serialize import dump
from webhooks.app import ApiError, in_request_workspace, services

log = logging.getLogger(__name__)

TAG = "Export and import"
MAX_IMPORT_BYTES = 2 * 1024 * 1024


def export_query(params: schemas.ExportParams, agent: Agent) -> LeadQuery:
    return edits.lead_query(params, agent, now=now(), sort=params.sort, ids=params.ids)


def export_response(query: LeadQuery, *, filename: str = "leads.csv") -> Response:
    # One read snapshot streamed out in chunks (store.csvio): never all rows in memory, and on
    # SQLite it does not hold the write lock while the client downloads.
    fields = [f.name for f in catalog.custom_fields()]
    body = stream_with_context(
        in_request_workspace(
            iter_export(
                query, session_factory=services().session_factory, custom_fields=fields, now=now()
            )
        )
    )
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@endpoint(
    "GET",
    "/leads/export.csv",
    summary="Export leads as CSV",
    tag=TAG,
    query=schemas.ExportParams,
    produces="text/csv",
    errors=(400, 401, 422),
)
def export_csv(params: schemas.ExportParams) -> Any:
    """Every lead matching the filters (the list's filters, plus `ids`), streamed as CSV with one
    column per custom field."""
    return export_response(export_query(params, g.agent))


@endpoint(
    "POST",
    "/leads/import",
    summary="Import leads from CSV",
    tag=TAG,
    admin=True,
    upload=True,
    response=schemas.ImportReport,
    errors=(400, 401, 403, 413, 422),
)
def import_csv() -> Any:
    """Create or merge leads from a CSV file (columns name, email, phone, company, status, source,
    note
    and custom fields), with the deduplication and report of `leaddesk leads import --json`: a bad
    row is rejected with its line number and reason and never stops the others. Admins only, because
    merging can touch any agent's lead."""
    text = uploaded_csv()
    name = request.files["file"].filename if "file" in request.files else None
    statuses = [s.name for s in catalog.statuses()] or None
    try:
        report = import_leads(
            io.StringIO(text, newline=""),
            session_factory=services().session_factory,
            region=edits.region(),
            custom_fields=[f.name for f in catalog.custom_fields()],
            statuses=statuses,
            lost_statuses=[s.name for s in catalog.statuses() if s.asks_reason],
            actor="import",
            agent_id=g.agent.id,
            file_name=name or "upload.csv",
        )
    except CsvImportError as exc:
        raise ApiError(422, "invalid_csv", str(exc), "file") from None
    log.info(
        "agent %s imported %s rows: %s created, %s merged, %s rejected",
        g.agent.id,
        report.rows,
        report.created,
        report.merged,
        len(report.rejected),
    )
    return jsonify(dump(schemas.ImportReport, {"file": name or "upload.csv", **report.to_dict()}))


def uploaded_csv() -> str:
    """The CSV text of the request: a multipart `file` field or a text/csv body."""
    upload = request.files.get("file")
    raw: bytes
    if upload is not None:
        raw = upload.read(MAX_IMPORT_BYTES + 1)
    elif request.mimetype in ("text/csv", "text/plain", "application/csv"):
        raw = request.get_data(cache=False)
    else:
        raise ApiError(
            400,
            "missing_file",
            "upload the CSV as multipart field 'file' or as a text/csv body",
            "file",
        )
    if len(raw) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", "the CSV file is larger than 2 MB; split it", "file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_csv", "the file is not UTF-8 text", "file") from None
