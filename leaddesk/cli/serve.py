"""`leaddesk serve`: the web server (webhooks, web chat, REST API) and the bot's worker pool.

Runs under waitress (a production WSGI server), applies pending migrations, loads the prompts,
starts the in-process workers (which pick up messages stored but never answered) and stops cleanly
on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from waitress.server import create_server

from bot import PromptError
from leaddesk import __version__
from leaddesk.cli.common import UserError
from leaddesk.cli.webprocs import (
    child_python,
    exit_with_supervisor,
    inherited_socket,
    run_web_processes,
)
from leaddesk.llm import engine_name
from leaddesk.settings import Settings
from leaddesk.wiring import build_runtime
from leaddesk.worker.celery_app import broker_label
from leaddesk.worker.local import BotProcess, RelayBus, RelayNotifier, serve_bot_process
from store.events import LocalBus
from webhooks.notify import ReplyNotifier
from webhooks.outbound import channel_statuses
from webhooks.ratelimit import ChatLimits

log = logging.getLogger("leaddesk.serve")
# How long shutting down waits for the HTTP threads to finish the requests in hand.
SHUTDOWN_SECONDS = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the server: webhooks, web chat, REST API and the bot's workers",
        description="Run Leaddesk's web server (WhatsApp, Messenger and Instagram webhooks, the "
        "web chat widget and API, the REST API) with the bot's worker pool. Open "
        "http://HOST:PORT/ for a demo chat.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (default: 8000; 0 picks one)"
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=16,
        help="HTTP threads; web chat long polls hold one each (default: 16)",
    )
    parser.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        default=None,
        help="a reverse proxy whose X-Forwarded-For/-Proto headers are trusted",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="web processes sharing the port (default: 1); more than one needs "
        "LEADDESK_BROKER_URL, the bot then runs in `leaddesk worker` processes",
    )
    # Internal: a web process started by `--workers N` serves the socket its supervisor opened.
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--web-index", type=int, default=1, help=argparse.SUPPRESS)
    # Internal: the bot's process of a single `leaddesk serve` without a broker, talking to its web
    # process over the socket FD (leaddesk.worker.local).
    parser.add_argument("--bot-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run_serve)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535")
    return value


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("use between 1 and 64 web processes")
    return value


def _threads(text: str) -> int:
    value = int(text)
    if not 2 <= value <= 512:
        raise argparse.ArgumentTypeError("use between 2 and 512 threads")
    return value


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.bot_fd is not None:
        return _run_bot_process(args.bot_fd, settings)
    if args.workers > 1 and args.listen_fd is None:
        return run_web_processes(args, settings, summary=_summary)
    if args.web_index > 1:
        # One Telegram bot per token: only the first web process runs the copilot's bot.
        settings = settings.model_copy(update={"telegram_bot_token": None})

    # Long polls may use most threads, never all: the rest stay free for webhooks and the API.
    limits = ChatLimits(max_waiters=max(1, args.threads - 4))
    extra: dict[str, Any] = {}
    if not settings.broker_url:
        # The bot and the inbox's drain run in a child process this one supervises: the HTTP
        # threads only verify, parse, store and answer.
        events, notifier = LocalBus(), ReplyNotifier()
        extra = {
            "events": events,
            "notifier": notifier,
            "dispatcher": BotProcess([*child_python(), "serve"], events=events, notifier=notifier),
        }
    try:
        runtime = build_runtime(settings, chat_limits=limits, **extra)
    except PromptError as exc:
        raise UserError(f"the prompt files are invalid: {exc}") from None
    except OperationalError as exc:
        raise UserError(
            f"cannot open the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from None

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "threads": args.threads,
        "ident": "leaddesk",
    }
    if args.listen_fd is not None:
        exit_with_supervisor()
        options.pop("host")
        options.pop("port")
        options["sockets"] = [inherited_socket(args.listen_fd)]
    if args.trusted_proxy:
        options.update(
            trusted_proxy=args.trusted_proxy,
            trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
            clear_untrusted_proxy_headers=True,
        )
    try:
        server = create_server(runtime.app, **options)
    except OSError as exc:
        runtime.stop()
        raise UserError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None

    if args.listen_fd is None:
        _summary(settings, runtime, args.threads)

    def _terminate(signum: int, _frame: Any) -> None:
        # Release long polls first, so that the HTTP threads can finish promptly.
        runtime.notifier.close()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        runtime.start()
        # One address, so one BaseWSGIServer: it sets effective_host and effective_port in its
        # __init__, which the waitress stubs do not declare.
        host, port = server.effective_host, server.effective_port  # type: ignore[union-attr]
        if args.listen_fd is None:
            log.info(
                "listening on http://%s:%s (demo chat at /, health at /healthz); Ctrl+C stops",
                host,
                port,
            )
        else:
            log.info("web process %d serving http://%s:%s", os.getpid(), host, port)
        server.run()
    finally:
        log.info("shutting down: finishing the replies in progress")
        runtime.notifier.close()
        # Let the HTTP threads finish what they are answering (live streams end within a second
        # of the notifier closing) before the server closes the channel they write through.
        with contextlib.suppress(Exception):
            server.task_dispatcher.shutdown(timeout=SHUTDOWN_SECONDS)
        with contextlib.suppress(Exception):  # already closed by waitress on interrupt
            server.close()
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return 0


# The bot process's niceness on SQLite unless LEADDESK_BOT_NICE says otherwise.
SQLITE_BOT_NICE = 10


def _run_bot_process(fd: int, settings: Settings) -> int:
    # The web process runs the copilot's Telegram bot; this one only answers customers.
    settings = settings.model_copy(update={"telegram_bot_token": None})

    def build(events: RelayBus, notifier: RelayNotifier) -> Any:
        return build_runtime(settings, events=events, notifier=notifier, sends_elsewhere=True)

    # Acknowledge first across processes: on PostgreSQL the bot's runs wait for a lull in the
    # webhooks. On SQLite the benchmark measured holding them back as worse (the two processes
    # share one write lock, which the held-back work then takes in bursts while webhooks wait);
    # there the bot process runs at a lower CPU priority instead, measured as better (1.5-3x the
    # acknowledgements of the same server without it; no gain on PostgreSQL).
    sqlite = settings.database_url.startswith("sqlite")
    nice = settings.bot_nice
    if nice is None:
        nice = SQLITE_BOT_NICE if sqlite else 0
    if nice:
        _lower_priority(nice)
    return serve_bot_process(fd, build, acknowledge_first=not sqlite)


def _lower_priority(increment: int) -> None:
    """`os.nice` for the whole process: on Linux a thread has a niceness of its own, and one
    started before this call (at import) would keep the web process's."""
    os.nice(increment)
    target = os.getpriority(os.PRIO_PROCESS, 0)
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return
    for task in tasks.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if os.getpriority(os.PRIO_PROCESS, int(task.name)) < target:
                os.setpriority(os.PRIO_PROCESS, int(task.name), target)


