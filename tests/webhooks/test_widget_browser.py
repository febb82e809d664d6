"""The web chat widget end to end in headless Chromium against `leaddesk serve`: type, get the bot's
reply, reload, see the history; the pre-chat form business.yaml turns on."""

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


@pytest.fixture
def prechat_server(tmp_path: Path) -> Iterator[ServeProcess]:
    """`leaddesk serve` with business.yaml asking the widget's pre-chat form for name, email and
    phone."""
    import shutil

    from tests.conftest import REPO_ROOT

    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    business = prompts / "business.yaml"
    text = business.read_text(encoding="utf-8")
    old = "  prechat: false\n  ask: [name, email]\n"
    assert old in text
    business.write_text(
        text.replace(old, "  prechat: true\n  ask: [name, email, phone]\n"), encoding="utf-8"
    )
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    process = ServeProcess(url, LEADDESK_PROMPTS_DIR=str(prompts)).start()
    yield process
    process.stop()


def test_the_pre_chat_form_asks_who_the_visitor_is_and_keeps_it_as_a_claim(
    browser: Any,  # noqa: F811
    prechat_server: ServeProcess,
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from store.models import CLAIMED, Lead

    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    browser.get(prechat_server.url + "/")
    wait.until(lambda d: d.execute_script("return !!document.getElementById('leaddesk-widget')"))
    root = browser.find_element("id", "leaddesk-widget").shadow_root
    form = wait.until(lambda d: root.find_element("css selector", ".ld-prechat.on"))
    fields = form.find_elements("css selector", "input")
    assert [f.get_attribute("name") for f in fields] == ["name", "email", "phone"]
    assert not root.find_element("css selector", ".ld-form").is_displayed()  # the form first
    assert len(bubbles(browser, ".ld-greeting")) == 1  # the bot's own greeting, once
    screenshot(browser, "webchat-widget-prechat")
    for field, value in zip(
        fields, ("Dana Fox", "dana@example.com", "(415) 555-0132"), strict=True
    ):
        field.send_keys(value)
    form.find_element("css selector", "button[type=submit]").click()
    field = wait.until(lambda d: root.find_element("css selector", ".ld-input"))
    wait.until(lambda d: field.is_displayed())
    field.send_keys("Hi, I'd like a quote.")
    root.find_element("css selector", ".ld-send").click()
    wait.until(lambda d: bubbles(d, ".ld-customer[data-id]"))

    engine = create_engine(prechat_server.database_url)
    try:
        with Session(engine) as session:
            lead = session.scalars(select(Lead)).one()
            assert (lead.name, lead.email, lead.phone) == (
                "Dana Fox",
                "dana@example.com",
                "+14155550132",
            )
            # What a visitor types is a claim: it never vouches for them.
            assert {(c.kind, c.trust) for c in lead.contacts} == {
                ("email", CLAIMED),
                ("phone", CLAIMED),
            }
            assert [i.trust for i in lead.identities] == [CLAIMED]
    finally:
        engine.dispose()
