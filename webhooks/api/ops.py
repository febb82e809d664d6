"""What agents do to leads, shared by the REST API and the web console.

Every function takes the acting agent and a session inside the caller's transaction, checks the
permission rules (agents: their own and unassigned leads; admins: all; converted leads read-only
as `store.work.check_unlocked` says)
and raises `ApiError` with the right 4xx, which the console shows as a flash message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.agents import AgentError
from store.contacts import InvalidContact, normalize_email, normalize_phone
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
from store.work import (
    LeadAction,
    LeadLocked,
    WorkError,
    add_note,
    assign_lead,
    check_unlocked,
    next_available_agent,
    notify,
)
from webhooks.api import catalog, schemas
from webhooks.app import ApiError, services

log = logging.getLogger(__name__)

_TEXT_FIELDS = ("name", "company", "source", "summary", "next_best_action")


def is_admin(agent: Agent) -> bool:
    return agent.role == "admin"


def region() -> str:
    return str(getattr(services().settings, "default_region", "US") or "US")


def can_see(agent: Agent, lead: Lead) -> bool:
    return is_admin(agent) or lead.assigned_agent_id in (None, agent.id)


def load_lead(
    lead_id: int, agent: Agent, *, session: Session, write: bool = False, check: bool = True
) -> Lead:
    """The lead (following merges) if this agent may see it; with `write`, also refuse a locked
    lead (as an edit).

    `check=False` skips the visibility rule: only for answering right after a permitted change.
    """
    if lead_id < 1 or lead_id > schemas.MAX_ID:
        raise ApiError(404, "not_found", f"no lead with id {lead_id}")
    try:
        lead = get_lead(lead_id, session=session)
    except LeadNotFound:
        raise ApiError(404, "not_found", f"no lead with id {lead_id}") from None
    if check and not can_see(agent, lead):
        raise ApiError(403, "forbidden", f"lead {lead.id} is assigned to another agent")
    if write:
        refuse_locked(lead, "edit", agent)
    return lead


def refuse_locked(lead: Lead, action: LeadAction, agent: Agent) -> None:
    """Apply the store's rule for converted leads (`check_unlocked`) as a 409."""
    try:
        check_unlocked(lead, action, admin=is_admin(agent))
    except LeadLocked as exc:
        raise ApiError(409, "lead_locked", str(exc)) from None


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
    statuses = [catalog.status_by_name(s).name if catalog.statuses() else s for s in filters.status]
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
        terminal_statuses=catalog.terminal_statuses(),
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
        set_status(lead, body.status, agent, session=session, now=now)
    if body.assign_to_me:
        assign(lead, agent, agent, session=session)
    session.flush()
    return lead


def update_fields(
    lead: Lead, body: schemas.LeadUpdate, agent: Agent, *, session: Session, now: datetime
) -> dict[str, tuple[Any, Any]]:
    """Apply the fields the caller sent (audited per field); phone and email are normalised."""
    refuse_locked(lead, "edit", agent)
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
        changed.update(set_status(lead, body.status, agent, session=session, now=now))
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


def set_status(
    lead: Lead, name: str, agent: Agent, *, session: Session, now: datetime
) -> dict[str, tuple[Any, Any]]:
    """Set a configured status as a human (any status is allowed) and apply its action and AI
    behaviour.
    """
    refuse_locked(lead, "status", agent)
    status = catalog.status_by_name(name)
    if status.name == catalog.CONVERTED:
        return convert(lead, agent, session=session, now=now)
    changes: dict[str, Any] = {"status": status.name}
    if lead.status == status.name:
        return {}
    if status.ai_behaviour == "stop":
        changes.update(ai_stopped=True, ai_pause_reason="status")
    elif status.ai_behaviour == "pause":
        changes.update(
            ai_paused_until=now + timedelta(minutes=status.pause_minutes or 60),
            ai_pause_reason="status",
        )
    changed = update_lead(lead, changes, session=session, actor="agent", agent_id=agent.id)
    if status.action == "auto_assign" and lead.assigned_agent_id is None:
        # An agent who sets it is taking the lead on; an admin hands it to the next available agent.
        target = (
            agent
            if not is_admin(agent) and agent.active
            else next_available_agent(
                session=session, terminal_statuses=catalog.terminal_statuses()
            )
        )
        if target is not None:
            assign(lead, target, agent, session=session)
    elif (
        status.action == "notify"
        and lead.assigned_agent_id not in (None, agent.id)
        and not status.terminal
    ):
        target = session.get(Agent, lead.assigned_agent_id)
        if target is not None and target.active:
            notify(
                target,
                lead,
                f"{agent.name} set {lead.name or f'lead {lead.id}'} to {status.name}",
                session=session,
                kind="status",
            )
    return changed


