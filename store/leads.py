"""Leads: resolving a person from a channel identity, merging duplicates, audited field changes.

Repository functions take a keyword-only `session` and never commit: the caller owns the
transaction.
Uniqueness (one identity per channel id, one lead per phone or email) is enforced by the database;
a lost race surfaces as an IntegrityError inside a savepoint and is resolved by reading the winner.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import identity as rules
from store.contacts import normalize_email, normalize_phone
from store.db import insert_for
from store.events import inserted
from store.models import (
    CHANNELS,
    CLAIMED,
    VERIFIED,
    AuditEvent,
    ContactDetail,
    Conversation,
    Identity,
    Lead,
    Message,
    Note,
    Notification,
    ScoreEvent,
    Task,
    utcnow,
)
from store.tenancy import current_workspace, filter_written_in
from store.text import clean_json, clean_text

log = logging.getLogger(__name__)

# Fields a merge copies from the absorbed lead when the survivor has none.
_FILLABLE = (
    "name",
    "email",
    "phone",
    "company",
    "summary",
    "next_best_action",
    "source",
    "assigned_agent_id",
    "conversion_probability",
)
_MAX_ATTEMPTS = 5
# The session.info key of `batched_audit`'s rows: {table name: rows}, written in that order.
_AUDIT_BATCH = "leaddesk.audit_batch"
_REHOMINGS = "leaddesk.rehomings"  # the session.info key of `rehomings`' count
_DEFAULT_STATUS = "New"


class UnknownChannel(ValueError):
    pass


class LeadNotFound(LookupError):
    pass


def _audit_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def record_audit(
    *,
    session: Session,
    lead_id: int | None,
    actor: str,
    action: str,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    agent_id: int | None = None,
) -> None:
    """One audit row: written with the open `batched_audit` block's rows, else added to the
    session (its next flush writes it)."""
    row = {
        "lead_id": lead_id,
        "actor": actor,
        "agent_id": agent_id,
        "action": action,
        "field": field,
        "old_value": _audit_value(old),
        "new_value": _audit_value(new),
        "created_at": utcnow(),
        # The workspace of the change, not of whatever is in force when a batch is written.
        "workspace_id": current_workspace(),
    }
    if not batch_row(session, AuditEvent.__tablename__, row):
        session.add(AuditEvent(**row))


@contextmanager
def batched_audit(session: Session) -> Iterator[None]:
    """Collect the audit rows (and score events) recorded inside the block and write them in one
    INSERT per table when it ends (or at `write_audit`): for a turn that records several and reads
    none back."""
    session.info[_AUDIT_BATCH] = {}
    try:
        yield
        write_audit(session)
    finally:
        session.info.pop(_AUDIT_BATCH, None)


def batch_row(session: Session, table: str, row: dict[str, Any]) -> bool:
    """Add a row for `table` to the open `batched_audit` block; False when none is open (the
    caller adds its object to the session instead)."""
    batch: dict[str, list[dict[str, Any]]] | None = session.info.get(_AUDIT_BATCH)
    if batch is None:
        return False
    batch.setdefault(table, []).append(row)
    return True


def write_audit(session: Session) -> None:
    """Write the rows `batched_audit` has collected so far, one statement per table."""
    batch: dict[str, list[dict[str, Any]]] | None = session.info.get(_AUDIT_BATCH)
    for table, rows in (batch or {}).items():
        if rows:
            # The table's INSERT, not the ORM's bulk path: nothing is read back, one executemany.
            session.execute(_batch_insert(table), list(rows))
            rows.clear()


@cache
def _batch_insert(table: str) -> Any:
    """`write_audit`'s statement for a table, built once (its cache key is then worked out once)."""
    return insert(AuditEvent.metadata.tables[table])


# What the bot works out again at every turn: its score with the factors (each change recorded,
# with its evidence, as a score event), and what it derives from the conversation, the score and
# the status. The audit trail keeps a person's change of these, not a row a message of the bot's,
# which pushed the changes of fact (status, owner, contacts) out of the trail's view.
BOT_DIGESTS = frozenset(
    {"score", "score_factors", "summary", "conversion_probability", "next_best_action"}
)


def update_lead(
    lead: Lead,
    changes: dict[str, Any],
    *,
    session: Session,
    actor: str,
    agent_id: int | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Apply `changes` to the lead, writing one AuditEvent per field that really changed (but for
    what the bot works out at every turn: `BOT_DIGESTS`)."""
    changed: dict[str, tuple[Any, Any]] = {}
    for field, new in changes.items():
        if not hasattr(Lead, field):
            raise AttributeError(f"leads have no field {field!r}")
        new = clean_json(new)  # names, companies and custom fields from any front end or model
        old = getattr(lead, field)
        if old == new:
            continue
        setattr(lead, field, new)
        changed[field] = (old, new)
        if actor == "bot" and field in BOT_DIGESTS:
            continue
        record_audit(
            session=session,
            lead_id=lead.id,
            actor=actor,
            action="update",
            field=field,
            old=old,
            new=new,
            agent_id=agent_id,
        )
    return changed


# Actors whose values a customer's own words may correct: the channel's profile and the bot.
MACHINE_ACTORS = ("bot", "merge")


def typed_by_a_person(lead: Lead, field: str, *, session: Session) -> bool:
    """Whether the lead's current `field` was set by a person (an agent, an import), not by the
    channel's profile or the bot."""
    if getattr(lead, field) is None:
        return False
    last = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.lead_id == lead.id, AuditEvent.field == field)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if last is None:
        # Set when the lead was created: by whoever created it.
        last = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.lead_id == lead.id, AuditEvent.action == "create")
            .order_by(AuditEvent.id)
            .limit(1)
        ).first()
    return last is not None and last.actor not in MACHINE_ACTORS


