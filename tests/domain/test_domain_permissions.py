"""Who may see and change what; merging by hand and settling suggestions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store import identity
from store.domain.errors import LeadLocked, NotAllowed, NotFound
from store.domain.merge import check_merge, dismiss_suggestion, merge_by_hand
from store.domain.permissions import (
    can_see,
    check_unlocked,
    check_writable,
    may_read_notes,
    visible_clause,
    visible_lead,
    visible_notes,
)
from store.models import Lead
from store.work import add_note


def test_agents_see_their_own_and_unassigned_leads_admins_all(session, agent, lead) -> None:
    sarah, mike, boss = agent("Sarah"), agent("Mike"), agent("Boss", role="admin")
    mine, loose, his = lead(sarah), lead(), lead(mike)
    assert can_see(sarah, mine) and can_see(sarah, loose) and not can_see(sarah, his)
    assert can_see(boss, his)
    with pytest.raises(NotAllowed, match=f"lead {his.id} is assigned to another agent"):
        visible_lead(his.id, sarah, session=session)
    with pytest.raises(NotFound, match="no lead with id 999"):
        visible_lead(999, sarah, session=session)


def test_the_sql_condition_agrees_with_can_see(session, agent, lead) -> None:
    sarah, mike, boss = agent("Sarah"), agent("Mike"), agent("Boss", role="admin")
    leads = [lead(sarah), lead(), lead(mike)]
    for who in (sarah, mike, boss):
        seen = set(session.scalars(select(Lead.id).where(visible_clause(who))))
        assert seen == {x.id for x in leads if can_see(who, x)}


def test_a_locked_lead_allows_notes_and_archiving_by_an_admin(session, agent, lead) -> None:
    sarah, boss = agent("Sarah"), agent("Boss", role="admin")
    locked = lead(sarah, locked=True)
    check_unlocked(locked, "note", admin=False)
    check_unlocked(locked, "archive", admin=True)
    with pytest.raises(LeadLocked):
        check_writable(sarah, locked, "archive")
    with pytest.raises(LeadLocked):
        check_writable(boss, locked, "edit")


def test_a_former_owner_reads_only_their_own_notes(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    his = lead(mike)
    add_note(his, "his", session=session, agent=mike)
    assert not may_read_notes(sarah, his, session=session)
    add_note(his, "hers", session=session, agent=sarah)
    assert may_read_notes(sarah, his, session=session)
    assert [n.text for n in visible_notes(sarah, his, session=session)] == ["hers"]
    assert len(visible_notes(mike, his, session=session)) == 2


def test_an_agent_merges_only_with_a_suggestion_an_admin_any_two(session, agent, lead) -> None:
    sarah, boss = agent("Sarah"), agent("Boss", role="admin")
    a, b = lead(sarah), lead()
    with pytest.raises(NotAllowed, match="nothing suggests"):
        check_merge(sarah, a, b, session=session)
    identity.suggest_merge(b, a, "phone", session=session, source="web")
    assert merge_by_hand(sarah, a, b, session=session).id == a.id
    c, d = lead(), lead()
    assert merge_by_hand(boss, c, d, session=session).id == c.id
    with pytest.raises(NotAllowed, match="already one lead"):
        check_merge(boss, c, c, session=session)


def test_two_agents_leads_are_merged_only_by_an_admin(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    a, b = lead(sarah), lead(mike)
    identity.suggest_merge(b, a, "email", session=session, source="web")
    with pytest.raises(NotAllowed, match="two different agents"):
        check_merge(sarah, a, b, session=session)


def test_dismissing_a_suggestion_settles_it(session, agent, lead) -> None:
    sarah = agent("Sarah")
    a, b = lead(sarah), lead()
    suggestion = identity.suggest_merge(b, a, "phone", session=session, source="web")
    assert suggestion is not None
    with pytest.raises(NotFound):
        dismiss_suggestion(sarah, a, suggestion.id + 100, session=session)
    assert dismiss_suggestion(sarah, a, suggestion.id, session=session).id == b.id
    assert identity.open_suggestions(a, session=session) == []
