"""Password sign-in: the throttle per account and per address (shared through Redis by every web
process), equal cost for unknown emails, token-only accounts, and changing a password."""

from __future__ import annotations

import logging
import socket
import statistics
import time
import uuid
from typing import Any

import pytest
import redis

from leaddesk.settings import load_settings
from store.agents import TokenOnlyAgent, agent_by_password
from tests.app_support import build_app, fixed
from tests.console.conftest import Console
from webhooks.console import auth


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def sarah(world):  # type: ignore[no-untyped-def]
    return world.agent("Sarah", email="sarah@example.com", password="correct horse")


def attempt(app: Any, email: str, password: str, address: str = "203.0.113.7") -> Any:
    console = Console(app.test_client())
    console.client.environ_base["REMOTE_ADDR"] = address
    return console.login(email=email, password=password)


def test_ten_wrong_passwords_pause_the_account_even_for_the_right_one(app, sarah, world, caplog):  # type: ignore[no-untyped-def]
    world.agent("Mike", email="mike@example.com", password="mike's pass")
    caplog.set_level(logging.DEBUG)
    for n in range(10):
        refused = attempt(app, "sarah@example.com", f"guess {n}", address=f"198.51.100.{n}")
        assert refused.status_code == 401
    paused = attempt(app, "sarah@example.com", "correct horse", address="198.51.100.99")
    assert paused.status_code == 401
    assert "do not match" in paused.text  # the same answer as a wrong password
    assert attempt(app, "Sarah@Example.com", "correct horse").status_code == 401
    # Another account is not affected.
    assert attempt(app, "mike@example.com", "mike's pass").status_code == 302
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "paused" in r.getMessage()
    ]
    assert warnings, "the lockout is logged at WARNING"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "guess 9" not in logged and "correct horse" not in logged


