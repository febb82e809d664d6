"""The web chat widget end to end in headless Chromium against `leaddesk serve`: type, get the bot's
reply, reload, see the history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import upgrade
from tests.browser_support import browser, chromium, screenshot  # noqa: F401 - fixtures
from tests.webhooks.support import ServeProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    process = ServeProcess(url).start()
    yield process
    process.stop()


def bubbles(driver: Any, selector: str) -> list[str]:
    root = driver.find_element("id", "leaddesk-widget").shadow_root
    return [element.text for element in root.find_elements("css selector", selector)]


def test_widget_chat_reply_and_history_after_reload(browser: Any, server: ServeProcess) -> None:  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    browser.get(server.url + "/")
    wait.until(lambda d: d.execute_script("return !!document.getElementById('leaddesk-widget')"))
    root = browser.find_element("id", "leaddesk-widget").shadow_root
    field = root.find_element("css selector", ".ld-input")
    field.send_keys("Hi! How much does a home solar system cost?")
    root.find_element("css selector", ".ld-send").click()

    wait.until(lambda d: bubbles(d, ".ld-bot[data-id]"), message="the bot's reply did not appear")
    customer = bubbles(browser, ".ld-customer[data-id]")
    replies = bubbles(browser, ".ld-bot[data-id]")
    assert customer == ["Hi! How much does a home solar system cost?"]
    assert replies and replies[0].strip()
    screenshot(browser, "webchat-widget-reply")

    browser.refresh()
    wait.until(lambda d: d.execute_script("return !!document.getElementById('leaddesk-widget')"))
    wait.until(
        lambda d: len(bubbles(d, "[data-id]")) >= 2,
        message="the history did not come back after a reload",
    )
    assert bubbles(browser, ".ld-customer[data-id]") == customer
    assert bubbles(browser, ".ld-bot[data-id]") == replies
    screenshot(browser, "webchat-widget-history")
