"""A task falling due reaches its agent on Telegram through the notification delivery, once,
however many reminder and delivery rounds run; and the console's live stream hears of it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from copilot.telegram import build_application, deliver_notifications
from store.domain import tasks
from store.events import LocalBus, watch
from store.models import Agent, Lead
from tests.copilot.test_telegram import SARAH_TG, settings_for, telegram  # noqa: F401 - fixture


def test_a_due_task_reminds_on_telegram_once(world, telegram, copilot, sf, clock) -> None:  # noqa: F811
    sarah = world.agent("Sarah", telegram=SARAH_TG)
    lead_id = world.lead("Dana Smith", agent=sarah)
    bus = LocalBus(keep=50)
    watch(sf, bus)
    with sf.begin() as session:
        agent, lead = session.get(Agent, sarah), session.get(Lead, lead_id)
        assert agent is not None and lead is not None
        due = clock() + timedelta(minutes=30)
        tasks.create_task(lead, by=agent, session=session, now=clock(), due_at=due)
    application = build_application(
        settings=settings_for(telegram),
        copilot=copilot,
        session_factory=sf,
        clock=clock,
        notify_every=None,
    )

    def remind_and_deliver() -> int:
        with sf.begin() as session:
            tasks.send_reminders(session=session, now=clock())

        async def deliver() -> int:
            async with application:
                return await deliver_notifications(application.bot, session_factory=sf, clock=clock)

        return asyncio.run(deliver())

    start = bus.last_id()
    assert remind_and_deliver() == 0  # not due yet
    clock.advance(minutes=30)
    assert remind_and_deliver() == 1
    assert remind_and_deliver() == 0
    sent = [m["text"] for m in telegram.sent(SARAH_TG)]
    assert len(sent) == 1 and "Due now: Call Dana Smith" in sent[0]
    [event] = [e for e in bus.read(start, timeout=0) if e.kind == "notification"]
    assert event.agent_id == sarah and event.lead_id == lead_id