def _summary(settings: Settings, runtime: Any, http_threads: int) -> None:
    log.info("leaddesk %s", __version__)
    log.info("database: %s", runtime.engine.url.render_as_string(hide_password=True))
    log.info("engine: %s", engine_name(settings))
    if settings.prompts_poll_seconds > 0:
        log.info(
            "prompts: %s (saved changes apply within %gs; see `leaddesk prompts check`)",
            settings.prompts_dir,
            settings.prompts_poll_seconds,
        )
    else:
        log.info("prompts: %s (read at start)", settings.prompts_dir)
    for status in channel_statuses(settings):
        if status.reason:
            log.info("channel %s: %s (%s)", status.channel, status.state, status.reason)
        else:
            log.info("channel %s: %s", status.channel, status.state)
    if settings.meta_app_secret is None or not settings.meta_app_secret.get_secret_value():
        log.warning(
            "META_APP_SECRET is not set: webhook signatures are NOT checked and anyone can post "
            "events; set it before exposing this server"
        )
    if not settings.meta_app_id:
        log.warning(
            "META_APP_ID is not set: replies a person sends from the Page inbox or the Instagram "
            "app cannot be told from the bot's own, so they do not pause the bot"
        )
    if settings.broker_url:
        log.info(
            "workers: jobs go to the broker at %s for `leaddesk worker` processes; "
            "%d HTTP thread(s)",
            broker_label(settings.broker_url),
            http_threads,
        )
        return
    log.info(
        "workers: %d bot thread(s) in a process of their own, %d HTTP thread(s)",
        settings.worker_threads,
        http_threads,
    )
