"""Identity trust: how each identity and contact detail is known, merge suggestions, and which
conversation speaks for a lead.

The rules the bot, the webhooks and the import follow when contacts arrive:

- A detail a channel vouches for is *verified*; one a person typed or a client passed unsigned is
  *claimed*. Leads merge automatically only on verified evidence, and never when they belong to
  two different agents; a claimed match becomes a `MergeSuggestion` for an agent to decide.
- After a merge the survivor keeps its owner; the other owner is told (`on_merge`). Who may merge
  by hand is `store.domain.merge`'s rule.
- Conversations are separate rooms: a reply goes to one conversation (by default the latest on a
  verified identity), and a conversation on a claimed identity cannot end the lead nor quiet the
  bot in the lead's other conversations.

Functions take a keyword-only `session` and never commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

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
    Notification,
    utcnow,
)
from store.tenancy import current_workspace, filter_written_in

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
    identity_id: int | None = None,
) -> ContactDetail:
    """Remember that `lead` has this phone/email and how it is known (a verified sighting upgrades
    a claimed one; a claimed one never downgrades a verified one)."""
    key = contact_key(kind, value)
    for _attempt in range(3):
        row = session.scalars(
            select(ContactDetail).where(
                ContactDetail.lead_id == lead.id,
                ContactDetail.kind == kind,
                ContactDetail.key == key,
            )
        ).first()
        if row is not None:
            if trust == VERIFIED and row.trust != VERIFIED:
                row.trust = VERIFIED
                row.source = source
                row.identity_id = identity_id or row.identity_id
            return row
        row = ContactDetail(
            lead_id=lead.id,
            kind=kind,
            value=value,
            key=key,
            trust=trust,
            source=source,
            identity_id=identity_id,
            created_at=utcnow(),
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            continue
    raise RuntimeError("could not record the contact detail")


def detail_trust(lead: Lead, kind: str, *, session: Session) -> str | None:
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
) -> MergeSuggestion | None:
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
    how = (
        f"claimed on {SOURCE_NAMES.get(source, source)}"
        if claimed
        else ("leads of two different agents")
    )
    reason = f"#{lead.id} may be the same person as #{other.id}: same {kind}, {how}"
    suggestion = MergeSuggestion(
        lead_id=lead.id,
        other_lead_id=other.id,
        kind=kind,
        source=source,
        reason=reason,
        state="open",
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(suggestion)
            session.flush()
    except IntegrityError:
        return session.scalars(
            select(MergeSuggestion).where(
                MergeSuggestion.lead_id == lead.id, MergeSuggestion.other_lead_id == other.id
            )
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
    other_name: str | None
    kind: str
    source: str
    reason: str
    created_at: datetime


def open_suggestions(lead: Lead, *, session: Session) -> list[Suggestion]:
    """Open suggestions involving this lead (or leads merged into it).

    Each comes with the other living lead.
    """
    ids = [lead.id, *session.scalars(select(Lead.id).where(Lead.merged_into_id == lead.id))]
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
        out.append(
            Suggestion(
                row.id, other.id, other.name, row.kind, row.source, row.reason, row.created_at
            )
        )
    return out


def _living(session: Session, lead_id: int) -> Lead | None:
    lead = session.get(Lead, lead_id)
    hops = 0
    while lead is not None and lead.merged_into_id is not None and hops < 50:
        lead = session.get(Lead, lead.merged_into_id)
        hops += 1
    return lead


def _suggestion_between(session: Session, a: Lead, b: Lead) -> Suggestion | None:
    for suggestion in open_suggestions(a, session=session):
        if suggestion.other_lead_id == b.id:
            return suggestion
    return None


def close_suggestions(
    survivor: Lead, absorbed: Lead, *, session: Session, agent_id: int | None = None
) -> None:
    """A merge settles every open suggestion between the two leads."""
    now = utcnow()
    for row in session.scalars(
        select(MergeSuggestion).where(
            MergeSuggestion.state == "open",
            or_(
                and_(
                    MergeSuggestion.lead_id == survivor.id,
                    MergeSuggestion.other_lead_id == absorbed.id,
                ),
                and_(
                    MergeSuggestion.lead_id == absorbed.id,
                    MergeSuggestion.other_lead_id == survivor.id,
                ),
            ),
        )
    ):
        row.state = "accepted"
        row.resolved_at = now
        row.resolved_by_agent_id = agent_id


# ---- settling suggestions ------------------------------------------------------------------


def dismiss_between(
    lead: Lead, other: Lead, *, session: Session, agent_id: int, now: datetime
) -> None:
    """Record that the two leads are not the same person: their open suggestions are dismissed
    (so the pair is not suggested again), audited on both. Who may decide is
    `store.domain.merge`'s rule."""
    for row in _open_rows_between(session, lead, other):
        row.state = "dismissed"
        row.resolved_at = now
        row.resolved_by_agent_id = agent_id
    for lead_id, other_id in ((lead.id, other.id), (other.id, lead.id)):
        _audit(
            session,
            lead_id,
            "agent",
            "dismiss_merge",
            "lead",
            other_id,
            "not the same person",
            agent_id,
        )


