"""The one settings object: read from the environment (and an optional `.env`), checked at start."""

from __future__ import annotations

from pathlib import Path

import phonenumbers
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from webhooks.mail import parse_smtp_url, valid_address

REPO_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Everything the service can be configured with; secrets have no defaults."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Store and prompts
    database_url: str = Field("sqlite:///leaddesk.db", validation_alias=_env("DATABASE_URL"))
    default_region: str = Field("US", validation_alias=_env("LEADDESK_DEFAULT_REGION"))
    prompts_dir: Path = Field(REPO_PROMPTS_DIR, validation_alias=_env("LEADDESK_PROMPTS_DIR"))
    # How often a running server looks for saved changes in prompts/ (0: never, restart to apply).
    prompts_poll_seconds: float = Field(
        2.0, ge=0, le=3600, validation_alias=_env("LEADDESK_PROMPTS_POLL_SECONDS")
    )
    log_level: str = Field("INFO", validation_alias=_env("LEADDESK_LOG_LEVEL"))

    # Model
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    model: str = Field("gpt-4o-mini", validation_alias=_env("LEADDESK_MODEL"))
    llm_timeout: float = Field(30.0, gt=0, le=600, validation_alias=_env("LEADDESK_LLM_TIMEOUT"))
    # Voice notes: with a model configured, fetch them from the channel and transcribe them.
    transcribe: bool = Field(False, validation_alias=_env("LEADDESK_TRANSCRIBE"))
    transcribe_model: str = Field("whisper-1", validation_alias=_env("LEADDESK_TRANSCRIBE_MODEL"))

    # Bot behaviour
    takeover_minutes: int = Field(
        60, ge=1, le=60 * 24 * 30, validation_alias=_env("LEADDESK_TAKEOVER_MINUTES")
    )

    # Meta channels
    meta_app_secret: SecretStr | None = Field(None, validation_alias=_env("META_APP_SECRET"))
    meta_verify_token: SecretStr | None = Field(None, validation_alias=_env("META_VERIFY_TOKEN"))
    meta_app_id: str | None = Field(None, validation_alias=_env("META_APP_ID"))
    whatsapp_access_token: SecretStr | None = Field(
        None, validation_alias=_env("WHATSAPP_ACCESS_TOKEN")
    )
    whatsapp_phone_number_id: str | None = Field(
        None, validation_alias=_env("WHATSAPP_PHONE_NUMBER_ID")
    )
    messenger_page_access_token: SecretStr | None = Field(
        None, validation_alias=_env("MESSENGER_PAGE_ACCESS_TOKEN")
    )
    instagram_access_token: SecretStr | None = Field(
        None, validation_alias=_env("INSTAGRAM_ACCESS_TOKEN")
    )
    # Our own Page and Instagram account: events for any other id are acknowledged and ignored.
    messenger_page_id: str | None = Field(None, validation_alias=_env("MESSENGER_PAGE_ID"))
    instagram_account_id: str | None = Field(None, validation_alias=_env("INSTAGRAM_ACCOUNT_ID"))
    # Signs web chat identities (data-identity-hash = HMAC-SHA256 of data-identity with it): a valid
    # signature makes the visitor's identity verified. Without it, all web chat identities are
    # claimed.
    webchat_secret: SecretStr | None = Field(None, validation_alias=_env("LEADDESK_WEBCHAT_SECRET"))
    meta_graph_url: str = Field(
        "https://graph.facebook.com/v21.0", validation_alias=_env("META_GRAPH_URL")
    )

    # Telegram copilot
    telegram_bot_token: SecretStr | None = Field(None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_webhook_url: str | None = Field(None, validation_alias=_env("TELEGRAM_WEBHOOK_URL"))
    telegram_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("TELEGRAM_WEBHOOK_SECRET")
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org", validation_alias=_env("TELEGRAM_API_URL")
    )
    # Webhook mode: where the copilot's own webhook server listens (behind your HTTPS proxy).
    telegram_webhook_listen: str = Field(
        "0.0.0.0", validation_alias=_env("TELEGRAM_WEBHOOK_LISTEN")
    )
    telegram_webhook_port: int = Field(
        8443, ge=1, le=65535, validation_alias=_env("TELEGRAM_WEBHOOK_PORT")
    )
    # The copilot's per-chat memory (a SQLite file); default: beside a SQLite DATABASE_URL, and in
    # PostgreSQL itself when DATABASE_URL is PostgreSQL.
    copilot_memory_path: Path | None = Field(None, validation_alias=_env("LEADDESK_COPILOT_MEMORY"))

    # Email to leads: smtp://user:pass@host:port (STARTTLS when the server offers it) or
    # smtps://... (TLS from the start), and the From address. Without both, sending email is off.
    smtp_url: SecretStr | None = Field(None, validation_alias=_env("LEADDESK_SMTP_URL"))
    email_from: str | None = Field(None, validation_alias=_env("LEADDESK_EMAIL_FROM"))

    # Server and workers
    # Signs console sessions and encrypts the channel credentials of workspaces stored in the
    # database (`leaddesk workspaces secret-key` makes one); at least 16 characters.
    secret_key: SecretStr | None = Field(None, validation_alias=_env("LEADDESK_SECRET_KEY"))
    # Web console sign-ins end after this many hours without a request, and after
    # LEADDESK_SESSION_MAX_HOURS whatever happens.
    session_hours: float = Field(
        12.0, gt=0, le=24 * 90, validation_alias=_env("LEADDESK_SESSION_HOURS")
    )
    session_max_hours: float = Field(
        24.0 * 7, gt=0, le=24 * 365, validation_alias=_env("LEADDESK_SESSION_MAX_HOURS")
    )
    # Mark the console cookie Secure even on plain-HTTP requests (it always is on HTTPS ones,
    # including those a --trusted-proxy says came over HTTPS).
    secure_cookies: bool = Field(False, validation_alias=_env("LEADDESK_SECURE_COOKIES"))
    worker_threads: int = Field(4, ge=1, le=64, validation_alias=_env("LEADDESK_WORKER_THREADS"))
    # `leaddesk serve`'s bot process runs at this niceness above the web process (0-19): where
    # the two share the cores, acknowledging webhooks comes first and the bot takes what is left.
    # Unset: 10 on SQLite, 0 on PostgreSQL (where the bot process waits for a lull in the webhooks
    # instead; see benchmarks/README.md).
    bot_nice: int | None = Field(None, ge=0, le=19, validation_alias=_env("LEADDESK_BOT_NICE"))
    broker_url: str | None = Field(None, validation_alias=_env("LEADDESK_BROKER_URL"))
    # The broker queue's name: deployments sharing one Redis or RabbitMQ each use their own.
    broker_queue: str = Field(
        "leaddesk",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$",
        validation_alias=_env("LEADDESK_BROKER_QUEUE"),
    )
    # With a broker: how often workers look for work it lost (messages waiting 4x this long are
    # submitted again, e.g. after a broker restart without persistence).
    sweep_seconds: float = Field(
        15.0, ge=0.2, le=3600, validation_alias=_env("LEADDESK_SWEEP_SECONDS")
    )

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{value!r} is not an ISO country code phonenumbers knows (e.g. US, GB, SA)"
            )
        return region

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value[len("postgres://") :]
        elif value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        if not value.startswith(("sqlite:", "postgresql+")):
            raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Any value still signs console sessions as before workspaces (an install keeps its key);
        # sealing channel credentials asks for 16 characters or more when it is used
        # (store.sealed says so then).
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_smtp_url(value.get_secret_value())  # a malformed URL stops the start
        return value

    @field_validator("email_from")
    @classmethod
    def _email_from(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if valid_address(value) is None:
            raise ValueError(
                "use an address such as sales@example.com or 'Sales <sales@example.com>'"
            )
        return value

    @model_validator(mode="after")
    def _email_complete(self) -> Settings:
        if self.smtp_url is not None and not self.email_from:
            raise ValueError("LEADDESK_EMAIL_FROM must be set when LEADDESK_SMTP_URL is")
        return self

    @property
    def email_configured(self) -> bool:
        return self.smtp_url is not None and bool(self.email_from)

    @property
    def secret(self) -> str | None:
        """LEADDESK_SECRET_KEY's value (None: not set), for sealing channel credentials."""
        return self.secret_key.get_secret_value() if self.secret_key is not None else None

    @property
    def llm_configured(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())


class SettingsError(Exception):
    """Raised with one readable line per bad value."""


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment; validation errors become a readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            if not error["loc"]:
                lines.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            name = _env_name(str(error["loc"][0]))
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("; ".join(lines)) from None


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return field.upper()
