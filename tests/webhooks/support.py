"""Helpers shared by the channel tests: pinned settings, a recording dispatcher, a clock,
signing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from leaddesk.settings import Settings, load_settings
from webhooks.meta import signature_for

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
APP_ID = "555000111222333"

# Every setting a channel test depends on, pinned so that the machine's environment cannot leak in.
_PINNED: dict[str, Any] = {
    "database_url": "sqlite://",
    "default_region": "US",
    "meta_app_secret": APP_SECRET,
    "meta_verify_token": VERIFY_TOKEN,
    "meta_app_id": APP_ID,
    "whatsapp_access_token": None,
    "whatsapp_phone_number_id": None,
    "messenger_page_access_token": None,
    "instagram_access_token": None,
    "openai_api_key": None,
    "takeover_minutes": 60,
}


def make_settings(**overrides: Any) -> Settings:
    return load_settings(**{**_PINNED, **overrides})


class RecordingDispatcher:
    """A dispatcher that only remembers what it was asked to do (the tests run the work
    themselves)."""

    def __init__(self) -> None:
        self.submitted: list[int] = []
        self._lock = threading.Lock()

    def submit(self, conversation_id: int) -> None:
        with self._lock:
            self.submitted.append(conversation_id)

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "kind": "recording"}


class Clock:
    """A controllable clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def signed_post(
    client: FlaskClient,
    path: str,
    body: bytes,
    secret: str = APP_SECRET,
    signature: str | None = None,
) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature if signature is not None else signature_for(body, secret),
    }
    return client.post(path, data=body, headers=headers)


class ServeProcess:
    """`leaddesk serve --port 0` as a child process on a given database; its log is kept in
    `lines`."""

    def __init__(self, database_url: str, **env: str) -> None:
        import os
        import sys

        self.database_url = database_url
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                (
                    "META_",
                    "WHATSAPP_",
                    "MESSENGER_",
                    "INSTAGRAM_",
                    "OPENAI_",
                    "LEADDESK_",
                    "TELEGRAM_",
                )
            )
        }
        self.env = {
            **base,
            "DATABASE_URL": database_url,
            "LEADDESK_LOG_LEVEL": "INFO",
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_APP_ID": APP_ID,
            "LEADDESK_WORKER_THREADS": "2",
            **env,
        }
        self.command = [
            sys.executable,
            "-c",
            "from leaddesk.cli import run; run()",
            "serve",
            "--port",
            "0",
            "--threads",
            "8",
        ]
        self.process: Any = None

    def start(self, timeout: float = 60.0) -> ServeProcess:
        import subprocess

        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError("leaddesk serve did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _read(self) -> None:
        import re

        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"listening on (http://\S+?:\d+)", line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        import signal

        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return int(self.process.wait(timeout))
        except Exception:  # noqa: BLE001 - a hung server is killed so the suite goes on
            self.process.kill()
            return int(self.process.wait(10))
