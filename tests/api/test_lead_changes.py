"""Lead detail, create, update (with normalised contacts and validated custom fields), status
effects,
conversion lock, archive and delete."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from store.models import AuditEvent, Identity, Lead, Message, Note, Notification, ScoreEvent


def test_detail_has_profile_identities_conversations_notes_scores_and_audit(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Dana", channel="whatsapp", phone="+14155550123", extra_channels=("web",))
    first = world.customer_message(lead_id, "Hi, how much is the pro plan?", channel="whatsapp")
    world.bot_message(lead_id, "Pro is $49 a month.", channel="whatsapp")
    world.customer_message(lead_id, "Can I get a demo?", channel="web")
    world.score(
        lead_id,
        70,
        [{"factor": "pricing question", "points": 25, "evidence": "how much is the pro plan"}],
        message_id=first,
    )
    team["sarah"].post(
        f"/api/leads/{lead_id}/notes", json={"text": "Wants a demo", "category": "follow-up"}
    )

    response = team["sarah"].get(f"/api/leads/{lead_id}")
    assert response.status_code == 200
    lead = response.get_json()
    assert lead["name"] == "Dana" and lead["phone"] == "+14155550123"
    assert lead["channels"] == ["web", "whatsapp"]
    assert {i["channel"] for i in lead["identities"]} == {"web", "whatsapp"}
    texts = {
        c["channel"]: [(m["author"], m["text"]) for m in c["messages"]]
        for c in lead["conversations"]
    }
    assert texts["whatsapp"] == [
        ("customer", "Hi, how much is the pro plan?"),
        ("bot", "Pro is $49 a month."),
    ]
    assert texts["web"] == [("customer", "Can I get a demo?")]
    assert lead["notes"][0]["category"] == "Follow-up" and lead["notes"][0]["author"] == "Sarah"
    history = lead["score_history"]
    assert history[0]["previous_score"] == 0 and history[0]["score"] == 70
    assert history[0]["factors"][0]["evidence"] == "how much is the pro plan"
    assert lead["score"] == 70 and lead["band"] == "high"
    assert any(a["action"] == "note" for a in lead["audit"])


def test_missing_forbidden_and_merged_leads(world, team):  # type: ignore[no-untyped-def]
    assert team["sarah"].get("/api/leads/999").status_code == 404
    assert team["sarah"].get("/api/leads/99999999999999999999999").status_code == 404
    theirs = world.lead("Mike's", agent_id=team["mike_id"])
    response = team["sarah"].get(f"/api/leads/{theirs}")
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert team["sarah"].patch(f"/api/leads/{theirs}", json={"name": "x"}).status_code == 403
    assert team["sarah"].post(f"/api/leads/{theirs}/notes", json={"text": "x"}).status_code == 403
    assert team["admin"].get(f"/api/leads/{theirs}").status_code == 200


def test_update_normalises_contacts_and_audits_each_field(world, team, session_factory):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Old Name")
    response = team["sarah"].patch(
        f"/api/leads/{lead_id}",
        json={
            "name": "New Name",
            "phone": "(415) 555-0142",
            "email": "Dana@Example.COM",
            "company": "Acme",
            "tags": ["VIP", "VIP", " Decision Maker "],
        },
    )
    assert response.status_code == 200, response.get_json()
    lead = response.get_json()
    assert lead["phone"] == "+14155550142"
    assert lead["email"] == "Dana@example.com"
    assert lead["tags"] == ["VIP", "Decision Maker"]
    with session_factory() as session:
        events = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.lead_id == lead_id, AuditEvent.action == "update"
                )
            )
        )
    by_field = {e.field: e for e in events}
    assert by_field["name"].old_value == "Old Name" and by_field["name"].new_value == "New Name"
    assert by_field["phone"].agent_id == team["sarah_id"] and by_field["phone"].actor == "agent"
    # Clearing a field with null; leaving a field out keeps it.
    cleared = team["sarah"].patch(f"/api/leads/{lead_id}", json={"company": None}).get_json()
    assert cleared["company"] is None and cleared["name"] == "New Name"


def test_update_refuses_bad_and_duplicate_contacts(world, team):  # type: ignore[no-untyped-def]
    world.lead("Owner", phone="+14155550100", email="owner@example.com")
    lead_id = world.lead("Other")
    sarah = team["sarah"]
    bad_phone = sarah.patch(f"/api/leads/{lead_id}", json={"phone": "12"})
    assert bad_phone.status_code == 422 and bad_phone.get_json()["error"]["field"] == "phone"
    bad_email = sarah.patch(f"/api/leads/{lead_id}", json={"email": "not-an-email"})
    assert bad_email.status_code == 422 and bad_email.get_json()["error"]["field"] == "email"
    taken = sarah.patch(f"/api/leads/{lead_id}", json={"phone": "415 555 0100"})
    assert taken.status_code == 409 and taken.get_json()["error"]["field"] == "phone"
    assert (
        sarah.patch(f"/api/leads/{lead_id}", json={"email": "owner@EXAMPLE.com"}).status_code == 409
    )
    assert sarah.patch(f"/api/leads/{lead_id}", json={"status": None}).status_code == 422
    unknown = sarah.patch(f"/api/leads/{lead_id}", json={"score": 100})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["field"] == "score"
    assert (
        sarah.patch(
            f"/api/leads/{lead_id}", data="{not json", content_type="application/json"
        ).status_code
        == 400
    )
    assert sarah.patch(f"/api/leads/{lead_id}", json=[1, 2]).status_code == 400
    assert world.read(lead_id).phone is None


def test_custom_fields_are_validated_against_their_definitions(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Custom")
    sarah = team["sarah"]
    ok = sarah.patch(
        f"/api/leads/{lead_id}",
        json={
            "custom_fields": {
                "budget": "12,500.50",
                "seats": 12,
                "industry": "health",
                "renewal": "2024-09-30",
                "website": "https://acme.test",
                "vip": "yes",
                "billing_email": "Pay@Acme.TEST",
            }
        },
    )
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["custom_fields"] == {
        "budget": 12500.5,
        "seats": 12,
        "industry": "Health",
        "renewal": "2024-09-30",
        "website": "https://acme.test",
        "vip": True,
        "billing_email": "Pay@acme.test",
    }
    # Merged, not replaced; null removes one value.
    partial = sarah.patch(
        f"/api/leads/{lead_id}", json={"custom_fields": {"seats": None, "vip": False}}
    )
    assert partial.get_json()["custom_fields"]["budget"] == 12500.5
    assert (
        "seats" not in partial.get_json()["custom_fields"]
        and partial.get_json()["custom_fields"]["vip"] is False
    )
    for values, field in [
        ({"shoe_size": 42}, "custom_fields.shoe_size"),
        ({"seats": 1.5}, "custom_fields.seats"),
        ({"budget": "lots"}, "custom_fields.budget"),
        ({"industry": "Mining"}, "custom_fields.industry"),
        ({"renewal": "next year"}, "custom_fields.renewal"),
        ({"website": "acme"}, "custom_fields.website"),
        ({"vip": "maybe"}, "custom_fields.vip"),
        ({"budget": True}, "custom_fields.budget"),
    ]:
        response = sarah.patch(f"/api/leads/{lead_id}", json={"custom_fields": values})
        assert response.status_code == 422, values
        assert response.get_json()["error"]["field"] == field


def test_status_changes_apply_the_status_behaviour(world, team, clock):  # type: ignore[no-untyped-def]
    sarah = team["sarah"]
    lead_id = world.lead("Status", agent_id=team["mike_id"])
    admin = team["admin"]
    # notify: the assigned agent hears about it when someone else changes it.
    assert (
        admin.patch(f"/api/leads/{lead_id}", json={"status": "interested"}).get_json()["status"]
        == "Interested"
    )
    assert (
        "Interested"
        in team["mike"].get("/api/notifications").get_json()["notifications"][0]["text"]
    )
    # stop: the bot stops for good.
    stopped = admin.patch(f"/api/leads/{lead_id}", json={"status": "Not Interested"}).get_json()
    assert stopped["ai_stopped"] is True and stopped["ai_paused"] is True
    # auto_assign on an unassigned lead hands it to the next available agent and pauses the bot.
    free = world.lead("Free")
    followed = sarah.patch(f"/api/leads/{free}", json={"status": "Follow Up"}).get_json()
    assert followed["assigned_agent"] is not None
    assert followed["ai_paused_until"].startswith(
        (clock.now + timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M")
    )
    unknown = sarah.patch(f"/api/leads/{free}", json={"status": "Hibernating"})
    assert unknown.status_code == 422 and "Follow Up" in unknown.get_json()["error"]["message"]


def test_convert_locks_the_lead(world, team, clock):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Buyer", agent_id=team["sarah_id"])
    sarah = team["sarah"]
    converted = sarah.post(f"/api/leads/{lead_id}/convert", json={"note": "Signed the annual plan"})
    assert converted.status_code == 200
    lead = converted.get_json()
    assert lead["status"] == "Converted" and lead["locked"] is True
    assert lead["converted_at"].startswith("2024-06-03T12:00")
    assert lead["notes"][-1]["text"] == "Signed the annual plan"
    assert any(a["action"] == "convert" and a["agent_name"] == "Sarah" for a in lead["audit"])
    for method, path, body in [
        ("patch", f"/api/leads/{lead_id}", {"name": "Changed"}),
        ("patch", f"/api/leads/{lead_id}", {"status": "New"}),
        ("post", f"/api/leads/{lead_id}/convert", {}),
        ("post", f"/api/leads/{lead_id}/assign", {"agent_id": team["mike_id"]}),
    ]:
        response = getattr(sarah, method)(path, json=body)
        assert response.status_code == 409, path
        assert response.get_json()["error"]["code"] == "lead_locked"
    assert world.read(lead_id).name == "Buyer"
    # Converting via a status change is the same conversion.
    other = world.lead("Other")
    assert (
        sarah.patch(f"/api/leads/{other}", json={"status": "converted"}).get_json()["locked"]
        is True
    )
    # Only an admin reopens.
    assert sarah.post(f"/api/leads/{lead_id}/reopen").status_code == 403
    reopened = team["admin"].post(f"/api/leads/{lead_id}/reopen").get_json()
    assert reopened["locked"] is False and reopened["status"] == "Converted"
    assert sarah.patch(f"/api/leads/{lead_id}", json={"name": "Changed"}).status_code == 200


def test_archive_and_unarchive(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Archive me")
    sarah = team["sarah"]
    assert sarah.post(f"/api/leads/{lead_id}/archive", json={}).get_json()["archived"] is True
    assert lead_id not in [lead["id"] for lead in sarah.get("/api/leads").get_json()["leads"]]
    assert (
        sarah.post(f"/api/leads/{lead_id}/archive", json={"archived": False}).get_json()["archived"]
        is False
    )


def test_delete_is_for_admins_and_removes_everything(world, team, session_factory):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Delete me", channel="whatsapp", phone="+14155550177")
    message_id = world.customer_message(lead_id, "hello", channel="whatsapp")
    world.score(
        lead_id,
        30,
        [{"factor": "greeting", "points": 5, "evidence": "hello"}],
        message_id=message_id,
    )
    team["sarah"].post(f"/api/leads/{lead_id}/notes", json={"text": "note"})
    assert team["sarah"].delete(f"/api/leads/{lead_id}").status_code == 403
    assert team["admin"].delete(f"/api/leads/{lead_id}").status_code == 204
    assert team["admin"].get(f"/api/leads/{lead_id}").status_code == 404
    assert team["admin"].delete(f"/api/leads/{lead_id}").status_code == 404
    with session_factory() as session:
        for model in (Identity, Note, ScoreEvent, Message):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model
        deletion = session.scalars(select(AuditEvent).where(AuditEvent.action == "delete")).one()
        assert deletion.old_value == str(lead_id) and deletion.agent_id == team["admin_id"]
        assert session.get(Lead, lead_id) is None
    # The same person writing again is a fresh lead, with nothing of the deleted one.
    again = world.lead("Back", channel="whatsapp", phone="+14155550177")
    fresh = team["admin"].get(f"/api/leads/{again}").get_json()
    assert fresh["notes"] == [] and fresh["score_history"] == [] and fresh["name"] == "Back"


def test_create_a_lead_by_hand(world, team, session_factory):  # type: ignore[no-untyped-def]
    sarah = team["sarah"]
    response = sarah.post(
        "/api/leads",
        json={
            "name": "Walk-in",
            "phone": "415-555-0166",
            "company": "Shop",
            "custom_fields": {"industry": "retail"},
            "assign_to_me": True,
            "status": "Interested",
        },
    )
    assert response.status_code == 201, response.get_json()
    lead = response.get_json()
    assert lead["phone"] == "+14155550166" and lead["channels"] == ["manual"]
    assert lead["custom_fields"] == {"industry": "Retail"}
    assert lead["assigned_agent"]["name"] == "Sarah" and lead["status"] == "Interested"
    duplicate = sarah.post("/api/leads", json={"name": "Again", "phone": "+1 415 555 0166"})
    assert duplicate.status_code == 409 and duplicate.get_json()["error"]["field"] == "phone"
    assert sarah.post("/api/leads", json={}).status_code == 422
    assert sarah.post("/api/leads", json={"name": "x", "email": "nope"}).status_code == 422
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1


def test_notifications_are_per_agent_and_marked_read(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Assign me")
    team["admin"].post(f"/api/leads/{lead_id}/assign", json={"agent_id": team["sarah_id"]})
    listed = team["sarah"].get("/api/notifications").get_json()
    assert listed["unread"] == 1
    note = listed["notifications"][0]
    assert (
        note["lead_id"] == lead_id
        and note["lead_name"] == "Assign me"
        and note["kind"] == "assigned"
    )
    assert team["mike"].get("/api/notifications").get_json()["unread"] == 0
    # Mike cannot mark Sarah's notification read.
    assert (
        team["mike"]
        .post("/api/notifications/read", json={"ids": [note["id"]]})
        .get_json()["marked"]
        == 0
    )
    assert (
        team["sarah"]
        .post("/api/notifications/read", json={"ids": [note["id"]]})
        .get_json()["marked"]
        == 1
    )
    assert team["sarah"].get("/api/notifications").get_json()["unread"] == 0
    everything = team["sarah"].get("/api/notifications?unread=false").get_json()["notifications"]
    assert everything[0]["read"] is True
    with world.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
    assert (
        team["sarah"].post("/api/notifications/read", json={"all": True}).get_json()["marked"] == 0
    )


def test_a_converted_lead_takes_notes_but_nothing_customer_facing(world, team):  # type: ignore[no-untyped-def]
    lead_id = world.lead("Buyer", agent_id=team["sarah_id"])
    world.customer_message(lead_id, "Where do I sign?")
    sarah, admin = team["sarah"], team["admin"]
    assert sarah.post(f"/api/leads/{lead_id}/convert", json={}).status_code == 200
    note = sarah.post(f"/api/leads/{lead_id}/notes", json={"text": "Sent the welcome pack"})
    assert note.status_code == 201
    for who, path, body in [
        (sarah, "reply", {"text": "Hello again"}),
        (sarah, "bot/pause", {"minutes": 30}),
        (sarah, "bot/resume", None),
        (sarah, "archive", {}),
        (admin, "reply", {"text": "Hello again"}),
        (admin, "bot/pause", {}),
    ]:
        response = who.post(f"/api/leads/{lead_id}/{path}", json=body)
        assert response.status_code == 409, path
        assert response.get_json()["error"]["code"] == "lead_locked"
    lead = world.read(lead_id)
    assert not lead.archived and lead.ai_paused_until is None
    # Archiving is housekeeping an admin may do; after reopening, everything works again.
    assert admin.post(f"/api/leads/{lead_id}/archive", json={}).get_json()["archived"] is True
    assert admin.post(f"/api/leads/{lead_id}/reopen").status_code == 200
    again = sarah.post(f"/api/leads/{lead_id}/reply", json={"text": "Hello again"})
    assert again.status_code == 201
