"""Console fixtures: the API tests' app and factories, the repository's real prompts, a signed-in
client.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot import load_prompts
from tests.api.conftest import Clock, World, app, app_extras, clock, world  # noqa: F401 - fixtures
from tests.browser_support import browser, chromium  # noqa: F401 - fixtures
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="session")
def repo_prompts() -> Any:
    return load_prompts(REPO_ROOT / "prompts")


@pytest.fixture
def prompts(repo_prompts: Any) -> Any:
    return repo_prompts


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


class Console:
    """A browser-like test client: signs in through the form and posts forms with the CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, **credentials: str) -> Any:
        page = self.client.get("/console/login")
        response = self.client.post(
            "/console/login", data={"csrf_token": csrf_of(page.text), **credentials}
        )
        if response.status_code == 302:
            self.csrf = csrf_of(self.client.get("/console/leads").text)
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> Any:
        payload = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=payload, **kw)


@pytest.fixture
def console(app: Any) -> Console:  # noqa: F811
    return Console(app.test_client())
