"""The console inbox through a test client: conversations newest first with unread counts and tabs,
opening one marks it read, replying from it comes back to it, and the live events an agent may
see (Server-Sent Events and the polling fallback)."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest

from tests.console.conftest import Console


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def team(world):  # type: ignore[no-untyped-def]
    sarah, _ = world.agent("Sarah", email="sarah@example.com", password="correct horse")
    mike, _ = world.agent("Mike", email="mike@example.com", password="correct horse")
    ada, _ = world.agent("Ada", role="admin", email="ada@example.com", password="correct horse")
    return {"sarah": sarah, "mike": mike, "ada": ada}


@pytest.fixture
def desk(world, team):  # type: ignore[no-untyped-def]
    dana = world.lead("Dana", channel="whatsapp", phone="+14155550123", agent_id=team["sarah"])
    omar = world.lead("Omar", channel="web")
    priya = world.lead("Priya", channel="messenger", agent_id=team["mike"])
    world.customer_message(dana, "How much for 10 panels?", channel="whatsapp")
    world.clock.advance(minutes=1)
    world.bot_message(dana, "About $9,000 installed.", channel="whatsapp")
    world.clock.advance(minutes=1)
    world.customer_message(priya, "Call me back please", channel="messenger")
    world.clock.advance(minutes=1)
    world.customer_message(omar, "Do you install batteries?", channel="web")
    world.customer_message(omar, "And what about financing?", channel="web")
    return {"dana": dana, "omar": omar, "priya": priya}


def _signed_in(app: Any, email: str) -> Console:
    console = Console(app.test_client())
    response = console.login(email=email, password="correct horse")
    assert response.status_code == 302
    return console


def _rows(html: str) -> list[str]:
    """The names on the list's rows, top to bottom."""
    return re.findall(r'<li class="conversation[^"]*".*?<strong>([^<]+)</strong>', html, re.S)


def test_the_inbox_lists_visible_conversations_newest_first_by_tab(app, desk):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    page = sarah.get("/console/inbox?tab=unassigned").text
    assert _rows(page) == ["Omar"]
    assert 'class="count unread-count" title="unread messages">2<' in page
    mine = sarah.get("/console/inbox").text  # "mine" by default
    assert _rows(mine) == ["Dana"]
    assert "waiting" not in mine.split('id="inbox-rows"')[1].split("</ol>")[0]  # the bot answered
    waiting = sarah.get("/console/inbox?tab=waiting").text
    assert _rows(waiting) == ["Omar"]  # Priya is Mike's: never shown to Sarah
    # "All" is the admins': an agent asking for it gets their own.
    assert _rows(sarah.get("/console/inbox?tab=all").text) == ["Dana"]
    ada = _signed_in(app, "ada@example.com")
    assert _rows(ada.get("/console/inbox?tab=all").text) == ["Omar", "Priya", "Dana"]


def test_opening_a_conversation_marks_it_read_for_that_agent_only(  # type: ignore[no-untyped-def]
    app, desk, world
):
    sarah = _signed_in(app, "sarah@example.com")
    mike = _signed_in(app, "mike@example.com")
    room = world.conversation_of(desk["omar"], "web")
    listing = sarah.get("/console/inbox/list?tab=unassigned").get_json()
    assert listing["unread_conversations"] == 2  # Omar's and her own Dana's first question
    pane = sarah.get(f"/console/inbox/conversations/{room}").text
    assert "Do you install batteries?" in pane and "And what about financing?" in pane
    listing = sarah.get("/console/inbox/list?tab=unassigned").get_json()
    assert "unread-count" not in listing["html"]
    assert listing["unread_conversations"] == 1
    # Mike has not read it.
    assert "unread-count" in mike.get("/console/inbox/list?tab=unassigned").get_json()["html"]
    # A new message makes it unread again, counting only what came after.
    world.customer_message(desk["omar"], "Hello?", channel="web")
    html = sarah.get("/console/inbox/list?tab=unassigned").get_json()["html"]
    assert 'title="unread messages">1<' in html


def test_another_agents_conversation_does_not_open(app, desk, world):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    room = world.conversation_of(desk["priya"], "messenger")
    assert sarah.get(f"/console/inbox/conversations/{room}").status_code == 404
    assert "Call me back" not in sarah.get(f"/console/inbox?c={room}").text


