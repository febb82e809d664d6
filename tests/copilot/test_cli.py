"""`leaddesk copilot`: clear one-line errors instead of tracebacks."""

from __future__ import annotations

import pytest

from leaddesk.cli import main
from tests.fakes.fake_telegram import FakeTelegram


@pytest.fixture
def env(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'leaddesk.db'}")
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_copilot_without_a_token_says_so_in_one_line(env, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["copilot"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "leaddesk: error: TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put "
        "its token in TELEGRAM_BOT_TOKEN"
    )


def test_copilot_with_a_rejected_token_says_so_in_one_line(env, capsys) -> None:  # type: ignore[no-untyped-def]
    telegram = FakeTelegram().start()
    try:
        telegram.reject_token = True
        env.setenv("TELEGRAM_BOT_TOKEN", "123:revoked")
        env.setenv("TELEGRAM_API_URL", telegram.url)
        assert main(["copilot"]) == 1
    finally:
        telegram.stop()
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "leaddesk: error: Telegram refused TELEGRAM_BOT_TOKEN; check the token with @BotFather"
    )
