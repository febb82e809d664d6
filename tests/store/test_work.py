"""Working a lead: notes, score history, assignment, notifications, audited updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.domain.errors import Invalid
from store.leads import resolve, update_lead
from store.messages import Inbound, ingest
from store.models import AuditEvent, utcnow
from store.work import (
    add_note,
    assign_lead,
    audit_trail,
    list_notes,
    mark_read,
    next_available_agent,
    notify,
    record_score,
    score_history,
    unread_notifications,
)


def test_notes_have_a_category_author_and_time(session, make_agent):
    agent = make_agent(name="Ana")
    lead = resolve("web", "v", session=session)
    note = add_note(
        lead, "  wants a demo  ", session=session, category="positive signal", agent=agent
    )
    add_note(lead, "budget approved", session=session, category="Qualification", author="import")
    assert [(n.category, n.author, n.text) for n in list_notes(lead.id, session=session)] == [
        ("Positive Signal", "Ana", "wants a demo"),
        ("Qualification", "import", "budget approved"),
    ]
    assert note.created_at is not None
    with pytest.raises(Invalid, match="category must be one of"):
        add_note(lead, "x", session=session, category="Gossip")
    with pytest.raises(Invalid, match="needs some text"):
        add_note(lead, "   ", session=session)
    audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "note")).all()
    assert [(a.actor, a.agent_id) for a in audited] == [("agent", agent.id), ("import", None)]


def test_score_history_keeps_factors_and_a_retried_message_is_not_scored_twice(session):
    lead = resolve("whatsapp", "966501234567", session=session)
    first = ingest(
        Inbound("whatsapp", "966501234567", "price?", channel_message_id="a"), session=session
    )
    factors = [{"factor": "pricing question", "points": 30, "evidence": "price?"}]
    assert record_score(lead, 30, factors, session=session, message_id=first.message.id) is not None
    assert record_score(lead, 99, [], session=session, message_id=first.message.id) is None
    second = ingest(
        Inbound("whatsapp", "966501234567", "buy", channel_message_id="b"), session=session
    )
    record_score(lead, 140, [], session=session, message_id=second.message.id, engine="llm")
    history = score_history(lead.id, session=session)
    assert [(e.previous_score, e.score, e.engine) for e in history] == [
        (0, 30, "offline"),
        (30, 100, "llm"),
    ]
    assert history[0].factors == factors and lead.score == 100


def test_update_lead_audits_each_changed_field_only(session, make_agent):
    agent = make_agent()
    lead = resolve("web", "v", name="Dana", session=session)
    changed = update_lead(
        lead,
        {"name": "Dana", "status": "Interested", "tags": ["vip"]},
        session=session,
        actor="agent",
        agent_id=agent.id,
    )
    assert set(changed) == {"status", "tags"}
    trail = [
        (a.field, a.old_value, a.new_value, a.actor) for a in audit_trail(lead.id, session=session)
    ]
    assert ("status", "New", "Interested", "agent") in trail
    assert ("tags", "[]", '["vip"]', "agent") in trail
    assert not [row for row in trail if row[0] == "name" and row[3] == "agent"]  # unchanged
    with pytest.raises(AttributeError):
        update_lead(lead, {"no_such_field": 1}, session=session, actor="agent")


def test_what_the_bot_works_out_each_turn_is_audited_when_a_person_writes_it(session, make_agent):
    agent = make_agent()
    lead = resolve("web", "v", session=session)
    update_lead(lead, {"summary": "Asked about prices."}, session=session, actor="bot")
    by_agent = {"actor": "agent", "agent_id": agent.id}
    update_lead(lead, {"summary": "Wants a visit."}, session=session, **by_agent)
    update_lead(lead, {"summary": "Asked about batteries."}, session=session, actor="bot")
    assert lead.summary == "Asked about batteries."
    record_score(lead, 40, [], session=session)  # the bot's, recorded as a score event
    record_score(lead, 70, [], session=session, actor="agent")
    update_lead(lead, {"status": "Interested"}, session=session, actor="bot")
    trail = {
        (a.field, a.old_value, a.new_value, a.actor)
        for a in audit_trail(lead.id, session=session)
        if a.action == "update"
    }
    assert trail == {
        ("summary", "Asked about prices.", "Wants a visit.", "agent"),
        ("score", "40", "70", "agent"),
        ("status", "New", "Interested", "bot"),  # a change of fact, whoever makes it
    }
    assert [e.score for e in score_history(lead.id, session=session)] == [40, 70]


def test_next_available_agent_fewest_open_leads_under_capacity_round_robin(session, make_agent):
    full = make_agent(name="Full", capacity=1)
    off = make_agent(name="Off", active=False)
    make_agent(name="A"), make_agent(name="B")
    leads = [resolve("web", f"v{i}", session=session) for i in range(4)]
    assign_lead(leads[0], full, session=session, actor="system")
    picks = []
    for lead in leads[1:]:
        agent = next_available_agent(session=session)
        picks.append(agent.name)
        assign_lead(lead, agent, session=session, actor="system")
    # Full is at capacity, Off is disabled; A and B alternate
    assert picks[:2] == ["A", "B"] and picks[2] in {"A", "B"}
    with pytest.raises(Invalid, match="disabled"):
        assign_lead(leads[1], off, session=session, actor="system")


def test_notifications_unread_due_and_marked_read(session, make_agent):
    ana, ben = make_agent(), make_agent()
    lead = resolve("web", "v", session=session)
    now = utcnow()
    first = notify(ana, lead, "Dana is interested", session=session)
    notify(ana, lead, "tomorrow morning", session=session, deliver_after=now + timedelta(hours=12))
    notify(ben, None, "for Ben", session=session)
    assert [n.id for n in unread_notifications(ana.id, session=session, now=now)] == [first.id]
    assert len(unread_notifications(ana.id, session=session, now=now + timedelta(days=1))) == 2
    assert mark_read([first.id], ben.id, session=session) == 0  # not Ben's
    assert mark_read([first.id], ana.id, session=session) == 1
    assert unread_notifications(ana.id, session=session, now=now) == []
