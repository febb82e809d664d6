"""The web console through a test client: sign-in, CSRF, filters in the URL, lead actions, bulk
actions,
dashboard, notifications and the admins' team page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.models import Message, Note
from tests.api.conftest import T0
from tests.console.conftest import csrf_of


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    """The console's behaviour does not depend on the backend; the API tests cover both."""
    return sqlite_engine


@pytest.fixture
def sarah(world):  # type: ignore[no-untyped-def]
    agent_id, api = world.agent("Sarah", email="sarah@example.com", password="correct horse")
    return agent_id, api


def test_pages_need_a_sign_in_and_come_back_after_it(console, sarah):  # type: ignore[no-untyped-def]
    response = console.get("/console/leads?hot=1")
    assert response.status_code == 302 and "/console/login" in response.location
    page = console.get(response.location)
    nxt = csrf_of(page.text)
    signed = console.client.post(
        "/console/login",
        data={
            "csrf_token": nxt,
            "email": "sarah@example.com",
            "password": "correct horse",
            "next": "/console/leads?hot=1",
        },
    )
    assert signed.status_code == 302 and signed.location.endswith("/console/leads?hot=1")


def test_sign_in_with_password_or_token_and_out(console, sarah, world):  # type: ignore[no-untyped-def]
    assert console.login(email="sarah@example.com", password="wrong").status_code == 401
    assert console.login(email="nobody@example.com", password="correct horse").status_code == 401
    assert console.login(email="SARAH@example.com", password="correct horse").status_code == 302
    assert "Sarah" in console.get("/console/leads").text
    assert console.post("/console/logout").status_code == 302
    assert console.get("/console/leads").status_code == 302
    _, api = sarah
    assert console.login(token=api.token).status_code == 302
    assert console.get("/console/dashboard").status_code == 200


def test_login_refuses_offsite_redirects(app, sarah):  # type: ignore[no-untyped-def]
    for target in ("https://evil.example/", "//evil.example/x", "/api/leads"):
        client = app.test_client()
        page = client.get("/console/login")
        response = client.post(
            "/console/login",
            data={
                "csrf_token": csrf_of(page.text),
                "email": "sarah@example.com",
                "password": "correct horse",
                "next": target,
            },
        )
        assert response.location.endswith("/console/leads"), target


def test_every_form_post_needs_the_csrf_token(console, sarah, world, session_factory):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Dana")
    # Not even the login form works without it.
    assert (
        console.client.post(
            "/console/login", data={"email": "sarah@example.com", "password": "correct horse"}
        ).status_code
        == 400
    )
    console.login(email="sarah@example.com", password="correct horse")
    forged = console.client.post(f"/console/leads/{lead_id}/note", data={"text": "forged"})
    assert forged.status_code == 400 and "expired" in forged.text
    wrong = console.client.post(
        f"/console/leads/{lead_id}/note", data={"text": "forged", "csrf_token": "x"}
    )
    assert wrong.status_code == 400
    with session_factory() as session:
        assert session.scalars(select(Note)).first() is None
    assert console.post(f"/console/leads/{lead_id}/note", {"text": "real"}).status_code == 302


def test_a_disabled_agent_is_signed_out(console, sarah, world):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    console.login(email="sarah@example.com", password="correct horse")
    _, admin = world.agent("Ada", role="admin")
    admin.patch(f"/api/agents/{agent_id}", json={"active": False})
    assert console.get("/console/leads").status_code == 302


def test_leads_page_filters_come_from_the_url(console, sarah, world, clock):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    world.lead(
        "Hot Interested", score=88, status="Interested", channel="whatsapp", phone="+14155550101"
    )
    world.lead("Cold Interested", score=20, status="Interested")
    world.lead("Hot New", score=80, agent_id=agent_id)
    world.lead(
        "Old Stale", created_at=T0 - timedelta(days=30), last_contacted_at=T0 - timedelta(days=20)
    )
    console.login(email="sarah@example.com", password="correct horse")

    def names(path: str) -> set[str]:
        page = console.get(path)
        assert page.status_code == 200
        return {
            n
            for n in ("Hot Interested", "Cold Interested", "Hot New", "Old Stale")
            if f">{n}<" in page.text
        }

    assert names("/console/leads") == {"Hot Interested", "Cold Interested", "Hot New", "Old Stale"}
    assert names("/console/leads?status=interested&hot=1") == {"Hot Interested"}
    assert names("/console/leads?hot=1") == {"Hot Interested", "Hot New"}
    assert names("/console/leads?mine=1") == {"Hot New"}
    assert names("/console/leads?unassigned=1&score_max=50") == {"Cold Interested", "Old Stale"}
    assert names("/console/leads?channel=whatsapp") == {"Hot Interested"}
    assert names("/console/leads?stale=1") == {"Old Stale"}
    assert names("/console/leads?period=today") == {"Hot Interested", "Cold Interested", "Hot New"}
    assert names("/console/leads?q=415-555-0101") == {"Hot Interested"}
    page = console.get("/console/leads?score_min=oops")
    assert page.status_code == 200 and "Filter not applied" in page.text
    # The status badge carries the configured colour and chips toggle parameters in the URL.
    page = console.get("/console/leads?hot=1").text
    assert "--c: #" in page and 'href="/console/leads?hot=1&amp;mine=1"' in page


