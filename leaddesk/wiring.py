"""The composition root of the server: from settings to a running set of collaborators.

`build_runtime(settings)` builds the engine and session factory, loads the prompts, makes the model
(None: offline engine), the reply notifier, the channel outbox, the bot, the job dispatcher, the
agents' copilot (and its Telegram bot when TELEGRAM_BOT_TOKEN is set) and the Flask app that ties
them together. `Runtime.start()` starts the workers (which pick up any stored
but unprocessed messages) and `Runtime.stop()` shuts everything down in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from langchain_core.language_models import BaseChatModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService
from bot.reload import LivePrompts, PromptStore
from copilot import Copilot, build_graph, open_checkpointer
from copilot.telegram import BackgroundBot, build_application, webhook_options
from leaddesk.llm import make_chat_model, make_transcriber
from leaddesk.settings import Settings
from leaddesk.worker.celery_app import CeleryDispatcher, make_celery
from leaddesk.worker.dispatcher import Dispatcher, Later, ThreadDispatcher
from leaddesk.worker.setup import prepare_database
from leaddesk.worker.sweeper import SEND_INTERRUPTED_AFTER
from store import make_engine, make_session_factory
from store.domain.takeover import human_took_over
from store.events import EventBus, LocalBus, RedisBus, watch
from store.messages import conversations_with_pending
from store.models import utcnow
from store.pending import mark_interrupted_sends
from webhooks import Services, create_app
from webhooks.app import add_health_probe
from webhooks.graph import MetaGraph
from webhooks.notify import ReplyNotifier
from webhooks.outbound import ChannelOutbox
from webhooks.ratelimit import ChatLimits

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    prompts: PromptStore
    model: BaseChatModel | None
    notifier: ReplyNotifier
    outbox: ChannelOutbox
    bot: BotService
    dispatcher: Dispatcher
    app: Flask
    copilot: Copilot
    telegram: BackgroundBot | None = None  # when TELEGRAM_BOT_TOKEN is set
    _closers: ExitStack = field(default_factory=ExitStack)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the workers; replies recorded but never sent by an earlier run go out in the
        background."""
        self.prompts.start()  # watch prompts/ for saved changes
        self.dispatcher.start()
        if self.telegram is not None:
            self.telegram.start()
        thread = threading.Thread(target=self._resend, name="leaddesk-resend", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _resend(self) -> None:
        try:
            # Without a broker this is the only process that sends: a send still claimed at start
            # was cut off by a crash. With workers elsewhere, only sends claimed long ago are.
            claimed_before = utcnow() - (
                SEND_INTERRUPTED_AFTER if self.settings.broker_url else timedelta(0)
            )
            with self.session_factory.begin() as session:
                mark_interrupted_sends(claimed_before, session=session)
            if not self.settings.broker_url:
                # With a broker the workers deliver leftovers, in order, under the conversation's
                # lock (their sweeper finds them); N web processes racing them would not keep order.
                self.outbox.resend_pending()
        except Exception:  # a failed catch-up must not take the server down
            log.exception("could not deliver the replies left pending by an earlier run")

    def stop(self, timeout: float = 10.0) -> None:
        """Release long polls, let running jobs finish, close connections."""
        self.notifier.close()
        self.prompts.stop()
        if self.telegram is not None:
            self.telegram.stop()
        self.dispatcher.stop(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.outbox.close()
        self._closers.close()
        self.engine.dispose()


def build_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    model: BaseChatModel | None = None,
    chat_limits: ChatLimits | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Runtime:
    """Assemble the server. Raises `bot.PromptError` for invalid prompt files and SQLAlchemy's
    OperationalError when the database cannot be reached."""
    clock = clock or utcnow
    # The prompts in force; a saved change that validates replaces them while the server runs.
    prompts = PromptStore(settings.prompts_dir, poll_seconds=settings.prompts_poll_seconds)
    # make_engine queues a SQLite file's writers (store.db.queue_sqlite_writers).
    engine = engine or make_engine(settings.database_url)
    # Before this process opens any other transaction: on PostgreSQL the schema and the copilot's
    # memory are set up under the set-up lock, one process at a time (SQLite's memory is a file of
    # its own, set up when the copilot opens it).
    prepare_database(engine, settings, memory=engine.dialect.name == "postgresql")
    session_factory = make_session_factory(engine)
    events = make_event_bus(settings)
    watch(session_factory, events)
    model = model if model is not None else make_chat_model(settings)
    notifier = ReplyNotifier()
    outbox = ChannelOutbox(
        session_factory=session_factory, settings=settings, notifier=notifier, clock=clock
    )
    graph = MetaGraph(settings)
    bot = BotService(
        session_factory=session_factory,
        prompts=prompts,
        model=model,
        outbox=outbox,
        clock=clock,
        region=settings.default_region,
        takeover_minutes=settings.takeover_minutes,
        transcribe=make_transcriber(settings, graph.media),
        profile_name=graph.profile_name,
    )

    def pending() -> list[int]:
        with session_factory() as session:
            return conversations_with_pending(session=session)

    def answer(conversation_id: int) -> Any:
        # A burst still being typed waits for its quiet window; it is answered once, as a whole.
        wait = bot.seconds_until_due(conversation_id)
        if wait > 0:
            return Later(wait)
        return bot.process_conversation(conversation_id)

    dispatcher = make_dispatcher(settings, answer, pending)

    def on_human_reply(lead: Any, *, session: Session, now: datetime, minutes: int) -> None:
        # The business file may set its own takeover window; the bot knows which one applies.
        human_took_over(lead, session=session, now=now, minutes=bot.takeover_minutes)

    closers = ExitStack()
    closers.callback(graph.close)
    copilot, telegram = build_copilot(
        settings,
        closers,
        session_factory=session_factory,
        prompts=prompts.live(),
        model=model,
        outbox=outbox,
        clock=clock,
    )
    services = Services(
        settings=settings,
        session_factory=session_factory,
        prompts=prompts,
        clock=clock,
        outbox=outbox,
        dispatcher=dispatcher,
        notifier=notifier,
        on_human_reply=on_human_reply,
        chat_limits=chat_limits or ChatLimits(),
        copilot=copilot,
        events=events,
        prompts_health=prompts.health,
    )
    app = create_app(settings, services)
    add_health_probe(app, "workers", dispatcher.health)
    add_health_probe(app, "prompts", prompts.health)
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        prompts=prompts,
        model=model,
        notifier=notifier,
        outbox=outbox,
        bot=bot,
        dispatcher=dispatcher,
        app=app,
        copilot=copilot,
        telegram=telegram,
        _closers=closers,
    )


def make_event_bus(settings: Settings) -> EventBus:
    """The live events' stream: shared through Redis when the broker is Redis (web and worker
    processes all see every event), else this process's own."""
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisBus(settings.broker_url)
    return LocalBus()


def build_copilot(
    settings: Settings,
    closers: ExitStack,
    *,
    session_factory: sessionmaker[Session],
    prompts: LivePrompts,
    model: BaseChatModel | None,
    outbox: ChannelOutbox,
    clock: Callable[[], datetime],
) -> tuple[Copilot, BackgroundBot | None]:
    """The agents' copilot (for POST /api/copilot) and, with TELEGRAM_BOT_TOKEN, its Telegram bot.
    Its memory (a checkpointer) stays open until `closers` closes."""
    memory = closers.enter_context(
        open_checkpointer(settings.database_url, memory_file=settings.copilot_memory_path)
    )
    graph = build_graph(
        session_factory=session_factory,
        prompts=prompts,
        checkpointer=memory,
        model=model,
        outbox=outbox,
        clock=clock,
        region=settings.default_region,
        takeover_minutes=settings.takeover_minutes,
    )
    copilot = Copilot(graph)
    token = (
        settings.telegram_bot_token.get_secret_value().strip()
        if settings.telegram_bot_token
        else ""
    )
    if not token:
        return copilot, None
    application = build_application(
        settings=settings, copilot=copilot, session_factory=session_factory, clock=clock
    )
    webhook = webhook_options(settings) if settings.telegram_webhook_url else None
    return copilot, BackgroundBot(application, webhook=webhook)


def make_dispatcher(
    settings: Settings, handler: Callable[[int], Any], pending: Callable[[], list[int]]
) -> Dispatcher:
    """The job dispatcher: in-process worker threads (LEADDESK_WORKER_THREADS of them), or with
    LEADDESK_BROKER_URL set, Celery tasks that `leaddesk worker` processes run."""
    if settings.broker_url:
        return CeleryDispatcher(make_celery(settings))
    return ThreadDispatcher(handler, threads=settings.worker_threads, pending=pending)
