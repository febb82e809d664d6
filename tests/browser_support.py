"""Shared helpers for browser tests: Debian's headless Chromium driven by selenium, a live server
for a
Flask app on 127.0.0.1, and screenshots saved under `test-artifacts/screenshots/`.

Use from a conftest (`from tests.browser_support import browser, chromium`) and mark the
tests `browser`. Without Chromium (or chromedriver, or selenium) the tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
_BINARIES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
_DRIVERS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def find_chromium() -> tuple[str | None, str | None]:
    """(browser binary, chromedriver) from Debian's `chromium` and `chromium-driver` packages."""
    binary = next((p for p in _BINARIES if Path(p).is_file()), None) or shutil.which("chromium")
    driver = next((p for p in _DRIVERS if Path(p).is_file()), None) or shutil.which("chromedriver")
    return binary, driver


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    binary, driver = find_chromium()
    if binary is None or driver is None:
        pytest.skip("headless Chromium is absent: apt-get install -y chromium chromium-driver")
    return binary, driver


@contextmanager
def open_browser(chromium: tuple[str, str], directory: Path) -> Iterator[Any]:
    """A fresh headless Chromium (selenium WebDriver) with its profile and downloads in
    `directory`; several may run at once (two agents signed in side by side)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    downloads = directory / "downloads"
    downloads.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={directory / 'profile'}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    try:
        # The browser keeps the machine's real clock even when the suite runs under a moved one
        # (.ci/at-time preloads libfaketime, under which Chromium does not start).
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("FAKETIME")
        }
        service = Service(executable_path=driver_path, env=env)
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as exc:  # noqa: BLE001 - a browser that cannot start is an environment problem
        pytest.skip(f"headless Chromium did not start: {exc}")
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.set_page_load_timeout(30)
    driver.download_dir = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium (selenium WebDriver); downloads land in `browser.download_dir`."""
    with open_browser(chromium, tmp_path) as driver:
        yield driver


def screenshot(driver: Any, name: str) -> Path:
    """Save a full-window PNG as test-artifacts/screenshots/NAME.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 (a free port) in a background thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it is truthy and return its value.

    A click does not wait for the page it leads to, and the console replaces parts of itself as
    events arrive, so an element may be not there yet or gone (stale) when read: both mean "not
    yet", and the condition is asked again.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.05)