def test_leads_page_total_says_more_beyond_the_cap(console, sarah, world, monkeypatch):  # type: ignore[no-untyped-def]
    for i in range(4):
        world.lead(f"Lead {i}", score=80 if i == 0 else 10)
    console.login(email="sarah@example.com", password="correct horse")
    assert '<span class="muted" id="lead-total">4</span>' in console.get("/console/leads").text
    monkeypatch.setattr("store.query.LIST_COUNT_CAP", 3)
    page = console.get("/console/leads").text
    assert 'title="More than 3 leads match; counting stops there">3+</span>' in page
    assert 'id="lead-total">1</span>' in console.get("/console/leads?hot=1").text


def test_lead_page_shows_every_channel_in_one_timeline(console, sarah, world):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Dana", channel="whatsapp", phone="+14155550123", extra_channels=("web",))
    first = world.customer_message(lead_id, "How much for 10 panels?", channel="whatsapp")
    world.bot_message(lead_id, "About $9,000 installed.", channel="whatsapp")
    world.clock.advance(minutes=5)
    world.customer_message(lead_id, "Also asking on the site", channel="web")
    world.score(
        lead_id,
        64,
        [{"factor": "pricing", "points": 30, "evidence": "How much for 10 panels?"}],
        message_id=first,
    )
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get(f"/console/leads/{lead_id}").text
    order = [
        page.index(t)
        for t in ("How much for 10 panels?", "About $9,000 installed.", "Also asking on the site")
    ]
    assert order == sorted(order)
    assert "<strong>Bot</strong>" in page and "<strong>Dana</strong>" in page
    assert "0 → 64" in page and "pricing" in page and "<svg" in page
    assert "Roof type" in page  # custom fields from prompts/custom_fields.yaml


def test_lead_actions_from_the_lead_page(console, sarah, world, session_factory):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    lead_id = world.lead("Dana", channel="web")
    world.customer_message(lead_id, "Hi there")
    console.login(email="sarah@example.com", password="correct horse")

    saved = console.post(
        f"/console/leads/{lead_id}/edit",
        {
            "name": "Dana Smith",
            "phone": "415 555 0199",
            "email": "",
            "company": "Sunny LLC",
            "status": "Interested",
            "tags": "solar, urgent",
            "cf_roof_type": "metal",
            "cf_monthly_bill": "240",
            "cf_property_owner": "true",
            "cf_survey_date": "",
            "cf_financing": "",
            "cf_referral": "",
        },
        follow_redirects=True,
    )
    assert "Saved" in saved.text
    lead = world.read(lead_id)
    assert (
        lead.phone == "+14155550199"
        and lead.status == "Interested"
        and lead.tags == ["solar", "urgent"]
    )
    assert lead.custom_fields == {"roof_type": "metal", "monthly_bill": 240, "property_owner": True}

    bad = console.post(
        f"/console/leads/{lead_id}/edit",
        {"phone": "123", "cf_roof_type": "straw"},
        follow_redirects=True,
    )
    assert "phone" in bad.text and world.read(lead_id).phone == "+14155550199"

    noted = console.post(
        f"/console/leads/{lead_id}/note",
        {"text": "Call back Friday", "category": "Follow-up"},
        follow_redirects=True,
    )
    assert "Call back Friday" in noted.text and "Follow-up" in noted.text

    replied = console.post(
        f"/console/leads/{lead_id}/reply", {"text": "Hi Dana, Sarah here."}, follow_redirects=True
    )
    assert "Reply sent" in replied.text and "Hi Dana, Sarah here." in replied.text
    with session_factory() as session:
        message = session.scalars(select(Message).where(Message.author == "agent")).one()
        assert message.agent_id == agent_id and message.delivery_status == "sent"
    assert world.read(lead_id).ai_paused_until is not None

    resumed = console.post(
        f"/console/leads/{lead_id}/bot", {"action": "resume"}, follow_redirects=True
    )
    assert (
        "answering this lead again" in resumed.text and world.read(lead_id).ai_paused_until is None
    )
    console.post(f"/console/leads/{lead_id}/bot", {"action": "pause", "minutes": ""})
    assert world.read(lead_id).ai_stopped is True

    console.post(f"/console/leads/{lead_id}/assign", {"agent_id": "me"})
    assert world.read(lead_id).assigned_agent_id == agent_id

    converted = console.post(
        f"/console/leads/{lead_id}/convert", {"note": "Signed 8kW"}, follow_redirects=True
    )
    assert "read-only" in converted.text
    lead = world.read(lead_id)
    assert lead.locked and lead.status == "Converted" and lead.converted_at is not None
    refused = console.post(
        f"/console/leads/{lead_id}/edit", {"name": "Changed"}, follow_redirects=True
    )
    assert "read-only" in refused.text and world.read(lead_id).name == "Dana Smith"
    for action, form in [
        ("reply", {"text": "One more thing"}),
        ("bot", {"action": "resume"}),
        ("archive", {"archived": "1"}),
    ]:
        page = console.post(f"/console/leads/{lead_id}/{action}", form, follow_redirects=True)
        assert "read-only" in page.text, action
    lead = world.read(lead_id)
    assert lead.ai_stopped is True and not lead.archived
    added = console.post(f"/console/leads/{lead_id}/note", {"text": "Paid"}, follow_redirects=True)
    assert "Note added" in added.text
    # Only admins see (and may use) reopen and delete.
    assert console.post(f"/console/leads/{lead_id}/reopen").status_code == 403
    assert console.post(f"/console/leads/{lead_id}/delete").status_code == 403


