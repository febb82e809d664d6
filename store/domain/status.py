"""Changing a lead's status, by a person or by the bot, with everything the status brings: its
lock (`locks: true`), its AI behaviour (pause or stop the bot) and its action (notify, auto_assign).

Who does it decides a few things:
- a person may set any configured status on a lead they may change; the bot's choice of status
  (which it may move to) is the bot's own rule, this module applies it once made;
- `notify`: a person's change tells the lead's owner (unless it is theirs, or the status is
  terminal); the bot's tells the owner, or every active admin when nobody owns the lead, out of
  opening hours only once the business opens;
- `auto_assign` on an unassigned lead: an agent who sets it takes the lead; an admin (or the bot)
  hands it to the next available agent; the bot keeps an active owner and tells the admins when
  nobody is available.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from store.domain import tasks
from store.domain.assignment import LOCKED_SKIP, NOTICES, BulkOutcome, Notices, assign
from store.domain.errors import Conflict, Invalid
from store.domain.permissions import check_admin, check_visible, check_writable, is_admin
from store.domain.policy import Policy, StatusPolicy
from store.domain.takeover import quiet_conversation, quiet_lead
from store.leads import record_audit, update_lead
from store.models import Agent, Conversation, Lead, Message
from store.tenancy import current_workspace, in_workspace
from store.work import (
    TeamMember,
    active_team,
    add_note,
    assign_lead,
    next_available_agent,
    notify,
)

log = logging.getLogger(__name__)

Actor = Literal["agent", "bot"]


@dataclass(frozen=True)
class StatusChange:
    """What a status change did, for the front end to say.

    `changed`: the lead's fields that changed, as (old, new); empty when the lead already had the
    status. `paused_minutes`/`stopped`: the bot was newly paused or stopped (for the lead, or with
    `conversation_id` in that conversation only). `assigned_to`: the agent the action gave the lead
    to. `notified`: the agents told. `no_agent_available`: auto_assign found nobody.
    """

    lead_id: int
    old_status: str
    new_status: str
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    locked: bool = False
    paused_minutes: int | None = None
    stopped: bool = False
    conversation_id: int | None = None
    assigned_to: Agent | None = None
    notified: tuple[int, ...] = ()
    no_agent_available: bool = False

    @property
    def unchanged(self) -> bool:
        return not self.changed


def change_status(
    lead: Lead,
    name: str,
    *,
    by: Agent,
    session: Session,
    policy: Policy,
    now: datetime,
    notices: Notices = NOTICES,
    reason: str | None = None,
    reason_note: str | None = None,
) -> StatusChange:
    """A person sets a configured status (any of them) and its lock, AI behaviour and action
    apply. Setting the status the lead already has changes nothing (a locking status re-locks a
    reopened lead; a lost status takes a new reason).

    A status with `asks_reason` (lost) needs `reason`, one of the configured lost reasons, and
    takes an optional `reason_note` in the agent's own words: `Invalid` (field `lost_reason`)
    without one. Both are kept on the lead (and in the audit) until it moves to another status."""
    check_writable(by, lead, "status")
    status = policy.require_status(name)
    lost = lost_values(status, policy, reason, reason_note)
    old = lead.status
    if (
        old == status.name
        and not (status.locks and not lead.locked)
        and not (lost and lost["lost_reason"] != lead.lost_reason)
        and not (lost and lost["lost_note"] != lead.lost_note)
    ):
        return StatusChange(lead.id, old, old)
    changed = _set(lead, status, session=session, now=now, actor="agent", agent_id=by.id, lost=lost)
    quiet = _apply_ai_behaviour(
        lead, status, policy, session=session, now=now, actor="agent", agent_id=by.id
    )
    changed.update(quiet.pop("changed"))
    assigned: Agent | None = None
    notified: list[int] = []
    if status.action == "auto_assign" and lead.assigned_agent_id is None:
        # An agent who sets it is taking the lead on; an admin hands it to the next available agent.
        target = (
            by
            if not is_admin(by) and by.active
            else next_available_agent(session=session, terminal_statuses=policy.terminal_statuses)
        )
        if target is not None and assign(lead, target, by=by, session=session, notices=notices):
            assigned = target
            if target.id != by.id:
                notified.append(target.id)
    elif (
        status.action == "notify"
        and not status.terminal
        and lead.assigned_agent_id not in (None, by.id)
    ):
        owner = session.get(Agent, lead.assigned_agent_id)
        if owner is not None and owner.active:
            notify(
                owner,
                lead,
                notices.status_set(by, lead, status.name),
                session=session,
                kind="status",
            )
            notified.append(owner.id)
    return StatusChange(
        lead.id,
        old,
        status.name,
        changed,
        locked=status.locks,
        assigned_to=assigned,
        notified=tuple(notified),
        **quiet,
    )


MAX_REASON_NOTE = 1000


def lost_values(
    status: StatusPolicy, policy: Policy, reason: str | None, note: str | None
) -> dict[str, str | None]:
    """The lead's lost_reason and lost_note for a move to `status`: the configured reason and the
    note for a status that asks why; empty (nothing to require) for any other status. `Invalid`
    when a lost status gets no reason, or one that is not configured."""
    if not status.asks_reason:
        return {}
    known = policy.lost_reason(reason)
    if known is None:
        choices = "; ".join(policy.lost_reasons) or "(none configured in statuses.yaml)"
        said = " ".join((reason or "").split())
        message = (
            f"{status.name} needs a reason: one of {choices}"
            if not said
            else f"unknown lost reason {said!r}; use one of: {choices}"
        )
        raise Invalid(message, code="lost_reason_required", field="lost_reason")
    text = " ".join((note or "").split()) or None
    if text is not None and len(text) > MAX_REASON_NOTE:
        raise Invalid(
            f"the reason's note is longer than {MAX_REASON_NOTE} characters", field="lost_note"
        )
    return {"lost_reason": known, "lost_note": text}


def convert(
    lead: Lead,
    *,
    by: Agent,
    session: Session,
    policy: Policy,
    now: datetime,
    note: str | None = None,
) -> StatusChange:
    """Close the sale: set the (first) status that locks a lead, with an optional note."""
    status = conversion_status(policy)
    outcome = change_status(lead, status.name, by=by, session=session, policy=policy, now=now)
    if note:
        add_note(lead, note, session=session, category="Positive Signal", agent=by)
    return outcome


def conversion_status(policy: Policy) -> StatusPolicy:
    """The status that closes a sale: the first configured with `locks: true`."""
    for status in policy.statuses:
        if status.locks:
            return status
    raise Conflict("no status is configured to lock a lead (locks: true)", code="no_lock_status")


def reopen(lead: Lead, *, by: Agent, session: Session) -> None:
    """Unlock a locked lead (admins only), e.g. after a conversion recorded by mistake."""
    check_visible(by, lead)
    check_admin(by, "reopen a converted lead")
    if not lead.locked:
        raise Conflict(f"lead {lead.id} is not locked", code="not_locked")
    update_lead(lead, {"locked": False}, session=session, actor="agent", agent_id=by.id)


def bulk_change_status(
    leads: list[Lead],
    name: str,
    *,
    by: Agent,
    session: Session,
    policy: Policy,
    now: datetime,
    notices: Notices = NOTICES,
    reason: str | None = None,
    reason_note: str | None = None,
) -> BulkOutcome:
    """Set one status on many leads a person may change; locked leads are skipped. A lost status
    needs its `reason` (see `change_status`)."""
    # Refuse an unknown status, or a lost one without its reason, before touching anything.
    lost_values(policy.require_status(name), policy, reason, reason_note)
    outcome = BulkOutcome()
    for lead in leads:
        outcome.matched += 1
        if lead.locked:
            outcome.skipped.append({"id": lead.id, "reason": LOCKED_SKIP})
            continue
        change = change_status(
            lead,
            name,
            by=by,
            session=session,
            policy=policy,
            now=now,
            notices=notices,
            reason=reason,
            reason_note=reason_note,
        )
        if change.unchanged:
            outcome.unchanged += 1
        else:
            outcome.changed += 1
    return outcome


def change_status_by_bot(
    lead: Lead,
    name: str,
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    conversation: Conversation | None = None,
    trigger: int | None = None,
) -> StatusChange:
    """Apply a status the bot decided on (its own rule chose it): the status, its lock, its action
    and its AI behaviour — for the whole lead, or with `conversation` (one room of several) the
    pause or stop holds in that conversation only. A locked lead is left alone. `trigger`: the
    customer message that brought the change, when the caller knows it (else the lead's newest).

    Call it after the turn's summary and next best action are saved: notifications quote them."""
    old = lead.status
    status = policy.require_status(name)
    if lead.locked or old == status.name:
        return StatusChange(lead.id, old, old)
    if status.asks_reason:
        # Only a person knows why a lead was lost (statuses.yaml refuses ai_can_set on such a
        # status, so the bot's own rule never picks it; this holds whatever asked).
        log.warning("lead %s: the bot may not set %s (it needs a reason)", lead.id, status.name)
        return StatusChange(lead.id, old, old)
    changed = _set(lead, status, session=session, now=now, actor="bot", agent_id=None)
    quiet = _apply_ai_behaviour(
        lead, status, policy, session=session, now=now, actor="bot", conversation=conversation
    )
    changed.update(quiet.pop("changed"))
    assigned, notified, nobody = _bot_action(lead, status, policy, session=session, now=now)
    if status.action in ("notify", "auto_assign") and not status.terminal:
        _propose_follow_up(lead, session=session, now=now, trigger=trigger)
    return StatusChange(
        lead.id,
        old,
        status.name,
        changed,
        locked=status.locks,
        assigned_to=assigned,
        notified=notified,
        no_agent_available=nobody,
        **quiet,
    )


def quiet_for_status(
    lead: Lead,
    name: str,
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    conversation: Conversation | None = None,
) -> StatusChange:
    """Apply only the AI behaviour of status `name`, without changing the lead's status: e.g. a
    conversation on a claimed identity that may not end the lead still quiets its own room."""
    status = policy.require_status(name)
    quiet = _apply_ai_behaviour(
        lead, status, policy, session=session, now=now, actor="bot", conversation=conversation
    )
    changed = quiet.pop("changed")
    return StatusChange(lead.id, lead.status, lead.status, changed, **quiet)


# ---- the parts ----------------------------------------------------------------------------


def _set(
    lead: Lead,
    status: StatusPolicy,
    *,
    session: Session,
    now: datetime,
    actor: Actor,
    agent_id: int | None,
    lost: dict[str, str | None] | None = None,
) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, Any] = {"status": status.name}
    # A lost status keeps its reason; any other status clears the last one (the audit keeps it).
    changes.update(lost or {"lost_reason": None, "lost_note": None})
    if status.locks:
        changes.update(locked=True, converted_at=now)
    changed = update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id)
    if status.locks:
        record_audit(
            session=session,
            lead_id=lead.id,
            actor=actor,
            action="convert",
            field="status",
            new=status.name,
            agent_id=agent_id,
        )
    return changed


