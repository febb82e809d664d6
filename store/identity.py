"""Identity trust: how each identity and contact detail is known, and the rules for merging leads.

One place for the rules that the bot, the webhooks, the REST API, the console, the copilot and the
import all follow:

- A detail a channel vouches for is *verified*; one a person typed or a client passed unsigned is
  *claimed*. Leads merge automatically only on verified evidence, and never when they belong to
  two different agents; a claimed match becomes a `MergeSuggestion` for an agent to decide.
- Merging by hand: an agent needs access to both leads and an open suggestion between them; leads
  of two different agents only an admin merges; an admin merges any two. The survivor keeps its
  owner; the other owner is told and keeps reading the notes they wrote.
- Conversations are separate rooms: a reply goes to one conversation (by default the latest on a
  verified identity), and a conversation on a claimed identity cannot end the lead nor quiet the
  bot in the lead's other conversations.

Functions take a keyword-only `session` and never commit; `NotAllowed` is the one refusal, which
each front end turns into its own answer (HTTP 403, a copilot sentence, a CLI line).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import (
    CLAIMED,
    VERIFIED,
    Agent,
    AuditEvent,
    ContactDetail,
    Conversation,
    Identity,
    Lead,
    MergeSuggestion,
    Message,
    Note,
    Notification,
    utcnow,
)

log = logging.getLogger(__name__)

# Channels whose ids for a person the channel itself vouches for.
VERIFIED_CHANNELS = ("whatsapp", "messenger", "instagram")
SOURCE_NAMES = {
    "web": "web chat",
    "messenger": "Messenger",
    "instagram": "Instagram",
    "whatsapp": "WhatsApp",
    "manual": "manual entry",
    "agent": "an agent",
    "import": "an import",
}


class NotAllowed(Exception):
    """The acting agent (or conversation) may not do this; nothing was changed."""


# ---- trust ----------------------------------------------------------------------------------


def channel_trust(channel: str) -> str:
    """How an id on `channel` is known when nobody signed it: verified on the Meta channels."""
    return VERIFIED if channel in VERIFIED_CHANNELS else CLAIMED


def stronger(a: str, b: str) -> str:
    return VERIFIED if VERIFIED in (a, b) else CLAIMED


def contact_key(kind: str, value: str) -> str:
    """The compared form of a detail: emails ignore case in the whole address."""
    return value.lower() if kind == "email" else value


def record_contact(
    lead: Lead,
    kind: str,
    value: str,
    *,
    session: Session,
    trust: str,
    source: str,
    identity_id: Optional[int] = None,
) -> ContactDetail:
    """Remember that `lead` has this phone/email and how it is known (a verified sighting upgrades
    a claimed one; a claimed one never downgrades a verified one)."""
    key = contact_key(kind, value)
    for _attempt in range(3):
        row = session.scalars(
            select(ContactDetail).where(
                ContactDetail.lead_id == lead.id, ContactDetail.kind == kind, ContactDetail.key == key
            )
        ).first()
        if row is not None:
            if trust == VERIFIED and row.trust != VERIFIED:
                row.trust = VERIFIED
                row.source = source
                row.identity_id = identity_id or row.identity_id
            return row
        row = ContactDetail(lead_id=lead.id, kind=kind, value=value, key=key, trust=trust,
                            source=source, identity_id=identity_id, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            continue
    raise RuntimeError("could not record the contact detail")


def detail_trust(lead: Lead, kind: str, *, session: Session) -> Optional[str]:
    """How the lead's own phone/email (the one in its profile) is known, None when it has none."""
    value = lead.phone if kind == "phone" else lead.email
    if not value:
        return None
    trust = session.scalars(
        select(ContactDetail.trust).where(
            ContactDetail.lead_id == lead.id,
            ContactDetail.kind == kind,
            ContactDetail.key == contact_key(kind, value),
        )
    ).first()
    return trust or CLAIMED


def other_claimants(kind: str, key: str, lead_id: int, *, session: Session) -> list[int]:
    """Living leads other than `lead_id` that also have this detail (claimed or verified)."""
    return list(
        session.scalars(
            select(ContactDetail.lead_id)
            .join(Lead, Lead.id == ContactDetail.lead_id)
            .where(
                ContactDetail.kind == kind,
                ContactDetail.key == key,
                ContactDetail.lead_id != lead_id,
                Lead.merged_into_id.is_(None),
            )
            .order_by(ContactDetail.lead_id)
        )
    )


# ---- automatic merges and suggestions -------------------------------------------------------


