"""The composition root of the server: from settings to a running set of collaborators.

`build_runtime(settings)` builds the engine and session factory, loads the prompts, makes the model
(None: offline engine), the reply notifier, the channel outbox, the bot, the job dispatcher, the
agents' copilot (and its Telegram bot when TELEGRAM_BOT_TOKEN is set) and the Flask app that ties
them together, and the inbox's drain (`webhooks.intake.InboxDrain`: the Meta webhooks only queue
their events, the drain ingests them as the dispatcher's job for `store.inbox.INBOX_KEY`).
`Runtime.start()` starts the workers (which pick up any stored but unprocessed messages and inbox
events) and `Runtime.stop()` shuts everything down in order.
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
from bot.policy import build_policy
from bot.reload import LivePrompts, WorkspacePrompts
from copilot import Copilot, build_graph, open_checkpointer
from copilot.telegram import BackgroundBot, build_application, webhook_options
from leaddesk.llm import make_chat_model, make_transcriber
from leaddesk.settings import Settings
from leaddesk.worker import redis_broker
from leaddesk.worker.celery_app import CeleryDispatcher, make_celery
from leaddesk.worker.dispatcher import Dispatcher, Later, ThreadDispatcher
from leaddesk.worker.locks import make_locks
from leaddesk.worker.setup import prepare_database
from leaddesk.worker.sweeper import SEND_INTERRUPTED_AFTER, Sweeper
from store import inbox as inbox_store
from store import make_engine, make_session_factory
from store.db import writer_waiting
from store.domain import tasks
from store.domain.takeover import human_took_over
from store.domain.waiting import assign_waiting_leads
from store.events import EventBus, LocalBus, RedisBus, watch
from store.inbox import INBOX_KEY
from store.messages import (
    conversation_workspace,
    conversations_with_pending,
    in_conversation_workspace,
)
from store.models import utcnow
from store.pending import mark_interrupted_sends, reading
from store.tenancy import current_workspace, in_workspace
from store.workspaces import active_workspace_ids, get_workspace
from webhooks import Services, create_app
from webhooks.app import add_health_probe
from webhooks.channels import ChannelDirectory
from webhooks.graph import MetaGraph
from webhooks.intake import InboxDrain, inbox_health
from webhooks.mail import make_email_channel
from webhooks.notify import ReplyNotifier
from webhooks.outbound import ChannelOutbox
from webhooks.ratelimit import ChatLimits

log = logging.getLogger(__name__)

# How often `leaddesk serve` (no broker) hands room freed by closed leads to leads waiting for one,
# and sweeps (`Runtime.local_sweeper`).
CATCH_UP_SECONDS = 30.0
# A conversation whose messages have waited this long (seconds) with no job queued is submitted
# again by that sweep: its job failed every retry. The workers' sweepers wait four sweeps too.
LOCAL_STALE_SECONDS = 4 * CATCH_UP_SECONDS

# In-process (no broker) the inbox is drained "acknowledge first": after DRAIN_LULL seconds without
# a webhook, or DRAIN_MAX_DELAY after the first one under sustained load. While webhooks keep
# coming (one within DRAIN_BUSY seconds) it drains for DRAIN_BUDGET seconds at a time with
# DRAIN_PAUSE between stretches (on SQLite a stretch ends sooner when a webhook waits for the
# write turn, while the inbox lags by less than DRAIN_LAG); once they stop, to the end. The bot's
# quiet window (seconds) hides the delay.
DRAIN_LULL = 0.05
DRAIN_MAX_DELAY = 0.3
DRAIN_BUSY = 0.5
DRAIN_BUDGET = 0.05
DRAIN_PAUSE = 0.25
# While the inbox's oldest waiting event is younger than this (seconds), the drain also gives way
# as soon as a webhook waits for SQLite's write turn.
DRAIN_LAG = 1.0
# Inbox events ingested per transaction (SQLite: a webhook may wait for one to commit). Messages
# from known senders in a batch are stored by one statement: fuller batches, fewer round trips.
DRAIN_BATCH = 32
SQLITE_DRAIN_BATCH = 2


def drain_gives_way(
    spent: float, *, since_webhook: float, lag: float, writer_waits: Callable[[], bool]
) -> bool:
    """Whether the in-process drain ends its stretch after a batch (`InboxDrain.drain`'s pause):
    never once webhooks stopped coming (DRAIN_BUSY), after DRAIN_BUDGET seconds of draining while
    they come, and sooner when a webhook waits for SQLite's write turn (`writer_waits`), which
    the drain's next transaction would hold up, while the inbox lags by less than DRAIN_LAG (`lag`:
    how long the last batch's oldest event had waited): a longer stream still has its stretches
    drained, and a lag under a second is within the shipped quiet window (2.5 s), which the
    bot waits out from a message's arrival anyway."""
    if since_webhook >= DRAIN_BUSY:
        return False
    if spent >= DRAIN_BUDGET:
        return True
    return lag < DRAIN_LAG and writer_waits()


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    # Each workspace's prompts; called, the configuration of the workspace in force.
    prompts: WorkspacePrompts
    model: BaseChatModel | None
    notifier: ReplyNotifier
    outbox: ChannelOutbox
    bot: BotService
    dispatcher: Dispatcher
    app: Flask
    copilot: Copilot
    inbox: InboxDrain
    telegram: BackgroundBot | None = None  # when TELEGRAM_BOT_TOKEN is set
    clock: Callable[[], datetime] = utcnow
    # False in the web process of `leaddesk serve` when the bot runs in its own process
    # (`leaddesk.worker.local`): that process drains, answers, resends and catches up.
    bot_here: bool = True
    # True in that bot process: the web process sends agents' replies too, so a send claimed a
    # moment ago may be in flight there, not interrupted.
    sends_elsewhere: bool = False
    _closers: ExitStack = field(default_factory=ExitStack)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start the workers; replies recorded but never sent by an earlier run go out in the
        background."""
        self.prompts.start()  # watch prompts/ for saved changes
        if not self.bot_here:
            # Before the bot process starts: a send still claimed now was cut off by a crash.
            with self.session_factory.begin() as session:
                mark_interrupted_sends(utcnow(), session=session, every_workspace=True)
        self.dispatcher.start()
        if self.telegram is not None:
            self.telegram.start()
        if not self.bot_here:
            return
        thread = threading.Thread(target=self._resend, name="leaddesk-resend", daemon=True)
        self._threads.append(thread)
        thread.start()
        if not self.settings.broker_url:
            catch_up = threading.Thread(
                target=self._catch_up, name="leaddesk-catch-up", daemon=True
            )
            self._threads.append(catch_up)
            catch_up.start()

    def active_workspaces(self) -> list[int]:
        """The workspaces whose background work runs (store.workspaces.active_workspace_ids)."""
        with self.session_factory() as session:
            return active_workspace_ids(session=session)

    def assign_waiting_leads(self, session: Session, now: datetime) -> list[int]:
        """Give the workspace in force's leads waiting for an agent to agents with room
        (store.domain.waiting), by that workspace's rules."""
        policy = build_policy(self.prompts(), takeover_fallback=self.settings.takeover_minutes)
        return assign_waiting_leads(session=session, policy=policy, now=now)

    def send_task_reminders(self, session: Session, now: datetime) -> tasks.ReminderReport:
        """Remind agents of the workspace in force's tasks falling due and, at its opening, of
        their overdue ones (store.domain.tasks; each reminder is claimed in the database, so
        once), in that workspace's time zone and hours."""
        business = self.prompts().business
        return tasks.send_reminders(
            session=session, now=now, zone=business.hours.zone, hours=business.hours
        )

    def catch_up(self, session: Session, now: datetime) -> None:
        """The periodic work of the workspace in force: waiting leads to agents with room, then
        the task reminders. The sweeper runs it in each active workspace: the workers' sweepers
        with a broker, `local_sweeper` without one. Each step has a savepoint of its own, so one
        that fails (and is logged) holds back neither the other nor the next round."""
        for step, what in (
            (self.assign_waiting_leads, "assign the leads waiting for an agent"),
            (self.send_task_reminders, "send the task reminders"),
        ):
            try:
                with session.begin_nested():
                    step(session, now)
            except Exception:  # the next round tries again
                log.exception("could not %s (workspace %s)", what, current_workspace())

    def _catch_up(self) -> None:
        # Without a broker there are no workers' sweepers: here, every CATCH_UP_SECONDS, room
        # freed by closed or reassigned leads is handed to waiting leads, due tasks remind their
        # agents, and work the dispatcher gave up on comes round again.
        sweeper = self.local_sweeper()
        while not self._stopping.wait(CATCH_UP_SECONDS):
            try:
                sweeper.sweep()
            except Exception:  # the next round tries again
                log.exception("the sweep failed")

    def local_sweeper(self) -> Sweeper:
        """The sweeper of a `leaddesk serve` without a broker, which `_catch_up` runs. The
        dispatcher retries a failed job four times, then gives up; the sweeper submits such a
        conversation again once its messages have waited LOCAL_STALE_SECONDS and no job is
        queued. It also drains an inbox whose job was lost, marks sends a crash cut off and runs
        `catch_up` in each active workspace."""
        return Sweeper(
            session_factory=self.session_factory,
            locks=make_locks(self.engine),
            submit=self.dispatcher.resubmit,
            backlog=self.dispatcher.backlog,
            stale_after=timedelta(seconds=LOCAL_STALE_SECONDS),
            clock=self.clock,
            catch_up=self.catch_up,
        )

    def _resend(self) -> None:
        try:
            # Without a broker this is the only process that sends: a send still claimed at start
            # was cut off by a crash. With workers elsewhere, only sends claimed long ago are.
            claimed_before = utcnow() - (
                SEND_INTERRUPTED_AFTER
                if self.settings.broker_url or self.sends_elsewhere
                else timedelta(0)
            )
            with self.session_factory.begin() as session:
                mark_interrupted_sends(claimed_before, session=session, every_workspace=True)
            if not self.settings.broker_url:
                # With a broker the workers deliver leftovers, in order, under the conversation's
                # lock (their sweeper finds them); N web processes racing them would not keep order.
                for workspace_id in self.active_workspaces():
                    with in_workspace(workspace_id):
                        self.outbox.resend_pending()
        except Exception:  # a failed catch-up must not take the server down
            log.exception("could not deliver the replies left pending by an earlier run")

    def stop(self, timeout: float = 10.0) -> None:
        """Release long polls, let running jobs finish, close connections."""
        self._stopping.set()
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
    events: EventBus | None = None,
    notifier: ReplyNotifier | None = None,
    dispatcher: Dispatcher | None = None,
    sends_elsewhere: bool = False,
) -> Runtime:
    """Assemble the server. Raises `bot.PromptError` for invalid prompt files and SQLAlchemy's
    OperationalError when the database cannot be reached.

    `events`, `notifier` and `dispatcher` replace the ones built here: `leaddesk serve` passes a
    `leaddesk.worker.local.BotProcess` (the bot runs in a child process; the runtime then neither
    drains nor answers) and, in that child, buses that relay to the web process."""
    clock = clock or utcnow
    # The prompts in force, per workspace; a saved change that validates replaces them while the
    # server runs. The first workspace's load now (invalid ones stop the start), others' when
    # first needed (their directories are named by their slugs, read once the store is open).
    prompts = WorkspacePrompts(
        settings.prompts_dir,
        poll_seconds=settings.prompts_poll_seconds,
        slug_of=lambda workspace_id: workspace_slug(session_factory, workspace_id),
    )
    # make_engine queues a SQLite file's writers (store.db.queue_sqlite_writers).
    engine = engine or make_engine(settings.database_url)
    # Before this process opens any other transaction: on PostgreSQL the schema and the copilot's
    # memory are set up under the set-up lock, one process at a time (SQLite's memory is a file of
    # its own, set up when the copilot opens it).
    prepare_database(engine, settings, memory=engine.dialect.name == "postgresql")
    session_factory = make_session_factory(engine)
    events = events if events is not None else make_event_bus(settings)
    watch(session_factory, events)
    model = model if model is not None else make_chat_model(settings)
    notifier = notifier if notifier is not None else ReplyNotifier()
    # Which workspace each channel account belongs to, and each workspace's tokens.
    channels = ChannelDirectory(session_factory, settings)
    outbox = ChannelOutbox(
        session_factory=session_factory,
        settings=settings,
        notifier=notifier,
        clock=clock,
        email=make_email_channel(settings),
        channels=channels,
    )
    graph = MetaGraph(settings, channels=channels)
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
            # Every workspace's: each job enters its conversation's workspace.
            waiting = conversations_with_pending(session=session, every_workspace=True)
            # Events queued by an earlier run: drained first, then their conversations answered.
            if inbox_store.has_work(session=session):
                waiting.insert(0, INBOX_KEY)
            return waiting

    def answer(conversation_id: int) -> Any:
        if conversation_id == INBOX_KEY:
            # In-process, webhooks come first: drain in short stretches while they keep coming.
            report = inbox.drain(
                pause=give_way if isinstance(dispatcher, ThreadDispatcher) else None
            )
            return Later(DRAIN_PAUSE) if report.more else None
        # A burst still being typed waits for its quiet window (its workspace's); it is answered
        # once, as a whole (its later messages may still be in the inbox). The conversation's
        # workspace and its burst's span come in one read.
        with reading(session_factory) as session:
            found = conversation_workspace(conversation_id, session=session)
            workspace_id = found if found is not None else current_workspace()
            with in_workspace(workspace_id):
                due = bot.seconds_until_due(conversation_id, session=session)
        wait = max(due, inbox.settling())
        if wait > 0:
            return Later(wait)
        with in_conversation_workspace(
            conversation_id, session_factory=session_factory, known=workspace_id
        ):
            return bot.process_conversation(conversation_id)

    def give_way(spent: float) -> bool:
        assert isinstance(dispatcher, ThreadDispatcher)
        return drain_gives_way(
            spent,
            since_webhook=dispatcher.seconds_since_submit(INBOX_KEY),
            lag=inbox.lag,
            writer_waits=lambda: writer_waiting(engine),
        )

    bot_here = dispatcher is None
    dispatcher = (
        dispatcher if dispatcher is not None else make_dispatcher(settings, answer, pending)
    )

    def on_human_reply(lead: Any, *, session: Session, now: datetime, minutes: int) -> None:
        # The business file may set its own takeover window; the bot knows which one applies.
        human_took_over(lead, session=session, now=now, minutes=bot.takeover_minutes)

    inbox = InboxDrain(
        session_factory=session_factory,
        region=settings.default_region,
        takeover_minutes=settings.takeover_minutes,
        clock=clock,
        submit=dispatcher.submit,
        on_human_reply=on_human_reply,
        # With a broker, drains run in several worker processes: one at a time, so that messages
        # are stored in the order they arrived (side by side, a later batch could commit first).
        hold=make_locks(engine).hold if settings.broker_url else None,
        # On SQLite a drain's transaction holds the database's one write lock, which webhooks
        # wait for: short transactions keep their wait short.
        batch_size=SQLITE_DRAIN_BATCH if engine.dialect.name == "sqlite" else DRAIN_BATCH,
    )

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
        prompts_health=prompts.current_health,
        channels=channels,
    )
    app = create_app(settings, services)
    add_health_probe(app, "workers", dispatcher.health)
    add_health_probe(app, "prompts", prompts.health)
    add_health_probe(app, "inbox", inbox_health(session_factory, clock))
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
        inbox=inbox,
        telegram=telegram,
        clock=clock,
        bot_here=bot_here,
        sends_elsewhere=sends_elsewhere,
        _closers=closers,
    )


def workspace_slug(session_factory: sessionmaker[Session], workspace_id: int) -> str | None:
    """The slug of workspace `workspace_id` (its prompts' directory), None when there is none."""
    with session_factory() as session:
        workspace = get_workspace(workspace_id, session=session)
        return workspace.slug if workspace is not None else None


def make_event_bus(settings: Settings) -> EventBus:
    """The live events' stream: shared through Redis when the broker is Redis (web and worker
    processes all see every event), else this process's own."""
    if settings.broker_url and redis_broker.is_redis(settings.broker_url):
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
        email_from=settings.email_from if settings.email_configured else None,
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
    return ThreadDispatcher(
        handler,
        threads=settings.worker_threads,
        pending=pending,
        deferred={INBOX_KEY: (DRAIN_LULL, DRAIN_MAX_DELAY)},
    )