def _apply_ai_behaviour(
    lead: Lead,
    status: StatusPolicy,
    policy: Policy,
    *,
    session: Session,
    now: datetime,
    actor: Actor,
    agent_id: int | None = None,
    conversation: Conversation | None = None,
) -> dict[str, Any]:
    """Pause or stop the bot as the status says; what changed, as StatusChange fields."""
    behaviour = status.ai_behaviour
    minutes = policy.pause_minutes(status) if behaviour == "pause" else None
    result: dict[str, Any] = {"changed": {}}
    if behaviour not in ("pause", "stop"):
        return result
    if conversation is not None:
        if quiet_conversation(conversation, behaviour=behaviour, minutes=minutes, now=now):
            result["conversation_id"] = conversation.id
        else:
            return result
    else:
        result["changed"] = quiet_lead(
            lead,
            session=session,
            now=now,
            minutes=minutes,
            actor=actor,
            agent_id=agent_id,
            reason=f"status: {status.name}",
        )
        if not result["changed"]:
            return result
    if behaviour == "stop":
        result["stopped"] = True
    else:
        result["paused_minutes"] = minutes
    return result


def _notify_targets(
    lead: Lead, session: Session, team: Sequence[TeamMember] | None = None
) -> list[Agent]:
    """The assigned agent, or (for an unassigned lead) the active admins, so someone hears of it.
    `team`: `active_team` as the caller has just read it (the admins are among it)."""
    if lead.assigned_agent_id is not None:
        agent = _agent(session, lead.assigned_agent_id)
        if agent is not None and agent.active:
            return [agent]
    if team is not None:
        return [member.agent for member in team if member.role == "admin"]
    return list(session.scalars(_admins_statement(current_workspace())))