def _open_rows_between(session: Session, a: Lead, b: Lead) -> list[MergeSuggestion]:
    """Open suggestion rows between the two living leads (or leads merged into either)."""
    ids = [a.id, *session.scalars(select(Lead.id).where(Lead.merged_into_id == a.id))]
    rows = session.scalars(
        select(MergeSuggestion).where(
            MergeSuggestion.state == "open",
            or_(MergeSuggestion.lead_id.in_(ids), MergeSuggestion.other_lead_id.in_(ids)),
        )
    )
    pair = {a.id, b.id}
    out = []
    for row in rows:
        ends = {
            getattr(_living(session, row.lead_id), "id", None),
            getattr(_living(session, row.other_lead_id), "id", None),
        }
        if ends == pair:
            out.append(row)
    return out


def on_merge(
    survivor: Lead,
    absorbed: Lead,
    *,
    session: Session,
    survivor_owner: int | None,
    absorbed_owner: int | None,
    actor: str,
    agent_id: int | None,
) -> None:
    """Ownership after a merge: the survivor keeps its owner; the other owner is told (and keeps
    reading their notes, see `store.domain.permissions.visible_notes`); the audit says so."""
    close_suggestions(survivor, absorbed, session=session, agent_id=agent_id)
    if absorbed_owner is None or absorbed_owner in (survivor_owner, survivor.assigned_agent_id):
        return
    _audit(session, survivor.id, actor, "merge", "owner", absorbed_owner, survivor_owner, agent_id)
    owner = session.get(Agent, absorbed_owner)
    if owner is None or not owner.active:
        return
    who = survivor.name or f"lead #{survivor.id}"
    session.add(
        Notification(
            agent_id=owner.id,
            lead_id=survivor.id,
            kind="merged",
            text=(
                f"Your lead #{absorbed.id} was merged into #{survivor.id} ({who}), "
                "which stays with its owner. Your notes remain readable to you."
            ),
            read=False,
            created_at=utcnow(),
        )
    )


# ---- conversations --------------------------------------------------------------------------


def conversation_trust(conversation: Conversation, *, session: Session) -> str:
    identity = session.get(Identity, conversation.identity_id) if conversation.identity_id else None
    return identity.trust if identity is not None else channel_trust(conversation.channel)


def _last_inbound(session: Session, conversation_id: int) -> int:
    return (
        session.scalar(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation_id, Message.direction == "in"
            )
        )
        or 0
    )


