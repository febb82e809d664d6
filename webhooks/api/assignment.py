"""Assignment endpoints: one lead or many (by ids or by filter), to an agent or round-robin."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from store.db import read_session
from store.domain import assignment
from webhooks.api import catalog, schemas
from webhooks.api import lead_edits as edits
from webhooks.api.base import endpoint, now
from webhooks.api.leads import _detail
from webhooks.api.serialize import dump
from webhooks.app import services

TAG = "Assignment"


@endpoint(
    "POST",
    "/leads/<int:lead_id>/assign",
    summary="Assign a lead",
    tag=TAG,
    body=schemas.AssignBody,
    response=schemas.LeadDetail,
    errors=(400, 401, 403, 404, 409, 422),
)
def assign_lead(lead_id: int, body: schemas.AssignBody) -> Any:
    """Assign to `agent_id`, unassign with null, or `round_robin` to the next available agent."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session, write=True)
        target = (
            assignment.round_robin_agent(session=session, policy=catalog.policy())
            if body.round_robin
            else assignment.find_assignee(body.agent_id, session=session)
        )
        assignment.assign(lead, target, by=g.agent, session=session)
        lead_id = lead.id
    with read_session(services().session_factory) as session:
        return jsonify(_detail(lead_id, session, after_change=True))


@endpoint(
    "POST",
    "/leads/bulk/assign",
    summary="Assign many leads",
    tag=TAG,
    body=schemas.BulkAssignBody,
    response=schemas.BulkResult,
    errors=(400, 401, 409, 422),
)
def bulk_assign(body: schemas.BulkAssignBody) -> Any:
    """Assign the leads given by `ids` or matching `filter` (at most 5000) in one transaction."""
    with services().session_factory.begin() as session:
        result = edits.bulk_assign(body, g.agent, session=session, now=now())
    return jsonify(dump(schemas.BulkResult, result))


@endpoint(
    "POST",
    "/leads/bulk/status",
    summary="Set the status of many leads",
    tag=TAG,
    body=schemas.BulkStatusBody,
    response=schemas.BulkResult,
    errors=(400, 401, 422),
)
def bulk_status(body: schemas.BulkStatusBody) -> Any:
    """Set one status on the leads given by `ids` or matching `filter` (converted ones skipped)."""
    with services().session_factory.begin() as session:
        result = edits.bulk_status(body, g.agent, session=session, now=now())
    return jsonify(dump(schemas.BulkResult, result))
