"""Console sessions: revocable on the server, idle and absolute timeouts, and the cookie's flags."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from waitress.server import create_server

from leaddesk.settings import load_settings
from store.agents import rotate_token
from store.models import Agent, ConsoleSession
from tests.app_support import build_app, fixed
from tests.console.conftest import Console, csrf_of


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def sarah(world):  # type: ignore[no-untyped-def]
    return world.agent("Sarah", email="sarah@example.com", password="correct horse")


def signed_in(app: Any) -> Console:
    console = Console(app.test_client())
    assert console.login(email="sarah@example.com", password="correct horse").status_code == 302
    return console


def session_cookie(console: Console) -> str:
    cookie = console.client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def opens_leads(app: Any, cookie: str) -> bool:
    """Whether a browser holding only this saved cookie gets the leads page."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client.get("/console/leads").status_code == 200


def test_a_cookie_saved_before_signing_out_no_longer_opens_the_console(app, sarah):  # type: ignore[no-untyped-def]
    console = signed_in(app)
    saved = session_cookie(console)
    assert opens_leads(app, saved)
    console.post("/console/logout")
    assert not opens_leads(app, saved)


def test_signing_out_one_browser_leaves_the_others_signed_in(app, sarah):  # type: ignore[no-untyped-def]
    laptop, phone = signed_in(app), signed_in(app)
    laptop.post("/console/logout")
    assert laptop.get("/console/leads").status_code == 302
    assert phone.get("/console/leads").status_code == 200


def test_sign_out_everywhere_ends_every_session(app, sarah):  # type: ignore[no-untyped-def]
    laptop, phone = signed_in(app), signed_in(app)
    account = laptop.get("/console/account")
    assert 'id="sign-out-everywhere"' in account.text
    laptop.post("/console/logout", {"everywhere": "1"})
    assert phone.get("/console/leads").status_code == 302
    assert laptop.get("/console/leads").status_code == 302


def test_a_new_token_password_or_disabling_ends_the_sessions(app, sarah, world, session_factory):  # type: ignore[no-untyped-def]
    agent_id, api = sarah
    _, admin = world.agent("Ada", role="admin")

    console = signed_in(app)
    assert api.post(f"/api/agents/{agent_id}/token").status_code == 200
    assert console.get("/console/leads").status_code == 302

    console = signed_in(app)
    with session_factory.begin() as session:
        rotate_token(session.get(Agent, agent_id), session=session)  # as `leaddesk agents token`
    assert console.get("/console/leads").status_code == 302

    console = signed_in(app)
    other = signed_in(app)
    assert (
        admin.patch(f"/api/agents/{agent_id}", json={"password": "battery staple"}).status_code
        == 200
    )
    assert console.get("/console/leads").status_code == 302
    assert other.get("/console/leads").status_code == 302
    assert console.login(email="sarah@example.com", password="battery staple").status_code == 302

    saved = session_cookie(console)
    assert admin.patch(f"/api/agents/{agent_id}", json={"active": False}).status_code == 200
    assert admin.patch(f"/api/agents/{agent_id}", json={"active": True}).status_code == 200
    assert not opens_leads(app, saved), "enabling again does not bring an old session back"
    with session_factory() as session:
        assert session.query(ConsoleSession).filter_by(agent_id=agent_id).count() == 0


def test_the_session_ends_after_twelve_idle_hours(app, sarah, clock):  # type: ignore[no-untyped-def]
    console = signed_in(app)
    clock.advance(hours=11, minutes=50)
    assert console.get("/console/leads").status_code == 200  # activity keeps it going
    clock.advance(hours=11, minutes=50)
    assert console.get("/console/leads").status_code == 200
    clock.advance(hours=12, minutes=1)
    assert console.get("/console/leads").status_code == 302


def test_the_idle_timeout_follows_the_setting(session_factory, clock, prompts, tmp_path, sarah):  # type: ignore[no-untyped-def]
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", session_hours=1)
    app = build_app(settings, session_factory, prompts=fixed(prompts), clock=clock)
    console = signed_in(app)
    clock.advance(minutes=59)
    assert console.get("/console/leads").status_code == 200
    clock.advance(minutes=61)
    assert console.get("/console/leads").status_code == 302


def test_even_a_busy_session_ends_after_the_absolute_limit(app, sarah, clock):  # type: ignore[no-untyped-def]
    console = signed_in(app)
    for _ in range(7 * 24 // 6 - 1):
        clock.advance(hours=6)
        assert console.get("/console/leads").status_code == 200
    clock.advance(hours=6)
    assert console.get("/console/leads").status_code == 302


def _set_cookie(response: Any) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert headers, "no session cookie was set"
    return headers[-1]


def test_the_cookie_is_httponly_lax_and_lasts_the_idle_timeout(app, sarah):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "csrf_token": csrf_of(page.text),
            "email": "sarah@example.com",
            "password": "correct horse",
        },
    )
    cookie = _set_cookie(response)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags
    assert "secure" not in flags  # plain HTTP here: a Secure cookie would never come back
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    left = expires - datetime.now(UTC)
    assert timedelta(hours=11) < left <= timedelta(hours=12, minutes=1)


def test_the_cookie_is_secure_over_https_or_when_forced(
    app, sarah, session_factory, clock, prompts, tmp_path
):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert "Secure" in _set_cookie(client.get("/console/login", base_url="https://desk.example"))
    forced = build_app(
        load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", secure_cookies=True),
        session_factory,
        prompts=fixed(prompts),
        clock=clock,
    )
    assert "Secure" in _set_cookie(forced.test_client().get("/console/login"))


@pytest.fixture
def behind_proxy(app: Any) -> Iterator[str]:
    """The app under waitress set up as `leaddesk serve --trusted-proxy 127.0.0.1` sets it up."""
    server = create_server(
        app,
        host="127.0.0.1",
        port=0,
        threads=2,
        trusted_proxy="127.0.0.1",
        trusted_proxy_count=1,
        trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
        clear_untrusted_proxy_headers=True,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"  # type: ignore[attr-defined]
    finally:
        server.close()
        thread.join(timeout=5)


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(behind_proxy):  # type: ignore[no-untyped-def]
    plain = httpx.get(behind_proxy + "/console/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    proxied = httpx.get(behind_proxy + "/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in [p.strip().lower() for p in proxied.headers["set-cookie"].split(";")]