def different_owners(a: Lead, b: Lead) -> bool:
    return (
        a.assigned_agent_id is not None
        and b.assigned_agent_id is not None
        and a.assigned_agent_id != b.assigned_agent_id
    )


def may_merge_automatically(a: Lead, b: Lead) -> bool:
    """Verified evidence merges two leads by itself, unless they are two different agents' leads
    (a merge would move one agent's notes to the other's lead)."""
    return not different_owners(a, b)


def merges_on_match(lead: Lead, other: Lead, *, trust: str, deliberate: bool = False) -> bool:
    """Whether `lead` coming with a detail `other` already has is merged into `other` (else a merge
    is suggested): on verified evidence when the owners allow it, or always for an import's
    deliberate act (whose merge then tells the other owner)."""
    return deliberate or (trust == VERIFIED and may_merge_automatically(lead, other))


def suggest_merge(
    lead: Lead, other: Lead, kind: str, *, session: Session, source: str, claimed: bool = True
) -> Optional[MergeSuggestion]:
    """Record that `lead` may be the same person as `other` (audited on both); once per pair."""
    if lead.id == other.id:
        return None
    low, high = sorted((lead.id, other.id))
    existing = session.scalars(
        select(MergeSuggestion).where(
            or_(
                and_(MergeSuggestion.lead_id == lead.id, MergeSuggestion.other_lead_id == other.id),
                and_(MergeSuggestion.lead_id == other.id, MergeSuggestion.other_lead_id == lead.id),
            )
        )
    ).first()
    if existing is not None:
        return existing
    how = f"claimed on {SOURCE_NAMES.get(source, source)}" if claimed else (
        "leads of two different agents")
    reason = f"#{lead.id} may be the same person as #{other.id}: same {kind}, {how}"
    suggestion = MergeSuggestion(lead_id=lead.id, other_lead_id=other.id, kind=kind, source=source,
                                 reason=reason, state="open", created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(suggestion)
            session.flush()
    except IntegrityError:
        return session.scalars(
            select(MergeSuggestion).where(MergeSuggestion.lead_id == lead.id,
                                          MergeSuggestion.other_lead_id == other.id)
        ).first()
    for lead_id, other_id in ((lead.id, other.id), (other.id, lead.id)):
        _audit(session, lead_id, "system", "suggest_merge", "lead", other_id, reason)
    log.info("merge suggested between leads %s and %s (same %s)", low, high, kind)
    return suggestion


@dataclass(frozen=True)
class Suggestion:
    """An open merge suggestion as a lead sees it."""

    id: int
    other_lead_id: int
    other_name: Optional[str]
    kind: str
    source: str
    reason: str
    created_at: datetime


def open_suggestions(lead: Lead, *, session: Session) -> list[Suggestion]:
    """Open suggestions involving this lead (or leads merged into it), with the other living lead."""
    ids = [lead.id] + list(session.scalars(select(Lead.id).where(Lead.merged_into_id == lead.id)))
    rows = session.scalars(
        select(MergeSuggestion)
        .where(
            MergeSuggestion.state == "open",
            or_(MergeSuggestion.lead_id.in_(ids), MergeSuggestion.other_lead_id.in_(ids)),
        )
        .order_by(MergeSuggestion.id)
    )
    out: list[Suggestion] = []
    seen: set[int] = set()
    for row in rows:
        other_id = row.other_lead_id if row.lead_id in ids else row.lead_id
        other = _living(session, other_id)
        if other is None or other.id == lead.id or other.id in seen:
            continue
        seen.add(other.id)
        out.append(Suggestion(row.id, other.id, other.name, row.kind, row.source, row.reason,
                              row.created_at))
    return out


def _living(session: Session, lead_id: int) -> Optional[Lead]:
    lead = session.get(Lead, lead_id)
    hops = 0
    while lead is not None and lead.merged_into_id is not None and hops < 50:
        lead = session.get(Lead, lead.merged_into_id)
        hops += 1
    return lead


def _suggestion_between(session: Session, a: Lead, b: Lead) -> Optional[Suggestion]:
    for suggestion in open_suggestions(a, session=session):
        if suggestion.other_lead_id == b.id:
            return suggestion
    return None


def close_suggestions(
    survivor: Lead, absorbed: Lead, *, session: Session, agent_id: Optional[int] = None
) -> None:
    """A merge settles every open suggestion between the two leads."""
    now = utcnow()
    for row in session.scalars(
        select(MergeSuggestion).where(
            MergeSuggestion.state == "open",
            or_(
                and_(MergeSuggestion.lead_id == survivor.id,
                     MergeSuggestion.other_lead_id == absorbed.id),
                and_(MergeSuggestion.lead_id == absorbed.id,
                     MergeSuggestion.other_lead_id == survivor.id),
            ),
        )
    ):
        row.state = "accepted"
        row.resolved_at = now
        row.resolved_by_agent_id = agent_id


# ---- merging by hand ------------------------------------------------------------------------


def is_admin(agent: Agent) -> bool:
    return agent.role == "admin"


def may_access(agent: Agent, lead: Lead) -> bool:
    """Agents work their own and unassigned leads; admins every lead."""
    return is_admin(agent) or lead.assigned_agent_id in (None, agent.id)


def _check_pair(agent: Agent, target: Lead, other: Lead, verb: str) -> None:
    """Raise NotAllowed unless `agent` may decide about these two leads together (merge them, or
    dismiss a suggestion that they are one person): an admin always; an agent with access to both,
    neither converted, and not two different agents' leads."""
    if is_admin(agent):
        return
    if different_owners(target, other):
        raise NotAllowed(
            f"#{target.id} and #{other.id} belong to two different agents; only an admin can "
            f"{verb} them"
        )
    if not (may_access(agent, target) and may_access(agent, other)):
        hidden = other if may_access(agent, target) else target
        raise NotAllowed(
            f"this needs access to both leads, and #{hidden.id} is assigned to another agent"
        )
    if target.locked or other.locked:
        locked = target if target.locked else other
        raise NotAllowed(f"#{locked.id} was converted and is read-only; an admin can {verb} it")


def check_merge(agent: Agent, target: Lead, other: Lead, *, session: Session) -> None:
    """Raise NotAllowed unless `agent` may merge `other` into `target`."""
    if target.id == other.id:
        raise NotAllowed(f"#{target.id} and #{other.id} are already one lead")
    _check_pair(agent, target, other, "merge")
    if is_admin(agent):
        return
    if _suggestion_between(session, target, other) is None:
        raise NotAllowed(
            f"nothing suggests #{other.id} and #{target.id} are one person; only an admin can "
            "merge two leads without a suggestion"
        )


def merge_by_hand(
    agent: Agent, target: Lead, other: Lead, *, session: Session, reason: Optional[str] = None
) -> Lead:
    """Merge `other` into `target` for `agent` after `check_merge`; returns the survivor."""
    from store.leads import merge_leads

    check_merge(agent, target, other, session=session)
    return merge_leads(target, other, session=session, actor="agent", agent_id=agent.id,
                       into=target, reason=reason or "merged by hand")


def dismiss_suggestion(agent: Agent, lead: Lead, suggestion_id: int, *, session: Session) -> Lead:
    """Settle an open merge suggestion on `lead` as "not the same person", for `agent`, who needs
    the access accepting it would need; audited on both leads. Returns the other lead.

    Raises LookupError when `lead` has no such open suggestion, NotAllowed when `agent` may not
    decide about the two leads. A dismissed pair is not suggested again."""
    suggestion = next(
        (s for s in open_suggestions(lead, session=session) if s.id == suggestion_id), None
    )
    if suggestion is None:
        raise LookupError(f"lead #{lead.id} has no open merge suggestion {suggestion_id}")
    other = session.get(Lead, suggestion.other_lead_id)
    assert other is not None  # open_suggestions lists living leads only
    _check_pair(agent, lead, other, "decide about")
    now = utcnow()
    for row in _open_rows_between(session, lead, other):
        row.state = "dismissed"
        row.resolved_at = now
        row.resolved_by_agent_id = agent.id
    for lead_id, other_id in ((lead.id, other.id), (other.id, lead.id)):
        _audit(session, lead_id, "agent", "dismiss_merge", "lead", other_id,
               "not the same person", agent.id)
    log.info("merge suggestion between leads %s and %s dismissed by agent %s", lead.id, other.id,
             agent.id)
    return other


def _open_rows_between(session: Session, a: Lead, b: Lead) -> list[MergeSuggestion]:
    """Open suggestion rows between the two living leads (or leads merged into either)."""
    ids = [a.id] + list(session.scalars(select(Lead.id).where(Lead.merged_into_id == a.id)))
    rows = session.scalars(
        select(MergeSuggestion).where(
            MergeSuggestion.state == "open",
            or_(MergeSuggestion.lead_id.in_(ids), MergeSuggestion.other_lead_id.in_(ids)),
        )
    )
    pair = {a.id, b.id}
    out = []
    for row in rows:
        ends = {getattr(_living(session, row.lead_id), "id", None),
                getattr(_living(session, row.other_lead_id), "id", None)}
        if ends == pair:
            out.append(row)
    return out


def on_merge(
    survivor: Lead,
    absorbed: Lead,
    *,
    session: Session,
    survivor_owner: Optional[int],
    absorbed_owner: Optional[int],
    actor: str,
    agent_id: Optional[int],
) -> None:
    """Ownership after a merge: the survivor keeps its owner; the other owner is told (and keeps
    reading their notes, see `visible_notes`); the audit says so."""
    close_suggestions(survivor, absorbed, session=session, agent_id=agent_id)
    if absorbed_owner is None or absorbed_owner in (survivor_owner, survivor.assigned_agent_id):
        return
    _audit(session, survivor.id, actor, "merge", "owner", absorbed_owner, survivor_owner, agent_id)
    owner = session.get(Agent, absorbed_owner)
    if owner is None or not owner.active:
        return
    who = survivor.name or f"lead #{survivor.id}"
    session.add(Notification(
        agent_id=owner.id, lead_id=survivor.id, kind="merged",
        text=(f"Your lead #{absorbed.id} was merged into #{survivor.id} ({who}), which stays with "
              "its owner. Your notes remain readable to you."),
        read=False, created_at=utcnow()))


def visible_notes(agent: Agent, lead: Lead, *, session: Session) -> list[Note]:
    """The lead's notes this agent may read: all with access to the lead, else their own."""
    query = select(Note).where(Note.lead_id == lead.id).order_by(Note.id)
    if not may_access(agent, lead):
        query = query.where(Note.agent_id == agent.id)
    return list(session.scalars(query))


def has_own_notes(agent: Agent, lead: Lead, *, session: Session) -> bool:
    return session.scalars(
        select(Note.id).where(Note.lead_id == lead.id, Note.agent_id == agent.id).limit(1)
    ).first() is not None


def may_read_notes(agent: Agent, lead: Lead, *, session: Session) -> bool:
    """Whether the agent reads any of the lead's notes: with access to the lead, or as a former
    owner whose lead was merged into it (then only their own, see `visible_notes`)."""
    return may_access(agent, lead) or has_own_notes(agent, lead, session=session)


# ---- conversations --------------------------------------------------------------------------


def conversation_trust(conversation: Conversation, *, session: Session) -> str:
    identity = session.get(Identity, conversation.identity_id) if conversation.identity_id else None
    return identity.trust if identity is not None else channel_trust(conversation.channel)


def _last_inbound(session: Session, conversation_id: int) -> int:
    return session.scalar(
        select(func.max(Message.id)).where(
            Message.conversation_id == conversation_id, Message.direction == "in"
        )
    ) or 0


def reply_conversation(
    lead: Lead, *, session: Session, conversation_id: Optional[int] = None
) -> Optional[Conversation]:
    """The conversation a reply to `lead` goes to: the one named (it must be the lead's), else the
    latest on a verified identity, else (only when there is none) the latest at all."""
    conversations = list(
        session.scalars(select(Conversation).where(Conversation.lead_id == lead.id))
    )
    if conversation_id is not None:
        for conversation in conversations:
            if conversation.id == conversation_id:
                return conversation
        raise LookupError(f"conversation {conversation_id} is not one of lead {lead.id}'s")
    if not conversations:
        return None

    def recency(conversation: Conversation) -> tuple[int, int]:
        return (_last_inbound(session, conversation.id), conversation.id)

    verified = [c for c in conversations if conversation_trust(c, session=session) == VERIFIED]
    return max(verified or conversations, key=recency)


def speaks_for_lead(conversation: Conversation, *, session: Session) -> bool:
    """Whether what is said in this conversation may end the lead (a terminal status) or quiet the
    bot for the whole lead: yes on a verified identity, or when it is the lead's only conversation."""
    if conversation_trust(conversation, session=session) == VERIFIED:
        return True
    others = session.scalars(
        select(Conversation.id).where(
            Conversation.lead_id == conversation.lead_id, Conversation.id != conversation.id
        ).limit(1)
    ).first()
    return others is None


def only_conversation(conversation: Conversation, *, session: Session) -> bool:
    return session.scalars(
        select(Conversation.id).where(
            Conversation.lead_id == conversation.lead_id, Conversation.id != conversation.id
        ).limit(1)
    ).first() is None


# ---- helpers --------------------------------------------------------------------------------


def _audit(session: Session, lead_id: int, actor: str, action: str, field: str, old: Any,
           new: Any, agent_id: Optional[int] = None) -> None:
    session.add(AuditEvent(lead_id=lead_id, actor=actor, agent_id=agent_id, action=action,
                           field=field, old_value=None if old is None else str(old),
                           new_value=None if new is None else str(new), created_at=utcnow()))
