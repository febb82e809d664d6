"""Identity resolution and merging: one person, one lead, whatever channel they come from."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from store.contacts import InvalidContact
from store.leads import get_lead, resolve
from store.messages import Inbound, ingest
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
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "merge")).first() is not None


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
    first = ingest(Inbound("whatsapp", "14155552671", "hello", channel_message_id="wamid.1"), session=session)
    second = ingest(Inbound("whatsapp", "14155552671", "hello", channel_message_id="wamid.1"), session=session)
    assert not first.duplicate and second.duplicate
    assert second.message.id == first.message.id
    assert session.scalar(select(func.count()).select_from(Message)) == 1
