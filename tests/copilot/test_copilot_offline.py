"""The copilot end to end with the offline engine: every request type against a real store."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from store.models import AuditEvent, Lead, Message, Notification

HOT_FACTORS = [
    {"factor": "pricing", "points": 20, "evidence": "How much for 10 panels?"},
    {"factor": "urgency", "points": 15, "evidence": "this month"},
]
BUYER = (
    "Hi, I'm the owner of Crumbs Bakery.",
    "We need solar panels. Our budget is around $15k and we want it installed this month.",
    "How much for 10 panels?",
)


def test_summary_covers_conversations_score_factors_notes_and_next_step(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead(
        "Dana Smith",
        says=BUYER,
        channel="whatsapp",
        phone="+14155552671",
        score=82,
        factors=HOT_FACTORS,
        agent=sarah,
        company="Crumbs Bakery",
    )
    world.lead(
        "Dana Smith",
        says=("Also on the website: do you do batteries?",),
        channel="web",
        phone="(415) 555-2671",
    )
    world.note(lead, "Wants a site survey", category="Follow-up")
    reply = chat(sarah)(f"summarise lead {lead}")
    assert reply.startswith(f"Lead #{lead} Dana Smith (Crumbs Bakery)")
    assert "score 82/100" in reply
    assert "web (1), whatsapp (3)" in reply  # both channels, merged by phone
    assert (
        '"How much for 10 panels?"' in reply
        and '"Also on the website: do you do batteries?"' in reply
    )
    assert '+20 pricing — "How much for 10 panels?"' in reply
    assert 'Note (Follow-up): "Wants a site survey"' in reply
    assert "Next step: Schedule a call" in reply


def test_a_lead_is_found_by_id_phone_in_any_format_email_or_name(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead(
        "Dana Smith",
        channel="whatsapp",
        phone="+14155552671",
        email="dana@example.com",
        agent=sarah,
    )
    ask = chat(sarah)
    for ref in (
        str(lead),
        f"#{lead}",
        "+1 415 555 2671",
        "(415) 555-2671",
        "415.555.2671",
        "14155552671",
        "555-2671",
        "DANA@example.com",
        "Dana Smith",
        "dana",
    ):
        assert ask(f"/lead {ref}").startswith(f"Lead #{lead} Dana Smith"), ref


def test_several_matches_ask_which_one_and_the_answer_continues(world, chat) -> None:
    sarah = world.agent("Sarah")
    first = world.lead("Dana Smith", agent=sarah, score=30)
    second = world.lead("Dana Lee", score=60)
    ask = chat(sarah)
    reply = ask("qualify Dana")
    assert reply.startswith("2 leads match 'Dana'. Which one?")
    assert f"1. #{second} Dana Lee" in reply and f"2. #{first} Dana Smith" in reply
    assert ask("2").startswith(f"BANT for #{first} Dana Smith")
    # The clarification is used up: "2" alone now means lead #2.
    assert ask("is it hot?").startswith(f"No, #{first} Dana Smith is not hot.")


def test_unknown_leads_are_reported_plainly(world, chat) -> None:
    sarah = world.agent("Sarah")
    ask = chat(sarah)
    assert ask("/lead 999") == "There is no lead #999."
    assert ask("qualify Nobody Atall") == "No lead you can see matches 'Nobody Atall'."
    assert ask("is +1 415 555 0000 hot?") == "I found no lead with that phone number."


def test_qualify_gives_bant_with_quotes_and_a_recommendation(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", says=BUYER, agent=sarah)
    reply = chat(sarah)(f"qualify lead {lead}")
    lines = reply.splitlines()
    assert lines[0] == f"BANT for #{lead} Dana Smith: 100/100"
    assert lines[1].startswith('Budget: met — "Our budget is around $15k')
    assert lines[2].startswith('Authority: met — "Hi, I\'m the owner of Crumbs Bakery."')
    assert lines[-1] == "Recommended: Schedule a call now: they are qualified."


def test_hot_answers_yes_or_no_with_reasons(world, chat) -> None:
    sarah = world.agent("Sarah")
    hot = world.lead("Dana Smith", says=BUYER, score=82, factors=HOT_FACTORS, agent=sarah)
    cold = world.lead("Tom Baker", says=("just browsing",), score=10)
    ask = chat(sarah)
    reply = ask(f"is lead {hot} hot?")
    assert reply.startswith(f"Yes, #{hot} Dana Smith is hot.")
    assert (
        "- score 82/100 (hot from 75)" in reply
        and '- pricing (+20) — "How much for 10 panels?"' in reply
    )
    assert ask(f"is {cold} hot?").startswith(f"No, #{cold} Tom Baker is not hot.")


def test_intro_email_is_shown_and_saved_as_a_note_only_when_confirmed(world, chat, prompts) -> None:
    sarah = world.agent("Sarah Connor")
    lead = world.lead(
        "Dana Smith",
        agent=sarah,
        company="Crumbs Bakery",
        interests=["battery storage"],
        email="dana@crumbs.example",
    )
    ask = chat(sarah)
    answer = ask.say(f"draft an intro email for lead {lead}")
    assert answer.pending is not None and answer.pending["kind"] == "save_email"
    assert answer.reply.startswith(f"Subject: {prompts.business.name}")
    assert (
        "Hi Dana," in answer.reply
        and "Crumbs Bakery" in answer.reply
        and "battery storage" in answer.reply
    )
    assert "Sarah Connor" in answer.reply
    assert answer.reply.endswith(f"Save this draft as a note on #{lead}?")
    assert world.notes(lead) == []
    assert ask("no") == "Okay, the draft was not saved."
    assert world.notes(lead) == []
    ask(f"/email {lead}")
    assert ask("yes") == f"Saved the intro email draft as a Follow-up note on #{lead}."
    [note] = world.notes(lead)
    assert note.category == "Follow-up" and note.agent_id == sarah and "Hi Dana," in note.text


def test_lists_with_ids_and_short_pages(world, chat, clock) -> None:
    sarah = world.agent("Sarah")
    mike = world.agent("Mike")
    for i in range(12):
        world.lead(f"Hot {i:02d}", score=80 + i, agent=sarah)
    world.lead("Lukewarm", score=50, agent=sarah, channel="instagram")
    world.lead("Unclaimed", score=20, channel="messenger")
    world.lead("Mike's own", score=99, agent=mike)
    ask = chat(sarah)
    reply = ask("/hot")
    lines = reply.splitlines()
    assert lines[0] == "Hot leads — 12 in all, page 1 of 2:"
    assert lines[1].startswith("#") and "Hot 11 · New · score 91" in lines[1]
    assert len(lines) == 12 and lines[-1] == 'Say "more" for the next page.'
    assert "Mike's own" not in reply
    page2 = ask("more")
    assert page2.splitlines()[0] == "Hot leads — 12 in all, page 2 of 2:" and "Hot 00" in page2
    assert ask("more") == "Hot leads: there are only 2 page(s)."
    assert "Unclaimed" in ask("unassigned leads") and "Lukewarm" not in ask("/unassigned")
    assert (
        ask("instagram leads")
        .splitlines()[1]
        .endswith("Lukewarm · New · score 50 · instagram · Sarah")
    )
    ranged = ask("leads with score between 40 and 60")
    assert "Lukewarm" in ranged and "Hot" not in ranged and "Unclaimed" not in ranged
    assert "score 40–60" in ranged.splitlines()[0]
    assert ask("leads with status Converted") == "Leads (status Converted): none."
    assert ask("leads with status Purple").startswith("'purple' is not a status here.")


def test_stale_recent_and_follow_up_lists(world, chat, clock) -> None:
    sarah = world.agent("Sarah")
    quiet = world.lead("Quiet One", agent=sarah, ago=timedelta(days=10))
    world.lead("Quiet But Closed", agent=sarah, ago=timedelta(days=10), status="Converted")
    fresh = world.lead("Fresh One", agent=sarah, ago=timedelta(hours=2))
    due = world.lead("Due Today", agent=sarah, status="Follow Up", ago=timedelta(days=2))
    noted = world.lead("Noted", agent=sarah, ago=timedelta(days=3))
    world.note(noted, "call back Monday", category="Follow-up")
    done = world.lead("Already Called", agent=sarah, status="Follow Up", ago=timedelta(days=1))
    ask = chat(sarah)
    ask(f"reply to {done}: Calling you now")  # an agent message today: followed up already
    stale = ask("/stale")
    assert (
        f"#{quiet} Quiet One" in stale
        and "Quiet But Closed" not in stale
        and "Fresh One" not in stale
    )
    recent = ask("/recent")
    assert f"#{fresh} Fresh One" in recent and "Quiet One" not in recent
    today = ask("/today")
    assert f"#{due} Due Today" in today and f"#{noted} Noted" in today
    assert "Already Called" not in today and "Fresh One" not in today


def test_notes_with_categories_are_audited_as_the_agent(world, chat, sf) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    assert (
        ask(f"/note {lead} [Objection] thinks it's too pricey")
        == f"Added an Objection note to #{lead} Dana Smith."
    )
    assert (
        ask(f"add a note to {lead}: prefers email")
        == f"Added a General note to #{lead} Dana Smith."
    )
    notes = world.notes(lead)
    assert [(n.category, n.text, n.agent_id) for n in notes] == [
        ("Objection", "thinks it's too pricey", sarah),
        ("General", "prefers email", sarah),
    ]
    audits = [a for a in world.audits(lead) if a.action == "note"]
    assert len(audits) == 2 and all(a.agent_id == sarah and a.actor == "agent" for a in audits)


def test_odd_characters_in_a_message_are_cleaned_not_answered_with_an_error(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    # A lone surrogate (as a JSON "\\ud800" escape delivers it), a NUL and a decomposed accent.
    assert (
        ask(f"/note {lead} called \ud800x\x00 about Jose\u0301")
        == f"Added a General note to #{lead} Dana Smith."
    )
    assert [n.text for n in world.notes(lead)] == ["called \ufffdx about Jos\u00e9"]


def test_status_changes_apply_directly_but_terminal_ones_ask_first(world, chat, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    assert ask(f"set {lead} to Scouting") == f"#{lead} Dana Smith: status New → Scouting."
    answer = ask.say(f"mark {lead} as not interested")
    assert answer.pending is not None and answer.pending["kind"] == "set_status"
    assert [o["value"] for o in answer.pending["options"]] == ["yes", "no"]
    assert world.get(lead).status == "Scouting"  # nothing changed while waiting
    assert ask("no") == f"Okay, #{lead} stays Scouting."
    assert world.get(lead).status == "Scouting"
    ask(f"mark {lead} as not interested")
    reply = ask("yes")
    assert (
        reply == f"#{lead} Dana Smith: status Scouting → Not Interested. "
        "The bot stops answering this lead."
    )
    after = world.get(lead)
    assert after.status == "Not Interested" and after.ai_stopped
    changes = world.audits(lead, "status")
    assert [(a.old_value, a.new_value, a.agent_id) for a in changes[-2:]] == [
        ("New", "Scouting", sarah),
        ("Scouting", "Not Interested", sarah),
    ]
    assert (
        ask(f"set {lead} to Follow Up").endswith("The bot pauses for 60 minutes.") is False
    )  # stopped stays stopped


def test_follow_up_status_pauses_the_bot_and_takes_the_lead(world, chat, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith")
    reply = chat(sarah)(f"move {lead} to Follow Up")
    assert (
        reply == f"#{lead} Dana Smith: status New → Follow Up. "
        "The bot pauses for 60 minutes. It is now assigned to you."
    )
    after = world.get(lead)
    assert (
        after.ai_paused_until == clock() + timedelta(minutes=60)
        and after.assigned_agent_id == sarah
    )


def test_an_admin_setting_follow_up_hands_the_lead_to_the_next_available_agent(
    world, chat, sf
) -> None:
    admin = world.agent("Ada", role="admin")
    mike = world.agent("Mike")
    world.lead("Ada's own", agent=admin)  # Mike has fewer open leads
    lead = world.lead("Dana Smith")
    assert chat(admin)(f"set {lead} to Follow Up").endswith("Assigned to Mike.")
    assert world.get(lead).assigned_agent_id == mike
    with sf() as session:
        [note] = session.scalars(select(Notification).where(Notification.agent_id == mike)).all()
    assert note.text == f"Ada assigned you Dana Smith (#{lead})."


def test_a_notify_status_set_by_someone_else_tells_the_owner(world, chat, sf) -> None:
    sarah = world.agent("Sarah")
    admin = world.agent("Ada", role="admin")
    lead = world.lead("Dana Smith", agent=sarah)
    chat(admin)(f"set {lead} to Interested")
    chat(sarah)(f"set {lead} to Scouting")  # her own change: no notification to herself
    with sf() as session:
        notes = session.scalars(select(Notification).where(Notification.agent_id == sarah)).all()
    assert [n.text for n in notes] == ["Ada set Dana Smith to Interested."]


def test_a_converted_lead_is_read_only(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    ask(f"mark {lead} as converted")
    assert ask("yes").endswith("The lead is now read-only (an admin can reopen it).")
    after = world.get(lead)
    assert after.locked and after.converted_at is not None
    assert [a.action for a in world.audits(lead) if a.action == "convert"] == ["convert"]
    for request in (
        f"set {lead} to Scouting",
        f"assign {lead} to nobody",
        f"reply to {lead}: hello again",
        f"take over {lead}",
        f"resume the bot for {lead}",
        f"archive lead {lead}",
    ):
        assert (
            ask(request) == f"Lead #{lead} was converted and is read-only; an admin can reopen it."
        ), request
    assert not world.get(lead).archived and world.get(lead).ai_paused_until is None
    assert world.get(lead).status == "Converted"
    assert ask(f"/note {lead} sent the contract").startswith("Added a General note")


def test_assign_and_unassign_notify_the_new_owner(world, chat, sf) -> None:
    sarah = world.agent("Sarah Connor")
    mike = world.agent("Mike Ross")
    world.agent("Mike Tyson", active=False)
    lead = world.lead("Dana Smith")
    ask = chat(sarah)
    assert ask(f"/assign {lead} Mike") == f"Assigned #{lead} Dana Smith to Mike Ross."
    assert world.get(lead).assigned_agent_id == mike
    with sf() as session:
        [note] = session.scalars(select(Notification).where(Notification.agent_id == mike)).all()
    assert "Sarah Connor assigned you Dana Smith" in note.text and note.lead_id == lead
    last = world.audits(lead, "assigned_agent_id")[-1]
    assert (last.new_value, last.agent_id, last.actor) == (str(mike), sarah, "agent")
    # Handed over, it is Mike's now: Sarah no longer sees it.
    assert ask(f"assign {lead} to me").startswith(f"Lead #{lead} is assigned to another agent")
    boss = chat(world.agent("Ada", role="admin"))
    assert boss(f"assign {lead} to Mike Ross") == f"#{lead} is already assigned to Mike Ross."
    assert boss(f"assign {lead} to Nobody Known") == "I know no agent called 'Nobody Known'."
    assert boss(f"assign {lead} to Mike Tyson") == "Mike Tyson is disabled and cannot take leads."
    assert boss(f"unassign {lead}") == f"Assigned #{lead} Dana Smith to nobody."
    assert world.get(lead).assigned_agent_id is None


def test_archive_asks_first(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    assert ask.say(f"archive lead {lead}").pending["kind"] == "archive"
    assert not world.get(lead).archived
    assert ask("yes") == f"Archived #{lead} Dana Smith."
    assert world.get(lead).archived
    assert "Dana Smith" not in ask("my leads")


def test_reply_to_the_customer_goes_out_as_the_agent_and_pauses_the_bot(
    world, chat, sf, outbox, clock
) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead(
        "Dana Smith",
        says=("Can someone call me?",),
        channel="whatsapp",
        phone="+14155552671",
        agent=sarah,
    )
    reply = chat(sarah)(f"reply to {lead}: Thanks, I'll call you at 5")
    assert reply == (
        f"Sent to Dana Smith (#{lead}) on whatsapp as you. The bot stays quiet for 60 minutes."
    )
    with sf() as session:
        sent = session.scalars(select(Message).where(Message.direction == "out")).one()
    assert (sent.text, sent.author, sent.agent_id, sent.channel) == (
        "Thanks, I'll call you at 5",
        "agent",
        sarah,
        "whatsapp",
    )
    assert outbox.delivered == [sent.id]
    assert world.get(lead).ai_paused_until == clock() + timedelta(minutes=60)
    assert (
        chat(sarah)(f"resume the bot for {lead}")
        == f"The bot is answering #{lead} Dana Smith again."
    )
    resumed = world.get(lead)
    assert resumed.ai_paused_until is None and resumed.ai_resume_notice_due


def test_replying_to_an_unassigned_lead_makes_the_agent_its_owner(world, chat, outbox) -> None:
    sarah, mike = world.agent("Sarah"), world.agent("Mike")
    lead = world.lead("Dana Smith", says=("Is anyone there?",), channel="web")
    reply = chat(sarah)(f"reply to {lead}: Yes, Sarah here")
    assert reply.endswith("The bot stays quiet for 60 minutes. It is now assigned to you.")
    assert world.get(lead).assigned_agent_id == sarah
    # Now it is Sarah's: Mike's reply (were he allowed one) would not take it over.
    assert "assigned to another agent" in chat(mike)(f"reply to {lead}: Mike here")
    assert world.get(lead).assigned_agent_id == sarah


def test_replying_to_a_lead_that_never_wrote_is_refused(world, chat, outbox) -> None:
    sarah = world.agent("Sarah")
    with world.sf.begin() as session:
        from store.leads import resolve

        lead = resolve("manual", "card-1", name="Paper Lead", session=session).id
    assert "never written" in chat(sarah)(f"reply to {lead}: hello")
    assert outbox.delivered == []


def test_take_over_pauses_and_claims_an_unassigned_lead(world, chat, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith")
    reply = chat(sarah)(f"take over {lead}")
    assert reply.startswith(f"You have #{lead} Dana Smith: the bot stays quiet until 16:00 UTC")
    assert reply.endswith("It is now assigned to you.")
    after = world.get(lead)
    assert after.assigned_agent_id == sarah and after.ai_paused_until == clock() + timedelta(
        minutes=60
    )


def test_form_fill_creates_a_lead_after_confirmation(world, chat, sf) -> None:
    sarah = world.agent("Sarah")
    ask = chat(sarah)
    answer = ask.say("Jane Doe\nCEO, Acme Inc\njane@acme.com\n+1 415 555 2672")
    assert answer.pending is not None and answer.pending["kind"] == "contact_card"
    assert "Name: Jane Doe" in answer.reply and "Phone: +14155552672" in answer.reply
    with sf() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 0
    reply = ask("yes")
    assert reply.startswith("Created lead #")
    with sf() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.name, lead.company, lead.email, lead.phone, lead.assigned_agent_id) == (
            "Jane Doe",
            "Acme Inc",
            "jane@acme.com",
            "+14155552672",
            sarah,
        )
        assert lead.custom_fields["title"] == "CEO"
        assert (
            session.scalars(select(AuditEvent).where(AuditEvent.field == "company")).one().agent_id
            == sarah
        )


def test_form_fill_shows_duplicates_and_merges_into_the_chosen_lead(world, chat, sf) -> None:
    sarah = world.agent("Sarah")
    existing = world.lead("Jane Doe", says=("Hi from the web chat",), agent=sarah)
    ask = chat(sarah)
    answer = ask.say(
        "/card Jane Doe | Head of Sales | Acme Ltd | jane@acme.co.uk | +44 20 7946 0958"
    )
    values = [o["value"] for o in answer.pending["options"]]
    assert values == [f"merge:{existing}", "create", "no"]
    assert "Possible duplicates:" in answer.reply and f"#{existing} Jane Doe" in answer.reply
    assert ask(f"merge into {existing}") == f"Merged the card into lead #{existing} Jane Doe."
    lead = world.get(existing)
    assert (lead.email, lead.phone, lead.company) == (
        "jane@acme.co.uk",
        "+442079460958",
        "Acme Ltd",
    )
    with sf() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Lead).where(Lead.merged_into_id.is_(None))
            )
            == 1
        )


def test_form_fill_with_a_known_phone_offers_only_the_merge(world, chat) -> None:
    sarah = world.agent("Sarah")
    existing = world.lead("J. Doe", channel="whatsapp", phone="+14155552672", agent=sarah)
    ask = chat(sarah)
    answer = ask.say("Jane Doe\nCFO, Acme Inc\n(415) 555-2672")
    assert [o["value"] for o in answer.pending["options"]] == [f"merge:{existing}", "no"]
    assert ask("yes") == f"Merged the card into lead #{existing} J. Doe."
    assert world.get(existing).company == "Acme Inc"


def test_form_fill_records_the_cards_details_as_claims_and_merges_only_where_the_agent_says(
    world, chat, sf
) -> None:
    sarah = world.agent("Sarah")
    by_phone = world.lead("J. D.", channel="whatsapp", phone="+14155552672", agent=sarah)
    by_name = world.lead("Jane Doe", says=("Hi from the web chat",), agent=sarah)
    ask = chat(sarah)
    answer = ask.say("Jane Doe\nCFO, Acme Inc\n(415) 555-2672")
    assert [o["value"] for o in answer.pending["options"]] == [
        f"merge:{by_phone}",
        f"merge:{by_name}",
        "no",
    ]
    reply = ask(f"merge into {by_name}")
    # The card's phone is a claim: the WhatsApp lead is only suggested, not swallowed.
    assert reply.startswith(f"Merged the card into lead #{by_name} Jane Doe.")
    assert f"may be the same person as #{by_phone} (same phone)" in reply
    assert world.get(by_phone).id == by_phone  # still a lead of its own
    assert world.get(by_phone).company is None and world.get(by_name).company == "Acme Inc"
    with sf() as session:
        living = select(func.count()).select_from(Lead).where(Lead.merged_into_id.is_(None))
        assert session.scalar(living) == 2
    # The agent decides with the suggestion, yes/no.
    assert ask.say(f"merge {by_phone} into {by_name}").pending is not None
    assert ask("yes").startswith("Merged")
    assert world.get(by_phone).id == by_name


def test_a_card_merged_into_a_chosen_lead_is_the_agents_audited_act(world, chat, sf) -> None:
    from store.models import CLAIMED, ContactDetail

    sarah = world.agent("Sarah")
    existing = world.lead("Jane Doe", says=("Hi from the web chat",), agent=sarah)
    ask = chat(sarah)
    ask.say("/card Jane Doe | Head of Sales | Acme Ltd | jane@acme.co.uk | +44 20 7946 0958")
    assert ask(f"merge into {existing}") == f"Merged the card into lead #{existing} Jane Doe."
    with sf() as session:
        merges = session.scalars(
            select(AuditEvent).where(AuditEvent.lead_id == existing, AuditEvent.action == "merge")
        ).all()
        assert merges and all(m.agent_id == sarah for m in merges)
        details = session.scalars(
            select(ContactDetail).where(ContactDetail.lead_id == existing)
        ).all()
        assert sorted(d.kind for d in details) == ["email", "phone"]
        assert {d.trust for d in details} == {CLAIMED}


def test_a_new_message_while_a_question_is_pending_cancels_it(world, chat) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    ask = chat(sarah)
    ask(f"archive {lead}")
    reply = ask(f"is {lead} hot?")
    assert reply.startswith(f"(Left the earlier question unanswered: Okay, #{lead} stays.)")
    assert f"No, #{lead} Dana Smith is not hot." in reply
    assert not world.get(lead).archived
    assert ask("yes") == "There is nothing waiting for a yes or no right now."


def test_a_stale_button_changes_nothing(world, copilot) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    first = copilot.ask(sarah, "t", f"archive {lead}")
    copilot.ask(sarah, "t", "no")
    again = copilot.answer(sarah, "t", "yes", str(first.pending["id"])[:8])
    assert again.reply == "That question was already answered or has expired."
    assert not world.get(lead).archived


def test_unknown_or_disabled_agents_are_refused_and_nothing_runs(world, copilot, sf) -> None:
    gone = world.agent("Gone", active=False)
    lead = world.lead("Dana Smith")
    for agent_id in (gone, 12345):
        answer = copilot.ask(agent_id, f"t{agent_id}", f"assign {lead} to me")
        assert answer.reply.startswith("Sorry, I only work for registered, active Leaddesk agents")
        assert answer.pending is None
    assert world.get(lead).assigned_agent_id is None
    assert world.audits(lead, "assigned_agent_id") == []


def test_an_agent_disabled_while_a_question_waits_cannot_confirm(world, copilot, sf) -> None:
    from store.models import Agent

    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    copilot.ask(sarah, "t", f"archive {lead}")
    with sf.begin() as session:
        session.get(Agent, sarah).active = False
    reply = copilot.ask(sarah, "t", "yes").reply
    assert "only work for registered, active" in reply
    assert not world.get(lead).archived


def test_notifications_are_listed_and_marked_read(world, chat, sf) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    from store.leads import get_lead
    from store.models import Agent
    from store.work import notify

    with sf.begin() as session:
        notify(
            session.get(Agent, sarah),
            get_lead(lead, session=session),
            "Dana Smith is now Interested",
            session=session,
        )
    ask = chat(sarah)
    assert ask("/inbox") == f"1 unread notification(s):\n#{lead}: Dana Smith is now Interested"
    assert ask("/inbox") == "No unread notifications."


def test_memory_survives_a_restart_on_the_sqlite_file(world, sf, prompts, clock, tmp_path) -> None:
    from copilot import open_checkpointer
    from tests.copilot.conftest import make_copilot

    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah, score=90)
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    with open_checkpointer(url) as memory:
        make_copilot(sf, prompts, clock, checkpointer=memory).ask(sarah, "tg", f"summarise {lead}")
    assert (tmp_path / "leaddesk-copilot.sqlite").exists()
    with open_checkpointer(url) as memory:
        reply = (
            make_copilot(sf, prompts, clock, checkpointer=memory)
            .ask(sarah, "tg", "is it hot?")
            .reply
        )
    assert reply.startswith(f"Yes, #{lead} Dana Smith is hot.")


def test_merge_31_into_7_asks_yes_or_no_and_follows_the_merge_rules(world, chat, sf) -> None:
    from store.leads import resolve
    from store.models import CLAIMED, Lead

    sarah = world.agent("Sarah")
    mike = world.agent("Mike")
    boss = world.agent("Boss", role="admin")
    kept = world.lead("Dana Smith", channel="whatsapp", phone="+14155550123", agent=sarah)
    with sf.begin() as session:
        claimed = resolve(
            "web", "web-visitor", phone="+1 415 555 0123", name="D.", session=session, trust=CLAIMED
        ).id
    ask = chat(sarah)
    first = ask.say(f"merge {claimed} into {kept}")
    assert first.pending["kind"] == "merge_leads"
    assert f"#{claimed}" in first.reply and f"#{kept}" in first.reply
    assert ask("no") == f"Okay, #{claimed} and #{kept} stay apart."
    with sf() as session:
        assert session.get(Lead, claimed).merged_into_id is None
    ask.say(f"merge lead {claimed} into lead {kept}")
    assert ask("yes") == f"Merged #{claimed} into #{kept}."
    with sf() as session:
        assert session.get(Lead, claimed).merged_into_id == kept
        assert session.get(Lead, kept).assigned_agent_id == sarah

    # Without a suggestion only an admin merges; two agents' leads likewise.
    other = world.lead("Someone Else", agent=mike)
    refused = chat(sarah)(f"merge {other} into {kept}")
    assert "assigned to another agent" in refused or "can't" in refused
    by_admin = chat(boss)
    assert by_admin.say(f"/merge {other} into {kept}").pending["kind"] == "merge_leads"
    assert by_admin("yes") == f"Merged #{other} into #{kept}."