@lru_cache(maxsize=256)
def _admins_statement(workspace_id: int) -> Any:
    """`_notify_targets`' read of the active admins, built once per workspace (an agent's role is
    its membership's in the workspace in force when the statement is built)."""
    with in_workspace(workspace_id):
        return (
            select(Agent)
            .where(Agent.active.is_(True), Agent.role == "admin")
            .order_by(Agent.id)
            .options(lazyload(Agent.memberships))
        )


def _agent(session: Session, agent_id: int) -> Agent | None:
    """The agent, read without its memberships (a status's action needs neither its role nor its
    other workspaces: they load if something asks)."""
    return session.get(Agent, agent_id, options=[lazyload(Agent.memberships)])


def _propose_follow_up(
    lead: Lead, *, session: Session, now: datetime, trigger: int | None = None
) -> None:
    """The owner's task from the next best action ("Call within 24 hours"), once per status
    change: the key names the lead, the status and the customer's message that brought the change
    (`trigger`, else the lead's newest), so a redelivered turn finds it taken and adds nothing."""
    if lead.assigned_agent_id is None:
        return
    owner = _agent(session, lead.assigned_agent_id)
    if owner is None:
        return
    if trigger is None:
        trigger = session.scalar(
            select(func.max(Message.id))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.lead_id == lead.id, Message.direction == "in")
        )
    key = f"status:{lead.id}:{lead.status}:{trigger or now.isoformat(timespec='seconds')}"
    tasks.propose_task(lead, owner, session=session, now=now, key=key)


