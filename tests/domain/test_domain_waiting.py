"""Leads that needed an agent while none was available are assigned when one becomes available
(added, enabled, or with room again), oldest first, and the new owner is told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.domain.policy import Policy
from store.domain.waiting import add_agent, assign_waiting_leads, set_agent_active
from store.models import Lead
from tests.domain.conftest import T0, notes_for


def test_a_new_agent_takes_the_leads_that_waited_oldest_first(session, lead, policy: Policy):  # type: ignore[no-untyped-def]
    newer = lead(status="Follow Up", created_at=T0)
    older = lead(status="Follow Up", created_at=T0 - timedelta(days=1))
    other = lead(status="Interested")  # notifies, never auto-assigns
    closed = lead(status="Lost")
    sarah, _token = add_agent("Sarah", session=session, policy=policy, now=T0, capacity=1)
    assert older.assigned_agent_id == sarah.id  # the one that waited longest
    assert newer.assigned_agent_id is None  # Sarah is at capacity now
    assert other.assigned_agent_id is None and closed.assigned_agent_id is None
    told = notes_for(session, sarah)
    assert [n.lead_id for n in told] == [older.id]
    assert "was waiting for an agent" in told[0].text and told[0].kind == "assigned"


def test_enabling_an_agent_hands_out_waiting_leads(session, agent, lead, policy: Policy):  # type: ignore[no-untyped-def]
    mike = agent("Mike", active=False)
    waiting = lead(status="Follow Up")
    assert assign_waiting_leads(session=session, policy=policy, now=T0) == []  # nobody active
    assert set_agent_active(mike, True, session=session, policy=policy, now=T0) is True
    assert waiting.assigned_agent_id == mike.id
    # Disabling hands out nothing.
    again = lead(status="Follow Up")
    set_agent_active(mike, False, session=session, policy=policy, now=T0)
    assert again.assigned_agent_id is None


def test_room_freed_by_a_closed_lead_is_filled_by_the_sweep(session, agent, lead, policy: Policy):  # type: ignore[no-untyped-def]
    sarah = agent("Sarah", capacity=1)
    busy = lead(owner=sarah, status="Follow Up")
    waiting = lead(status="Follow Up")
    assert assign_waiting_leads(session=session, policy=policy, now=T0) == []
    busy.status = "Lost"  # closed leads do not count against capacity
    session.flush()
    assert assign_waiting_leads(session=session, policy=policy, now=T0) == [waiting.id]
    assert session.get(Lead, waiting.id).assigned_agent_id == sarah.id


def test_archived_merged_and_locked_leads_do_not_wait(session, lead, policy: Policy):  # type: ignore[no-untyped-def]
    lead(status="Follow Up", archived=True)
    lead(status="Follow Up", locked=True)
    survivor = lead(status="Follow Up")
    lead(status="Follow Up", merged_into_id=survivor.id)
    add_agent("Sarah", session=session, policy=policy, now=T0)
    assigned = list(session.scalars(select(Lead.id).where(Lead.assigned_agent_id.is_not(None))))
    assert assigned == [survivor.id]
