"""The eval command runs offline: no model key, no database or prompts directory from the env."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LEADDESK_MODEL",
        "DATABASE_URL",
        "LEADDESK_PROMPTS_DIR",
        "LEADDESK_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADDESK_LOG_LEVEL", "WARNING")