def test_other_agents_leads_are_out_of_reach(console, sarah, world):  # type: ignore[no-untyped-def]
    mike_id, _ = world.agent("Mike")
    theirs = world.lead("Mike's lead", agent_id=mike_id)
    console.login(email="sarah@example.com", password="correct horse")
    assert ">Mike&#39;s lead<" not in console.get("/console/leads").text
    page = console.get(f"/console/leads/{theirs}")
    assert page.status_code == 403 and "another agent" in page.text
    console.post(f"/console/leads/{theirs}/note", {"text": "sneaky"})
    assert console.get("/console/leads/999999").status_code == 404


def test_bulk_assign_status_and_export(console, sarah, world):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    mike_id, _ = world.agent("Mike")
    a, b = world.lead("Alpha"), world.lead("Bravo")
    theirs = world.lead("Charlie", agent_id=mike_id)
    console.login(email="sarah@example.com", password="correct horse")
    done = console.post(
        "/console/leads/bulk",
        {
            "ids": [str(a), str(b), str(theirs)],
            "action": "assign",
            "agent_id": str(agent_id),
            "next": "/console/leads?hot=1",
        },
    )
    assert done.location.endswith("/console/leads?hot=1")
    assert (
        world.read(a).assigned_agent_id == agent_id and world.read(b).assigned_agent_id == agent_id
    )
    assert world.read(theirs).assigned_agent_id == mike_id
    flashed = console.get("/console/leads").text
    assert "2 lead(s) assigned" in flashed and "1 skipped" in flashed
    console.post(
        "/console/leads/bulk", {"ids": [str(a), str(b)], "action": "status", "status": "Scouting"}
    )
    assert world.read(a).status == world.read(b).status == "Scouting"
    exported = console.post("/console/leads/bulk", {"ids": [str(a)], "action": "export"})
    csv_page = console.get(exported.location)
    assert csv_page.mimetype == "text/csv"
    lines = csv_page.text.strip().splitlines()
    assert lines[0].startswith("id,name,email,phone") and len(lines) == 2 and "Alpha" in lines[1]
    everything = console.get("/console/leads/export.csv?status=Scouting").text.strip().splitlines()
    assert len(everything) == 3
    assert (
        "Select at least one"
        in console.post("/console/leads/bulk", {"action": "assign"}, follow_redirects=True).text
    )


def test_dashboard_counts_and_charts(console, sarah, world, clock):  # type: ignore[no-untyped-def]
    world.lead(
        "Hot One",
        score=90,
        status="Interested",
        channel="whatsapp",
        phone="+14155550111",
        last_contacted_at=T0,
    )
    world.lead("Warm", score=50, channel="messenger", created_at=T0 - timedelta(days=2))
    converted = world.lead("Won", score=70)
    console.login(email="sarah@example.com", password="correct horse")
    console.post(f"/console/leads/{converted}/convert", {})
    page = console.get("/console/dashboard").text
    assert "Hot leads needing attention" in page and ">Hot One<" in page
    assert "Interested: 1" in page and "whatsapp: 1" in page and "ready to buy: 1" in page
    assert f"{T0.date().isoformat()}: 2" in page  # created today: Hot One and Won
    monday = (T0 - timedelta(days=T0.weekday())).date().isoformat()
    assert f"{monday}: 1" in page  # one conversion this week


