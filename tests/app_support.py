"""Build the web app for a test: `make_services(...)` fills in every collaborator the test does not
hand over with a plain, real default (the prompts directory's configuration, the real clock, an
outbox that only records, a dispatcher that only remembers), and `build_app(...)` wraps it."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from bot import LocalOutbox, PromptConfig, load_prompts
from leaddesk.settings import Settings
from store.domain.takeover import human_took_over
from store.events import LocalBus, watch
from store.models import utcnow
from tests.webhooks.support import RecordingDispatcher
from webhooks import Services, create_app
from webhooks.notify import ReplyNotifier


@cache
def _prompts_of(directory: Path) -> PromptConfig:
    return load_prompts(directory)


def fixed(config: Any) -> Callable[[], Any]:
    """A `Services.prompts` that always answers `config` (no hot reload in the test)."""
    return lambda: config


def make_services(
    settings: Settings, session_factory: sessionmaker[Session], **overrides: Any
) -> Services:
    """`Services` for a test app; `overrides` replace any field by name."""
    fields = dict(overrides)
    if "prompts" not in fields:
        fields["prompts"] = fixed(_prompts_of(Path(settings.prompts_dir)))
    fields.setdefault("clock", utcnow)
    if "outbox" not in fields:
        fields["outbox"] = LocalOutbox(session_factory)
    if "dispatcher" not in fields:
        fields["dispatcher"] = RecordingDispatcher()
    if "notifier" not in fields:
        fields["notifier"] = ReplyNotifier()
    fields.setdefault("on_human_reply", human_took_over)
    if "events" not in fields:
        fields["events"] = LocalBus()
        watch(session_factory, fields["events"])
    return Services(settings=settings, session_factory=session_factory, **fields)


def build_app(
    settings: Settings, session_factory: sessionmaker[Session], **overrides: Any
) -> Flask:
    """The app on `make_services(settings, session_factory, **overrides)`."""
    return create_app(settings, make_services(settings, session_factory, **overrides))
