"""Times in the console: shown in the business's time zone (business.yaml `timezone:`), with the
UTC time in a tooltip and how long ago beside it; the site's icon."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import T0


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def sarah(world):  # type: ignore[no-untyped-def]
    return world.agent("Sarah", email="sarah@example.com", password="correct horse")


def test_message_times_are_in_the_business_zone_with_utc_in_the_tooltip(  # type: ignore[no-untyped-def]
    console, sarah, world, repo_prompts
):
    assert repo_prompts.business.timezone == "America/Chicago"
    lead_id = world.lead("Dana", channel="whatsapp", phone="+14155550123")
    world.customer_message(lead_id, "How much for 10 panels?", channel="whatsapp", at=T0)
    world.clock.advance(minutes=5)
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get(f"/console/leads/{lead_id}").text
    # 12:00 UTC on 3 June 2024 is 07:00 in Chicago (daylight saving time).
    stamp = re.search(
        r'<time datetime="2024-06-03T12:00:00\+00:00" title="([^"]+)">([^<]+)</time>', page
    )
    assert stamp, "the message has no time element"
    assert stamp.group(1) == "2024-06-03 12:00 UTC"
    assert stamp.group(2) == "2024-06-03 07:00 · 5 min ago"
    assert "Times are shown in America/Chicago" in page


def test_the_pause_notice_after_a_reply_is_in_the_business_zone(  # type: ignore[no-untyped-def]
    console, sarah, world
):
    lead_id = world.lead("Dana", channel="web")
    world.customer_message(lead_id, "Hello?", channel="web")
    console.login(email="sarah@example.com", password="correct horse")
    response = console.post(
        f"/console/leads/{lead_id}/reply", {"text": "Hi Dana, Sarah here."}, follow_redirects=True
    )
    notice = re.search(r"The bot is paused until (\d\d:\d\d) \(America/Chicago\)", response.text)
    assert notice, response.text[:2000]
    assert notice.group(1) != "13:00"  # not UTC: an hour's pause from 12:00 UTC is 08:00 there
    assert notice.group(1) == "08:00"


def test_every_page_has_an_icon(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    for path in ("/favicon.ico", "/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert response.data.startswith(b"<svg")
    assert 'rel="icon"' in client.get("/console/login").text


def test_notifications_held_for_opening_hours_are_listed_as_scheduled(  # type: ignore[no-untyped-def]
    console, sarah, world, session_factory
):
    from datetime import timedelta

    from store.models import Notification

    lead_id = world.lead("Dana", channel="web")
    with session_factory.begin() as session:
        session.add(
            Notification(
                agent_id=sarah[0],
                lead_id=lead_id,
                kind="hot_lead",
                text="Dana is ready to buy",
                deliver_after=T0 + timedelta(hours=2),  # 14:00 UTC: 09:00 in Chicago
            )
        )
    console.login(email="sarah@example.com", password="correct horse")
    page = console.get("/console/notifications").text
    assert "You are all caught up for now." in page
    scheduled = page.split('id="scheduled"')[1]
    assert "Dana is ready to buy" in scheduled
    assert 'scheduled for <time datetime="2024-06-03T14:00:00+00:00"' in scheduled
    assert ">09:00</time>" in scheduled
