"""Business hours: outside them the bot still answers, the notifications of status actions wait
for the next opening, and the reply says when the team will be in touch (a controllable clock)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot import load_prompts
from store.delivery import due_notifications
from store.work import unread_notifications

# Chicago (the sample business): Mon-Thu 08:00-18:00, Fri 08:00-17:00, Sat 09:00-13:00.
TUESDAY_NIGHT = datetime(2025, 3, 5, 3, 30, tzinfo=UTC)  # Tue 21:30 CST
WEDNESDAY_OPENING = datetime(2025, 3, 5, 14, 0, tzinfo=UTC)  # Wed 08:00 CST
SATURDAY_EVENING = datetime(2025, 3, 8, 23, 0, tzinfo=UTC)  # Sat 17:00 CST
MONDAY_OPENING = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)  # Mon 08:00 CDT (after the DST switch)
TUESDAY_MORNING = datetime(2025, 3, 4, 16, 0, tzinfo=UTC)  # Tue 10:00 CST: open


def test_at_night_the_bot_answers_and_the_notification_waits_for_the_opening(bot_world):
    admin = bot_world.agent("Ada", role="admin", telegram=4242)
    chat = bot_world.chat()
    bot_world.clock.now = TUESDAY_NIGHT
    reply = chat.reply_text("How much is the Home package?")
    assert "$12,400" in reply  # still answered
    assert "get back to you tomorrow at 08:00" in reply
    assert chat.lead().status == "Scouting"
    (note,) = chat.notifications()
    assert note.agent_id == admin.id and note.deliver_after == WEDNESDAY_OPENING
    with bot_world.session_factory() as session:
        assert unread_notifications(admin.id, session=session, now=TUESDAY_NIGHT) == []
        assert due_notifications(session=session, now=TUESDAY_NIGHT) == []
        assert [
            n.id for n in unread_notifications(admin.id, session=session, now=WEDNESDAY_OPENING)
        ] == [note.id]
        assert [n.id for n in due_notifications(session=session, now=WEDNESDAY_OPENING)] == [
            note.id
        ]

    # The next message changes no status: nothing more is queued and the note is not repeated.
    bot_world.clock.advance(minutes=2)
    again = chat.reply_text("Does it include the installation?")
    assert "offline right now" not in again
    assert len(chat.notifications()) == 1


def test_a_weekend_hand_over_is_queued_until_monday(bot_world):
    agent = bot_world.agent("Sam")
    chat = bot_world.chat()
    bot_world.clock.now = SATURDAY_EVENING
    reply = chat.reply_text("I want to buy the Plus package, please call me")
    assert "advisor will contact you" in reply and "on Monday at 08:00" in reply
    lead = chat.lead()
    assert lead.status == "Follow Up" and lead.assigned_agent_id == agent.id
    (note,) = chat.notifications()
    assert note.agent_id == agent.id and note.deliver_after == MONDAY_OPENING


def test_within_opening_hours_nothing_waits(bot_world):
    admin = bot_world.agent("Ada", role="admin")
    chat = bot_world.chat()
    bot_world.clock.now = TUESDAY_MORNING
    reply = chat.reply_text("How much is the Home package?")
    assert "offline" not in reply
    (note,) = chat.notifications()
    assert note.deliver_after is None
    with bot_world.session_factory() as session:
        assert len(unread_notifications(admin.id, session=session, now=TUESDAY_MORNING)) == 1


def test_a_customer_who_says_no_at_night_is_not_promised_a_call(bot_world):
    chat = bot_world.chat()
    bot_world.clock.now = TUESDAY_NIGHT
    chat.say("How much is the Home package?")
    bot_world.clock.advance(minutes=1)
    reply = chat.reply_text("Too expensive, not interested.")
    assert chat.lead().status == "Not Interested"
    assert "offline" not in reply and "get back to you" not in reply


def test_the_admins_hours_time_zone_and_wording_apply(bot_world, prompts_dir):
    business = prompts_dir / "business.yaml"
    text = business.read_text(encoding="utf-8")
    start, end = text.index("timezone:"), text.index("# How long (minutes)")
    text = (
        text[:start]
        + "timezone: Europe/Madrid\nhours:\n"
        + "".join(f'  {day}: "09:00-14:00"\n' for day in ("mon", "tue", "wed", "thu", "fri"))
        + text[end:]
    )
    start = text.index("out_of_hours_message:")
    text = text[:start] + 'out_of_hours_message: "Our team will call you {next_opening}."\n'
    business.write_text(text, encoding="utf-8")
    config = load_prompts(prompts_dir)
    bot_world.agent("Ana", role="admin")
    chat = bot_world.chat(config)
    bot_world.clock.now = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # Tue 16:00 in Madrid: closed
    reply = chat.reply_text("Please call me, I want to buy the Home package.")
    assert "Our team will call you tomorrow at 09:00." in reply
    (note,) = chat.notifications()
    assert note.deliver_after == datetime(2025, 3, 5, 8, 0, tzinfo=UTC)  # Wed 09:00 CET