def set_stated_details(
    lead: Lead,
    *,
    session: Session,
    name: str | None = None,
    company: str | None = None,
    actor: str = "bot",
) -> dict[str, tuple[Any, Any]]:
    """Take the name and company a customer gives for themselves: they replace what a channel
    profile or the bot had, never what an agent typed."""
    changes: dict[str, Any] = {}
    for field, value in (("name", name), ("company", company)):
        value = value.replace("\x00", "").strip()[:200] if value else None
        if not value or value == getattr(lead, field):
            continue
        if typed_by_a_person(lead, field, session=session):
            continue
        changes[field] = value
    return update_lead(lead, changes, session=session, actor=actor) if changes else {}


def get_lead(lead_id: int, *, session: Session, follow_merges: bool = True) -> Lead:
    """The lead with this id; a merged-away id leads to the lead it was merged into."""
    lead = session.get(Lead, lead_id)
    seen = set()
    while (
        lead is not None
        and follow_merges
        and lead.merged_into_id is not None
        and lead.id not in seen
    ):
        seen.add(lead.id)
        lead = session.get(Lead, lead.merged_into_id)
    if lead is None:
        raise LeadNotFound(f"no lead with id {lead_id}")
    return lead


def find_lead_by_phone(phone: str, *, session: Session) -> Lead | None:
    return session.scalars(select(Lead).where(Lead.phone == phone)).first()


def find_lead_by_email(email: str, *, session: Session) -> Lead | None:
    """The lead with this email in any case (emails are compared lower-cased)."""
    return session.scalars(select(Lead).where(func.lower(Lead.email) == email.lower())).first()


def _holder(session: Session, field: str, value: str) -> Lead | None:
    if field == "email":
        return find_lead_by_email(value, session=session)
    return find_lead_by_phone(value, session=session)


def find_identity(channel: str, external_id: str, *, session: Session) -> Identity | None:
    return session.scalars(
        select(Identity).where(Identity.channel == channel, Identity.external_id == external_id)
    ).first()


def _insert(session: Session, obj: Any) -> bool:
    """Insert `obj` in a savepoint; False (nothing written) when a unique constraint refuses it."""
    try:
        with session.begin_nested():
            session.add(obj)
            session.flush()
        return True
    except IntegrityError:
        return False


def resolve(
    channel: str,
    external_id: str,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    *,
    session: Session,
    region: str = "US",
    source: str | None = None,
    actor: str = "bot",
    trust: str = VERIFIED,
    identity_trust: str | None = None,
    alias_of: str | None = None,
) -> Lead:
    """Return the lead for this person, created if needed, merging leads that turn out to be one.

    `phone` and `email` are normalised here (an invalid value raises
    `store.contacts.InvalidContact`).
    `trust` says how they are known: a verified detail that another lead has merges the two (the
    rules of `store.identity`); a claimed one only records a merge suggestion. `identity_trust`
    defaults to what the channel vouches for; `alias_of` names an identity on the same channel
    whose lead and conversation this new identity joins.
    """
    lead, _identity = resolve_identity(
        channel,
        external_id,
        phone,
        email,
        name,
        session=session,
        region=region,
        source=source,
        actor=actor,
        trust=trust,
        identity_trust=identity_trust,
        alias_of=alias_of,
    )
    return lead


