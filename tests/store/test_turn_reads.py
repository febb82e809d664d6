"""What a bot turn reads and writes in few statements: its conversation's pending messages and
window, the conversation's standing among the lead's rooms, and audit rows written together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.identity import load_standing, speaks_for_lead
from store.leads import batched_audit, resolve, update_lead
from store.messages import Inbound, Ingested, ingest, record_outbound, turn_messages
from store.models import AuditEvent, Conversation, Identity, Lead, Message, ScoreEvent
from store.tenancy import FIRST_WORKSPACE
from store.work import record_score


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
        update_lead(lead, {"company": "Acme", "name": "Ana"}, session=session, actor="bot")
        assert session.info  # collected, not yet written
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.lead_id == lead.id).order_by(AuditEvent.id)
    ).all()
    assert len(rows) == before + 2
    assert {(r.field, r.new_value, r.actor) for r in rows[-2:]} == {
        ("company", "Acme", "bot"),
        ("name", "Ana", "bot"),
    }
    # Outside the block, rows are added to the session as before.
    update_lead(lead, {"company": "Acme Ltd"}, session=session, actor="bot")
    session.flush()
    assert len(session.scalars(select(AuditEvent).where(AuditEvent.lead_id == lead.id)).all()) == (
        before + 3
    )


def _same_standing(stored: Ingested, session: Session) -> None:
    """The standing ingest read with the sender is the one `load_standing` reads."""
    assert stored.standing is not None
    read = load_standing(stored.conversation.id, session=session)
    assert read is not None
    assert (stored.standing.conversation, stored.standing.lead) == (read.conversation, read.lead)
    assert (stored.standing.trust, stored.standing.alone) == (read.trust, read.alone)


def test_ingest_reads_the_standing_of_a_known_senders_room_with_the_sender(
    session: Session,
) -> None:
    first = ingest(Inbound(channel="web", external_id="v", text="hi"), session=session)
    assert first.standing is None  # a new sender: registered, not read
    _same_standing(
        ingest(Inbound(channel="web", external_id="v", text="again"), session=session), session
    )
    whatsapp = Inbound(
        channel="whatsapp", external_id="442070500001", phone="+442070500001", text="hi"
    )
    ingest(whatsapp, session=session)
    on_whatsapp = ingest(whatsapp, session=session)
    _same_standing(on_whatsapp, session)
    assert on_whatsapp.standing is not None and on_whatsapp.standing.trust == "verified"

    # A second room of the same lead: no longer alone.
    session.add(Conversation(lead_id=first.lead.id, channel="messenger"))
    session.flush()
    stored = ingest(Inbound(channel="web", external_id="v", text="still here"), session=session)
    _same_standing(stored, session)
    assert stored.standing is not None and not stored.standing.alone

    # An alias speaks in its root identity's room: its standing is read as before.
    root = session.scalars(
        select(Identity).where(Identity.channel == "web", Identity.external_id == "v")
    ).one()
    session.add(
        Identity(lead_id=root.lead_id, channel="web", external_id="v-alias", alias_of_id=root.id)
    )
    session.flush()
    aliased = ingest(Inbound(channel="web", external_id="v-alias", text="me too"), session=session)
    assert aliased.standing is None and aliased.conversation.id == stored.conversation.id


def test_an_inbound_message_dates_the_last_contact_once_and_never_backwards(
    session: Session,
) -> None:
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    for channel_message_id in (None, "m-1"):  # stored by a flush, or by INSERT ... ON CONFLICT
        who = f"dated-{channel_message_id}"
        first = ingest(
            Inbound(channel="web", external_id=who, text="hi", sent_at=at), session=session
        )
        later = Inbound(
            channel="web",
            external_id=who,
            text="later",
            sent_at=at + timedelta(hours=2),
            channel_message_id=channel_message_id,
        )
        stored = ingest(later, session=session)
        # An older message (a late delivery) moves nothing back.
        ingest(
            Inbound(channel="web", external_id=who, text="late", sent_at=at + timedelta(hours=1)),
            session=session,
        )
        assert not session.dirty  # written by statements of their own, the loaded rows told
        assert stored.lead.last_contacted_at == at + timedelta(hours=2)
        assert stored.conversation.last_inbound_at == at + timedelta(hours=2)
        session.expire_all()
        assert session.get(Lead, first.lead.id).last_contacted_at == at + timedelta(hours=2)
        assert session.get(Conversation, first.conversation.id).last_inbound_at == at + timedelta(
            hours=2
        )


def test_a_claimed_messages_score_event_is_written_with_the_audit_rows(session: Session) -> None:
    stored = ingest(Inbound(channel="web", external_id="scored", text="price?"), session=session)
    factors = [{"factor": "asked the price", "points": 20, "evidence": "price?"}]
    with batched_audit(session):
        record_score(
            stored.lead, 140, factors, session=session, message_id=stored.message.id, unscored=True
        )
        assert not [o for o in session.new if isinstance(o, ScoreEvent)]  # batched, not added
    event = session.scalars(
        select(ScoreEvent).where(ScoreEvent.message_id == stored.message.id)
    ).one()
    assert (event.lead_id, event.score, event.previous_score) == (stored.lead.id, 100, 0)
    assert event.factors == factors and event.workspace_id == FIRST_WORKSPACE
    assert stored.lead.score == 100
    fields = session.scalars(
        select(AuditEvent.field).where(AuditEvent.lead_id == stored.lead.id)
    ).all()
    # The score event is the record of the bot's change: no audit row repeats it.
    assert not {"score", "score_factors"} & set(fields)
