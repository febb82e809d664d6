"""What the agent is told after "Send reply" on the real channel outbox (against a fake Graph API):
sent, or withheld outside WhatsApp's 24-hour window and why, or failed on a receive-only channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.conftest import Console
from tests.fakes.fake_graph import FakeGraph
from tests.webhooks.support import make_settings
from webhooks.outbound import ChannelOutbox


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def app_extras(session_factory, clock, graph) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        meta_graph_url=graph.url,
        whatsapp_access_token="wa-token",
        whatsapp_phone_number_id="1234567890",
    )
    outbox = ChannelOutbox(
        session_factory=session_factory, settings=settings, clock=clock, retry_delays=()
    )
    yield {"outbox": outbox}
    outbox.close()


def _reply(app: Any, lead_id: int, room: int, text: str) -> str:
    console = Console(app.test_client())
    assert console.login(email="sarah@example.com", password="correct horse").status_code == 302
    sent = console.post(
        f"/console/leads/{lead_id}/reply",
        {"text": text, "conversation_id": str(room), "back": "inbox"},
    )
    assert sent.status_code == 302
    return str(console.get(sent.headers["Location"]).text)


def test_a_reply_outside_the_24_hour_window_is_withheld_and_the_agent_told_why(  # type: ignore[no-untyped-def]
    app, world, graph
):
    sarah, _ = world.agent("Sarah", email="sarah@example.com", password="correct horse")
    dana = world.lead("Dana", channel="whatsapp", phone="+14155550123", agent_id=sarah)
    world.customer_message(dana, "How much for 10 panels?", channel="whatsapp")
    room = world.conversation_of(dana, "whatsapp")

    world.clock.advance(hours=2)
    page = _reply(app, dana, room, "About $9,000 installed.")
    assert "Reply sent." in page and len(graph.requests) == 1

    world.clock.advance(hours=23)  # the customer's last message is 25 hours old
    page = _reply(app, dana, room, "Still interested?")
    assert "Reply sent." not in page
    assert "Reply withheld, not sent to the customer: outside the 24-hour customer service" in page
    assert len(graph.requests) == 1  # nothing went to Meta
    # The timeline keeps the message with the reason beside it.
    assert "withheld: outside the 24-hour customer service window" in page


def test_a_reply_on_a_receive_only_channel_says_what_is_missing(app, world, graph):  # type: ignore[no-untyped-def]
    sarah, _ = world.agent("Sarah", email="sarah@example.com", password="correct horse")
    priya = world.lead("Priya", channel="messenger", agent_id=sarah)
    world.customer_message(priya, "Call me back please", channel="messenger")
    page = _reply(app, priya, world.conversation_of(priya, "messenger"), "Calling you at 5")
    told = "Reply failed, not sent to the customer: receive-only: MESSENGER_PAGE_ACCESS_TOKEN"
    assert told in page
    assert graph.requests == []
