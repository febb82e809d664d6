"""Console forms with odd text: NUL and decomposed accents are cleaned before anything is stored
(PostgreSQL cannot store NUL; one name typed two ways is one name)."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Note


def test_form_fields_are_cleaned_before_they_are_stored(console, world, session_factory):  # type: ignore[no-untyped-def]
    world.agent("Sarah", email="sarah@example.com", password="correct horse")
    lead_id = world.lead("Dana", channel="web")
    console.login(email="sarah@example.com", password="correct horse")

    saved = console.post(
        f"/console/leads/{lead_id}/edit",
        {"name": "Jose\u0301\x00 Smith", "company": "Caf\u0065\u0301\x00 Ltd"},
        follow_redirects=True,
    )
    assert saved.status_code == 200 and "Saved" in saved.text
    lead = world.read(lead_id)
    assert (lead.name, lead.company) == ("Jos\u00e9 Smith", "Caf\u00e9 Ltd")

    noted = console.post(
        f"/console/leads/{lead_id}/note", {"text": "called\x00 Jose\u0301"}, follow_redirects=True
    )
    assert noted.status_code == 200 and "Note added" in noted.text
    with session_factory() as session:
        assert list(session.scalars(select(Note.text))) == ["called Jos\u00e9"]
    # Query parameters too: a search typed with the decomposed accent finds the lead.
    found = console.get("/console/leads?q=Jose\u0301")
    assert found.status_code == 200 and "Jos\u00e9 Smith" in found.text
