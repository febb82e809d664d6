"""`leaddesk worker`: a Celery worker that runs the bot on the jobs web processes publish.

Needs LEADDESK_BROKER_URL (Redis or RabbitMQ) and a database every process shares (PostgreSQL
across machines). Run as many as the load needs, on as many machines; stop with Ctrl+C or SIGTERM
(running conversations finish first).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
from typing import Any

from celery import signals
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot import PromptConfig, PromptError, load_prompts
from bot.language import candidate_languages, detector
from copilot.memory import MemoryUnavailable
from leaddesk.cli.common import UserError
from leaddesk.settings import Settings
from leaddesk.worker.celery_app import broker_label, make_celery
from leaddesk.worker.runner import WorkerProcess, register_tasks
from leaddesk.worker.setup import prepare_shared_database

log = logging.getLogger("leaddesk.worker")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a bot worker on the broker (LEADDESK_BROKER_URL)",
        description="Run a Celery worker that answers customers: it takes the jobs `leaddesk "
        "serve` publishes on LEADDESK_BROKER_URL and runs the bot on the shared DATABASE_URL. "
        "Start one or more per machine; see README, Scaling out.",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help="conversations processed at once by this worker (default: the number of CPUs)",
    )
    parser.add_argument(
        "--pool",
        choices=("prefork", "threads", "solo"),
        default="prefork",
        help="prefork: one process per slot (default; uses every core); threads: one process",
    )
    parser.add_argument("--name", default=None, help="worker name (default: leaddesk@HOST-PID)")
    parser.set_defaults(func=run_worker)


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("use between 1 and 256")
    return value


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        raise UserError(
            "set LEADDESK_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run workers; without a "
            "broker `leaddesk serve` runs the bot itself"
        )
    try:
        prompts = load_prompts(settings.prompts_dir)
    except PromptError as exc:
        raise UserError(f"the prompt files are invalid: {exc}") from None
    # Migrate once here, before the pool processes start (they would race each other).
    try:
        prepare_shared_database(settings)
    except OperationalError as exc:
        raise UserError(
            f"cannot open the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from None
    except MemoryUnavailable as exc:
        raise UserError(str(exc)) from None

    concurrency = args.concurrency or os.cpu_count() or 1
    _preload(prompts)
    app = make_celery(settings)
    process = WorkerProcess(settings)
    register_tasks(app, process)
    forked = args.pool == "prefork"

    # Each pool process builds its own engine, model and outbox after the fork (never inherited
    # connections); with a single-process pool the worker builds them once it is ready.
    def _process_init(**_kw: Any) -> None:
        process.current()

    def _process_shutdown(**_kw: Any) -> None:
        process.close()

    def _ready(**_kw: Any) -> None:
        if not forked:
            process.current()
        log.info(
            "worker ready: %d slot(s) (%s pool) on %s, database %s",
            concurrency,
            args.pool,
            broker_label(settings.broker_url or ""),
            _database_label(settings.database_url),
        )

    signals.worker_process_init.connect(_process_init, weak=False)
    signals.worker_process_shutdown.connect(_process_shutdown, weak=False)
    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutdown.connect(_process_shutdown, weak=False)

    worker = app.Worker(
        hostname=args.name or f"leaddesk@{socket.gethostname()}-{os.getpid()}",
        concurrency=concurrency,
        pool_cls=args.pool,
        loglevel=settings.log_level,
        queues=[settings.broker_queue],
        optimization="fair",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        quiet=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


def _preload(prompts: PromptConfig) -> None:
    """Import what every pool process needs, and load the language models of the business's
    languages, before they fork: the pool processes share those pages (the models alone are some
    200 MB, which each process would otherwise load for itself, for a second and more, before its
    first answer). Nothing is connected or built here that a process must own."""
    for name in ("langchain_openai", "langgraph.checkpoint.postgres"):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra: the pool process reports it when it needs it
            log.debug("could not preload %s", name)
    detector(candidate_languages(prompts.business.languages))


def _database_label(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
