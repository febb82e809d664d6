"""Leads that needed an agent while none was available are assigned when one becomes available
(added, enabled, or with room again), oldest first, and the new owner is told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.domain.policy import Policy
from store.domain.waiting import (
    add_agent,
    assign_waiting_leads,
    claim_on_reply,
    set_agent_active,
    set_agent_capacity,
)
from store.models import Lead
from tests.domain.conftest import T0, make_policy, notes_for


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


def test_a_higher_capacity_takes_waiting_leads_at_once(session, agent, lead, policy: Policy):  # type: ignore[no-untyped-def]
    sarah = agent("Sarah", capacity=1)
    lead(owner=sarah, status="Follow Up")
    older = lead(status="Follow Up", created_at=T0 - timedelta(hours=2))
    newer = lead(status="Follow Up", created_at=T0 - timedelta(hours=1))
    assert assign_waiting_leads(session=session, policy=policy, now=T0) == []  # Sarah is full
    assert set_agent_capacity(sarah, 2, session=session, policy=policy, now=T0) is True
    assert older.assigned_agent_id == sarah.id and newer.assigned_agent_id is None
    # A lower capacity, or a disabled agent's higher one, hands out nothing.
    assert set_agent_capacity(sarah, 1, session=session, policy=policy, now=T0) is True
    mike = agent("Mike", capacity=0, active=False)
    set_agent_capacity(mike, 5, session=session, policy=policy, now=T0)
    assert newer.assigned_agent_id is None
    assert set_agent_capacity(sarah, 1, session=session, policy=policy, now=T0) is False


def test_the_agent_who_replies_to_an_unassigned_lead_becomes_its_owner(session, agent, lead):  # type: ignore[no-untyped-def]
    policy = make_policy(assign_on_reply=True)
    sarah, mike = agent("Sarah"), agent("Mike")
    unowned = lead()
    assert claim_on_reply(unowned.id, sarah.id, session=session, policy=policy) is True
    assert unowned.assigned_agent_id == sarah.id
    # Someone else's lead keeps its owner; so do locked and merged-away leads.
    assert claim_on_reply(unowned.id, mike.id, session=session, policy=policy) is False
    assert unowned.assigned_agent_id == sarah.id
    locked = lead(locked=True)
    merged = lead(merged_into_id=unowned.id)
    for kept in (locked, merged):
        assert claim_on_reply(kept.id, mike.id, session=session, policy=policy) is False
        assert kept.assigned_agent_id is None


def test_replying_leaves_the_lead_unassigned_when_the_business_turns_it_off(  # type: ignore[no-untyped-def]
    session, agent, lead
):
    sarah = agent("Sarah")
    unowned = lead()
    off = make_policy(assign_on_reply=False)
    assert claim_on_reply(unowned.id, sarah.id, session=session, policy=off) is False
    assert unowned.assigned_agent_id is None
