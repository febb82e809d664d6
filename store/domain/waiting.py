"""Who takes a lead that has nobody: the agent who replies to it, or (for a lead waiting for an
agent) the first agent available.

A lead whose status gives it to an agent (`action: auto_assign`) stays unassigned when every agent
is inactive or at capacity (or there is no agent yet). Such leads are assigned, oldest first, when
an agent is added, enabled or given a higher capacity (`add_agent`, `set_agent_active`,
`set_agent_capacity`: what the API, the console and the CLI call) and, for room freed by closed or
reassigned leads, by a periodic catch-up (the workers' sweeper with a broker, a thread of
`leaddesk serve` without).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.agents import create_agent, set_active
from store.domain.policy import Policy
from store.models import Agent, Lead
from store.work import assign_lead, next_available_agent, notify

log = logging.getLogger(__name__)

# At most this many leads are handed out in one go (the next sweep takes the rest).
BATCH = 200


def waiting_statuses(policy: Policy) -> list[str]:
    """The statuses whose leads should have an agent (they auto-assign and are not closed)."""
    return [s.name for s in policy.statuses if s.action == "auto_assign" and not s.terminal]


def assign_waiting_leads(*, session: Session, policy: Policy, now: datetime) -> list[int]:
    """Give each waiting lead, oldest first, to the available agent with the fewest open leads,
    while anyone has room; tells each new owner. Returns the ids of the leads assigned."""
    statuses = waiting_statuses(policy)
    if not statuses:
        return []
    waiting = session.scalars(
        select(Lead)
        .where(
            Lead.assigned_agent_id.is_(None),
            Lead.status.in_(statuses),
            Lead.archived.is_(False),
            Lead.merged_into_id.is_(None),
            Lead.locked.is_(False),
        )
        .order_by(Lead.created_at, Lead.id)
        .limit(BATCH)
    )
    assigned: list[int] = []
    deliver_after = policy.deliver_after(now)
    for lead in waiting:
        agent = next_available_agent(session=session, terminal_statuses=policy.terminal_statuses)
        if agent is None:
            break
        assign_lead(lead, agent, session=session, actor="bot")
        who = lead.name or f"Lead #{lead.id}"
        notify(
            agent,
            lead,
            f"{who} ({lead.status}, score {lead.score}) was waiting for an agent and is now yours."
            f" {lead.next_best_action or ''}".strip(),
            session=session,
            kind="assigned",
            deliver_after=deliver_after,
        )
        session.flush()  # the next pick counts this lead
        assigned.append(lead.id)
    if assigned:
        log.info("%d waiting lead(s) assigned now that an agent is available", len(assigned))
    return assigned


def claim_on_reply(lead_id: int, agent_id: int, *, session: Session, policy: Policy) -> bool:
    """An agent who answers an unassigned lead becomes its owner (business.yaml
    `assign_on_reply`); whether they did. A lead someone took meanwhile keeps its owner."""
    if not policy.assign_on_reply:
        return False
    lead = session.get(Lead, lead_id, with_for_update=True)
    agent = session.get(Agent, agent_id)
    if lead is None or agent is None or not agent.active:
        return False
    if lead.assigned_agent_id is not None or lead.locked or lead.merged_into_id is not None:
        return False
    assign_lead(lead, agent, session=session, actor="agent", by_agent=agent)
    log.info("lead %s: assigned to agent %s, who replied to it", lead_id, agent_id)
    return True


def add_agent(
    name: str, *, session: Session, policy: Policy, now: datetime, **details: Any
) -> tuple[Agent, str]:
    """Create an agent (`store.agents.create_agent`'s details) and hand them waiting leads."""
    agent, token = create_agent(name, session=session, **details)
    session.flush()
    if agent.active:
        assign_waiting_leads(session=session, policy=policy, now=now)
    return agent, token


def set_agent_active(
    agent: Agent, active: bool, *, session: Session, policy: Policy, now: datetime
) -> bool:
    """Enable or disable an agent; an enabled agent takes waiting leads. Whether it changed."""
    changed = set_active(agent, active, session=session)
    if changed and active:
        session.flush()
        assign_waiting_leads(session=session, policy=policy, now=now)
    return changed


def set_agent_capacity(
    agent: Agent, capacity: int, *, session: Session, policy: Policy, now: datetime
) -> bool:
    """Change how many open leads an agent may hold; room made by a higher capacity is filled
    with waiting leads at once. Whether it changed."""
    before = agent.capacity
    agent.capacity = capacity
    if capacity > before and agent.active:
        session.flush()
        assign_waiting_leads(session=session, policy=policy, now=now)
    return capacity != before