def _bot_action(
    lead: Lead, status: StatusPolicy, policy: Policy, *, session: Session, now: datetime
) -> tuple[Agent | None, tuple[int, ...], bool]:
    """Run the status's action for the bot: (assigned to, notified ids, nobody available)."""
    action = "none" if status.action == "notify" and status.terminal else status.action
    if action == "none":
        return None, (), False
    deliver_after = policy.deliver_after(now)
    who = lead.name or f"Lead #{lead.id}"
    text = f"{who} is now {status.name} (score {lead.score}). {lead.next_best_action or ''}".strip()
    if action == "notify":
        targets = _notify_targets(lead, session)
        for target in targets:
            notify(target, lead, text, session=session, kind="status", deliver_after=deliver_after)
        return None, tuple(t.id for t in targets), False
    if action != "auto_assign":
        return None, (), False
    owner = _agent(session, lead.assigned_agent_id) if lead.assigned_agent_id else None
    team: list[TeamMember] | None = None
    agent: Agent | None = owner
    if owner is None or not owner.active:
        # Who has room and, should nobody have it, who the admins are: one read.
        team = active_team(session=session, terminal_statuses=policy.terminal_statuses)
        agent = next_available_agent(session=session, team=team)
    if agent is None:
        log.warning(
            "lead %s needs an agent but none is available (all inactive or at capacity)", lead.id
        )
        admins = _notify_targets(lead, session, team)
        for admin in admins:
            notify(
                admin,
                lead,
                f"{text} No agent is available to take it.",
                session=session,
                kind="unassigned",
                deliver_after=deliver_after,
            )
        return None, tuple(a.id for a in admins), True
    assign_lead(lead, agent, session=session, actor="bot")
    notify(
        agent,
        lead,
        f"{who} was assigned to you: {status.name} (score {lead.score}). "
        f"{lead.next_best_action or ''}".strip(),
        session=session,
        kind="assigned",
        deliver_after=deliver_after,
    )
    return agent, (agent.id,), False