def resolve_identity(
    channel: str,
    external_id: str,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    *,
    session: Session,
    region: str = "US",
    source: str | None = None,
    actor: str = "bot",
    trust: str = VERIFIED,
    identity_trust: str | None = None,
    alias_of: str | None = None,
    absent: bool = False,
    contacted_at: datetime | None = None,
) -> tuple[Lead, Identity]:
    """`resolve`, also giving the identity the person wrote from. `absent`: the caller has just
    read, in this transaction, that no such identity exists, so the first attempt
    registers it without looking it up again (a concurrent registration still wins, and the next
    attempt finds it). `contacted_at`: the last contact of a lead this creates (the message that
    brought the person), written with its row."""
    if channel not in CHANNELS:
        raise UnknownChannel(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    external_id = clean_text(str(external_id)).strip()
    if not external_id:
        raise ValueError("an identity needs an external id")
    phone = normalize_phone(phone, region) if phone else None
    email = normalize_email(email) if email else None
    name = clean_text(name).strip()[:200] or None if name else None
    identity_trust = identity_trust or rules.channel_trust(channel)

    for attempt in range(_MAX_ATTEMPTS):
        found = _lead_for_identity(
            session,
            channel,
            external_id,
            phone,
            email,
            name,
            source,
            actor,
            trust,
            identity_trust,
            alias_of,
            look_up=attempt > 0 or not absent,
            contacted_at=contacted_at,
        )
        if found is None:
            continue
        lead, identity, settled, unheld = found
        claimed: Lead | None = lead
        for field, value in (("phone", phone), ("email", email)):
            if field in settled:
                # The lead holds it already, verified: the claim was made and its merges and
                # suggestions settled then (a later claimant meets this lead as the holder).
                continue
            if value and claimed is not None:
                claimed = _claim(
                    session,
                    claimed,
                    field,
                    value,
                    actor,
                    trust=trust,
                    source=channel,
                    identity_id=identity.id,
                    unheld=unheld,
                )
        if claimed is None:
            continue
        if name and not claimed.name:
            update_lead(claimed, {"name": name}, session=session, actor=actor)
        return claimed, identity
    raise RuntimeError("could not resolve the lead: too much concurrent contention")


@dataclass
class KnownSender:
    """A registered identity as a batch of messages meets it: its lead, its conversation (None
    before the first message) and the lead's verified details (kind, key)."""

    identity: Identity
    lead: Lead
    conversation: Conversation | None
    verified: frozenset[tuple[str, str]]
    # Whether the conversation is the lead's only one (`known_sender` reads it; the batch does not).
    alone: bool | None = None

    def standing(self) -> rules.Standing | None:
        """The conversation's standing as `store.identity.load_standing` would read it, from what
        was read with the sender: None where it cannot tell (no conversation yet, a merged-away
        lead, an alias, whose room is its root identity's)."""
        if (
            self.conversation is None
            or self.alone is None
            or self.lead.merged_into_id is not None
            or self.identity.alias_of_id is not None
        ):
            return None
        return rules.Standing(
            conversation=self.conversation,
            lead=self.lead,
            trust=self.identity.trust or rules.channel_trust(self.conversation.channel),
            alone=self.alone,
        )


def known_senders(
    keys: Sequence[tuple[str, str]], *, session: Session
) -> dict[tuple[str, str], KnownSender]:
    """The registered identities among (channel, external id) `keys` with their leads and
    conversations, in one statement, and their leads' verified phones and emails in a second:
    what `settled_sender` needs to tell, for a whole batch of messages at once, which senders
    `resolve_identity` would return as they are. Read fresh (a merge earlier in the transaction
    shows)."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    rows = session.execute(_batch_senders_statement(), {"keys": keys}).all()
    lead_ids = {lead.id for _identity, lead, _conversation in rows}
    verified: dict[int, set[tuple[str, str]]] = {}
    if lead_ids:
        for lead_id, kind, key in session.execute(
            _verified_details_statement(), {"lead_ids": sorted(lead_ids)}
        ):
            verified.setdefault(lead_id, set()).add((kind, key))
    return {
        (identity.channel, identity.external_id): KnownSender(
            identity, lead, conversation, frozenset(verified.get(lead.id, ()))
        )
        for identity, lead, conversation in rows
    }


@cache
def _batch_senders_statement() -> Any:
    """`known_senders`' first statement, built once (the inbox drain runs it at every batch: built
    anew, it had its cache key worked out, and the session's workspace options added, each time)."""
    senders = tuple_(Identity.channel, Identity.external_id)
    return _senders_statement().where(senders.in_(bindparam("keys", expanding=True)))


@cache
def _verified_details_statement() -> Any:
    """`known_senders`' second statement, built once: the verified details of the leads found."""
    return select(ContactDetail.lead_id, ContactDetail.kind, ContactDetail.key).where(
        ContactDetail.lead_id.in_(bindparam("lead_ids", expanding=True)),
        ContactDetail.trust == VERIFIED,
    )


def _senders_statement() -> Any:
    root = func.coalesce(Identity.alias_of_id, Identity.id)
    return (
        select(Identity, Lead, Conversation)
        .join(Lead, Lead.id == Identity.lead_id)
        .outerjoin(Conversation, Conversation.identity_id == root)
        .execution_options(populate_existing=True)
    )


def known_sender(
    channel: str,
    external_id: str,
    *,
    phone: str | None,
    session: Session,
    lock_lead: bool = False,
) -> KnownSender | None:
    """`known_senders` for one sender, in one statement: whether its lead holds `phone` (E.164)
    as a verified detail comes with it (the bot's own path, a message at a time). `lock_lead`
    locks the lead's row for the rest of the transaction (PostgreSQL)."""
    params: dict[str, Any] = {
        "channel": channel,
        "external_id": external_id,
        "workspace": current_workspace(),
    }
    if phone is not None:
        params["phone_key"] = rules.contact_key("phone", phone)
    row = session.execute(_one_sender_statement(phone is not None, lock_lead), params).first()
    if row is None:
        return None
    held = phone is not None and bool(row[4])
    verified = frozenset([("phone", params["phone_key"])]) if held else frozenset()
    return KnownSender(row[0], row[1], row[2], verified, alone=not row[3])


@cache
def _one_sender_statement(with_phone: bool, lock_lead: bool = False) -> Any:
    """`known_sender`'s statement, built once per shape: with the sender, whether its lead has
    another conversation (the turn that follows needs its standing) and, asked for, whether the
    lead holds the phone as a verified detail.

    The workspace's filter is written in, on the identity and its lead (`filter_written_in`;
    nothing that reads these rows loads their relationships): the conversations and contact
    details read here are the lead's, made in its workspace."""
    statement = (
        _senders_statement()
        .add_columns(rules.others_clause(Conversation))
        .where(
            Identity.channel == bindparam("channel"),
            Identity.external_id == bindparam("external_id"),
            Identity.workspace_id == bindparam("workspace"),
            Lead.workspace_id == bindparam("workspace"),
        )
        .execution_options(**filter_written_in())
    )
    if with_phone:
        statement = statement.add_columns(
            select(ContactDetail.id)
            .where(
                ContactDetail.lead_id == Lead.id,
                ContactDetail.kind == "phone",
                ContactDetail.key == bindparam("phone_key"),
                ContactDetail.trust == VERIFIED,
            )
            .exists()
        )
    return statement.with_for_update(of=Lead) if lock_lead else statement


def settled_sender(
    known: KnownSender | None, *, phone: str | None, name: str | None, region: str = "US"
) -> bool:
    """Whether `resolve_identity(channel, external_id, phone=phone, name=name, trust=VERIFIED)`
    would return this sender's lead and identity with nothing to write: registered, trusted as
    its channel is, its lead not merged away, the phone already the lead's verified phone and no
    name to give a lead without one. A message from a settled sender can be stored in a batch
    (`store.messages.ingest_known`); any other goes through `resolve_identity`."""
    if known is None or known.conversation is None or known.lead.merged_into_id is not None:
        return False
    identity = known.identity
    if rules.channel_trust(identity.channel) == VERIFIED and identity.trust != VERIFIED:
        return False
    if phone:
        phone = normalize_phone(phone, region)
        key = rules.contact_key("phone", phone)
        if not _holds(known.lead, "phone", phone) or ("phone", key) not in known.verified:
            return False
    return not (name and clean_text(name).strip() and not known.lead.name)


def resolve_contact(
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    *,
    session: Session,
    region: str = "US",
    source: str | None = None,
    actor: str = "agent",
    agent_id: int | None = None,
    reason: str | None = None,
) -> tuple[Lead, bool]:
    """Find the lead owning this phone or email, or create one on the `manual` channel.

    For leads that come from an agent or an import rather than a channel, a deliberate act that
    may merge on its own details: a phone owned by one lead and an email owned by another merge
    the two (`reason`, e.g. the imported file, goes into the merge's audit). The details are
    recorded as claimed (no channel vouched for them). Returns (lead, created). Without phone and
    email every call creates a new lead. Invalid values raise `store.contacts.InvalidContact`.
    """
    phone = normalize_phone(phone, region) if phone else None
    email = normalize_email(email) if email else None
    name = clean_text(name).strip()[:200] or None if name else None
    created: Lead | None = None
    for _attempt in range(_MAX_ATTEMPTS):
        lead = (
            created
            or (find_lead_by_phone(phone, session=session) if phone else None)
            or (find_lead_by_email(email, session=session) if email else None)
        )
        if lead is None:
            lead = created = _new_lead(
                session,
                "manual",
                f"{actor}-{uuid.uuid4().hex}",
                name,
                source or actor,
                actor,
                agent_id,
            )
        claimed: Lead | None = lead
        for field, value in (("phone", phone), ("email", email)):
            if value and claimed is not None:
                claimed = _claim(
                    session,
                    claimed,
                    field,
                    value,
                    actor,
                    trust=CLAIMED,
                    source=actor if actor in ("import", "agent") else "manual",
                    merge=True,
                    reason=reason,
                    agent_id=agent_id,
                )
        if claimed is None:
            # Lost a race for the phone/email: the next attempt merges with the winner.
            continue
        if name and not claimed.name:
            update_lead(claimed, {"name": name}, session=session, actor=actor, agent_id=agent_id)
        is_new = (
            created is not None and claimed.id == created.id and not _was_merged(session, claimed)
        )
        return claimed, is_new
    raise RuntimeError("could not resolve the lead: too much concurrent contention")


def _was_merged(session: Session, lead: Lead) -> bool:
    return (
        session.scalars(select(Lead.id).where(Lead.merged_into_id == lead.id).limit(1)).first()
        is not None
    )


def _new_lead(
    session: Session,
    channel: str,
    external_id: str,
    name: str | None,
    source: str | None,
    actor: str,
    agent_id: int | None = None,
) -> Lead:
    """Insert a lead with its first identity (the external id is assumed fresh)."""
    now = utcnow()
    with session.begin_nested():
        lead = Lead(
            name=name,
            source=source or channel,
            created_at=now,
            updated_at=now,
            score_factors=[],
            interests=[],
            objections=[],
            tags=[],
            custom_fields={},
        )
        session.add(lead)
        session.flush()
        record_audit(
            session=session, lead_id=lead.id, actor=actor, action="create", agent_id=agent_id
        )
        session.add(
            Identity(
                lead_id=lead.id,
                channel=channel,
                external_id=external_id,
                display_name=name,
                created_at=now,
            )
        )
        session.flush()
    return lead


def _lead_for_identity(
    session: Session,
    channel: str,
    external_id: str,
    phone: str | None,
    email: str | None,
    name: str | None,
    source: str | None,
    actor: str,
    trust: str,
    identity_trust: str,
    alias_of: str | None,
    *,
    look_up: bool = True,
    contacted_at: datetime | None = None,
) -> tuple[Lead, Identity, frozenset[str], bool] | None:
    """The lead of this identity (and the identity), registering the identity if it is new;
    which of `phone` and `email` the lead already holds as verified details (nothing left to
    claim); and whether no lead held the verified `phone` or `email` when this transaction looked,
    just now, before creating the lead (its claims need not look for a holder again: should one
    have been committed meanwhile, the unique index refuses the second, and the next attempt
    meets it). None means a concurrent registration won: try again. Without `look_up` the
    identity is registered straight away (the caller has just seen it absent). A lead created here
    is last contacted at `contacted_at`."""
    # The identity with its lead, and whether the details are settled, in one statement (a
    # merged-away lead is followed).
    details = [("phone", phone), ("email", email)] if trust == VERIFIED else []
    row = None
    if look_up:
        query = (
            select(Identity, Lead)
            .join(Lead, Lead.id == Identity.lead_id)
            .where(Identity.channel == channel, Identity.external_id == external_id)
        )
        for field, value in details:
            if value:
                query = query.add_columns(_verified_detail(field, value))
        row = session.execute(query).first()
    if row is not None:
        identity, holder = row[0], row[1]
        if identity_trust == VERIFIED and identity.trust != VERIFIED:
            identity.trust = VERIFIED
        verified: list[bool] = [bool(flag) for flag in tuple(row)[2:]]
        asked = [(field, value) for field, value in details if value]
        settled = frozenset(
            field
            for (field, value), known in zip(asked, verified, strict=True)
            if known and _holds(holder, field, value)
        )
        if holder.merged_into_id is not None:
            holder, settled = get_lead(holder.id, session=session), frozenset()
        return holder, identity, settled, False
    lead: Lead | None = None
    unheld = False  # looked for a lead holding the verified phone or email, and found none
    root: Identity | None = None
    if alias_of:
        root = find_identity(channel, alias_of, session=session)
        if root is not None:
            lead = get_lead(root.lead_id, session=session)
            root = session.get(Identity, root.alias_of_id) if root.alias_of_id else root
    if lead is None and trust == VERIFIED:
        # A new identity with a verified detail someone already has joins that lead at once.
        lead = (_holder(session, "phone", phone) if phone else None) or (
            _holder(session, "email", email) if email else None
        )
        lead = get_lead(lead.id, session=session) if lead is not None else None
        unheld = lead is None
    now = utcnow()
    try:
        with session.begin_nested():
            if lead is None:
                # Verified details nobody held a moment ago are written with the row (the unique
                # indexes refuse them should a holder have been committed meanwhile: the next
                # attempt meets it). Otherwise created without them: claiming them afterwards
                # detects (and merges) a duplicate.
                held = {"phone": phone, "email": email} if unheld else {}
                lead = Lead(
                    name=name,
                    source=source or channel,
                    created_at=now,
                    updated_at=now,
                    last_contacted_at=contacted_at,
                    score_factors=[],
                    interests=[],
                    objections=[],
                    tags=[],
                    custom_fields={},
                    **held,
                )
                session.add(lead)
                session.flush()
                record_audit(session=session, lead_id=lead.id, actor=actor, action="create")
                for field, value in held.items():
                    if value:
                        record_audit(
                            session=session,
                            lead_id=lead.id,
                            actor=actor,
                            action="update",
                            field=field,
                            old=None,
                            new=value,
                        )
            identity = Identity(
                lead_id=lead.id,
                channel=channel,
                external_id=external_id,
                display_name=name,
                trust=identity_trust,
                alias_of_id=root.id if root is not None else None,
                created_at=now,
            )
            session.add(identity)
            session.flush()
    except IntegrityError:
        # Someone registered this identity (or, a moment ago, a lead holding the phone or email) at
        # the same time: the next attempt uses theirs.
        return None
    return lead, identity, frozenset(), unheld


def _verified_detail(field: str, value: str) -> Any:
    """Whether the identity's lead has this detail recorded as verified (a column of the
    identity's statement)."""
    return (
        select(ContactDetail.id)
        .where(
            ContactDetail.lead_id == Lead.id,
            ContactDetail.kind == field,
            ContactDetail.key == rules.contact_key(field, value),
            ContactDetail.trust == VERIFIED,
        )
        .exists()
    )


def _holds(lead: Lead, field: str, value: str) -> bool:
    current = getattr(lead, field)
    return current is not None and rules.contact_key(field, current) == rules.contact_key(
        field, value
    )


def _claim(
    session: Session,
    lead: Lead,
    field: str,
    value: str,
    actor: str,
    *,
    trust: str,
    source: str,
    identity_id: int | None = None,
    merge: bool = False,
    reason: str | None = None,
    agent_id: int | None = None,
    unheld: bool = False,
) -> Lead | None:
    """Give `lead` this phone/email. When another lead has it: merge with it on verified evidence
    if `store.identity` allows (or always with `merge`, an import's deliberate act, whose merge
    tells the other owner), else suggest a merge. None means retry. `unheld`: this transaction
    has just seen that no lead holds it (no second look; the unique index guards the write)."""
    key = rules.contact_key(field, value)
    owner = None if unheld else _holder(session, field, value)
    if owner is not None and owner.id != lead.id:
        owner = get_lead(owner.id, session=session)
    if owner is not None and owner.id != lead.id:
        if rules.merges_on_match(lead, owner, trust=trust, deliberate=merge):
            lead = merge_leads(
                lead,
                owner,
                session=session,
                actor="merge" if not merge else actor,
                agent_id=agent_id,
                reason=reason,
            )
        else:
            rules.suggest_merge(
                lead, owner, field, session=session, source=source, claimed=trust != VERIFIED
            )
    for other_id in rules.other_claimants(field, key, lead.id, session=session):
        other = get_lead(other_id, session=session)
        if other.id != lead.id and (owner is None or other.id != owner.id):
            rules.suggest_merge(
                lead, other, field, session=session, source=source, claimed=trust != VERIFIED
            )
    rules.record_contact(
        lead, field, value, session=session, trust=trust, source=source, identity_id=identity_id
    )
    current = getattr(lead, field)
    if current is not None and rules.contact_key(field, current) == key:
        return lead
    if owner is not None and owner.id != lead.id:
        # Someone else's (suggested, not merged): the detail stays recorded on this lead only.
        return lead
    if current is not None:
        # The person already has another one; keep it and remember this one beside it.
        extra = dict(lead.custom_fields or {})
        key_name = f"other_{field}s"
        known = list(extra.get(key_name, []))
        if value not in known:
            known.append(value)
            extra[key_name] = known
            update_lead(lead, {"custom_fields": extra}, session=session, actor=actor)
        return lead
    try:
        with session.begin_nested():
            lead.__setattr__(field, value)
            session.flush()
    except IntegrityError:
        session.refresh(lead)
        return None
    record_audit(
        session=session,
        lead_id=lead.id,
        actor=actor,
        action="update",
        field=field,
        old=None,
        new=value,
    )
    return lead


def merge_leads(
    a: Lead,
    b: Lead,
    *,
    session: Session,
    actor: str = "merge",
    agent_id: int | None = None,
    into: Lead | None = None,
    reason: str | None = None,
) -> Lead:
    """Merge two leads into the older one (or `into`) and return it; the other becomes a tombstone
    pointing at it. Whether they may be merged is `store.identity`'s rule, checked by the caller.

    Each conversation stays a room of its own; the lead-level pause or stop and the status of a
    lead known only by claimed identities do not carry over to the survivor's conversations.
    """
    if a.id == b.id:
        return a
    _rehoming(session)
    first, second = sorted((a.id, b.id))
    keep = into.id if into is not None else first
    # Lock both rows in id order so that concurrent merges of the same pair serialise.
    locked = {
        lead.id: lead
        for lead in session.scalars(
            select(Lead).where(Lead.id.in_([first, second])).order_by(Lead.id).with_for_update()
        )
    }
    for lead in locked.values():
        session.refresh(lead)
    survivor = locked[keep]
    absorbed = locked[second if keep == first else first]
    # A concurrent merge may have turned either into a tombstone while we waited for the locks:
    # merge with the lead it now lives on, so that this one does not stay a separate duplicate.
    if survivor.merged_into_id is not None:
        target = get_lead(survivor.merged_into_id, session=session)
        return merge_leads(
            target,
            absorbed,
            session=session,
            actor=actor,
            agent_id=agent_id,
            into=target if into is not None else None,
            reason=reason,
        )
    if absorbed.merged_into_id is not None:
        return merge_leads(
            survivor,
            get_lead(absorbed.merged_into_id, session=session),
            session=session,
            actor=actor,
            agent_id=agent_id,
            into=survivor if into is not None else None,
            reason=reason,
        )
    survivor_owner, absorbed_owner = survivor.assigned_agent_id, absorbed.assigned_agent_id
    absorbed_vouched = _has_verified_identity(session, absorbed.id)
    survivor_vouched = _has_verified_identity(session, survivor.id)

    fills = {
        field: getattr(absorbed, field)
        for field in _FILLABLE
        if getattr(survivor, field) in (None, "") and getattr(absorbed, field) not in (None, "")
    }
    extra = _merge_custom_fields(survivor.custom_fields or {}, absorbed.custom_fields or {})
    for field in ("phone", "email"):
        # A second phone or email of the same person is kept beside the first, never dropped.
        theirs = getattr(absorbed, field)
        if theirs and getattr(survivor, field) and theirs != getattr(survivor, field):
            key = f"other_{field}s"
            extra[key] = _union(extra.get(key, []), [theirs])
    # Free the absorbed lead's unique values before the survivor takes them.
    absorbed.phone = None
    absorbed.email = None
    session.flush()

    # What quieted the absorbed lead quiets its own conversations, not the survivor's.
    quieted: dict[str, Any] = {}
    if absorbed.ai_stopped:
        quieted["ai_stopped"] = True
    if absorbed.ai_paused_until:
        quieted["ai_paused_until"] = absorbed.ai_paused_until
    if quieted:
        session.execute(
            update(Conversation).where(Conversation.lead_id == absorbed.id).values(**quieted)
        )
    session.execute(
        update(Identity).where(Identity.lead_id == absorbed.id).values(lead_id=survivor.id)
    )
    session.execute(
        update(Conversation).where(Conversation.lead_id == absorbed.id).values(lead_id=survivor.id)
    )
    _merge_contacts(session, survivor, absorbed)
    # Follow-up tasks go with the lead: their agents still owe them (a merge into another
    # agent's lead leaves each task with the agent who owes it).
    for model in (Note, ScoreEvent, AuditEvent, Notification, Task):
        session.execute(
            update(model).where(model.lead_id == absorbed.id).values(lead_id=survivor.id)
        )

    merged_lists = {
        field: _union(getattr(survivor, field) or [], getattr(absorbed, field) or [])
        for field in ("tags", "interests", "objections")
    }
    changes: dict[str, Any] = {**fills, **merged_lists, "custom_fields": extra}
    if absorbed.score > survivor.score and not survivor.locked:
        changes["score"] = absorbed.score
        changes["score_factors"] = absorbed.score_factors
    latest = max(
        filter(None, [survivor.last_contacted_at, absorbed.last_contacted_at]), default=None
    )
    changes["last_contacted_at"] = latest
    changes["created_at"] = min(survivor.created_at, absorbed.created_at)
    if (
        survivor.status == _DEFAULT_STATUS
        and absorbed.status != _DEFAULT_STATUS
        and (absorbed_vouched or not survivor_vouched)
    ):
        # The absorbed lead got further (e.g. Interested on WhatsApp): do not fall back to New.
        # What only claimed identities said does not move a lead a channel vouches for.
        changes["status"] = absorbed.status
    if absorbed.locked and not survivor.locked:
        changes["locked"] = True
    if absorbed.converted_at and survivor.converted_at is None:
        changes["converted_at"] = absorbed.converted_at
    survivor.phone_asks = max(survivor.phone_asks, absorbed.phone_asks)
    survivor.phone_declined = survivor.phone_declined or absorbed.phone_declined
    update_lead(survivor, changes, session=session, actor=actor, agent_id=agent_id)

    absorbed.merged_into_id = survivor.id
    absorbed.archived = True
    session.flush()
    record_audit(
        session=session,
        lead_id=survivor.id,
        actor=actor,
        action="merge",
        field="lead",
        old=absorbed.id,
        new=survivor.id,
        agent_id=agent_id,
    )
    if reason:
        record_audit(
            session=session,
            lead_id=survivor.id,
            actor=actor,
            action="merge",
            field="reason",
            new=reason,
            agent_id=agent_id,
        )
    rules.on_merge(
        survivor,
        absorbed,
        session=session,
        survivor_owner=survivor_owner,
        absorbed_owner=absorbed_owner,
        actor=actor,
        agent_id=agent_id,
    )
    session.expire(survivor, ["identities", "conversations", "notes", "contacts"])
    session.expire(absorbed, ["identities", "conversations", "notes", "contacts"])
    log.info("merged lead %s into lead %s", absorbed.id, survivor.id)
    return survivor


def _merge_custom_fields(survivor: dict[str, Any], absorbed: dict[str, Any]) -> dict[str, Any]:
    """The survivor's values win; list values (e.g. other_phones) are united."""
    merged = {**absorbed, **survivor}
    for key, value in absorbed.items():
        if isinstance(value, list) and isinstance(survivor.get(key), list):
            merged[key] = _union(survivor[key], value)
    return merged


def _union(first: Iterable[Any], second: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in [*first, *second]:
        if item not in out:
            out.append(item)
    return out


def _has_verified_identity(session: Session, lead_id: int) -> bool:
    query = select(Identity.id).where(Identity.lead_id == lead_id, Identity.trust == VERIFIED)
    return session.scalars(query.limit(1)).first() is not None


def _merge_contacts(session: Session, survivor: Lead, absorbed: Lead) -> None:
    """Move the absorbed lead's contact details over; one both have keeps the stronger trust."""
    kept = {
        (c.kind, c.key): c
        for c in session.scalars(select(ContactDetail).where(ContactDetail.lead_id == survivor.id))
    }
    for detail in list(
        session.scalars(select(ContactDetail).where(ContactDetail.lead_id == absorbed.id))
    ):
        twin = kept.get((detail.kind, detail.key))
        if twin is None:
            detail.lead_id = survivor.id
            continue
        twin.trust = rules.stronger(twin.trust, detail.trust)
        session.execute(delete(ContactDetail).where(ContactDetail.id == detail.id))
    session.flush()


def rehomings(session: Session) -> int:
    """How many times this session moved identities or conversations from one lead or
    conversation to another (a merge of leads, the conversations of one person joined): what
    someone who read senders earlier in the transaction compares to know that it must read them
    again."""
    return int(session.info.get(_REHOMINGS, 0))


def _rehoming(session: Session) -> None:
    session.info[_REHOMINGS] = rehomings(session) + 1


def join_conversations(alias: Identity, root_id: int, *, session: Session) -> int:
    """`alias` and the identity `root_id` are one person on one channel (the channel says so, as
    WhatsApp does with a BSUID beside the phone): their conversations become one, the older.
    Returns the root identity of the joined conversation."""
    other_root = alias.alias_of_id or alias.id
    if other_root == root_id:
        return root_id
    _rehoming(session)
    keep_root, drop_root = sorted((other_root, root_id))
    keep = session.scalars(
        select(Conversation).where(Conversation.identity_id == keep_root)
    ).first()
    drop = session.scalars(
        select(Conversation).where(Conversation.identity_id == drop_root)
    ).first()
    if drop is not None and keep is not None:
        session.execute(
            update(Message)
            .where(Message.conversation_id == drop.id)
            .values(conversation_id=keep.id)
        )
        if drop.last_inbound_at and (
            keep.last_inbound_at is None or drop.last_inbound_at > keep.last_inbound_at
        ):
            keep.last_inbound_at = drop.last_inbound_at
        keep.summary = keep.summary or drop.summary
        session.flush()
        session.delete(drop)
        session.flush()
    elif drop is not None:
        drop.identity_id = keep_root
    session.execute(
        update(Identity)
        .where((Identity.id == drop_root) | (Identity.alias_of_id == drop_root))
        .values(alias_of_id=keep_root)
    )
    session.flush()
    return keep_root


def get_conversation(
    lead: Lead,
    channel: str,
    *,
    session: Session,
    identity: Identity | None = None,
    likely_new: bool = False,
    inbound_at: datetime | None = None,
) -> Conversation:
    """The conversation with `identity` (or with the lead's first identity on `channel`), created
    on first use. An alias identity shares the conversation of the identity it is an alias of.
    `likely_new`: the identity was not registered when the caller looked, so the conversation is
    created first (one INSERT ... ON CONFLICT DO NOTHING) and looked up only if it exists.
    `inbound_at`: the last inbound message of a conversation this creates (the message that
    opens it), written with its row."""
    if identity is None:
        identity = session.scalars(
            select(Identity)
            .where(Identity.lead_id == lead.id, Identity.channel == channel)
            .order_by(Identity.alias_of_id.is_not(None), Identity.id)
        ).first()
    root_id = None
    if identity is not None:
        root_id = identity.alias_of_id or identity.id
    if likely_new and root_id is not None:
        values = {
            "lead_id": lead.id,
            "channel": channel,
            "identity_id": root_id,
            "last_inbound_at": inbound_at,
        }
        dialect = session.get_bind().dialect.name
        created: Conversation | None = session.scalars(
            _create_conversation(dialect), [values]
        ).first()
        if created is not None:
            inserted(session, [created])
            return created
    for _attempt in range(_MAX_ATTEMPTS):
        query = select(Conversation)
        if root_id is not None:
            query = query.where(Conversation.identity_id == root_id)
        else:
            query = query.where(Conversation.lead_id == lead.id, Conversation.channel == channel)
        conversation = session.scalars(query.order_by(Conversation.id)).first()
        if conversation is not None:
            return conversation
        conversation = Conversation(
            lead_id=lead.id,
            channel=channel,
            identity_id=root_id,
            created_at=utcnow(),
            last_inbound_at=inbound_at,
        )
        if _insert(session, conversation):
            return conversation
    raise RuntimeError("could not create the conversation")


@cache
def _create_conversation(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the conversation, built once a dialect: a
    conversation that exists already (its identity's, or the lead's email room) returns nothing."""
    return insert_for(dialect)(Conversation).on_conflict_do_nothing().returning(Conversation)
