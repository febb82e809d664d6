"""The entry points' logging: quiet third-party HTTP loggers and no secret in any record."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from leaddesk.logs import NOISY_LOGGERS, RedactSecrets, configure_logging, install_redaction, redact
from leaddesk.settings import load_settings

BOT_TOKEN = "7012345678:AAGx-Secret_Bot_Token-0123456789abcdef"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with one stream handler, as the root logger has in a running server."""
    stream = io.StringIO()
    logger = logging.getLogger("leaddesk-logging-test")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_secret_shapes_are_redacted_from_messages_arguments_and_tracebacks(captured) -> None:
    logger, stream = captured
    install_redaction(["configured-app-secret-123"], logger=logger)
    logger.debug(
        'HTTP Request: POST %s "HTTP/1.1 200 OK"',
        f"https://api.telegram.org/bot{BOT_TOKEN}/getUpdates",
    )
    logger.info("token is %s", BOT_TOKEN)
    logger.info("headers: {'Authorization': 'Bearer EAAGm0PX4ZCpsBA-long.graph_token'}")
    logger.info("GET /v21.0/me?access_token=EAAGsecret123&appsecret_proof=abcdef0123456789")
    logger.info("key sk-proj-abcdefghijklmnop1234 and the app secret configured-app-secret-123")
    try:
        raise RuntimeError(f"cannot reach https://api.telegram.org/bot{BOT_TOKEN}/getMe")
    except RuntimeError:
        logger.exception("the bot failed")
    text = stream.getvalue()
    for secret in (
        BOT_TOKEN,
        BOT_TOKEN.split(":")[1],
        "EAAGm0PX4ZCpsBA",
        "EAAGsecret123",
        "abcdef0123456789",
        "sk-proj-abcdefghijklmnop1234",
        "configured-app-secret-123",
    ):
        assert secret not in text
    assert text.count("[redacted]") >= 8
    assert "/bot[redacted]/getUpdates" in text and "Traceback" in text and "RuntimeError" in text


def test_ordinary_words_numbers_and_times_are_left_alone() -> None:
    text = "lead 42 scored 87 at 2026-11-28 10:12:30,123; token rotated for agent Sarah (id 12)"
    assert redact(text) == text


def test_the_entry_points_setup_quietens_http_clients_and_filters_every_root_handler() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    try:
        settings = load_settings(telegram_bot_token="55555:short-but-real", log_level="DEBUG")
        configure_logging(settings)
        assert all(logging.getLogger(name).level == logging.WARNING for name in NOISY_LOGGERS)
        [redactor] = [f for f in handler.filters if isinstance(f, RedactSecrets)]
        assert "55555:short-but-real" in redactor.secrets
        configure_logging(settings)  # a second set-up does not stack filters
        assert len([f for f in handler.filters if isinstance(f, RedactSecrets)]) == 1
    finally:
        root.removeHandler(handler)
        for handler_ in root.handlers:
            for f in [f for f in handler_.filters if isinstance(f, RedactSecrets)]:
                handler_.removeFilter(f)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