def test_notifications_page_links_to_leads(console, sarah, world):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    _, admin = world.agent("Ada", role="admin")
    lead_id = world.lead("Needs you")
    admin.post(f"/api/leads/{lead_id}/assign", json={"agent_id": agent_id})
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get("/console/notifications").text
    assert "Ada assigned Needs you to you" in page and 'id="unread-count">1<' in page
    opened = console.post("/console/notifications/read", {"id": "1", "open": str(lead_id)})
    assert opened.location.endswith(f"/console/leads/{lead_id}")
    assert "all caught up" in console.get("/console/notifications").text


def test_team_page_is_for_admins(console, sarah, world):  # type: ignore[no-untyped-def]
    agent_id, _ = sarah
    world.agent("Ada", role="admin", email="ada@example.com", password="admin pass 1")
    console.login(email="sarah@example.com", password="correct horse")
    assert console.get("/console/agents").status_code == 403
    console.post("/console/logout")
    console.login(email="ada@example.com", password="admin pass 1")
    created = console.post(
        "/console/agents",
        {
            "name": "Mike",
            "email": "mike@example.com",
            "role": "agent",
            "capacity": "20",
            "password": "",
        },
    )
    assert created.status_code == 200 and 'id="new-token">ld_' in created.text
    token = created.text.split('id="new-token">')[1].split("<")[0]
    assert (
        world.anonymous()
        .client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        .status_code
        == 200
    )
    console.post(f"/console/agents/{agent_id}/disable")
    assert (
        world.anonymous()
        .client.get("/api/me", headers={"Authorization": f"Bearer {sarah[1].token}"})
        .status_code
        == 401
    )
    rotated = console.post(f"/console/agents/{agent_id}/token")
    assert 'id="new-token">ld_' in rotated.text
    assert console.post("/console/agents", {"name": ""}).status_code == 422


def test_an_agent_created_or_enabled_on_the_team_page_takes_the_leads_that_waited(  # type: ignore[no-untyped-def]
    console, world
):
    world.agent("Ada", role="admin", email="ada@example.com", password="admin pass 1", capacity=0)
    # The hottest lead reached Follow Up (which gives it to an agent) before anyone could take it.
    hot = world.lead("Dana", status="Follow Up", score=90)
    console.login(email="ada@example.com", password="admin pass 1")
    created = console.post("/console/agents", {"name": "Mike", "capacity": "5", "role": "agent"})
    assert created.status_code == 200
    mike = world.read(hot).assigned_agent_id
    assert mike is not None
    # While Mike is disabled nobody can take a new one; enabling him hands it over.
    console.post(f"/console/agents/{mike}/disable")
    later = world.lead("Omar", status="Follow Up")
    assert world.read(later).assigned_agent_id is None
    console.post(f"/console/agents/{mike}/enable")
    assert world.read(later).assigned_agent_id == mike


def test_lead_page_shows_trust_and_merges_a_suggestion_after_a_confirmation(  # type: ignore[no-untyped-def]
    console, sarah, world, session_factory
):
    from store.leads import resolve
    from store.models import CLAIMED, Lead

    whatsapp = world.lead("Dana", channel="whatsapp", phone="+14155550123")
    world.customer_message(whatsapp, "Hello from WhatsApp", channel="whatsapp")
    with session_factory.begin() as session:
        web = resolve(
            "web", "web-visitor-1", phone="+1 415 555 0123", session=session, trust=CLAIMED
        ).id
    world.customer_message(web, "Hello from the site", channel="web")
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get(f"/console/leads/{whatsapp}").text
    assert "may be the same person" in page.lower() or "May be the same person" in page
    assert f"#{web}" in page and "claimed on web chat" in page
    assert "verified" in page

    ask = console.post(f"/console/leads/{whatsapp}/merge", {"other_lead_id": str(web)})
    assert ask.status_code == 200 and "Merge #" in ask.text and 'name="confirm"' in ask.text
    with session_factory() as session:
        assert session.get(Lead, web).merged_into_id is None  # nothing merged before confirming
    done = console.post(
        f"/console/leads/{whatsapp}/merge", {"other_lead_id": str(web), "confirm": "yes"}
    )
    assert done.status_code == 302
    with session_factory() as session:
        assert session.get(Lead, web).merged_into_id == whatsapp

    page = console.get(f"/console/leads/{whatsapp}").text
    chooser = page[page.index('id="reply-conversation"') :]
    chooser = chooser[: chooser.index("</select>")]
    assert "whatsapp" in chooser and "web" in chooser
    default = next(line for line in chooser.splitlines() if "selected" in line)
    assert "whatsapp" in default and "(verified)" in default
    web_room = next(line for line in chooser.splitlines() if "(claimed)" in line)
    room_id = web_room.split('value="', 1)[1].split('"', 1)[0]
    sent = console.post(
        f"/console/leads/{whatsapp}/reply",
        {"text": "Answering on the site", "conversation_id": room_id},
    )
    assert sent.status_code == 302
    from sqlalchemy import select as sql_select

    from store.models import Message as Msg

    with session_factory() as session:
        last = session.scalars(
            sql_select(Msg).where(Msg.author == "agent").order_by(Msg.id.desc())
        ).first()
        assert last is not None and last.channel == "web"