def convert(
    lead: Lead, agent: Agent, *, session: Session, now: datetime, note: str | None = None
) -> dict[str, tuple[Any, Any]]:
    """Mark the lead Converted and lock it read-only, recording when and by whom."""
    refuse_locked(lead, "status", agent)
    changed = update_lead(
        lead,
        {"status": catalog.CONVERTED, "locked": True, "converted_at": now},
        session=session,
        actor="agent",
        agent_id=agent.id,
    )
    record_audit(
        session=session,
        lead_id=lead.id,
        actor="agent",
        action="convert",
        field="status",
        new=catalog.CONVERTED,
        agent_id=agent.id,
    )
    if note:
        add_note(lead, note, session=session, category="Positive Signal", agent=agent)
    return changed


def reopen(lead: Lead, agent: Agent, *, session: Session) -> None:
    """Unlock a converted lead (admins), e.g. after a conversion recorded by mistake."""
    if not lead.locked:
        raise ApiError(409, "not_locked", f"lead {lead.id} is not locked")
    update_lead(lead, {"locked": False}, session=session, actor="agent", agent_id=agent.id)


def set_archived(lead: Lead, archived: bool, agent: Agent, *, session: Session) -> bool:
    refuse_locked(lead, "archive", agent)
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
    refuse_locked(lead, "note", agent)
    try:
        return add_note(lead, text, session=session, category=category, agent=agent)
    except WorkError as exc:
        raise ApiError(422, "validation_error", str(exc), "text") from None


# ---- assignment ---------------------------------------------------------------------------


def target_agent(agent_id: int | None, *, session: Session) -> Agent | None:
    if agent_id is None:
        return None
    target = session.get(Agent, agent_id) if 0 < agent_id <= schemas.MAX_ID else None
    if target is None:
        raise ApiError(422, "unknown_agent", f"no agent with id {agent_id}", "agent_id")
    if not target.active:
        raise ApiError(422, "agent_disabled", f"agent {target.name} is disabled", "agent_id")
    return target


def assign(lead: Lead, target: Agent | None, by: Agent, *, session: Session) -> bool:
    """Assign (None: unassign) and tell the new agent, unless they did it themselves."""
    refuse_locked(lead, "assign", by)
    try:
        changed = assign_lead(lead, target, session=session, actor="agent", by_agent=by)
    except WorkError as exc:
        raise ApiError(422, "agent_disabled", str(exc), "agent_id") from None
    if changed and target is not None and target.id != by.id:
        notify(
            target,
            lead,
            f"{by.name} assigned {lead.name or f'lead {lead.id}'} to you",
            session=session,
            kind="assigned",
        )
    return changed


def round_robin_agent(*, session: Session) -> Agent:
    target = next_available_agent(session=session, terminal_statuses=catalog.terminal_statuses())
    if target is None:
        raise ApiError(
            409, "no_agent_available", "every active agent is at capacity (or none is active)"
        )
    return target


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
    fixed = None if body.round_robin else target_agent(body.agent_id, session=session)
    changed = unchanged = 0
    for lead in leads:
        if lead.locked:
            skipped.append({"id": lead.id, "reason": "converted (read-only)"})
            continue
        target = round_robin_agent(session=session) if body.round_robin else fixed
        if assign(lead, target, agent, session=session):
            changed += 1
            session.flush()  # the next round-robin pick counts this assignment
        else:
            unchanged += 1
    return {"matched": len(leads), "changed": changed, "unchanged": unchanged, "skipped": skipped}


def bulk_status(
    body: schemas.BulkStatusBody, agent: Agent, *, session: Session, now: datetime
) -> dict[str, Any]:
    catalog.status_by_name(body.status)  # refuse an unknown status before touching anything
    leads, skipped = select_leads(body, agent, session=session, now=now)
    changed = unchanged = 0
    for lead in leads:
        if lead.locked:
            skipped.append({"id": lead.id, "reason": "converted (read-only)"})
            continue
        if set_status(lead, body.status, agent, session=session, now=now):
            changed += 1
        else:
            unchanged += 1
    return {"matched": len(leads), "changed": changed, "unchanged": unchanged, "skipped": skipped}


# ---- agents -------------------------------------------------------------------------------


def agent_error(exc: AgentError) -> ApiError:
    message = str(exc)
    field = "email" if "email" in message else "name" if "name" in message else None
    status = 409 if "already exists" in message else 422
    return ApiError(status, "duplicate" if status == 409 else "validation_error", message, field)
