"""Identity resolution and merging: one person, one lead, whatever channel they come from."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from store.contacts import InvalidContact
from store.leads import get_lead, resolve
from store.messages import Inbound, ingest, record_outbound
from store.models import AuditEvent, Identity, Lead, Message


def test_new_identity_creates_a_lead_and_the_same_identity_finds_it(session):
    first = resolve("web", "visitor-1", session=session)
    again = resolve("web", "visitor-1", session=session)
    assert first.id == again.id
    assert first.channels == ["web"]


def test_phone_in_any_format_is_stored_as_e164(session):
    lead = resolve("web", "v", phone="(415) 555-2671", session=session, region="US")
    assert lead.phone == "+14155552671"


def test_invalid_phone_is_rejected_not_stored(session):
    with pytest.raises(InvalidContact):
        resolve("web", "v", phone="12345", session=session)
    assert session.scalar(select(func.count()).select_from(Lead)) == 0


def test_same_phone_on_two_channels_merges_into_the_older_lead(session):
    web = resolve("web", "visitor", name="Dana", session=session)
    ingest(Inbound("web", "visitor", "hi"), session=session)
    whatsapp = resolve("whatsapp", "14155552671", phone="14155552671", session=session)
    assert whatsapp.id != web.id
    merged = resolve("web", "visitor", phone="+1 415 555 2671", session=session)
    assert merged.id == web.id
    assert merged.phone == "+14155552671"
    assert merged.channels == ["web", "whatsapp"]
    assert get_lead(whatsapp.id, session=session).id == web.id
    assert session.scalar(select(func.count()).select_from(Message)) == 1
    assert (
        session.scalars(select(AuditEvent).where(AuditEvent.action == "merge")).first() is not None
    )


def test_email_merges_too_and_domain_case_is_ignored(session):
    a = resolve("messenger", "psid-1", email="Dana@Example.COM", session=session)
    b = resolve("instagram", "igsid-1", email="Dana@example.com", session=session)
    assert a.id == b.id
    assert a.email == "Dana@example.com"


def test_concurrent_resolution_of_one_person_from_two_channels_ends_with_one_lead(session_factory):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            channel = ("web", "whatsapp", "messenger", "instagram")[i % 4]
            with session_factory.begin() as s:
                resolve(channel, f"id-{i % 4}", phone="+44 20 7946 0958", session=s, region="GB")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with session_factory() as s:
        live = s.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
        assert len(live) == 1
        assert live[0].phone == "+442079460958"
        assert s.scalar(select(func.count()).select_from(Identity)) == 4
        assert {i.lead_id for i in s.scalars(select(Identity))} == {live[0].id}


def test_duplicate_channel_message_id_is_stored_once(session):
    first = ingest(
        Inbound("whatsapp", "14155552671", "hello", channel_message_id="wamid.1"), session=session
    )
    second = ingest(
        Inbound("whatsapp", "14155552671", "hello", channel_message_id="wamid.1"), session=session
    )
    assert not first.duplicate and second.duplicate
    assert second.message.id == first.message.id
    assert session.scalar(select(func.count()).select_from(Message)) == 1


# --------------------------------------------------------------------------- merging in detail


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_merge_moves_everything_to_the_older_lead_and_fills_its_empty_fields(session, make_agent):
    from datetime import timedelta

    from store.models import Conversation, Note, Notification, ScoreEvent, utcnow
    from store.work import add_note, notify, record_score

    agent = make_agent()
    older = resolve("web", "visitor", name="Dana", session=session)
    older_msg = ingest(Inbound("web", "visitor", "hi", channel_message_id="w1"), session=session)
    older.tags = ["vip"]
    older.custom_fields = {"budget": "10k"}
    session.flush()
    newer = resolve("whatsapp", "447911123456", phone="447911123456", session=session)
    ingest(Inbound("whatsapp", "447911123456", "price?", channel_message_id="wa1"), session=session)
    update = {
        "company": "Acme",
        "status": "Interested",
        "tags": ["vip", "pricing"],
        "custom_fields": {"budget": "5k", "size": "20"},
        "ai_stopped": True,
        "ai_paused_until": utcnow() + timedelta(hours=1),
        "assigned_agent_id": agent.id,
    }
    for field, value in update.items():
        setattr(newer, field, value)
    session.flush()
    add_note(newer, "asked for a quote", session=session, agent=agent)
    record_score(
        newer, 80, [{"factor": "pricing", "points": 80, "evidence": "price?"}], session=session
    )
    notify(agent, newer, "hot lead", session=session)
    newer_id = newer.id

    merged = resolve("web", "visitor", phone="+44 7911 123456", session=session)

    assert merged.id == older.id
    # fields: the survivor's own values win, empty ones are filled, lists united
    assert (merged.name, merged.phone, merged.company) == ("Dana", "+447911123456", "Acme")
    assert merged.assigned_agent_id == agent.id
    assert merged.tags == ["vip", "pricing"]
    assert merged.custom_fields == {"budget": "10k", "size": "20"}
    assert merged.score == 80 and merged.score_factors[0]["factor"] == "pricing"
    # a New survivor takes the status the other lead reached; a human takeover stays in force in
    # the conversation it was made in (each conversation is a room of its own)
    assert merged.status == "Interested"
    assert merged.ai_stopped is False
    rooms = {c.channel: c for c in merged.conversations}
    assert rooms["whatsapp"].ai_stopped is True and rooms["whatsapp"].ai_paused_until is not None
    assert rooms["web"].ai_stopped is False and rooms["web"].ai_paused_until is None
    # everything that hung off the absorbed lead now hangs off the survivor
    assert merged.channels == ["web", "whatsapp"]
    assert _count(session, Conversation, Conversation.lead_id == older.id) == 2
    assert _count(session, Note, Note.lead_id == older.id) == 1
    assert _count(session, ScoreEvent, ScoreEvent.lead_id == older.id) == 1
    assert _count(session, Notification, Notification.lead_id == older.id) == 1
    assert _count(session, AuditEvent, AuditEvent.lead_id == newer_id) == 0
    assert older_msg.message.conversation_id in {c.id for c in merged.conversations}
    # the absorbed lead is a tombstone that leads to the survivor
    tomb = session.get(Lead, newer_id)
    assert tomb.merged_into_id == older.id and tomb.archived and tomb.phone is None
    assert get_lead(newer_id, session=session).id == older.id
    merge = session.scalars(select(AuditEvent).where(AuditEvent.action == "merge")).one()
    assert (merge.lead_id, merge.actor, merge.old_value, merge.new_value) == (
        older.id,
        "merge",
        str(newer_id),
        str(older.id),
    )
    changed = {
        e.field
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.actor == "merge", AuditEvent.action == "update")
        )
    }
    assert {"phone", "company", "status", "tags"} <= changed


def test_merge_of_two_conversations_on_one_channel_keeps_them_apart(session):
    from store.leads import merge_leads
    from store.models import Conversation

    a = resolve("web", "tab-1", session=session)
    b = resolve("web", "tab-2", session=session)
    for i, sender in enumerate(["tab-1", "tab-2", "tab-1"]):
        ingest(Inbound("web", sender, f"m{i}", channel_message_id=f"m{i}"), session=session)
    merge_leads(a, b, session=session)
    conversations = session.scalars(select(Conversation).order_by(Conversation.id)).all()
    assert [c.lead_id for c in conversations] == [a.id, a.id]
    assert [sorted(m.text for m in c.messages) for c in conversations] == [["m0", "m2"], ["m1"]]


def test_a_second_phone_or_email_is_kept_not_dropped(session):
    lead = resolve("web", "v", phone="+14155552671", email="dana@example.com", session=session)
    same = resolve("web", "v", phone="+14155552672", email="dana@work.example", session=session)
    assert same.id == lead.id and same.phone == "+14155552671"
    assert same.custom_fields == {
        "other_phones": ["+14155552672"],
        "other_emails": ["dana@work.example"],
    }
    # and across a merge: the absorbed lead's own phone stays with the survivor
    other = resolve(
        "messenger", "psid", phone="+14155550000", email="d@home.example", session=session
    )
    merged = resolve("messenger", "psid", email="dana@example.com", session=session)
    assert merged.id == lead.id
    assert "+14155550000" in merged.custom_fields["other_phones"]
    assert "d@home.example" in merged.custom_fields["other_emails"]
    assert get_lead(other.id, session=session).id == lead.id


def test_phone_of_one_lead_and_email_of_another_merge_all_three(session):
    by_phone = resolve("whatsapp", "966501234567", phone="966501234567", session=session)
    by_email = resolve("messenger", "psid-9", email="sara@example.sa", session=session)
    web = resolve(
        "web",
        "w-9",
        phone="0501234567",
        email="SARA@EXAMPLE.SA".lower(),
        region="SA",
        session=session,
    )
    assert web.id == by_phone.id
    assert get_lead(by_email.id, session=session).id == by_phone.id
    live = session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
    assert [lead.id for lead in live] == [by_phone.id]
    assert live[0].channels == ["messenger", "web", "whatsapp"]


def test_merged_away_ids_are_followed_through_chains(session):
    from store.leads import merge_leads

    a, b, c = (resolve("web", f"v{i}", session=session) for i in range(3))
    merge_leads(b, c, session=session)
    merge_leads(a, b, session=session)
    assert get_lead(c.id, session=session).id == a.id
    # merging into a tombstone lands on the living lead
    d = resolve("web", "v3", session=session)
    assert merge_leads(c, d, session=session).id == a.id


def test_merging_with_a_lead_that_became_a_tombstone_merges_with_where_it_went(session):
    # What a concurrent merge leaves behind: the lead we wanted to absorb was absorbed elsewhere.
    from store.leads import merge_leads

    a, b, c = (resolve("web", f"v{i}", session=session) for i in range(3))
    merge_leads(b, c, session=session)  # c now lives on as b
    assert merge_leads(a, c, session=session).id == a.id
    live = session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
    assert [lead.id for lead in live] == [a.id]


def test_merging_a_lead_with_itself_changes_nothing(session):
    from store.leads import merge_leads

    lead = resolve("web", "v", session=session)
    before = _count(session, AuditEvent)
    assert merge_leads(lead, lead, session=session) is lead
    assert _count(session, AuditEvent) == before


def test_name_fills_an_empty_name_but_never_overwrites(session):
    lead = resolve("web", "v", session=session)
    assert resolve("web", "v", name="  Dana  ", session=session).name == "Dana"
    assert resolve("web", "v", name="Someone else", session=session).name == "Dana"
    assert lead.name == "Dana"


def test_unknown_channel_and_empty_external_id_are_refused(session):
    from store.leads import UnknownChannel

    with pytest.raises(UnknownChannel):
        resolve("telegram", "1", session=session)
    with pytest.raises(ValueError, match="needs an external id"):
        resolve("web", "  ", session=session)
    with pytest.raises(InvalidContact):
        resolve("web", "v", email="not-an-email", session=session)
    assert _count(session, Lead) == 0


def test_resolve_contact_creates_a_manual_lead_then_matches_it_by_phone_or_email(session):
    from store.leads import resolve_contact

    lead, created = resolve_contact("(415) 555-2671", None, "Dana", session=session, actor="import")
    assert created and lead.channels == ["manual"] and lead.source == "import"
    again, created = resolve_contact("+1 415 555 2671", "dana@example.com", None, session=session)
    assert not created and again.id == lead.id and again.email == "dana@example.com"
    by_email, created = resolve_contact(None, "dana@EXAMPLE.com", None, session=session)
    assert not created and by_email.id == lead.id
    # a contact seen on a channel is matched without adding a manual identity to it
    wa = resolve("whatsapp", "447911123456", phone="447911123456", session=session)
    matched, created = resolve_contact("07911 123456", None, None, region="GB", session=session)
    assert not created and matched.id == wa.id and matched.channels == ["whatsapp"]
    # without phone or email there is nothing to recognise the person by
    first, _ = resolve_contact(None, None, "No Contact", session=session)
    second, created = resolve_contact(None, None, "No Contact", session=session)
    assert created and first.id != second.id


def test_resolve_contact_merges_the_phone_owner_and_the_email_owner(session):
    from store.leads import resolve_contact

    a = resolve("web", "a", phone="+14155552671", session=session)
    b = resolve("messenger", "b", email="dana@example.com", session=session)
    lead, created = resolve_contact("+14155552671", "dana@example.com", None, session=session)
    assert not created and lead.id == a.id
    assert get_lead(b.id, session=session).id == a.id


def _run_threads(n: int, target) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_concurrent_phone_and_email_sightings_of_one_person_end_with_one_lead(session_factory):
    # Each channel first sees only part of the contact details; one channel sees both.
    details = [
        ("web", {"phone": "+966 50 123 4567"}),
        ("messenger", {"email": "sara@example.sa"}),
        ("instagram", {"phone": "0501234567", "email": "sara@Example.SA"}),
        ("whatsapp", {"phone": "966501234567"}),
    ]

    def work(i: int) -> None:
        channel, contact = details[i % 4]
        with session_factory.begin() as s:
            resolve(channel, f"{channel}-id", session=s, region="SA", **contact)

    assert not _run_threads(8, work)
    with session_factory() as s:
        live = s.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
        assert len(live) == 1, [(lead.id, lead.phone, lead.email) for lead in live]
        assert (live[0].phone, live[0].email) == ("+966501234567", "sara@example.sa")
        assert live[0].channels == ["instagram", "messenger", "web", "whatsapp"]


def test_concurrent_imports_of_one_contact_end_with_one_lead(session_factory):
    from store.leads import resolve_contact

    def work(i: int) -> None:
        with session_factory.begin() as s:
            resolve_contact(
                "+44 20 7946 0958" if i % 2 else None,
                "joe@example.co.uk",
                f"Joe {i}",
                session=s,
                actor="import",
            )

    assert not _run_threads(6, work)
    with session_factory() as s:
        live = s.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
        assert len(live) == 1, [(lead.id, lead.phone, lead.email, lead.name) for lead in live]
        assert (live[0].phone, live[0].email) == ("+442079460958", "joe@example.co.uk")


def test_odd_text_from_anyone_is_stored_clean(session):
    """NUL, lone surrogates and decomposed accents, from a channel, an agent or a model, are stored
    as clean NFC text on every backend (PostgreSQL refuses NUL, no encoding writes a surrogate)."""
    stored = ingest(
        Inbound(
            channel="web",
            external_id="v\x00\ud800",
            text="hi\x00 \udfff Jose\u0301",
            name="Jose\u0301 \ud800",
            payload={"k\ud800": ["\x00x"]},
        ),
        session=session,
    )
    assert (stored.message.text, stored.lead.name) == ("hi \ufffd Jos\u00e9", "Jos\u00e9 \ufffd")
    assert stored.message.payload == {"k\ufffd": ["x"]}
    reply = record_outbound(
        stored.conversation, "ok \ud83d\ude00 \ud83d", session=session, author="bot"
    )
    assert reply.text == "ok \U0001f600 \ufffd"
    session.flush()
    assert session.scalar(select(func.count()).select_from(Message)) == 2
