"""Helpers shared by the channel tests: pinned settings, a recording dispatcher, a clock, signing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

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
    """A dispatcher that only remembers what it was asked to do (the tests run the work themselves)."""

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

    def __init__(self, start: Optional[datetime] = None) -> None:
        self.now = start or datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def signed_post(
    client: FlaskClient,
    path: str,
    body: bytes,
    secret: str = APP_SECRET,
    signature: Optional[str] = None,
) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature if signature is not None else signature_for(body, secret),
    }
    return client.post(path, data=body, headers=headers)
