"""`leaddesk copilot`: run the sales agents' copilot as a Telegram bot (long polling, or a webhook
when TELEGRAM_WEBHOOK_URL is set). Also the one place that assembles the copilot from settings."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram.error import InvalidToken, NetworkError

from bot import PromptError, load_prompts
from copilot import Copilot, build_graph, open_checkpointer
from copilot.memory import MemoryUnavailable
from copilot.telegram import build_application, serve_forever
from leaddesk.cli.common import UserError, open_store
from leaddesk.llm import engine_name, make_chat_model
from leaddesk.settings import Settings
from webhooks.mail import make_email_channel
from webhooks.outbound import ChannelOutbox


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "copilot",
        help="run the agents' copilot in Telegram",
        description="Run the sales agents' copilot as a Telegram bot: long polling by default, a "
        "webhook (with Telegram's secret-token check) when TELEGRAM_WEBHOOK_URL is set. Agents "
        "link their Telegram account by sending /start CODE; `leaddesk agents link NAME` prints a "
        "code.",
    )
    parser.set_defaults(func=run_copilot)


@contextmanager
def open_copilot(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    outbox: Any = None,
    model: Any = None,
) -> Iterator[Any]:
    """The copilot service (graph, memory, model, outbox) for as long as the block runs."""
    try:
        prompts = load_prompts(settings.prompts_dir)
    except PromptError as exc:
        raise UserError(f"the prompt files are invalid: {exc}") from None
    try:
        with open_checkpointer(
            settings.database_url, memory_file=settings.copilot_memory_path
        ) as memory:
            graph = build_graph(
                session_factory=session_factory,
                prompts=prompts,
                checkpointer=memory,
                model=model if model is not None else make_chat_model(settings),
                outbox=outbox,
                region=settings.default_region,
                takeover_minutes=settings.takeover_minutes,
                email_from=settings.email_from if settings.email_configured else None,
            )
            yield Copilot(graph)
    except MemoryUnavailable as exc:
        raise UserError(str(exc)) from None


def run_copilot(args: argparse.Namespace, settings: Settings) -> int:
    if (
        settings.telegram_bot_token is None
        or not settings.telegram_bot_token.get_secret_value().strip()
    ):
        raise UserError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token in "
            "TELEGRAM_BOT_TOKEN"
        )

    with open_store(settings) as session_factory:
        outbox = _channel_outbox(settings, session_factory)
        try:
            with open_copilot(settings, session_factory, outbox=outbox) as copilot:
                application = build_application(
                    settings=settings, copilot=copilot, session_factory=session_factory
                )
                mode = (
                    "webhook " + str(settings.telegram_webhook_url)
                    if settings.telegram_webhook_url
                    else "polling"
                )
                print(
                    f"copilot running in Telegram ({mode}; {engine_name(settings)}); "
                    "Ctrl+C stops it"
                )
                try:
                    serve_forever(application, settings)
                except InvalidToken:
                    raise UserError(
                        "Telegram refused TELEGRAM_BOT_TOKEN; check the token with @BotFather"
                    ) from None
                except NetworkError as exc:
                    raise UserError(
                        f"cannot reach Telegram at {settings.telegram_api_url}: {exc}"
                    ) from None
        finally:
            if outbox is not None and hasattr(outbox, "close"):
                outbox.close()
    return 0


def _channel_outbox(settings: Settings, session_factory: sessionmaker[Session]) -> Any | None:
    """Agents' replies to customers go out through the channels' outbox (the Graph API, web
    chat)."""
    return ChannelOutbox(
        session_factory=session_factory, settings=settings, email=make_email_channel(settings)
    )