def test_a_former_owner_still_reads_their_own_notes_after_their_lead_is_merged_away(  # type: ignore[no-untyped-def]
    console, sarah, world
):
    sarah_id, _ = sarah
    ben_id, ben = world.agent("Ben")
    _, admin = world.agent("Ada", role="admin")
    hers = world.lead("Dana", channel="whatsapp", agent_id=sarah_id)
    his = world.lead("Dana S.", channel="messenger", agent_id=ben_id)
    theirs = world.lead("Someone else", agent_id=ben_id)
    assert ben.post(f"/api/leads/{hers}/notes", json={"text": "not his"}).status_code == 403
    for lead_id, text in ((his, "Ben's note on his lead"), (theirs, "Ben's other lead")):
        assert ben.post(f"/api/leads/{lead_id}/notes", json={"text": text}).status_code == 201
    _, sarah_api = sarah
    assert (
        sarah_api.post(f"/api/leads/{hers}/notes", json={"text": "Sarah's own note"}).status_code
        == 201
    )
    console.login(email="sarah@example.com", password="correct horse")
    assert console.get(f"/console/leads/{his}").status_code == 403  # not hers, nothing of hers

    merged = admin.post(f"/api/leads/{his}/merge", json={"other_lead_id": hers})
    assert merged.status_code == 200 and merged.get_json()["assigned_agent"]["id"] == ben_id

    # Sarah's lead now lives in Ben's: the console shows her the notes she wrote, and only those.
    for asked in (hers, his):
        page = console.get(f"/console/leads/{asked}")
        assert page.status_code == 200
        assert "Sarah&#39;s own note" in page.text or "Sarah's own note" in page.text
        assert "Ben" not in page.text.split('id="own-notes"', 1)[1].split("</section>")[0]
        assert 'id="reply-form"' not in page.text and 'id="note-form"' not in page.text
    assert f"was merged into #{his}" in console.get(f"/console/leads/{hers}").text
    assert console.get(f"/console/leads/{theirs}").status_code == 403  # nothing of hers there
    assert console.get("/console/leads/999999").status_code == 404


def test_a_suggestion_is_dismissed_from_the_lead_page_as_not_the_same_person(  # type: ignore[no-untyped-def]
    console, sarah, world, session_factory
):
    from store.leads import resolve
    from store.models import CLAIMED, AuditEvent, MergeSuggestion

    whatsapp = world.lead("Dana", channel="whatsapp", phone="+14155550123")
    with session_factory.begin() as session:
        web = resolve(
            "web", "web-visitor-2", phone="+1 415 555 0123", session=session, trust=CLAIMED
        ).id
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get(f"/console/leads/{web}").text
    button = page[page.index('id="merge-suggestions"') :]
    action = button.split("merge-suggestions/", 1)[1].split('"', 1)[0]
    assert action.endswith("/dismiss") and "Not the same person" in button

    done = console.post(f"/console/leads/{web}/merge-suggestions/{action}")
    assert done.status_code == 302
    for lead_id in (web, whatsapp):
        page = console.get(f"/console/leads/{lead_id}").text
        assert 'id="merge-suggestions"' not in page
    with session_factory() as session:
        (row,) = session.scalars(select(MergeSuggestion)).all()
        assert row.state == "dismissed" and row.resolved_by_agent_id == sarah[0]
        audited = session.scalars(
            select(AuditEvent.lead_id).where(AuditEvent.action == "dismiss_merge")
        ).all()
        assert sorted(audited) == sorted((web, whatsapp))
    again = console.post(f"/console/leads/{web}/merge-suggestions/{action}", follow_redirects=True)
    assert "no open merge suggestion" in again.text
