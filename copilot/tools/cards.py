"""The contact card tool: read a pasted business card or email signature, show the possible
duplicates, and once the agent chooses, create the lead or merge the card into one."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from copilot.access import CopilotError, Denied, check_visible, visible
from copilot.insights import parse_contact_card
from copilot.schemas import CardArgs
from copilot.tools.base import Confirm, Result, ToolContext, lead_line, tidy, tool, writable
from store import identity
from store.domain.assignment import assign
from store.domain.permissions import can_see
from store.lead_lookups import leads_by_email
from store.leads import find_lead_by_phone, get_lead, merge_leads, resolve, update_lead
from store.models import CLAIMED, Agent, Lead
from store.query import LeadQuery, query_leads


@tool(
    CardArgs,
    "Read a pasted business card or email signature, show possible duplicates "
    "and, once confirmed, create or merge the lead.",
    confirm="itself",
    could_not="I couldn't save that contact card",
)
def fill_contact_card(ctx: ToolContext, agent: Agent, session: Session, args: CardArgs) -> Confirm:
    card = parse_contact_card(args.text, region=ctx.region)
    if card.empty:
        raise CopilotError("I couldn't find a name, email or phone number in that.")
    owners: list[Lead] = []
    if card.phone:
        owner = find_lead_by_phone(card.phone, session=session)
        if owner is not None:
            owners.append(get_lead(owner.id, session=session))
    if card.email:
        owners += [
            lead for lead in leads_by_email(card.email, session=session) if lead not in owners
        ]
    hidden = [lead for lead in owners if not can_see(agent, lead)]
    if hidden:
        what = "phone number" if card.phone and hidden[0].phone == card.phone else "email"
        raise Denied(
            f"A lead with this {what} already exists (#{hidden[0].id}) and is assigned to another "
            "agent; ask an admin."
        )
    similar: list[Lead] = list(owners)
    if card.name:
        for lead in query_leads(
            visible(agent, LeadQuery(search=card.name, limit=5, sort="-score")), session=session
        ):
            if lead not in similar:
                similar.append(lead)
    similar = similar[:3]
    fields = [
        f"  {label}: {value}"
        for label, value in (
            ("Name", card.name),
            ("Title", card.title),
            ("Company", card.company),
            ("Email", card.email),
            ("Phone", card.phone),
            ("Website", card.website),
        )
        if value
    ]
    lines = ["From the card:", *fields]
    options: list[tuple[str, str]] = []
    if similar:
        lines.append("Possible duplicates:")
        lines += [f"  {lead_line(lead)}" for lead in similar]
        options += [(f"merge:{lead.id}", f"Merge into #{lead.id}") for lead in similar]
    if owners:
        lines.append("This contact already has a lead: merge the card into it, or cancel?")
    elif similar:
        options.append(("create", "Create new lead"))
        lines.append("Create a new lead, merge into one of these, or cancel?")
    else:
        options.append(("create", "Create lead"))
        lines.append("Create this lead?")
    options.append(("no", "Cancel"))
    card_data = card.model_dump()

    def apply(me: Agent, s: Session, choice: str, _plan: dict[str, Any]) -> Result:
        target_id = int(choice.split(":", 1)[1]) if choice.startswith("merge:") else None
        return _save_card(ctx, me, s, card_data, target_id)

    return Confirm(
        "contact_card",
        "\n".join(lines),
        {"card": card_data},
        apply=apply,
        declined=("Okay, nothing was created.", {}),
        options=options,
    )


def _save_card(
    ctx: ToolContext, agent: Agent, session: Session, card: dict[str, Any], target_id: int | None
) -> Result:
    target = (
        writable(check_visible(agent, get_lead(target_id, session=session))) if target_id else None
    )
    known_before = None
    if card.get("phone"):
        known_before = find_lead_by_phone(card["phone"], session=session)
    if known_before is None and card.get("email"):
        known_before = next(iter(leads_by_email(card["email"], session=session)), None)
    if known_before is not None and not can_see(agent, known_before):
        raise Denied("That contact belongs to another agent's lead now; ask an admin.")
    # Details pasted from a card are claims: matching another lead they only suggest a merge.
    # The one merge made here is the one the agent chose ("merge into #X"), audited as theirs: the
    # card's new lead is not someone else's, so the hand-merge rule (a suggestion first) does not
    # apply.
    lead = resolve(
        "manual",
        f"card:{uuid.uuid4().hex}",
        phone=card.get("phone"),
        email=card.get("email"),
        name=card.get("name"),
        session=session,
        region=ctx.region,
        source="copilot",
        actor="agent",
        trust=CLAIMED,
    )
    if target is not None and lead.id != target.id:
        lead = merge_leads(
            target,
            lead,
            session=session,
            actor="agent",
            agent_id=agent.id,
            into=target,
            reason="contact card merged by the agent",
        )
    fills: dict[str, Any] = {}
    if card.get("company") and not lead.company:
        fills["company"] = card["company"]
    if card.get("name") and not lead.name:
        fills["name"] = card["name"]
    extra = dict(lead.custom_fields or {})
    for key in ("title", "website"):
        if card.get(key) and not extra.get(key):
            extra[key] = card[key]
    others = [p for p in card.get("other_phones") or [] if p != lead.phone]
    if others:
        known = list(extra.get("other_phones", []))
        extra["other_phones"] = known + [p for p in others if p not in known]
    if extra != (lead.custom_fields or {}):
        fills["custom_fields"] = extra
    update_lead(lead, fills, session=session, actor="agent", agent_id=agent.id)
    if lead.assigned_agent_id is None:
        assign(lead, agent, by=agent, session=session)
    verb = "Merged the card into" if target is not None else "Created"
    said = f"{verb} lead #{lead.id} {lead.name or ''}."
    before = get_lead(known_before.id, session=session) if known_before is not None else None
    maybe = [
        s
        for s in identity.open_suggestions(lead, session=session)
        if before is not None and s.other_lead_id == before.id
    ]
    if maybe:
        other_id = maybe[0].other_lead_id
        said += (
            f" It may be the same person as #{other_id} (same {maybe[0].kind}): "
            f'say "merge {lead.id} into {other_id}" if it is.'
        )
    return tidy(said), {"focus_lead_id": lead.id}
