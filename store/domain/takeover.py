"""Humans take over: an agent's message quiets the bot for the takeover window; agents pause,
stop and resume it.

The window's length is `Policy.takeover_minutes` (see `policy.takeover_window`). Sending the
agent's message stays with the send path (`bot.takeover.send_agent_reply`), which calls
`human_took_over`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.domain.assignment import assign
from store.domain.permissions import check_writable
from store.domain.policy import Policy
from store.leads import update_lead
from store.models import Agent, Conversation, Lead

log = logging.getLogger(__name__)

TAKEOVER_REASON = "human takeover"
TAKEN_OVER_REASON = "taken over by an agent"
PAUSED_REASON = "paused by an agent"


def is_ai_paused(lead: Lead, now: datetime) -> bool:
    """Whether the bot must stay quiet for this lead right now."""
    return bool(lead.ai_stopped) or (
        lead.ai_paused_until is not None and lead.ai_paused_until > now
    )


def human_took_over(
    lead: Lead, *, session: Session, now: datetime, minutes: int, agent_id: int | None = None
) -> bool:
    """Pause the bot for `minutes` from `now` after a human message. Each human message renews the
    window; a stop or a longer pause is never shortened. Returns whether anything changed."""
    if lead.ai_stopped:
        return False
    until = now + timedelta(minutes=minutes)
    if lead.ai_paused_until is not None and lead.ai_paused_until >= until:
        return False
    changed = update_lead(
        lead,
        {"ai_paused_until": until, "ai_pause_reason": TAKEOVER_REASON},
        session=session,
        actor="agent" if agent_id else "system",
        agent_id=agent_id,
    )
    log.info("bot paused for lead %s until %s: a human replied", lead.id, until.isoformat())
    return bool(changed)


def quiet_lead(
    lead: Lead,
    *,
    session: Session,
    now: datetime,
    minutes: int | None,
    actor: str,
    agent_id: int | None = None,
    reason: str = PAUSED_REASON,
) -> dict[str, tuple[Any, Any]]:
    """Pause the bot for the lead for `minutes` (never shortening a stop or a longer pause), or
    stop it until a human resumes it when `minutes` is None. Returns the fields that changed."""
    if minutes is None:
        changes: dict[str, object] = {"ai_stopped": True, "ai_pause_reason": reason}
    else:
        until = now + timedelta(minutes=minutes)
        if lead.ai_stopped or (lead.ai_paused_until is not None and lead.ai_paused_until >= until):
            return {}
        changes = {"ai_paused_until": until, "ai_pause_reason": reason}
    return update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id)


def pause_bot(
    lead: Lead,
    *,
    session: Session,
    actor: str,
    now: datetime,
    minutes: int | None = None,
    agent_id: int | None = None,
    reason: str = PAUSED_REASON,
) -> bool:
    """`quiet_lead`, answering whether anything changed."""
    return bool(
        quiet_lead(
            lead,
            session=session,
            now=now,
            minutes=minutes,
            actor=actor,
            agent_id=agent_id,
            reason=reason,
        )
    )


def quiet_conversation(
    conversation: Conversation, *, behaviour: str, minutes: int | None, now: datetime
) -> bool:
    """Pause (`minutes`) or stop the bot in one conversation only (one room of several); a longer
    pause is kept. Returns whether anything changed."""
    if behaviour == "pause" and minutes:
        until = now + timedelta(minutes=minutes)
        if conversation.ai_paused_until is None or conversation.ai_paused_until < until:
            conversation.ai_paused_until = until
            log.info("conversation %s: the bot is paused here only", conversation.id)
            return True
    elif behaviour == "stop" and not conversation.ai_stopped:
        conversation.ai_stopped = True
        log.info("conversation %s: the bot is stopped here only", conversation.id)
        return True
    return False


def resume_bot(lead: Lead, *, session: Session, actor: str, agent_id: int | None = None) -> bool:
    """Let the bot talk again, in every conversation of the lead (a stop or pause said in one of
    them included); its next message tells the customer they talk to an assistant."""
    rooms = list(
        session.scalars(
            select(Conversation).where(
                Conversation.lead_id == lead.id,
                (Conversation.ai_stopped.is_(True)) | (Conversation.ai_paused_until.is_not(None)),
            )
        )
    )
    for room in rooms:
        room.ai_stopped = False
        room.ai_paused_until = None
    was_quiet = bool(lead.ai_stopped) or lead.ai_paused_until is not None or bool(rooms)
    changes: dict[str, object] = {
        "ai_stopped": False,
        "ai_paused_until": None,
        "ai_pause_reason": None,
    }
    if was_quiet:
        changes["ai_resume_notice_due"] = True
    return bool(update_lead(lead, changes, session=session, actor=actor, agent_id=agent_id))


def pause_by_agent(
    lead: Lead, agent: Agent, *, session: Session, now: datetime, minutes: int | None
) -> bool:
    """An agent quiets the bot on a lead they may change: for `minutes`, or until resumed."""
    check_writable(agent, lead, "pause")
    return pause_bot(
        lead, session=session, actor="agent", now=now, minutes=minutes, agent_id=agent.id
    )


def resume_by_agent(lead: Lead, agent: Agent, *, session: Session) -> bool:
    """An agent lets the bot talk again on a lead they may change."""
    check_writable(agent, lead, "resume")
    return resume_bot(lead, session=session, actor="agent", agent_id=agent.id)


def check_may_reply(agent: Agent, lead: Lead) -> Lead:
    """The lead, if `agent` may write to its customer (seen by them, not locked)."""
    return check_writable(agent, lead, "reply")


@dataclass(frozen=True)
class Takeover:
    """What `take_over` did: the bot is stopped, or quiet until `paused_until`; whether the lead
    became the agent's."""

    lead_id: int
    stopped: bool
    paused_until: datetime | None
    assigned_to_agent: bool


def take_over(
    lead: Lead, agent: Agent, *, session: Session, policy: Policy, now: datetime
) -> Takeover:
    """The agent takes the conversation: the bot is quiet for the takeover window and an
    unassigned lead becomes theirs."""
    check_writable(agent, lead, "pause")
    minutes = policy.takeover_minutes
    pause_bot(
        lead,
        session=session,
        actor="agent",
        now=now,
        minutes=minutes,
        agent_id=agent.id,
        reason=TAKEN_OVER_REASON,
    )
    assigned = False
    if lead.assigned_agent_id is None:
        assigned = assign(lead, agent, by=agent, session=session)
    paused_until = (
        None if lead.ai_stopped else (lead.ai_paused_until or now + timedelta(minutes=minutes))
    )
    return Takeover(lead.id, bool(lead.ai_stopped), paused_until, assigned)
