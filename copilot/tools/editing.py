"""Tools that edit one lead: add a note, set a profile or custom field, archive it, merge it into
the lead that is the same person."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from copilot.access import CopilotError, check_visible
from copilot.schemas import FieldArgs, LeadArgs, MergeArgs, NoteArgs
from copilot.text import fold
from copilot.tools.base import Confirm, Result, ToolContext, find, label, tidy, tool, writable
from store import identity
from store.contacts import find_emails, try_normalize_phone
from store.domain.errors import NotAllowed
from store.domain.merge import check_merge, merge_by_hand
from store.leads import get_lead, update_lead
from store.models import Agent, Lead
from store.work import add_note as add_lead_note

PROFILE_FIELDS = ("name", "company", "email", "phone")


def _describe_note(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"add a note to {label(lead)}: {str(args.get('text'))[:80]!r}"


@tool(
    NoteArgs,
    "Add a note to a lead.",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't save that note",
    describe=_describe_note,
)
def add_note(ctx: ToolContext, agent: Agent, session: Session, args: NoteArgs) -> Result:
    found = find(ctx, args.lead, agent, session)
    note = add_lead_note(found, args.text, session=session, category=args.category, agent=agent)
    article = "an" if note.category[0].lower() in "aeiou" else "a"
    return tidy(f"Added {article} {note.category} note to #{found.id} {found.name or ''}."), {
        "focus_lead_id": found.id
    }


def _describe_field(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"set {label(lead)}'s {args.get('field')} to {str(args.get('value'))[:80]!r}"


@tool(
    FieldArgs,
    "Set one profile field (name, company, email, phone) or custom field of a lead; "
    "'rename' sets the name.",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't change that field",
    describe=_describe_field,
)
def set_field(ctx: ToolContext, agent: Agent, session: Session, args: FieldArgs) -> Result:
    found = writable(find(ctx, args.lead, agent, session))
    name, new = _field_value(ctx, args.field, args.value)
    if name in PROFILE_FIELDS:
        old = getattr(found, name)  # one of the four profile columns, checked just above
        changes: dict[str, Any] = {name: new}
    else:
        extra = dict(found.custom_fields or {})
        old = extra.get(name)
        if new is None:
            extra.pop(name, None)
        else:
            extra[name] = new
        changes = {"custom_fields": extra}
    if old == new:
        return f"#{found.id}'s {name} is already {new!r}.", {"focus_lead_id": found.id}
    try:
        with session.begin_nested():
            update_lead(found, changes, session=session, actor="agent", agent_id=agent.id)
    except IntegrityError:
        raise CopilotError(f"Another lead already has that {name}; nothing was changed.") from None
    shown = "(empty)" if new is None else new
    return tidy(f"#{found.id} {found.name or ''}: {name} {old or '(empty)'} → {shown}."), {
        "focus_lead_id": found.id
    }


@tool(
    LeadArgs,
    "Archive a lead (asks to confirm).",
    confirm="itself",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't archive that lead",
)
def archive_lead(
    ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs
) -> Result | Confirm:
    found = writable(find(ctx, args.lead, agent, session), "archive", agent)
    if found.archived:
        return f"#{found.id} is already archived.", {"focus_lead_id": found.id}
    lead_id, name = found.id, found.name or "(no name)"

    def apply(me: Agent, s: Session, _choice: str, _plan: dict[str, Any]) -> Result:
        target = writable(check_visible(me, get_lead(lead_id, session=s)), "archive", me)
        update_lead(target, {"archived": True}, session=s, actor="agent", agent_id=me.id)
        return f"Archived #{lead_id} {name}.", {"focus_lead_id": lead_id}

    return Confirm(
        "archive",
        f"Archive #{lead_id} {name}? It will no longer show in lists.",
        {"lead_ids": [lead_id]},
        apply=apply,
        declined=(f"Okay, #{lead_id} stays.", {"focus_lead_id": lead_id}),
    )


@tool(
    MergeArgs,
    "Merge one lead into another that is the same person, e.g. one a merge "
    "suggestion names (asks to confirm).",
    confirm="itself",
    could_not="I couldn't merge those leads",
)
def merge_leads(ctx: ToolContext, agent: Agent, session: Session, args: MergeArgs) -> Confirm:
    """Merge one lead into another after a yes, with the rules of `store.domain.merge`."""
    other, target = find(ctx, args.lead, agent, session), find(ctx, args.into, agent, session)
    try:
        check_merge(agent, target, other, session=session)
    except NotAllowed as exc:
        raise CopilotError(f"I can't merge them: {exc}.") from None
    hint = next(
        (
            s.reason
            for s in identity.open_suggestions(target, session=session)
            if s.other_lead_id == other.id
        ),
        None,
    )
    other_id, target_id = other.id, target.id
    question = (
        f"Merge #{other_id} {other.name or '(no name)'} into #{target_id} "
        f"{target.name or '(no name)'}? #{target_id} stays with its owner; each "
        "conversation stays separate."
    )
    if hint:
        question += f" ({hint})"

    def apply(me: Agent, s: Session, _choice: str, _plan: dict[str, Any]) -> Result:
        survivor = merge_by_hand(
            me, get_lead(target_id, session=s), get_lead(other_id, session=s), session=s
        )
        return f"Merged #{other_id} into #{survivor.id}.", {"focus_lead_id": survivor.id}

    return Confirm(
        "merge_leads",
        question,
        {"lead_ids": [other_id, target_id]},
        apply=apply,
        declined=(f"Okay, #{other_id} and #{target_id} stay apart.", {"focus_lead_id": target_id}),
    )


def _field_value(ctx: ToolContext, field: str, value: str) -> tuple[str, Any]:
    """The field's name and the typed value checked and converted, or a CopilotError."""
    name = fold(field).replace(" ", "_")
    text = (value or "").strip()
    if name in ("full_name", "lead_name"):
        name = "name"
    if name in PROFILE_FIELDS:
        if not text:
            if name == "name":
                raise CopilotError("A lead's name cannot be empty.")
            return name, None
        if name == "email":
            emails = find_emails(text)
            if not emails or emails[0].lower() != text.lower():
                raise CopilotError(f"{text!r} is not an email address.")
            return name, emails[0]
        if name == "phone":
            phone = try_normalize_phone(text, ctx.region)
            if not phone:
                raise CopilotError(f"{text!r} is not a phone number I can use.")
            return name, phone
        return name, text[:200]
    custom = next(
        (
            f
            for f in ctx.prompts.custom_fields
            if fold(f.name) == fold(field) or fold(f.label) == fold(field)
        ),
        None,
    )
    if custom is None:
        known = ", ".join([*PROFILE_FIELDS, *(f.name for f in ctx.prompts.custom_fields)])
        raise CopilotError(f"Leads have no field {field!r}. Fields: {known}.")
    if not text:
        return custom.name, None
    try:
        return custom.name, custom.coerce(text)
    except (ValueError, TypeError) as exc:
        raise CopilotError(f"{text!r} does not fit {custom.label}: {exc}") from None
