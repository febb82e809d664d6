"""Logging for the entry points: one format, quiet third-party HTTP loggers and no secret in any
record (bot tokens in Bot API URLs, bearer tokens, app secrets and API keys are redacted)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from leaddesk.settings import Settings

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# These log every request's URL at INFO or DEBUG; the Bot API's URLs carry the bot's token.
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "urllib3", "hpack", "openai._base_client")

_SHAPES = (
    # A Telegram bot token (123456789:AA...), alone or in a Bot API URL (/bot<token>/getUpdates).
    (re.compile(r"(/bot)[^/\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{8,}"), REDACTED),
    # Authorization headers and their echoes.
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2" + REDACTED),
    # OpenAI-style API keys.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    # key=value and "key": "value" pairs whose key names a secret (query strings, JSON, reprs).
    (
        re.compile(
            r"(?i)((?:access_token|appsecret_proof|app_secret|client_secret|api_key|apikey|secret_token"
            r"|secret|password|passwd|authorization)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+"
        ),
        r"\1" + REDACTED,
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and everything shaped like one replaced by [redacted]."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter that rewrites each record's message (and traceback) without secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Short values would redact ordinary words; those are left to the shapes above.
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True))
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's own error to report
            return True
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold (tokens, keys, passwords in the database URL)."""
    values = [
        value.get_secret_value().strip()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr)
    ]
    for url in (settings.database_url, settings.broker_url):
        password = _url_password(url)
        if password:
            values.append(password)
    return [value for value in values if value]


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    match = re.match(r"^[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]+)@", url)
    return match.group(1) if match else None


def configure_logging(settings: Settings) -> None:
    """Log to stderr at LEADDESK_LOG_LEVEL, with every root handler redacting secrets."""
    logging.basicConfig(level=settings.log_level, format=FORMAT)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    install_redaction(settings_secrets(settings))


def install_redaction(secrets: Iterable[str] = (), logger: logging.Logger | None = None) -> None:
    """Put one `RedactSecrets` on each handler of `logger` (the root logger by default)."""
    logger = logger or logging.getLogger()
    wanted = RedactSecrets(secrets)
    for handler in logger.handlers:
        for existing in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(existing)
        handler.addFilter(wanted)


def describe_error(exc: BaseException) -> str:
    """A one-line description that never carries SQL parameters (message bodies) into the logs."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__} ({type(exc.orig).__name__})"
    return type(exc).__name__
