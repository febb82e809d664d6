"""Build the web app for a test: `make_services(...)` fills in every collaborator the test does not
hand over with a plain, real default (the prompts directory's configuration, the real clock, an
outbox that only records, a dispatcher that only remembers), and `build_app(...)` wraps it.

The Meta webhooks queue their events in the inbox and publish `INBOX_KEY`; a test app drains the
inbox at once, inside the request (`DrainingDispatcher`), so a test sees the messages stored when
the 200 comes back, and its dispatcher sees the conversations the drain submits."""

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
from store.inbox import INBOX_KEY
from store.models import utcnow
from tests.webhooks.support import RecordingDispatcher
from webhooks import Services, create_app
from webhooks.app import JobQueue
from webhooks.intake import InboxDrain
from webhooks.notify import ReplyNotifier


@cache
def _prompts_of(directory: Path) -> PromptConfig:
    return load_prompts(directory)


def fixed(config: Any) -> Callable[[], Any]:
    """A `Services.prompts` that always answers `config` (no hot reload in the test)."""
    return lambda: config


class DrainingDispatcher:
    """The test's dispatcher, except that "the inbox has work" drains the inbox at once."""

    def __init__(self, inner: JobQueue, drain: InboxDrain) -> None:
        self.inner = inner
        self.drain = drain

    def submit(self, conversation_id: int) -> None:
        if conversation_id == INBOX_KEY:
            self.drain.drain()
        else:
            self.inner.submit(conversation_id)


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
    inner = fields["dispatcher"]
    fields["dispatcher"] = DrainingDispatcher(
        inner,
        InboxDrain(
            session_factory=session_factory,
            region=settings.default_region,
            takeover_minutes=settings.takeover_minutes,
            clock=fields["clock"],
            submit=inner.submit,
            on_human_reply=fields["on_human_reply"],
        ),
    )
    return Services(settings=settings, session_factory=session_factory, **fields)


def build_app(
    settings: Settings, session_factory: sessionmaker[Session], **overrides: Any
) -> Flask:
    """The app on `make_services(settings, session_factory, **overrides)`."""
    return create_app(settings, make_services(settings, session_factory, **overrides))
