"""Assignment: one lead, many, round-robin by capacity, an agent's book; the new owner is told."""

from __future__ import annotations

import pytest

from store.domain.assignment import (
    Notices,
    assign,
    bulk_assign,
    find_assignee,
    reassign_book,
    round_robin_agent,
)
from store.domain.errors import Conflict, Invalid, LeadLocked, NotAllowed
from tests.domain.conftest import notes_for


def test_assigning_tells_the_new_owner_unless_they_did_it(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    found = lead()
    assert assign(found, mike, by=sarah, session=session)
    assert [n.text for n in notes_for(session, mike)] == [f"Sarah assigned {found.name} to you"]
    mine = lead()
    assert assign(mine, sarah, by=sarah, session=session)
    assert notes_for(session, sarah) == []
    assert not assign(found, mike, by=mike, session=session)  # already his: nothing changes


def test_a_front_end_words_the_notice_its_own_way(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    found = lead()
    notices = Notices(
        assigned=lambda by, lead: f"{by.name} gave you #{lead.id}.",
        status_set=lambda by, lead, status: "",
    )
    assign(found, mike, by=sarah, session=session, notices=notices)
    assert notes_for(session, mike)[0].text == f"Sarah gave you #{found.id}."


def test_a_disabled_or_unknown_agent_cannot_take_leads(session, agent, lead) -> None:
    sarah, gone = agent("Sarah"), agent("Gone", active=False)
    with pytest.raises(Invalid, match="disabled") as caught:
        assign(lead(), gone, by=sarah, session=session)
    assert (caught.value.code, caught.value.field) == ("agent_disabled", "agent_id")
    with pytest.raises(Invalid) as unknown:
        find_assignee(999, session=session)
    assert unknown.value.code == "unknown_agent"
    with pytest.raises(Invalid, match="disabled"):
        find_assignee(gone.id, session=session)
    assert find_assignee(None, session=session) is None


def test_a_locked_lead_keeps_its_owner(session, agent, lead) -> None:
    sarah = agent("Sarah")
    with pytest.raises(LeadLocked):
        assign(lead(sarah, locked=True), None, by=sarah, session=session)


def test_an_agent_cannot_assign_another_agents_lead(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    with pytest.raises(NotAllowed):
        assign(lead(mike), sarah, by=sarah, session=session)
    boss = agent("Boss", role="admin")
    assert assign(lead(mike), sarah, by=boss, session=session)


def test_round_robin_respects_capacity(session, policy, agent, lead) -> None:
    full = agent("Full", capacity=1)
    lead(full)
    free = agent("Free", capacity=1)
    assert round_robin_agent(session=session, policy=policy) is free
    lead(free)
    with pytest.raises(Conflict, match="at capacity") as caught:
        round_robin_agent(session=session, policy=policy)
    assert caught.value.code == "no_agent_available"


def test_closed_leads_do_not_count_against_capacity(session, policy, agent, lead) -> None:
    sarah = agent("Sarah", capacity=1)
    lead(sarah, status="Lost")  # a terminal status
    assert round_robin_agent(session=session, policy=policy) is sarah


def test_bulk_round_robin_spreads_the_leads_and_skips_locked_ones(
    session, policy, agent, lead
) -> None:
    boss, mike, ann = agent("Boss", role="admin", capacity=0), agent("Mike"), agent("Ann")
    leads = [lead(), lead(), lead(locked=True)]
    outcome = bulk_assign(leads, None, by=boss, session=session, policy=policy, round_robin=True)
    assert (outcome.changed, outcome.unchanged) == (2, 0)
    assert outcome.skipped == [{"id": leads[2].id, "reason": "converted (read-only)"}]
    assert {leads[0].assigned_agent_id, leads[1].assigned_agent_id} == {mike.id, ann.id}


def test_moving_a_book_takes_locked_leads_along(session, agent, lead) -> None:
    sarah, mike, boss = agent("Sarah"), agent("Mike"), agent("Boss", role="admin")
    book = [lead(sarah), lead(sarah, locked=True), lead(mike)]
    with pytest.raises(NotAllowed, match="only an admin"):
        reassign_book(sarah, mike, [b.id for b in book], by=mike, session=session)
    moved = reassign_book(sarah, mike, [b.id for b in book], by=boss, session=session)
    assert moved == [book[0].id, book[1].id]
    assert [n.text for n in notes_for(session, mike)] == ["Boss moved 2 of Sarah's leads to you."]