def reply_conversation(
    lead: Lead, *, session: Session, conversation_id: int | None = None
) -> Conversation | None:
    """The conversation a reply to `lead` goes to: the one named (it must be the lead's), else the
    latest on a verified identity, else (only when there is none) the latest at all."""
    conversations = list(
        session.scalars(
            # Email has its own send path (a subject, a Message-ID): a chat reply never goes there.
            select(Conversation).where(
                Conversation.lead_id == lead.id, Conversation.channel != "email"
            )
        )
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


def may_speak_for_lead(trust: str, *, alone: bool) -> bool:
    """Whether what is said in a conversation may end or quiet the whole lead.

    Ending is a terminal status; quieting stops the bot for the whole lead. Yes on a verified
    identity, or when it is the lead's only conversation.
    """
    return trust == VERIFIED or alone


def speaks_for_lead(conversation: Conversation, *, session: Session) -> bool:
    """`may_speak_for_lead` for a conversation, read from the store."""
    if conversation_trust(conversation, session=session) == VERIFIED:
        return True
    return only_conversation(conversation, session=session)


def others_clause(conversation: type[Conversation] | Any) -> Any:
    """Whether the conversation's lead has another conversation (an EXISTS on the lead's index)."""
    other = aliased(Conversation)
    return (
        select(other.id)
        .where(other.lead_id == conversation.lead_id, other.id != conversation.id)
        .limit(1)
        .exists()
    )


def only_conversation(conversation: Conversation, *, session: Session) -> bool:
    return not session.scalar(_only_statement(), {"conversation_id": conversation.id})


@cache
def _only_statement() -> Any:
    """Built once: composing a statement costs more than running it on an index."""
    return select(others_clause(Conversation)).where(
        Conversation.id == bindparam("conversation_id")
    )


@dataclass
class Standing:
    """A conversation, its lead and its standing among the lead's rooms, loaded in one query."""

    conversation: Conversation
    lead: Lead
    trust: str  # its identity's trust (the channel's when it has none)
    alone: bool  # the lead's only conversation
    more_pending: bool = False  # unprocessed customer messages besides the ones named

    @property
    def speaks_for_lead(self) -> bool:
        return may_speak_for_lead(self.trust, alone=self.alone)


def load_standing(
    conversation_id: int,
    *,
    session: Session,
    lock_lead: bool = False,
    pending_besides: list[int] | None = None,
    refresh: bool = False,
) -> Standing | None:
    """The conversation with its lead (merges followed), its identity's trust and whether it is the
    lead's only one, in one statement; `lock_lead` locks the lead's row for the turn (PostgreSQL),
    `pending_besides` also asks whether other customer messages wait; `refresh` overwrites the
    rows the session already holds with what it reads."""
    params: dict[str, Any] = {"conversation_id": conversation_id, "workspace": current_workspace()}
    if pending_besides is not None:
        params["pending_besides"] = list(pending_besides)
    query = _standing_statement(lock_lead, pending_besides is not None)
    row = session.execute(
        query, params, execution_options=_REFRESHED if refresh else _AS_HELD
    ).first()
    if row is None:
        return None
    conversation, lead, trust, others = row[0], row[1], row[2], row[3]
    if lead.merged_into_id is not None:
        # A conversation left on a merged-away lead belongs to the survivor.
        lead = _living(session, lead.id) or lead
        others = not only_conversation(conversation, session=session)
    return Standing(
        conversation=conversation,
        lead=lead,
        trust=trust or channel_trust(conversation.channel),
        alone=not others,
        more_pending=bool(row[4]) if pending_besides is not None else False,
    )


_REFRESHED: dict[str, Any] = {"populate_existing": True}
_AS_HELD: dict[str, Any] = {}


@cache
def _standing_statement(lock_lead: bool, with_pending: bool) -> Any:
    """`load_standing`'s statement, built once per shape. The workspace's filter is written in,
    on the conversation and its lead (`filter_written_in`; nothing that reads these rows loads
    their relationships): the identity and messages read with them are the conversation's own,
    made in its workspace."""
    columns: list[Any] = [Conversation, Lead, Identity.trust, others_clause(Conversation)]
    if with_pending:
        columns.append(
            select(Message.id)
            .where(
                Message.conversation_id == Conversation.id,
                Message.direction == "in",
                Message.processed_at.is_(None),
                Message.id.not_in(bindparam("pending_besides", expanding=True)),
            )
            .limit(1)
            .exists()
        )
    query = (
        select(*columns)
        .join(Lead, Lead.id == Conversation.lead_id)
        .outerjoin(Identity, Identity.id == Conversation.identity_id)
        .where(
            Conversation.id == bindparam("conversation_id"),
            Conversation.workspace_id == bindparam("workspace"),
            Lead.workspace_id == bindparam("workspace"),
        )
        .execution_options(**filter_written_in())
    )
    return query.with_for_update(of=Lead) if lock_lead else query


# ---- helpers --------------------------------------------------------------------------------


def _audit(
    session: Session,
    lead_id: int,
    actor: str,
    action: str,
    field: str,
    old: Any,
    new: Any,
    agent_id: int | None = None,
) -> None:
    session.add(
        AuditEvent(
            lead_id=lead_id,
            actor=actor,
            agent_id=agent_id,
            action=action,
            field=field,
            old_value=None if old is None else str(old),
            new_value=None if new is None else str(new),
            created_at=utcnow(),
        )
    )
