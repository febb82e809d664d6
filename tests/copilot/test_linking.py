"""Telegram link codes and notification claims in the store."""

from __future__ import annotations

from datetime import timedelta

from store.delivery import claim_notification, due_notifications, release_notification
from store.leads import get_lead
from store.linking import agent_by_telegram, link_telegram, new_link_code
from store.models import Agent
from store.work import notify


def test_a_code_links_once_in_any_spelling(world, session_factory) -> None:  # type: ignore[no-untyped-def]
    world.sf = session_factory
    sarah = world.agent("Sarah")
    code = world.link_code(sarah)
    assert len(code) == 11 and code[5] == "-"
    with session_factory.begin() as session:
        assert link_telegram("nope", 1, session=session) is None
        linked = link_telegram(" " + code.lower().replace("-", " ") + " ", 42, session=session)
        assert linked is not None and linked.id == sarah
    with session_factory.begin() as session:
        assert link_telegram(code, 43, session=session) is None  # used up
        assert agent_by_telegram(42, session=session).id == sarah
        assert agent_by_telegram(43, session=session) is None


def test_relinking_a_telegram_account_moves_it_and_disabled_agents_cannot_link(
    world, session_factory
) -> None:  # type: ignore[no-untyped-def]
    world.sf = session_factory
    sarah = world.agent("Sarah", telegram=42)
    mike = world.agent("Mike")
    gone = world.agent("Gone", active=False)
    with session_factory.begin() as session:
        assert (
            link_telegram(
                new_link_code(session.get(Agent, mike), session=session), 42, session=session
            ).id
            == mike
        )
        assert session.get(Agent, sarah).telegram_user_id is None
        assert (
            link_telegram(
                new_link_code(session.get(Agent, gone), session=session), 77, session=session
            )
            is None
        )
        session.get(Agent, mike).active = False
        session.flush()
        assert agent_by_telegram(42, session=session) is None


def test_a_notification_is_claimed_once(world, sf, clock) -> None:  # type: ignore[no-untyped-def]
    sarah = world.agent("Sarah", telegram=42)
    lead = world.lead("Dana")
    with sf.begin() as session:
        first = notify(
            session.get(Agent, sarah), get_lead(lead, session=session), "hot", session=session
        ).id
        later = notify(
            session.get(Agent, sarah),
            None,
            "later",
            session=session,
            deliver_after=clock() + timedelta(hours=1),
        ).id
    with sf.begin() as session:
        assert [n.id for n in due_notifications(session=session, now=clock())] == [first]
        assert claim_notification(first, session=session, now=clock())
        assert not claim_notification(first, session=session, now=clock())
        assert due_notifications(session=session, now=clock()) == []
        release_notification(first, session=session)
        assert [
            n.id for n in due_notifications(session=session, now=clock() + timedelta(hours=2))
        ] == [first, later]
