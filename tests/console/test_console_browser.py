"""The console in headless Chromium: sign in, filter to hot leads, open one, add a note, reply,
export.

Screenshots of each step land in test-artifacts/screenshots/ (look at them when changing a page).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import T0
from tests.browser_support import live_server, screenshot, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def seeded(world):  # type: ignore[no-untyped-def]
    """A small desk: Sarah, Mike, and leads across channels, statuses and score bands."""
    sarah_id, _ = world.agent("Sarah Lee", email="sarah@example.com", password="correct horse")
    mike_id, _ = world.agent("Mike Chen")
    hot = world.lead(
        "Dana Whitfield",
        channel="whatsapp",
        phone="+14155550123",
        status="Interested",
        company="Sunny Homes",
        extra_channels=("web",),
        last_contacted_at=T0 - timedelta(minutes=20),
    )
    world.clock.now = T0 - timedelta(hours=3)
    m1 = world.customer_message(
        hot, "Hi! How much would 12 panels cost for a 2-storey house?", channel="whatsapp"
    )
    world.clock.now = T0 - timedelta(hours=2, minutes=59)
    world.bot_message(
        hot,
        "Hi Dana! A 12-panel system is usually $9,500–$11,000 installed. "
        "Would you like a free site survey?",
        channel="whatsapp",
    )
    world.clock.now = T0 - timedelta(minutes=20)
    m2 = world.customer_message(
        hot, "Yes please, can someone come this week? We want to sign by Friday.", channel="web"
    )
    world.clock.now = T0
    world.score(
        hot,
        45,
        [
            {
                "factor": "pricing question",
                "points": 25,
                "evidence": "How much would 12 panels cost",
            },
            {"factor": "engagement", "points": 20, "evidence": "first message"},
        ],
        message_id=m1,
    )
    world.score(
        hot,
        86,
        [
            {"factor": "urgency", "points": 25, "evidence": "this week"},
            {"factor": "next step", "points": 16, "evidence": "We want to sign by Friday"},
        ],
        message_id=m2,
    )
    world.lead(
        "Omar Haddad",
        channel="messenger",
        score=78,
        status="Scouting",
        agent_id=sarah_id,
        last_contacted_at=T0 - timedelta(hours=5),
    )
    world.lead(
        "Lucia Fernandez",
        channel="instagram",
        score=52,
        status="Interested",
        last_contacted_at=T0 - timedelta(days=1),
    )
    world.lead(
        "Ben Carter",
        channel="web",
        score=12,
        status="New",
        created_at=T0 - timedelta(days=3),
        last_contacted_at=T0 - timedelta(days=3),
    )
    world.lead(
        "Priya Nair",
        channel="whatsapp",
        phone="+447911123456",
        score=91,
        status="Follow Up",
        agent_id=mike_id,
        last_contacted_at=T0 - timedelta(hours=1),
    )
    world.lead(
        "Tom Becker",
        channel="web",
        score=30,
        status="Not Interested",
        created_at=T0 - timedelta(days=9),
        last_contacted_at=T0 - timedelta(days=8),
    )
    return {"hot": hot}


def test_agent_works_a_hot_lead_in_the_browser(browser, app, seeded, world):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with live_server(app) as base:
        browser.get(f"{base}/console/leads")
        assert "/console/login" in browser.current_url
        screenshot(browser, "01-login")
        browser.find_element(By.NAME, "email").send_keys("sarah@example.com")
        browser.find_element(By.NAME, "password").send_keys("correct horse")
        browser.find_element(By.CSS_SELECTOR, "#password-login button[type=submit]").click()
        wait_for(lambda: browser.current_url.endswith("/console/leads"))
        rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "table.leads tbody tr"))
        assert len(rows) == 5  # Priya is Mike's: not shown to Sarah
        screenshot(browser, "02-leads")

        browser.find_element(By.ID, "chip-hot").click()
        wait_for(lambda: "hot=1" in browser.current_url)
        names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.lead-link")]
        assert sorted(names) == ["Dana Whitfield", "Omar Haddad"]
        screenshot(browser, "03-hot-leads")

        browser.find_element(By.LINK_TEXT, "Dana Whitfield").click()
        wait_for(lambda: f"/console/leads/{seeded['hot']}" in browser.current_url)
        timeline = browser.find_element(By.ID, "timeline").text
        assert "How much would 12 panels cost" in timeline and "sign by Friday" in timeline
        assert browser.find_elements(By.CSS_SELECTOR, "svg.score-chart circle")
        screenshot(browser, "04-lead")

        note = browser.find_element(By.CSS_SELECTOR, "#note-form textarea")
        note.send_keys("Wants a survey this week; decision by Friday.")
        Select(browser.find_element(By.CSS_SELECTOR, "#note-form select")).select_by_visible_text(
            "Follow-up"
        )
        browser.find_element(By.CSS_SELECTOR, "#note-form button[type=submit]").click()
        wait_for(lambda: "Note added" in browser.page_source)
        assert "decision by Friday" in browser.find_element(By.ID, "notes").text
        screenshot(browser, "05-note-added")

        browser.find_element(By.CSS_SELECTOR, "#reply-form textarea").send_keys(
            "Hi Dana, Sarah here. I can come Thursday at 10:00, does that work?"
        )
        browser.find_element(By.CSS_SELECTOR, "#reply-form button[type=submit]").click()
        wait_for(lambda: "Reply sent" in browser.page_source)
        assert "Sarah Lee (agent)" in browser.find_element(By.ID, "timeline").text
        assert browser.find_elements(By.ID, "resume-bot")  # the bot is paused for the takeover
        screenshot(browser, "06-replied")

        browser.get(f"{base}/console/leads?hot=1")
        browser.find_element(By.ID, "export-all").click()
        exported = wait_for(
            lambda: [
                p
                for p in browser.download_dir.glob("*.csv")
                if p.stat().st_size > 0 and not p.name.endswith(".crdownload")
            ]
        )
        lines = exported[0].read_text(encoding="utf-8").strip().splitlines()
        assert lines[0].startswith("id,name,email,phone,company,status,score")
        assert sorted(line.split(",")[1] for line in lines[1:]) == ["Dana Whitfield", "Omar Haddad"]

        browser.get(f"{base}/console/dashboard")
        assert "Hot leads needing attention" in browser.page_source
        screenshot(browser, "07-dashboard")

    assert world.read(seeded["hot"]).ai_paused_until is not None


def test_bulk_selection_in_the_browser(browser, app, seeded, world):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with live_server(app) as base:
        browser.get(f"{base}/console/login")
        browser.find_element(By.NAME, "email").send_keys("sarah@example.com")
        browser.find_element(By.NAME, "password").send_keys("correct horse")
        browser.find_element(By.CSS_SELECTOR, "#password-login button[type=submit]").click()
        wait_for(lambda: browser.current_url.endswith("/console/leads"))
        browser.get(f"{base}/console/leads?unassigned=1")
        browser.find_element(By.ID, "select-all").click()
        assert browser.find_element(By.ID, "selected-count").text == "4"
        Select(browser.find_element(By.NAME, "agent_id")).select_by_visible_text("Sarah Lee")
        browser.find_element(By.CSS_SELECTOR, "button[value=assign]").click()
        wait_for(lambda: "4 lead(s) assigned" in browser.page_source)
        screenshot(browser, "08-bulk-assigned")
        assert browser.find_elements(By.CSS_SELECTOR, "table.leads tbody td.empty")
    assert world.read(seeded["hot"]).assigned_agent_id is not None


def test_the_lead_page_follows_new_messages_and_the_conversation_chosen(  # type: ignore[no-untyped-def]
    browser, app, seeded, world
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    hot = seeded["hot"]
    with live_server(app) as base:
        browser.get(f"{base}/console/login?next=/console/leads/{hot}")
        browser.find_element(By.NAME, "email").send_keys("sarah@example.com")
        browser.find_element(By.NAME, "password").send_keys("correct horse")
        browser.find_element(By.CSS_SELECTOR, "#password-login button[type=submit]").click()
        wait_for(lambda: "Live updates: on" in browser.find_element(By.ID, "live-state").text)

        def shown_window() -> str:
            notes = browser.find_elements(By.CSS_SELECTOR, ".reply-window")
            return " ".join(n.text for n in notes if n.is_displayed())

        # The reply box says where the reply goes and whether WhatsApp's 24-hour window is open.
        assert shown_window().startswith("Replying on whatsapp. 24-hour window open: 21 h left.")
        Select(browser.find_element(By.ID, "reply-conversation")).select_by_visible_text(
            next(
                o.text
                for o in browser.find_elements(By.CSS_SELECTOR, "#reply-conversation option")
                if o.text.startswith("web")
            )
        )
        assert shown_window() == "Replying on web."

        # The customer writes again: the timeline shows it, at the bottom, without a reload.
        browser.execute_script("window.stayed = true;")
        world.customer_message(hot, "Also, do you install batteries?", channel="web")
        wait_for(lambda: "install batteries" in browser.find_element(By.ID, "timeline").text, 2.0)
        assert browser.execute_script("return window.stayed === true")
        at_bottom = browser.execute_script(
            "var t = document.getElementById('timeline');"
            "return t.scrollHeight - t.scrollTop - t.clientHeight < 2;"
        )
        assert at_bottom
        screenshot(browser, "08-lead-page-live")


def test_the_open_conversation_shows_status_and_bot_changes_without_a_reload(  # type: ignore[no-untyped-def]
    browser, app, seeded, world
):
    from selenium.webdriver.common.by import By

    from store.models import Conversation, Lead

    hot = seeded["hot"]
    room = world.conversation_of(hot, "web")
    with live_server(app) as base:
        browser.get(f"{base}/console/login?next=/console/inbox?tab=unassigned%26c={room}")
        browser.find_element(By.NAME, "email").send_keys("sarah@example.com")
        browser.find_element(By.NAME, "password").send_keys("correct horse")
        browser.find_element(By.CSS_SELECTOR, "#password-login button[type=submit]").click()
        wait_for(lambda: "Live updates: on" in browser.find_element(By.ID, "live-state").text)
        pane = browser.find_element(By.ID, "inbox-pane")
        assert "Interested" in pane.find_element(By.CSS_SELECTOR, ".card-head").text
        browser.find_element(By.CSS_SELECTOR, "#reply-form textarea").send_keys("Half-written")
        browser.execute_script("window.stayed = true;")

        # Another agent moves the lead on, and the customer's "stop" stops the bot in this room.
        with world.session_factory.begin() as session:
            session.get(Lead, hot).status = "Follow Up"
            session.get(Conversation, room).ai_stopped = True

        def head() -> str:
            return str(browser.find_element(By.CSS_SELECTOR, "#inbox-pane .card-head").text)

        def profile() -> str:
            return str(browser.find_element(By.CSS_SELECTOR, "#inbox-pane aside.profile").text)

        wait_for(lambda: "Follow Up" in head(), 2.0)
        wait_for(lambda: "Bot\npaused" in profile(), 2.0)
        assert browser.execute_script("return window.stayed === true")
        draft = browser.find_element(By.CSS_SELECTOR, "#reply-form textarea")
        assert draft.get_attribute("value") == "Half-written"  # the reply being written stays
        screenshot(browser, "inbox-08-live-status")
