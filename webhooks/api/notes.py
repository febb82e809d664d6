"""Note endpoints: the agents' notes on a lead, each with a category."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from store.db import read_session
from store.domain.permissions import may_read_notes, visible_notes
from store.leads import LeadNotFound, get_lead
from webhooks.api import lead_edits as edits
from webhooks.api import schemas
from webhooks.api.base import endpoint
from webhooks.api.serialize import dump, note_out
from webhooks.app import services

TAG = "Notes"


@endpoint(
    "GET",
    "/leads/<int:lead_id>/notes",
    summary="List a lead's notes",
    tag=TAG,
    response=schemas.NoteList,
    errors=(401, 403, 404),
)
def list_lead_notes(lead_id: int) -> Any:
    """The lead's notes, oldest first. An agent whose lead was merged into another agent's lead
    still reads the notes they wrote on it (and only those)."""
    with read_session(services().session_factory) as session:
        try:
            lead = get_lead(lead_id, session=session) if 0 < lead_id <= schemas.MAX_ID else None
        except LeadNotFound:
            lead = None
        if lead is None or not may_read_notes(g.agent, lead, session=session):
            lead = edits.load_lead(lead_id, g.agent, session=session)  # the 404 or 403
        notes = [note_out(n) for n in visible_notes(g.agent, lead, session=session)]
    return jsonify(dump(schemas.NoteList, {"notes": notes}))


@endpoint(
    "POST",
    "/leads/<int:lead_id>/notes",
    summary="Add a note",
    tag=TAG,
    body=schemas.NoteCreate,
    response=schemas.NoteOut,
    status=201,
    errors=(400, 401, 403, 404, 422),
)
def add_lead_note(lead_id: int, body: schemas.NoteCreate) -> Any:
    """Add a note (categories: General, Qualification, Follow-up, Objection, Positive Signal)."""
    with services().session_factory.begin() as session:
        lead = edits.load_lead(lead_id, g.agent, session=session)
        note = edits.add_lead_note(lead, body.text, body.category, g.agent, session=session)
        data = note_out(note)
    return jsonify(dump(schemas.NoteOut, data)), 201