def test_replying_from_the_inbox_comes_back_to_the_conversation(app, desk, world):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    room = world.conversation_of(desk["dana"], "whatsapp")
    response = sarah.post(
        f"/console/leads/{desk['dana']}/reply",
        {"text": "Hi Dana, Sarah here.", "conversation_id": str(room), "back": "inbox"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/console/inbox?c={room}")
    page = sarah.get(response.headers["Location"]).text
    assert "Reply sent." in page and "Sarah (agent)" in page


def _stream(client: Any, headers: dict[str, str] | None = None) -> Any:
    response = client.get("/console/events", headers=headers or {}, buffered=False)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/event-stream"
    return response


def _next_events(response: Any, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Read the stream until `count` events arrived: (id, kind, data) each."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if "event" in fields:
                found.append((fields["id"], fields["event"], json.loads(fields["data"])))
        if len(found) >= count:
            return found
    return found


def test_the_event_stream_carries_what_an_agent_may_see(app, desk, world, team):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    stream = _stream(sarah.client)

    def later() -> None:
        world.customer_message(desk["priya"], "Mike?", channel="messenger")  # not Sarah's
        world.customer_message(desk["omar"], "Anyone there?", channel="web")

    threading.Timer(0.2, later).start()
    events = _next_events(stream, 1)
    stream.close()
    assert [(kind, data["lead_id"]) for _id, kind, data in events] == [("message", desk["omar"])]
    assert events[0][2]["data"]["author"] == "customer"

    # Reconnecting with Last-Event-ID resumes after it: nothing is missed in between.
    world.customer_message(desk["dana"], "Thursday works", channel="whatsapp")
    resumed = _stream(sarah.client, {"Last-Event-ID": events[0][0]})
    again = _next_events(resumed, 1)
    resumed.close()
    assert again[0][1] == "message" and again[0][2]["lead_id"] == desk["dana"]


def test_polling_gives_the_same_events_when_a_stream_is_not_possible(  # type: ignore[no-untyped-def]
    app, desk, world, team
):
    sarah = _signed_in(app, "sarah@example.com")
    start = sarah.get("/console/events/poll").get_json()["last_id"]
    world.assign(desk["omar"], team["sarah"], by=team["ada"])
    world.clock.advance(minutes=1)
    polled = sarah.get(f"/console/events/poll?after={start}&wait=1").get_json()
    kinds = {(e["kind"], e["lead_id"]) for e in polled["events"]}
    assert ("lead", desk["omar"]) in kinds
    changed = next(e for e in polled["events"] if e["kind"] == "lead")
    assert "assigned_agent_id" in changed["data"]["changed"]
    assert polled["last_id"] != start


def test_events_need_a_sign_in(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/console/events").status_code == 401
    assert client.get("/console/events/poll").status_code == 401


def test_the_nav_shows_unread_conversations(app, desk):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    page = sarah.get("/console/leads").text
    assert 'id="inbox-unread">2<' in page


def test_a_stale_last_event_id_asks_the_page_to_reload(app, desk):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    stream = _stream(sarah.client, {"Last-Event-ID": "00000000-5"})
    events = _next_events(stream, 1)
    stream.close()
    assert events[0][1] == "reset"


def test_a_visitor_typing_on_the_widget_reaches_the_agents_with_a_moment_between(  # type: ignore[no-untyped-def]
    app, desk, world
):
    sarah = _signed_in(app, "sarah@example.com")
    visitor = app.test_client()
    token = visitor.post("/api/chat/sessions").get_json()["session"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        visitor.post("/api/chat/messages", json={"text": "Hello"}, headers=auth).status_code == 201
    )
    start = sarah.get("/console/events/poll").get_json()["last_id"]
    assert visitor.post("/api/chat/typing", headers=auth).status_code == 204
    assert visitor.post("/api/chat/typing", headers=auth).status_code == 204  # within 3 s: quiet
    polled = sarah.get(f"/console/events/poll?after={start}&wait=1").get_json()
    typing = [e for e in polled["events"] if e["kind"] == "typing"]
    assert len(typing) == 1 and typing[0]["lead_id"] is not None
    # Typing needs a chat session.
    assert app.test_client().post("/api/chat/typing").status_code == 401


def test_the_reply_box_says_whether_the_24_hour_window_is_open(app, desk, world):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    room = world.conversation_of(desk["dana"], "whatsapp")
    world.clock.advance(hours=2)
    pane = sarah.get(f"/console/inbox/conversations/{room}").text
    assert "24-hour window open: 21 h left." in pane
    world.clock.advance(hours=23)
    sarah = _signed_in(app, "sarah@example.com")  # a day later: a new sign-in
    pane = sarah.get(f"/console/inbox/conversations/{room}").text
    assert "24-hour window closed" in pane and "withheld" in pane
    # Web chat has no such window.
    web = world.conversation_of(desk["omar"], "web")
    assert "24-hour window" not in sarah.get(f"/console/inbox/conversations/{web}").text


def test_the_lead_pages_reply_box_says_the_same_per_conversation(app, desk, world):  # type: ignore[no-untyped-def]
    sarah = _signed_in(app, "sarah@example.com")
    world.clock.advance(hours=2)
    page = sarah.get(f"/console/leads/{desk['dana']}").text
    room = world.conversation_of(desk["dana"], "whatsapp")
    shown = page.split(f'class="reply-window" data-conversation="{room}">')[1].split("</span>")[0]
    assert shown.startswith("Replying on whatsapp.") and "24-hour window open: 21 h left." in page
    world.clock.advance(hours=23)
    sarah = _signed_in(app, "sarah@example.com")
    page = sarah.get(f"/console/leads/{desk['dana']}").text
    assert "24-hour window closed" in page and "a reply now is withheld" in page
    assert "24-hour window" not in sarah.get(f"/console/leads/{desk['omar']}").text
