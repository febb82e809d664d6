"""What the REST API and the web console share to turn a request into store and domain calls:
a lead loaded for the acting agent, the list query for filters, creating and editing a lead,
the leads a bulk action applies to.

The rules themselves (status, assignment, locks, who may see what) are `store.domain`'s; their
`RuleError`s reach the API's error handler (403/404/409/422) or the console's flash messages.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.contacts import InvalidContact, normalize_email, normalize_phone
from store.domain import assignment, status
from store.domain.assignment import BulkOutcome
from store.domain.errors import Invalid
from store.domain.permissions import LeadAction, can_see, check_writable, is_admin, visible_lead
from store.leads import (
    LeadNotFound,
    find_lead_by_email,
    find_lead_by_phone,
    get_lead,
    record_audit,
    resolve,
    update_lead,
)
from store.models import CLAIMED, Agent, Lead
from store.query import LeadQuery, build_lead_query
from store.work import add_note
from webhooks.api import catalog, schemas
from webhooks.app import ApiError, services

log = logging.getLogger(__name__)

_TEXT_FIELDS = ("name", "company", "source", "summary", "next_best_action")


def region() -> str:
    return str(getattr(services().settings, "default_region", "US") or "US")


def load_lead(
    lead_id: int,
    agent: Agent,
    *,
    session: Session,
    write: bool = False,
    check: bool = True,
    action: LeadAction | None = None,
) -> Lead:
    """The lead (following merges) if this agent may see it; with `write` (an edit) or `action`,
    also what its lock allows.

    `check=False` skips the visibility rule: only for answering right after a permitted change.
    """
    if lead_id < 1 or lead_id > schemas.MAX_ID:
        raise ApiError(404, "not_found", f"no lead with id {lead_id}")
    if not check:
        try:
            return get_lead(lead_id, session=session)
        except LeadNotFound:
            raise ApiError(404, "not_found", f"no lead with id {lead_id}") from None
    return visible_lead(lead_id, agent, session=session, action="edit" if write else action)


def lead_query(
    filters: schemas.LeadFilters,
    agent: Agent,
    *,
    now: datetime,
    sort: str = "-created_at",
    limit: int = 50,
    ids: Iterable[int] = (),
) -> LeadQuery:
    """The shared store query for these filters, restricted to what the agent may see."""
    if (
        filters.score_min is not None
        and filters.score_max is not None
        and filters.score_min > filters.score_max
    ):
        raise ApiError(422, "validation_error", "score_min is above score_max", "score_min")
    archived = {"false": False, "true": True, "all": None}[filters.archived]
    policy = catalog.policy()
    statuses = [policy.require_status(s).name if policy.statuses else s for s in filters.status]
    return LeadQuery(
        status=statuses,
        score_min=filters.score_min,
        score_max=filters.score_max,
        hot=filters.hot,
        agent_id=agent.id if filters.mine else filters.agent_id,
        unassigned=filters.unassigned,
        visible_to_agent_id=None if is_admin(agent) else agent.id,
        channel=list(filters.channel),
        created_from=filters.created_from,
        created_to=filters.created_to,
        contacted_from=filters.contacted_from,
        contacted_to=filters.contacted_to,
        stale_days=filters.stale_days,
        terminal_statuses=policy.terminal_statuses,
        archived=archived,
        search=filters.q,
        sort=sort,
        limit=limit,
        ids=tuple(ids),
    )


# ---- creating and editing -----------------------------------------------------------------


def create_lead(body: schemas.LeadCreate, agent: Agent, *, session: Session, now: datetime) -> Lead:
    """A lead entered by an agent (channel `manual`); an existing phone or email means that lead."""
    try:
        phone = normalize_phone(body.phone, region()) if body.phone else None
    except InvalidContact as exc:
        raise ApiError(422, "validation_error", f"phone: {exc}", "phone") from None
    try:
        email = normalize_email(body.email) if body.email else None
    except InvalidContact as exc:
        raise ApiError(422, "validation_error", f"email: {exc}", "email") from None
    if not (body.name or phone or email or body.company):
        raise ApiError(
            422, "validation_error", "give at least a name, phone, email or company", "name"
        )
    existing = None
    for column, value in (("phone", phone), ("email", email)):
        if value:
            existing = (
                find_lead_by_phone(value, session=session)
                if column == "phone"
                else find_lead_by_email(value, session=session)
            )
            if existing is not None:
                break
    if existing is not None:
        clash = "phone" if phone and existing.phone == phone else "email"
        raise ApiError(
            409,
            "duplicate",
            f"lead {existing.id} already has this {clash}",
            clash,
        )
    external = phone or email or f"agent-{agent.id}-{uuid.uuid4().hex}"
    lead = resolve(
        "manual",
        external,
        phone=phone,
        email=email,
        name=body.name,
        session=session,
        region=region(),
        source=body.source or "manual",
        actor="agent",
        trust=CLAIMED,
    )
    changes: dict[str, Any] = {}
    if body.company:
        changes["company"] = body.company
    if body.custom_fields:
        changes["custom_fields"] = catalog.clean_custom_fields(
            body.custom_fields, {}, region=region()
        )
    if changes:
        update_lead(lead, changes, session=session, actor="agent", agent_id=agent.id)
    if body.status:
        status.change_status(
            lead,
            body.status,
            by=agent,
            session=session,
            policy=catalog.policy(),
            now=now,
            reason=body.lost_reason,
            reason_note=body.lost_note,
        )
    if body.assign_to_me:
        assignment.assign(lead, agent, by=agent, session=session)
    session.flush()
    return lead


def update_fields(
    lead: Lead, body: schemas.LeadUpdate, agent: Agent, *, session: Session, now: datetime
) -> dict[str, tuple[Any, Any]]:
    """Apply the fields the caller sent (audited per field); phone and email are normalised."""
    check_writable(agent, lead, "edit")
    sent = body.model_fields_set
    if "status" in sent and not body.status:
        raise ApiError(422, "validation_error", "status: a lead always has a status", "status")
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name in sent:
            value = getattr(body, name)
            changes[name] = value if value else None
    if "phone" in sent:
        changes["phone"] = _unique_contact(lead, "phone", body.phone, session=session)
    if "email" in sent:
        changes["email"] = _unique_contact(lead, "email", body.email, session=session)
    if "tags" in sent:
        tags: list[str] = []
        for tag in body.tags or []:
            tag = str(tag).strip()[:60]
            if tag and tag not in tags:
                tags.append(tag)
        changes["tags"] = tags
    if "custom_fields" in sent and body.custom_fields is not None:
        changes["custom_fields"] = catalog.clean_custom_fields(
            body.custom_fields, lead.custom_fields or {}, region=region()
        )
    try:
        with session.begin_nested():
            changed = update_lead(lead, changes, session=session, actor="agent", agent_id=agent.id)
            session.flush()
    except IntegrityError:
        # Someone else took this phone/email between our check and the write.
        raise ApiError(409, "duplicate", "another lead already has this phone or email") from None
    if "status" in sent and body.status:
        change = status.change_status(
            lead,
            body.status,
            by=agent,
            session=session,
            policy=catalog.policy(),
            now=now,
            reason=body.lost_reason,
            reason_note=body.lost_note,
        )
        changed.update(change.changed)
    elif {"lost_reason", "lost_note"} & sent:
        raise ApiError(
            422,
            "validation_error",
            "lost_reason: give it with the status it explains (a status that asks for a reason)",
            "lost_reason",
        )
    return changed


def _unique_contact(lead: Lead, field: str, raw: str | None, *, session: Session) -> str | None:
    if not raw:
        return None
    try:
        value = normalize_phone(raw, region()) if field == "phone" else normalize_email(raw)
    except InvalidContact as exc:
        raise ApiError(422, "validation_error", f"{field}: {exc}", field) from None
    owner = (
        find_lead_by_phone(value, session=session)
        if field == "phone"
        else find_lead_by_email(value, session=session)
    )
    if owner is not None and owner.id != lead.id:
        raise ApiError(409, "duplicate", f"lead {owner.id} already has this {field}", field)
    return value


def set_archived(lead: Lead, archived: bool, agent: Agent, *, session: Session) -> bool:
    check_writable(agent, lead, "archive")
    return bool(
        update_lead(lead, {"archived": archived}, session=session, actor="agent", agent_id=agent.id)
    )


def delete_lead(lead: Lead, agent: Agent, *, session: Session) -> None:
    """Delete a lead with everything it owns (admins only); the deletion itself stays in the audit
    log.
    """
    lead_id = lead.id
    tombstones = list(session.scalars(select(Lead.id).where(Lead.merged_into_id == lead_id)))
    session.expunge(lead)
    # The database's ON DELETE CASCADE removes identities, conversations, messages, notes and
    # history.
    if tombstones:
        session.execute(delete(Lead).where(Lead.id.in_(tombstones)))
    session.execute(delete(Lead).where(Lead.id == lead_id))
    record_audit(
        session=session,
        lead_id=None,
        actor="agent",
        action="delete",
        field="lead",
        old=lead_id,
        agent_id=agent.id,
    )
    log.info("agent %s deleted lead %s", agent.id, lead_id)


def add_lead_note(lead: Lead, text: str, category: str, agent: Agent, *, session: Session) -> Any:
    check_writable(agent, lead, "note")
    try:
        return add_note(lead, text, session=session, category=category, agent=agent)
    except Invalid as exc:
        raise ApiError(422, "validation_error", str(exc), "text") from None


# ---- many leads at once -------------------------------------------------------------------


def select_leads(
    selection: schemas.BulkSelection, agent: Agent, *, session: Session, now: datetime
) -> tuple[list[Lead], list[dict[str, Any]]]:
    """The leads a bulk action applies to, and the requested ids it must skip (with why)."""
    if bool(selection.ids) == (selection.filter is not None):
        raise ApiError(422, "validation_error", "give either `ids` or `filter`", "ids")
    skipped: list[dict[str, Any]] = []
    if selection.ids:
        wanted = list(dict.fromkeys(selection.ids))
        found = {lead.id: lead for lead in session.scalars(select(Lead).where(Lead.id.in_(wanted)))}
        leads = []
        for lead_id in wanted:
            lead = found.get(lead_id)
            if lead is None or lead.merged_into_id is not None:
                skipped.append({"id": lead_id, "reason": "not found"})
            elif not can_see(agent, lead):
                skipped.append({"id": lead_id, "reason": "assigned to another agent"})
            else:
                leads.append(lead)
        return leads, skipped
    assert selection.filter is not None
    query = lead_query(selection.filter, agent, now=now, limit=schemas.MAX_BULK)
    stmt = build_lead_query(query, now=now).order_by(Lead.id).limit(schemas.MAX_BULK + 1)
    leads = list(session.scalars(stmt))
    if len(leads) > schemas.MAX_BULK:
        raise ApiError(
            422,
            "too_many",
            f"the filter matches more than {schemas.MAX_BULK} leads; narrow it",
            "filter",
        )
    return leads, skipped


def bulk_assign(
    body: schemas.BulkAssignBody, agent: Agent, *, session: Session, now: datetime
) -> dict[str, Any]:
    leads, skipped = select_leads(body, agent, session=session, now=now)
    target = None if body.round_robin else assignment.find_assignee(body.agent_id, session=session)
    outcome = assignment.bulk_assign(
        leads,
        target,
        by=agent,
        session=session,
        policy=catalog.policy(),
        round_robin=body.round_robin,
    )
    return _with_skipped(outcome, skipped)


def bulk_status(
    body: schemas.BulkStatusBody, agent: Agent, *, session: Session, now: datetime
) -> dict[str, Any]:
    policy = catalog.policy()
    # Refuse an unknown status (or a lost one without its reason) before touching anything.
    status.lost_values(policy.require_status(body.status), policy, body.lost_reason, body.lost_note)
    leads, skipped = select_leads(body, agent, session=session, now=now)
    outcome = status.bulk_change_status(
        leads,
        body.status,
        by=agent,
        session=session,
        policy=policy,
        now=now,
        reason=body.lost_reason,
        reason_note=body.lost_note,
    )
    return _with_skipped(outcome, skipped)


def _with_skipped(outcome: BulkOutcome, skipped: list[dict[str, Any]]) -> dict[str, Any]:
    """The outcome as the API answers it: ids refused before the rules ran come first."""
    result = outcome.as_dict()
    result["skipped"] = [*skipped, *outcome.skipped]
    return result
