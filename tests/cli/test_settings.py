"""Settings: one object from the environment and `.env`, every bad value named in one line."""

from __future__ import annotations

import pytest

from leaddesk.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL",
        "LEADDESK_DEFAULT_REGION",
        "LEADDESK_PROMPTS_DIR",
        "LEADDESK_LOG_LEVEL",
        "LEADDESK_LLM_TIMEOUT",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_work_without_any_configuration():
    settings = load_settings()
    assert settings.database_url == "sqlite:///leaddesk.db"
    assert settings.default_region == "US"
    assert (settings.prompts_dir / "statuses.yaml").is_file()
    assert not settings.llm_configured


def test_environment_and_dotenv_are_read(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "LEADDESK_DEFAULT_REGION=gb\nOPENAI_API_KEY=sk-test\n", encoding="utf-8"
    )
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db.example/leads")
    settings = load_settings()
    assert settings.default_region == "GB"
    assert settings.llm_configured
    assert settings.database_url == "postgresql+psycopg://user:pw@db.example/leads"


def test_every_bad_value_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    monkeypatch.setenv("LEADDESK_DEFAULT_REGION", "Narnia")
    monkeypatch.setenv("LEADDESK_LLM_TIMEOUT", "-3")
    monkeypatch.setenv("LEADDESK_BOT_NICE", "20")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    for name in (
        "DATABASE_URL:",
        "LEADDESK_DEFAULT_REGION:",
        "LEADDESK_LLM_TIMEOUT:",
        "LEADDESK_BOT_NICE:",
    ):
        assert name in message
