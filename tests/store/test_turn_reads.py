"""What a bot turn reads and writes in few statements: its conversation's pending messages and
window, the conversation's standing among the lead's rooms, and audit rows written together."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.identity import load_standing, speaks_for_lead
from store.leads import batched_audit, resolve, update_lead
from store.messages import Inbound, ingest, record_outbound, turn_messages
from store.models import AuditEvent, Conversation, Message


def _exchange(
    session: Session, who: str, text: str, *, answered: bool, channel: str = "web"
) -> int:
    stored = ingest(Inbound(channel=channel, external_id=who, text=text), session=session)
    if answered:
        stored.message.processed_at = stored.message.sent_at
        record_outbound(stored.conversation, f"re: {text}", session=session)
    return stored.conversation.id


def test_turn_messages_gives_every_pending_message_and_only_the_window(session: Session) -> None:
    conversation_id = _exchange(session, "v", "early question", answered=False)
    for number in range(30):
        _exchange(session, "v", f"question {number}", answered=True)
    _exchange(session, "v", "latest question", answered=False)
    _exchange(session, "someone-else", "not this room", answered=False)
    session.flush()

    loaded = turn_messages(conversation_id, session=session, window=12)

    assert [m.text for m in loaded.pending] == ["early question", "latest question"]
    every = session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    ).all()
    assert [m.id for m in loaded.window] == [m.id for m in every[-12:]]
    assert turn_messages(conversation_id, session=session, window=0).window == []


def test_a_short_conversation_is_its_whole_window(session: Session) -> None:
    conversation_id = _exchange(session, "v", "hello", answered=True)
    loaded = turn_messages(conversation_id, session=session, window=12)
    assert [m.direction for m in loaded.window] == ["in", "out"]
    assert loaded.pending == []


def test_standing_says_alone_trust_and_whether_more_waits(session: Session) -> None:
    web = _exchange(session, "visitor", "hi", answered=False)
    session.flush()
    first = session.scalars(select(Message.id).where(Message.conversation_id == web)).one()

    standing = load_standing(web, session=session, pending_besides=[first])
    assert standing is not None
    assert standing.alone and standing.speaks_for_lead and not standing.more_pending
    assert standing.trust == "claimed"

    _exchange(session, "visitor", "are you there?", answered=False)
    session.flush()
    standing = load_standing(web, session=session, lock_lead=True, pending_besides=[first])
    assert standing is not None and standing.more_pending

    # A second room of the same lead: this one no longer speaks for the lead on its own.
    session.add(Conversation(lead_id=standing.lead.id, channel="messenger"))
    session.flush()
    on_web = load_standing(web, session=session)
    assert on_web is not None and not on_web.alone
    assert not on_web.speaks_for_lead
    assert on_web.speaks_for_lead == speaks_for_lead(on_web.conversation, session=session)
    assert load_standing(10_000, session=session) is None


def test_batched_audit_writes_every_row_at_the_end_of_the_block(session: Session) -> None:
    lead = resolve("web", "visitor", session=session)
    session.flush()
    before = len(session.scalars(select(AuditEvent).where(AuditEvent.lead_id == lead.id)).all())
    with batched_audit(session):
        update_lead(
            lead, {"company": "Acme", "summary": "wants panels"}, session=session, actor="bot"
        )
        assert session.info  # collected, not yet written
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.lead_id == lead.id).order_by(AuditEvent.id)
    ).all()
    assert len(rows) == before + 2
    assert {(r.field, r.new_value, r.actor) for r in rows[-2:]} == {
        ("company", "Acme", "bot"),
        ("summary", "wants panels", "bot"),
    }
    # Outside the block, rows are added to the session as before.
    update_lead(lead, {"company": "Acme Ltd"}, session=session, actor="bot")
    session.flush()
    assert len(session.scalars(select(AuditEvent).where(AuditEvent.lead_id == lead.id)).all()) == (
        before + 3
    )
