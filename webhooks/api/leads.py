"""Lead endpoints: list with filters and cursor pages, detail, create, update, convert, archive,
delete.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from flask import g, jsonify
from sqlalchemy.orm import Session, selectinload

from store.db import read_session
from store.domain import merge, status
from store.models import Conversation, Lead
from store.query import LeadCount, LeadQuery, build_lead_query, count_leads_capped, query_leads
from webhooks.api import catalog, schemas
from webhooks.api import lead_edits as edits
from webhooks.api.base import endpoint, now
from webhooks.api.serialize import dump, lead_detail, lead_summary
from webhooks.app import ApiError, services

TAG = "Leads"


# ---- cursor pagination --------------------------------------------------------------------
# The cursor is the sort key and id of the last row shown (keyset pagination), so pages stay
# stable while new leads arrive and deep pages cost the same as the first.


def encode_cursor(sort: str, lead: Lead) -> str:
    key = sort.lstrip("-")
    value = getattr(lead, key)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "i": lead.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    invalid = ApiError(400, "invalid_cursor", "the cursor is not one this API gave out", "cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise invalid from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("i"), int)
        or isinstance(data.get("i"), bool)
    ):
        raise invalid
    if data.get("s") != sort:
        raise ApiError(400, "invalid_cursor", "the cursor belongs to another sort order", "cursor")
    value = data.get("v")
    key = sort.lstrip("-")
    try:
        if value is not None and key in ("created_at", "last_contacted_at"):
            value = datetime.fromisoformat(value)
        elif (
            value is not None
            and key in ("score", "id")
            and not (isinstance(value, int) and not isinstance(value, bool))
        ) or (value is not None and key == "name" and not isinstance(value, str)):
            raise ValueError
    except (TypeError, ValueError):
        raise invalid from None
    if abs(data["i"]) > 2**63 - 1 or (isinstance(value, int) and abs(value) > 2**63 - 1):
        raise invalid
    return value, data["i"]


def lead_page(
    query: LeadQuery, cursor: str | None, *, session: Session, at: datetime
) -> tuple[list[Lead], str | None, LeadCount]:
    """One page of leads for `query` after `cursor`, the next cursor, and the count (capped)."""
    after = decode_cursor(cursor, query.sort) if cursor else None
    rows = query_leads(replace(query, after=after, limit=query.limit + 1), session=session, now=at)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(query.sort, rows[-1]) if more and rows else None
    return rows, next_cursor, count_leads_capped(query, session=session, now=at)


def _detail(lead_id: int, session: Session, *, after_change: bool = False) -> dict[str, Any]:
    """The lead's full JSON; `after_change` answers even when the change handed the lead to someone
    else.
    """
    lead = edits.load_lead(lead_id, g.agent, session=session, check=not after_change)
    lead = session.scalars(
        build_lead_query(LeadQuery(ids=[lead.id], archived=None, terminal_statuses=())).options(
            selectinload(Lead.identities),
            selectinload(Lead.contacts),
            selectinload(Lead.assigned_agent),
            selectinload(Lead.conversations).selectinload(Conversation.messages),
        )
    ).one()
    return dump(schemas.LeadDetail, lead_detail(lead, now(), session=session))


# ---- views --------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/leads",
    summary="List leads",
    tag=TAG,
    query=schemas.LeadListParams,
    response=schemas.LeadPage,
    errors=(400, 401, 422),
)
def list_leads(params: schemas.LeadListParams) -> Any:
    """Leads the agent may see (admins: all) matching the filters, one page at a time."""
    at = now()
    query = edits.lead_query(params, g.agent, now=at, sort=params.sort, limit=params.limit)
    with read_session(services().session_factory) as session:
        rows, next_cursor, count = lead_page(query, params.cursor, session=session, at=at)
        leads = [lead_summary(lead, at) for lead in rows]
    page = {"leads": leads, "total": count.total, "total_capped": count.capped}
    return jsonify(dump(schemas.LeadPage, {**page, "next_cursor": next_cursor}))


@endpoint(
    "POST",
    "/leads",
    summary="Create a lead",
    tag=TAG,
    body=schemas.LeadCreate,
    response=schemas.LeadDetail,
    status=201,
    errors=(400, 401, 409, 422),
)
def create_lead(body: schemas.LeadCreate) -> Any:
    """A lead entered by hand (channel `manual`); a phone or email another lead has is a 409."""
    with services().session_factory.begin() as session:
        lead = edits.create_lead(body, g.agent, session=session, now=now())
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True)), 201


@endpoint(
    "GET",
    "/leads/<int:lead_id>",
    summary="Get a lead",
    tag=TAG,
    response=schemas.LeadDetail,
    errors=(401, 403, 404),
)
def get_lead(lead_id: int) -> Any:
    """Profile, identities, conversations with messages, notes, score history with factors, audit
    trail.
    """
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session))


@endpoint(
    "PATCH",
    "/leads/<int:lead_id>",
    summary="Update a lead",
    tag=TAG,
    body=schemas.LeadUpdate,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def update_lead(lead_id: int, body: schemas.LeadUpdate) -> Any:
    """Change profile fields, status, tags and custom fields; each change is audited."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session, write=True)
        edits.update_fields(lead, body, g.agent, session=session, now=now())
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/convert",
    summary="Convert a lead",
    tag=TAG,
    body=schemas.ConvertBody,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def convert_lead(lead_id: int, body: schemas.ConvertBody) -> Any:
    """Set the status that closes a sale (the one configured with `locks: true`, e.g. Converted)
    and lock the lead read-only (further changes answer 409)."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session, write=True)
        status.convert(
            lead, by=g.agent, session=session, policy=catalog.policy(), now=now(), note=body.note
        )
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/merge",
    summary="Merge another lead into this one",
    tag=TAG,
    body=schemas.MergeBody,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def merge_lead(lead_id: int, body: schemas.MergeBody) -> Any:
    """Merge `other_lead_id` into this lead, which survives and keeps its owner (the other owner is
    notified and keeps reading their notes). An agent accepts a merge suggestion listed on the lead
    and needs access to both leads; leads of two different agents only an admin merges; an admin
    may merge any two leads. Each conversation stays separate; the merge is audited."""
    with services().session_factory.begin() as session:
        target = edits.load_lead(lead_id, g.agent, session=session, check=False)
        other = edits.load_lead(body.other_lead_id, g.agent, session=session, check=False)
        if target.id == other.id:
            raise ApiError(
                409, "already_merged", f"#{body.other_lead_id} is already lead #{target.id}"
            )
        survivor = merge.merge_by_hand(g.agent, target, other, session=session)
        lead_id = survivor.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "DELETE",
    "/leads/<int:lead_id>/merge-suggestions/<int:suggestion_id>",
    summary="Dismiss a merge suggestion",
    tag=TAG,
    response=schemas.LeadDetail,
    errors=(401, 403, 404),
)
def dismiss_merge_suggestion(lead_id: int, suggestion_id: int) -> Any:
    """Settle a merge suggestion listed on the lead as "not the same person": it leaves both leads
    and the pair is not suggested again. Needs the access accepting it would (both leads; an admin
    for two different agents' leads); audited on both leads."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        merge.dismiss_suggestion(g.agent, lead, suggestion_id, session=session)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/reopen",
    summary="Reopen a converted lead",
    tag=TAG,
    admin=True,
    response=schemas.LeadDetail,
    errors=(401, 403, 404, 409),
)
def reopen_lead(lead_id: int) -> Any:
    """Unlock a converted lead so it can be edited again (admins only)."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        status.reopen(lead, by=g.agent, session=session)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/archive",
    summary="Archive or unarchive a lead",
    tag=TAG,
    body=schemas.ArchiveBody,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def archive_lead(lead_id: int, body: schemas.ArchiveBody) -> Any:
    """Archived leads leave the default list (filter `archived=true` shows them)."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        edits.set_archived(lead, body.archived, g.agent, session=session)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "DELETE",
    "/leads/<int:lead_id>",
    summary="Delete a lead",
    tag=TAG,
    admin=True,
    status=204,
    errors=(401, 403, 404),
)
def delete_lead(lead_id: int) -> Any:
    """Delete the lead and everything it owns (admins only); the deletion is audited."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        edits.delete_lead(lead, g.agent, session=session)
    return "", 204
