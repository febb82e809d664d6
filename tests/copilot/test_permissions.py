"""Permissions (on SQLite and PostgreSQL): an agent sees and changes their own and unassigned leads;
an admin sees all; bulk moves are confirmed and move exactly what was shown."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from store.models import AuditEvent, Lead, Message, Note
from tests.copilot.conftest import Chat, World, make_copilot


@pytest.fixture
def team(session_factory, prompts, clock, outbox):  # type: ignore[no-untyped-def]
    world = World(session_factory, clock)
    copilot = make_copilot(session_factory, prompts, clock, outbox=outbox)
    sarah = world.agent("Sarah Connor")
    mike = world.agent("Mike Ross")
    admin = world.agent("Ada Admin", role="admin")
    return world, copilot, sarah, mike, admin


def _counts(sf) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with sf() as session:
        return (
            session.scalar(select(func.count()).select_from(Note)),
            session.scalar(select(func.count()).select_from(AuditEvent)),
            session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "out")
            ),
        )


def test_an_agent_cannot_read_another_agents_lead(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, _admin = team
    lead = world.lead(
        "Dana Smith",
        channel="whatsapp",
        phone="+14155552671",
        email="dana@example.com",
        agent=mike,
        score=90,
    )
    ask = Chat(copilot, sarah)
    for request in (
        f"summarise lead {lead}",
        f"qualify {lead}",
        f"is {lead} hot?",
        f"/email {lead}",
        "/lead +1 (415) 555-2671",
        "/lead dana@example.com",
        "summarise Dana Smith",
    ):
        reply = ask(request)
        assert "assigned to another agent" in reply, request
        # Nothing about the lead beyond what the agent typed.
        assert "score" not in reply and "90" not in reply and "Subject:" not in reply
        assert "+14155552671" not in reply and (
            "dana@example.com" not in reply or "email" in request + reply
        )
    for listing in (
        "/hot",
        "my leads",
        "leads with score above 50",
        "whatsapp leads",
        f"find {lead}",
    ):
        assert "Dana" not in ask(listing), listing


def test_an_agent_cannot_change_another_agents_lead(team, outbox) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, _admin = team
    lead = world.lead(
        "Dana Smith", says=("hello",), channel="whatsapp", phone="+14155552671", agent=mike
    )
    before = _counts(world.sf)
    ask = Chat(copilot, sarah)
    for request in (
        f"/note {lead} sneaky",
        f"set {lead} to Scouting",
        f"mark {lead} as Converted",
        f"assign {lead} to me",
        f"/archive {lead}",
        f"reply to {lead}: hi from Sarah",
        f"take over {lead}",
        f"resume the bot for {lead}",
    ):
        answer = ask.say(request)
        assert "assigned to another agent" in answer.reply, request
        assert answer.pending is None
    assert _counts(world.sf) == before
    assert outbox.delivered == []
    after = world.get(lead)
    assert (after.status, after.assigned_agent_id, after.archived, after.ai_paused_until) == (
        "New",
        mike,
        False,
        None,
    )


def test_unassigned_leads_are_open_to_every_agent_and_admins_see_all(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, admin = team
    free = world.lead("Free Lead", score=80)
    mikes = world.lead("Mike Lead", score=85, agent=mike)
    sarah_hot = Chat(copilot, sarah)("/hot")
    assert f"#{free} Free Lead" in sarah_hot and "Mike Lead" not in sarah_hot
    admin_chat = Chat(copilot, admin)
    admin_hot = admin_chat("/hot")
    assert f"#{free} Free Lead" in admin_hot and f"#{mikes} Mike Lead" in admin_hot
    assert (
        admin_chat(f"/note {mikes} checked by admin")
        == f"Added a General note to #{mikes} Mike Lead."
    )
    assert (
        Chat(copilot, sarah)(f"/note {free} mine now?")
        == f"Added a General note to #{free} Free Lead."
    )


def test_bulk_reassign_asks_then_moves_all_and_audits_as_the_admin(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, admin = team
    sarahs = [world.lead(f"Sarah Lead {i}", agent=sarah) for i in range(5)]
    archived = world.lead("Old Lead", agent=sarah, archived=True)
    others = world.lead("Mike Lead", agent=mike)
    ask = Chat(copilot, admin)
    answer = ask.say("move all of Sarah's leads to Mike")
    assert answer.pending is not None and answer.pending["kind"] == "reassign"
    assert answer.reply.startswith("Move 5 lead(s) from Sarah Connor to Mike Ross?")
    assert sorted(answer.pending["lead_ids"]) == sorted(sarahs)
    assert all(world.get(i).assigned_agent_id == sarah for i in sarahs)  # nothing moved yet
    reply = ask("yes")
    assert reply == "Moved 5 lead(s) from Sarah Connor to Mike Ross."
    assert all(world.get(i).assigned_agent_id == mike for i in sarahs)
    assert (
        world.get(archived).assigned_agent_id == sarah
        and world.get(others).assigned_agent_id == mike
    )
    for lead_id in sarahs:
        [event] = world.audits(lead_id, "assigned_agent_id")[-1:]
        assert (event.old_value, event.new_value, event.agent_id, event.actor) == (
            str(sarah),
            str(mike),
            admin,
            "agent",
        )


def test_bulk_reassign_leaves_leads_that_changed_hands_while_waiting(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, admin = team
    first = world.lead("First", agent=sarah)
    second = world.lead("Second", agent=sarah)
    ask = Chat(copilot, admin)
    ask("reassign all leads from Sarah Connor to Mike Ross")
    late = world.lead("Arrived Meanwhile", agent=sarah)
    with world.sf.begin() as session:
        session.get(Lead, second).assigned_agent_id = admin
    reply = ask("yes")
    assert (
        reply == "Moved 1 lead(s) from Sarah Connor to Mike Ross. "
        "(1 changed hands meanwhile and were left alone.)"
    )
    assert world.get(first).assigned_agent_id == mike
    assert world.get(second).assigned_agent_id == admin
    assert world.get(late).assigned_agent_id == sarah


def test_an_agent_may_move_only_their_own_leads(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, _admin = team
    mine = world.lead("Mine", agent=sarah)
    theirs = world.lead("Theirs", agent=mike)
    ask = Chat(copilot, sarah)
    assert (
        ask("move all of Mike's leads to Sarah")
        == "Only an admin can move Mike Ross's leads; you can move your own."
    )
    assert world.get(theirs).assigned_agent_id == mike
    assert ask.say("move all my leads to Mike").pending is not None
    assert ask("no") == "Okay, nothing was moved."
    assert world.get(mine).assigned_agent_id == sarah
    ask("move all my leads to Mike")
    assert ask("yes") == "Moved 1 lead(s) from Sarah Connor to Mike Ross."
    assert world.get(mine).assigned_agent_id == mike


def test_a_contact_card_matching_another_agents_lead_is_refused(team) -> None:  # type: ignore[no-untyped-def]
    world, copilot, sarah, mike, _admin = team
    world.lead("Jane Doe", channel="whatsapp", phone="+14155552672", agent=mike)
    answer = Chat(copilot, sarah).say("Jane Doe\nCEO, Acme Inc\n+1 415 555 2672")
    assert answer.pending is None
    assert "assigned to another agent" in answer.reply
    with world.sf() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1
