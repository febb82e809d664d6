"""The live inbox in headless Chromium against the real server (`leaddesk serve`, WhatsApp sending
to a fake Graph API): two agents signed in at once see a customer's web chat and WhatsApp messages
within two seconds without a reload, with the optional sound; unread counts go up and down, in the
title and the navigation of every page; replying assigns; times are in the business's zone; the
customer's "typing…" reaches the agent, and the agent's reply reaches the widget with their name
and its time; and with two web processes on a broker, an event from one reaches a console
connected to the other.

Screenshots land in test-artifacts/screenshots/ (look at them when changing the inbox).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from store import make_engine
from store.agents import create_agent
from tests.browser_support import open_browser, screenshot, wait_for
from tests.conftest import _truncate_all as truncate_all
from tests.fakes.fake_graph import FakeGraph
from tests.webhooks.meta_payloads import PHONE_NUMBER_ID, dumps, wa_text
from tests.webhooks.support import APP_SECRET, ServeProcess
from webhooks.meta import signature_for

pytestmark = pytest.mark.browser
SEEN_WITHIN = 2.0  # seconds: what "live" means here
BUSINESS_ZONE = ZoneInfo("America/Chicago")  # the shipped business.yaml's `timezone`
# Stands in for the Web Audio API: counts the tones the console plays (headless has no speakers).
COUNT_TONES = """
window.tones = 0;
window.AudioContext = function () {
  return {
    currentTime: 0, destination: null,
    createOscillator: function () {
      return { frequency: {}, connect: function () {}, stop: function () {},
               start: function () { window.tones += 1; } };
    }
  };
};
"""


def _post(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data or b"null")


def _chat(base: str, text: str, name: str = "Web Visitor") -> None:
    status, started = _post(
        base,
        "/api/chat/sessions",
        json.dumps({"name": name}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, started
    status, answer = _post(
        base,
        "/api/chat/messages",
        json.dumps({"text": text}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {started['session']}"},
    )
    assert status in (200, 201, 202), answer


def _whatsapp(base: str, text: str) -> None:
    body = dumps(wa_text(text, wa_id="14155550177", name="Dana Whitfield"))
    status, answer = _post(
        base,
        "/webhooks/whatsapp",
        body,
        {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature_for(body, APP_SECRET),
        },
    )
    assert status == 200, answer


def _agents(database_url: str) -> None:
    engine = create_engine(database_url)
    with sessionmaker(engine).begin() as session:
        create_agent("Sarah Lee", session=session, email="sarah@example.com", password="pw-sarah-1")
        create_agent(
            "Ada Admin", session=session, role="admin", email="ada@example.com", password="pw-ada-1"
        )
    engine.dispose()


def _sign_in(driver: Any, base: str, email: str, password: str, page: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/console/login?next={page}")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#password-login button[type=submit]").click()
    wait_for(lambda: page in driver.current_url, 10)
    wait_for(lambda: "Live updates: on" in driver.find_element(By.ID, "live-state").text, 10)


def _rows_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "inbox-rows").text)


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def server(tmp_path: Path, graph: FakeGraph) -> Iterator[ServeProcess]:
    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    serve = ServeProcess(
        database_url,
        META_GRAPH_URL=graph.url,
        WHATSAPP_ACCESS_TOKEN="wa-test-token",
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
    ).start()
    try:
        _agents(database_url)
        yield serve
    finally:
        serve.stop()


def test_two_agents_see_new_messages_live(server, graph, chromium, tmp_path):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    base = server.url
    assert base is not None
    with ExitStack() as stack:
        sarah = stack.enter_context(open_browser(chromium, tmp_path / "sarah"))
        ada = stack.enter_context(open_browser(chromium, tmp_path / "ada"))
        _sign_in(sarah, base, "sarah@example.com", "pw-sarah-1", "/console/inbox?tab=unassigned")
        _sign_in(ada, base, "ada@example.com", "pw-ada-1", "/console/inbox?tab=all")
        assert "No conversations here" in _rows_text(sarah)
        # Sarah turns the sound on (Ada leaves it off, as it starts).
        for driver in (sarah, ada):
            driver.execute_script(COUNT_TONES)
        sarah.find_element(By.ID, "console-sound").click()

        # A customer writes on the web widget (the demo page embeds it).
        customer = stack.enter_context(open_browser(chromium, tmp_path / "customer"))
        customer.get(base + "/")
        wait_for(
            lambda: customer.execute_script("return !!document.getElementById('leaddesk-widget')"),
            10,
        )
        widget = customer.find_element(By.ID, "leaddesk-widget").shadow_root
        wait_for(lambda: widget.find_elements(By.CSS_SELECTOR, ".ld-greeting"), 10)
        widget.find_element(By.CSS_SELECTOR, ".ld-input").send_keys(
            "Hi! Do you install home batteries?"
        )
        sent = time.monotonic()
        widget.find_element(By.CSS_SELECTOR, ".ld-send").click()
        for driver in (sarah, ada):
            wait_for(lambda d=driver: "home batteries" in _rows_text(d), SEEN_WITHIN)
        assert time.monotonic() - sent < SEEN_WITHIN + 0.5
        unread = wait_for(lambda: sarah.find_element(By.ID, "inbox-unread").text, SEEN_WITHIN)
        assert unread == "1"
        assert sarah.title.startswith("(1) ")
        assert sarah.execute_script("return window.tones") >= 1
        assert ada.execute_script("return window.tones") == 0

        sent = time.monotonic()
        _whatsapp(base, "Hello, I'd like a quote for 12 panels")
        for driver in (sarah, ada):
            wait_for(lambda d=driver: "quote for 12 panels" in _rows_text(d), SEEN_WITHIN)
        assert time.monotonic() - sent < SEEN_WITHIN + 0.5
        wait_for(lambda: sarah.find_element(By.ID, "inbox-unread").text == "2", SEEN_WITHIN)
        screenshot(sarah, "inbox-01-two-new-conversations")

        # Opening one shows it beside the list and its unread count goes down.
        sarah.find_element(By.XPATH, "//li[contains(., 'quote for 12 panels')]/a").click()
        wait_for(lambda: "quote for 12 panels" in sarah.find_element(By.ID, "inbox-pane").text, 5)
        wait_for(lambda: sarah.find_element(By.ID, "inbox-unread").text == "1", 5)
        assert "/console/inbox" in sarah.current_url and "c=" in sarah.current_url
        stamp = wait_for(lambda: sarah.find_element(By.CSS_SELECTOR, "#inbox-pane time"), 5)
        at = datetime.fromisoformat(stamp.get_attribute("datetime"))
        # Shown in the business's zone, how long ago beside it, and UTC in the tooltip.
        assert stamp.text == f"{at.astimezone(BUSINESS_ZONE):%Y-%m-%d %H:%M} · just now"
        assert stamp.get_attribute("title") == f"{at:%Y-%m-%d %H:%M} UTC"
        assert "America/Chicago" in sarah.find_element(By.CSS_SELECTOR, "footer").text
        # The bot answers after the customer's quiet window; the open conversation shows it.
        wait_for(lambda: "Bot" in sarah.find_element(By.ID, "timeline").text, 15)
        screenshot(sarah, "inbox-02-conversation-open")
        # A canned reply, picked with "/" and filled in for the lead, is sent from the inbox.
        from selenium.webdriver.common.keys import Keys

        box = sarah.find_element(By.CSS_SELECTOR, "#reply-form textarea")
        box.send_keys("/site")
        wait_for(lambda: sarah.find_elements(By.CSS_SELECTOR, "ul.canned li"), 5)
        screenshot(sarah, "inbox-05-canned-reply")
        box.send_keys(Keys.ENTER)
        assert box.get_attribute("value").startswith("Hi Dana, Sarah Lee from Sunpeak Solar")
        sarah.find_element(By.CSS_SELECTOR, "#reply-form button[type=submit]").click()
        wait_for(lambda: "Reply sent" in sarah.page_source, 10)
        wait_for(lambda: "Sarah Lee (agent)" in sarah.find_element(By.ID, "timeline").text, 5)
        sent_out = [r.json for r in graph.requests if r.method == "POST"]
        assert sent_out[-1]["to"] == "14155550177"
        assert sent_out[-1]["text"]["body"].startswith("Hi Dana, Sarah Lee from Sunpeak Solar")
        assert sarah.find_element(By.ID, "console-sound").is_selected()  # kept after the reload
        # Replying made Sarah the owner: the conversation left the Unassigned tab.
        assert "Dana Whitfield" not in _rows_text(sarah)
        sarah.find_element(By.CSS_SELECTOR, "nav.tabs a[data-tab=mine]").click()
        wait_for(lambda: "Dana Whitfield" in _rows_text(sarah), 5)
        screenshot(sarah, "inbox-06-mine-after-reply")
        # Ada has read nothing; her count is her own and unassigned conversations, so Dana's (now
        # Sarah's) left it, live.
        wait_for(lambda: ada.find_element(By.ID, "inbox-unread").text == "1", SEEN_WITHIN)
        wait_for(lambda: ada.title.startswith("(1) "), SEEN_WITHIN)
        screenshot(ada, "inbox-03-admin-all")
        # Every console page carries the count, in its title and its navigation.
        ada.get(base + "/console/leads")
        assert ada.title == "(1) Leads · Leaddesk"
        assert ada.find_element(By.ID, "inbox-unread").text == "1"

        # Sarah opens the web chat; the customer starts typing and she sees it.
        sarah.find_element(By.CSS_SELECTOR, "nav.tabs a[data-tab=unassigned]").click()
        # The only unassigned conversation left (its last message is the bot's answer by now).
        wait_for(lambda: sarah.find_elements(By.CSS_SELECTOR, "#inbox-rows li.conversation a"), 5)
        sarah.find_element(By.CSS_SELECTOR, "#inbox-rows li.conversation a").click()
        wait_for(lambda: "home batteries" in sarah.find_element(By.ID, "inbox-pane").text, 5)
        wait_for(
            lambda: (
                sarah.find_element(By.ID, "inbox-unread").text == "0"
                or not sarah.find_element(By.ID, "inbox-unread").is_displayed()
            ),
            5,
        )
        # Typing is shown live. (Pages left a moment ago may still hold the server's stream slots:
        # the page polls meanwhile and goes back to the stream once one is free.)
        wait_for(lambda: "Live updates: on" in sarah.find_element(By.ID, "live-state").text, 20)
        widget.find_element(By.CSS_SELECTOR, ".ld-input").send_keys("And how long does")
        wait_for(lambda: sarah.find_element(By.ID, "customer-typing").is_displayed(), SEEN_WITHIN)
        screenshot(sarah, "inbox-07-customer-typing")
        # Her reply reaches the widget under her name, with its time.
        sarah.find_element(By.CSS_SELECTOR, "#reply-form textarea").send_keys(
            "Yes, we install home batteries."
        )
        sarah.find_element(By.CSS_SELECTOR, "#reply-form button[type=submit]").click()
        wait_for(lambda: "Reply sent" in sarah.page_source, 10)
        bubble = wait_for(
            lambda: widget.find_elements(By.CSS_SELECTOR, ".ld-agent"), SEEN_WITHIN + 3
        )[-1]
        assert bubble.find_element(By.CSS_SELECTOR, ".ld-who").text == "Sarah Lee"
        assert "Yes, we install home batteries." in bubble.text
        assert bubble.get_attribute("data-time")
        # One greeting, the bot's own from prompts/.
        greetings = [g.text for g in widget.find_elements(By.CSS_SELECTOR, ".ld-greeting")]
        assert len(greetings) == 1 and greetings[0].startswith("Hi! Thanks for contacting")
        screenshot(customer, "widget-01-agent-reply")


def _services_missing() -> str | None:
    import socket

    for port, name in ((5432, "PostgreSQL"), (6379, "Redis")):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return f"{name} is not answering on 127.0.0.1:{port}"
    return None


def test_an_event_from_one_web_process_reaches_a_console_on_another(  # type: ignore[no-untyped-def]
    chromium, tmp_path, postgres_url
):
    from selenium.webdriver.common.by import By

    missing = _services_missing()
    if missing:
        pytest.skip(missing)
    broker = "redis://127.0.0.1:6379/9"
    engine = make_engine(postgres_url)
    truncate_all(engine)  # the session's database: start empty
    engine.dispose()
    first = ServeProcess(postgres_url, LEADDESK_BROKER_URL=broker).start()
    try:
        second = ServeProcess(postgres_url, LEADDESK_BROKER_URL=broker).start()
        try:
            _agents(postgres_url)
            assert first.url is not None and second.url is not None
            with open_browser(chromium, tmp_path / "sarah") as sarah:
                _sign_in(
                    sarah,
                    second.url,
                    "sarah@example.com",
                    "pw-sarah-1",
                    "/console/inbox?tab=unassigned",
                )
                sent = time.monotonic()
                _chat(first.url, "Written to the first process")
                wait_for(lambda: "first process" in _rows_text(sarah), SEEN_WITHIN)
                assert time.monotonic() - sent < SEEN_WITHIN + 0.5
                wait_for(lambda: sarah.find_element(By.ID, "inbox-unread").text == "1", SEEN_WITHIN)
                screenshot(sarah, "inbox-04-second-process")
        finally:
            second.stop()
    finally:
        first.stop()
