"""`leaddesk serve` as a real process: webhooks answered end to end, health, clean shutdown, and
events
stored but never processed before a stop are answered after the next start."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from store import make_engine, make_session_factory, upgrade
from store.models import Message, utcnow
from tests.fakes.fake_graph import FakeGraph
from tests.webhooks.meta_payloads import PHONE_NUMBER_ID, dumps, wa_text
from tests.webhooks.support import ServeProcess
from webhooks.intake import store_batch
from webhooks.meta import signature_for
from webhooks.whatsapp import parse_whatsapp

APP_SECRET = "test-app-secret"


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post_webhook(url: str, body: dict[str, Any]) -> int:
    raw = dumps(body)
    status, _ = http(
        "POST",
        f"{url}/webhooks/whatsapp",
        raw,
        {"Content-Type": "application/json", "X-Hub-Signature-256": signature_for(raw, APP_SECRET)},
    )
    return status


def wait_for(
    predicate: Any,
    timeout: float = 90.0,
    what: str = "condition",
    server: ServeProcess | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    log = "\n" + "\n".join(server.lines[-40:]) if server is not None else ""
    raise AssertionError(f"timed out waiting for {what}{log}")


@pytest.fixture
def graph() -> Any:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


def test_serve_answers_stops_cleanly_and_picks_up_unprocessed_events_after_restart(
    tmp_path: Path, graph: FakeGraph
) -> None:
    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    session_factory = make_session_factory(engine)
    env = {
        "META_GRAPH_URL": graph.url,
        "WHATSAPP_ACCESS_TOKEN": "wa-token",
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
    }

    def all_messages() -> list[Message]:
        with session_factory() as session:
            return list(session.scalars(select(Message).order_by(Message.id)))

    # 1. A running server answers a webhook and reports its health.
    first = ServeProcess(url, **env).start()
    try:
        assert "channel whatsapp: ready" in first.log()
        assert (
            post_webhook(
                first.url, wa_text("Hi, what are your opening hours?", wa_id="14155550100")
            )
            == 200
        )
        wait_for(
            lambda: any(m.author == "bot" and m.delivery_status == "sent" for m in all_messages()),
            what="the bot's reply to be sent",
            server=first,
        )
        # The run is counted right after its reply went out.
        wait_for(
            lambda: http("GET", f"{first.url}/healthz")[1]["workers"]["processed"] >= 1,
            what="the health report to count the run",
            server=first,
        )
        status, health = http("GET", f"{first.url}/healthz")
        assert status == 200 and health["status"] == "ok" and health["database"] == "ok"
        assert health["workers"]["status"] == "ok" and health["workers"]["kind"] == "threads"

        # A long poll in progress does not hold the shutdown up.
        _, created = http(
            "POST", f"{first.url}/api/chat/sessions", b"", {"Content-Type": "application/json"}
        )
        poll = threading.Thread(
            target=http,
            args=("GET", f"{first.url}/api/chat/messages?wait=25"),
            kwargs={"headers": {"Authorization": f"Bearer {created['session']}"}},
        )
        poll.start()
        time.sleep(0.5)
    finally:
        started = time.monotonic()
        code = first.stop()
    assert code == 0, first.log()
    assert time.monotonic() - started < 30, "a clean stop does not wait for the long poll to end"
    assert "stopped" in first.log()
    poll.join(10)
    assert len(graph.requests) == 1

    # 2. While the server is down, events are stored the way the webhook stores them, but nobody
    #    processes them (the situation after a crash between acknowledging and answering).
    later = parse_whatsapp(wa_text("And on Sundays?", wa_id="14155550100"))
    later.extend(
        parse_whatsapp(wa_text("Do you install in Austin?", wa_id="14155550111", name="Ray"))
    )
    store_batch(
        later,
        session_factory=session_factory,
        region="US",
        takeover_minutes=60,
        now=utcnow(),
        on_human_reply=lambda *a, **k: None,
    )
    assert sum(1 for m in all_messages() if m.direction == "in" and m.processed_at is None) == 2

    # 3. The next start answers them, once each; the first conversation is not answered again.
    second = ServeProcess(url, **env).start()
    try:
        wait_for(
            lambda: all(m.processed_at is not None for m in all_messages() if m.direction == "in"),
            what="the stored messages to be processed",
            server=second,
        )
        wait_for(
            lambda: len(graph.requests) == 3, what="the two new replies to be sent", server=second
        )
    finally:
        assert second.stop() == 0, second.log()
    stored = all_messages()
    bot_replies = [m for m in stored if m.author == "bot"]
    assert len(bot_replies) == 3
    assert {m.delivery_status for m in bot_replies} == {"sent"}
    assert sorted(r.json["to"] for r in graph.requests) == [
        "14155550100",
        "14155550100",
        "14155550111",
    ]
    engine.dispose()


def test_serve_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'leaddesk.db'}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        process = ServeProcess(url)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from leaddesk.cli import run; run()",
                "serve",
                "--port",
                str(port),
            ],
            env=process.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"leaddesk: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_stops_cleanly_while_a_console_holds_a_live_stream(tmp_path: Path) -> None:
    import http.cookiejar
    import re

    from store.agents import create_agent

    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    server = ServeProcess(database_url).start()
    try:
        engine = make_engine(database_url)
        with make_session_factory(engine).begin() as session:
            create_agent("Sarah Lee", session=session, email="sarah@example.com", password="pw-1")
        engine.dispose()
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        base = server.url
        assert base is not None
        page = browser.open(f"{base}/console/login", timeout=30).read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        form = urllib.parse.urlencode(
            {"csrf_token": csrf.group(1), "email": "sarah@example.com", "password": "pw-1"}
        ).encode()
        browser.open(f"{base}/console/login", data=form, timeout=30).read()
        stream = browser.open(f"{base}/console/events", timeout=30)
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.readline() == b"retry: 2000\n"
        ended = threading.Event()
        broken: list[BaseException] = []

        def read_to_the_end() -> None:
            try:
                while stream.readline():
                    pass
            except Exception as exc:  # noqa: BLE001 - a connection cut mid-stream
                broken.append(exc)
            ended.set()

        threading.Thread(target=read_to_the_end, daemon=True).start()
        assert server.stop() == 0
        # The server ended the stream properly (its last chunk) before it closed, instead of the
        # connection being cut, or its thread writing into a closed channel, at exit.
        assert ended.wait(10)
        assert broken == []
        log = server.log()
        assert "Traceback" not in log and "ERROR" not in log, log
        assert "stopped" in log
    finally:
        server.stop()