def test_one_address_trying_many_accounts_is_paused(app, sarah, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(auth, "ADDRESS_FAILURES", "5 per 15 minutes")
    for n in range(5):
        assert attempt(app, f"user{n}@example.com", "password1").status_code == 401
    assert attempt(app, "sarah@example.com", "correct horse").status_code == 401
    assert (
        attempt(app, "sarah@example.com", "correct horse", address="192.0.2.1").status_code == 302
    )


def test_the_pause_ends_when_old_failures_age_out(app, sarah, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(auth, "ACCOUNT_FAILURES", "3 per 2 seconds")
    for n in range(3):
        attempt(app, "sarah@example.com", f"guess {n}")
    assert attempt(app, "sarah@example.com", "correct horse").status_code == 401
    time.sleep(2.2)
    assert attempt(app, "sarah@example.com", "correct horse").status_code == 302


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


def test_every_web_process_counts_together_through_redis(
    session_factory, clock, prompts, tmp_path, sarah
):  # type: ignore[no-untyped-def]
    if not _redis_up():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        broker_url="redis://127.0.0.1:6379/14",
        broker_queue=f"signin-test-{uuid.uuid4().hex[:8]}",
    )
    first, second = (
        build_app(settings, session_factory, prompts=fixed(prompts), clock=clock) for _ in range(2)
    )
    try:
        for n in range(10):
            attempt(first if n % 2 else second, "sarah@example.com", f"guess {n}")
        assert attempt(first, "sarah@example.com", "correct horse").status_code == 401
        assert attempt(second, "sarah@example.com", "correct horse").status_code == 401
    finally:
        server = redis.Redis.from_url(settings.broker_url)
        for key in server.scan_iter(f"*{settings.broker_queue}*"):
            server.delete(key)
        server.close()
    # A process with its own memory count (no broker) would have let the right password in.
    alone = build_app(
        load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"),
        session_factory,
        prompts=fixed(prompts),
        clock=clock,
    )
    assert attempt(alone, "sarah@example.com", "correct horse").status_code == 302


def test_unknown_and_known_emails_cost_the_same(session_factory, sarah):  # type: ignore[no-untyped-def]
    def cost(email: str) -> float:
        times = []
        for _ in range(5):
            with session_factory() as session:
                started = time.perf_counter()
                agent_by_password(email, "not the password", session=session)
                times.append(time.perf_counter() - started)
        return statistics.median(times)

    cost("nobody@example.com")  # the dummy hash is made once
    known, unknown = cost("sarah@example.com"), cost("nobody@example.com")
    # Before, an unknown email answered without hashing: about 40 times faster.
    assert unknown > known * 0.25, (known, unknown)


def test_an_account_without_a_password_is_told_to_use_its_token(app, world, session_factory):  # type: ignore[no-untyped-def]
    world.agent("Ada", role="admin", email="ada@example.com")
    refused = attempt(app, "ada@example.com", "anything at all")
    assert refused.status_code == 401 and "signs in with its token" in refused.text
    with session_factory() as session, pytest.raises(TokenOnlyAgent):
        agent_by_password("ada@example.com", "anything at all", session=session)
    assert "signs in with its token" not in attempt(app, "nobody@example.com", "x" * 9).text


def test_change_password_needs_the_current_one_and_signs_out_other_browsers(app, sarah):  # type: ignore[no-untyped-def]
    here, there = Console(app.test_client()), Console(app.test_client())
    for console in (here, there):
        console.login(email="sarah@example.com", password="correct horse")
    assert "Change password" in here.get("/console/account").text
    wrong = here.post(
        "/console/account",
        {
            "current_password": "nope",
            "new_password": "battery staple",
            "confirm_password": "battery staple",
        },
    )
    assert wrong.status_code == 422 and "not right" in wrong.text
    short = here.post(
        "/console/account",
        {"current_password": "correct horse", "new_password": "short", "confirm_password": "short"},
    )
    assert short.status_code == 422 and "at least 8" in short.text
    changed = here.post(
        "/console/account",
        {
            "current_password": "correct horse",
            "new_password": "battery staple",
            "confirm_password": "battery staple",
        },
    )
    assert changed.status_code == 302
    assert here.get("/console/leads").status_code == 200  # this browser stays signed in
    assert there.get("/console/leads").status_code == 302
    assert attempt(app, "sarah@example.com", "correct horse").status_code == 401
    assert attempt(app, "sarah@example.com", "battery staple").status_code == 302


def test_admins_set_a_password_through_the_api(app, world):  # type: ignore[no-untyped-def]
    agent_id, _ = world.agent("Ada", role="admin", email="ada@example.com")
    _, boss = world.agent("Boss", role="admin")
    _, mike = world.agent("Mike")
    assert (
        mike.patch(f"/api/agents/{agent_id}", json={"password": "long enough"}).status_code == 403
    )
    assert boss.patch(f"/api/agents/{agent_id}", json={"password": "short"}).status_code == 422
    assert (
        boss.patch(f"/api/agents/{agent_id}", json={"password": "long enough"}).status_code == 200
    )
    assert attempt(app, "ada@example.com", "long enough").status_code == 302
    assert boss.patch(f"/api/agents/{agent_id}", json={"password": None}).status_code == 200
    assert "signs in with its token" in attempt(app, "ada@example.com", "long enough").text


def test_guessing_the_current_password_is_throttled_too(app, sarah):  # type: ignore[no-untyped-def]
    console = Console(app.test_client())
    console.login(email="sarah@example.com", password="correct horse")
    for n in range(10):
        form = {
            "current_password": f"guess {n}",
            "new_password": "battery staple",
            "confirm_password": "battery staple",
        }
        assert console.post("/console/account", form).status_code == 422
    right = {
        "current_password": "correct horse",
        "new_password": "battery staple",
        "confirm_password": "battery staple",
    }
    assert console.post("/console/account", right).status_code == 422
    assert attempt(app, "sarah@example.com", "correct horse").status_code == 401
