"""The copilot in Telegram (python-telegram-bot v22): linking with `/start CODE`, plain-language
questions and slash commands, yes/no buttons for confirmations, and the notifications the bot's
status actions raise for an agent, delivered with buttons to open the lead or take over.

Handlers are thin: find the linked agent, hand the text to `Copilot`, send the answer. Everything
that touches the database or the graph runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    JobQueue,
    MessageHandler,
    filters,
)

from copilot.insights import quote, when
from copilot.service import Answer, Copilot, thread_id
from store.delivery import claim_notification, due_notifications, release_notification
from store.lead_lookups import last_customer_message
from store.linking import agent_by_telegram, link_telegram
from store.models import Agent, Lead, utcnow
from store.tenancy import FIRST_WORKSPACE, all_workspaces, in_workspace
from store.workspaces import active_workspace_ids, agent_workspaces, find_workspace

log = logging.getLogger(__name__)

TELEGRAM_LIMIT = 4096
CHUNK_LIMIT = 4000  # under Telegram's limit, with room for the formatting
REFUSAL = (
    "Sorry, this is the private assistant of a sales team. If you work there, ask your admin for a "
    "link code and send /start CODE."
)
WELCOME = (
    "Linked! You are {name} on Leaddesk. Ask me about your leads, or try /hot, /today or /help."
)
ALLOWED_UPDATES = ["message", "callback_query"]

# What `ApplicationBuilder().build()` makes: the default bot, context, data and job queue types.
CopilotApplication: TypeAlias = Application[
    ExtBot[None],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]


class TelegramNotConfigured(RuntimeError):
    """TELEGRAM_BOT_TOKEN is missing."""


def build_application(
    *,
    settings: Any,
    copilot: Copilot,
    session_factory: sessionmaker[Session],
    clock: Callable[[], datetime] = utcnow,
    notify_every: float | None = 15.0,
) -> CopilotApplication:
    """The Telegram Application, polling by default; `serve_forever` picks polling or the webhook.

    `notify_every` seconds between notification rounds (None: no background delivery).
    """
    if (
        settings.telegram_bot_token is None
        or not settings.telegram_bot_token.get_secret_value().strip()
    ):
        raise TelegramNotConfigured(
            "TELEGRAM_BOT_TOKEN is not set; create a bot with @BotFather and set it"
        )
    api = settings.telegram_api_url.rstrip("/")
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value().strip())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data.update(
        copilot=copilot, session_factory=session_factory, clock=clock, notify_every=notify_every
    )
    private = filters.ChatType.PRIVATE
    application.add_handler(CommandHandler("start", on_start, filters=private))
    application.add_handler(CommandHandler("workspace", on_workspace, filters=private))
    application.add_handler(MessageHandler(private & filters.TEXT, on_text))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(private & ~filters.TEXT, on_other))
    application.add_error_handler(on_error)
    return application


def webhook_options(settings: Any) -> dict[str, Any]:
    """`Updater.start_webhook` / `Application.run_webhook` arguments from the settings."""
    url = str(settings.telegram_webhook_url)
    secret = (
        settings.telegram_webhook_secret.get_secret_value()
        if settings.telegram_webhook_secret
        else secrets.token_urlsafe(32)
    )  # registered with Telegram at every start
    return {
        "listen": settings.telegram_webhook_listen,
        "port": settings.telegram_webhook_port,
        "url_path": urlparse(url).path.lstrip("/"),
        "webhook_url": url,
        "secret_token": secret,
        "allowed_updates": ALLOWED_UPDATES,
    }


def serve_forever(application: CopilotApplication, settings: Any) -> None:
    """Run until interrupted: a webhook when TELEGRAM_WEBHOOK_URL is set, long polling otherwise."""
    if settings.telegram_webhook_url:
        options = webhook_options(settings)
        log.info(
            "copilot: Telegram webhook on %s:%s/%s",
            options["listen"],
            options["port"],
            options["url_path"],
        )
        application.run_webhook(**options)
    else:
        log.info("copilot: polling Telegram for updates")
        application.run_polling(allowed_updates=ALLOWED_UPDATES)


class BackgroundBot:
    """Runs the Application in a thread of its own (for `leaddesk serve`, where the main thread
    serves HTTP): polling, or the webhook when `webhook` options are given. When Telegram cannot be
    reached it keeps retrying with back-off instead of taking the server down."""

    def __init__(
        self,
        application: CopilotApplication,
        *,
        webhook: dict[str, Any] | None = None,
        poll_timeout: float = 10.0,
        max_retry_delay: float = 60.0,
    ):
        self.application = application
        self.webhook = webhook
        self.poll_timeout = poll_timeout
        self.max_retry_delay = max_retry_delay
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="copilot-telegram", daemon=True)

    @property
    def running(self) -> bool:
        return self._ready.is_set() and self.error is None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> bool:
        """Start and wait for the first attempt; False (and logged) when it did not come up."""
        self._thread.start()
        if not self._ready.wait(timeout):
            log.warning("copilot: the Telegram bot is still starting")
            return False
        return self.error is None

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._supervise())
        finally:
            self._ready.set()

    async def _supervise(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        delay = 2.0
        while not self._stop.is_set():
            try:
                await self._serve()
                return
            except InvalidToken as exc:
                self._failed(exc)
                log.error(
                    "copilot: Telegram refused TELEGRAM_BOT_TOKEN; the Telegram copilot is off"
                )
                return
            except NetworkError as exc:
                self._failed(exc)
                log.warning("copilot: cannot reach Telegram (%s); retrying in %.0f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(self.max_retry_delay, delay * 2)
            except Exception as exc:  # the HTTP server keeps running without Telegram
                self._failed(exc)
                log.error("copilot: the Telegram bot stopped with an error", exc_info=exc)
                return

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self._ready.set()

    async def _serve(self) -> None:
        assert self._stop is not None
        app = self.application
        async with app:
            # run_polling/run_webhook would call these; here the pieces are driven one by one.
            if app.post_init is not None:
                await app.post_init(app)
            assert app.updater is not None
            if self.webhook:
                await app.updater.start_webhook(**self.webhook)
            else:
                await app.updater.start_polling(
                    poll_interval=0.0,
                    timeout=timedelta(seconds=self.poll_timeout),
                    allowed_updates=ALLOWED_UPDATES,
                )
            await app.start()
            self.error = None
            self._ready.set()
            await self._stop.wait()
            await app.updater.stop()
            await app.stop()
            if app.post_shutdown is not None:
                await app.post_shutdown(app)


# --- lifecycle -------------------------------------------------------------------------------


async def _post_init(application: CopilotApplication) -> None:
    await application.bot.set_my_commands(
        [
            ("hot", "your hot leads"),
            ("today", "today's follow-ups"),
            ("lead", "summary of a lead: /lead 42"),
            ("qualify", "BANT for a lead: /qualify 42"),
            ("note", "add a note: /note 42 text"),
            ("assign", "assign a lead: /assign 42 Mike"),
            ("workspace", "the workspace I work in: /workspace SLUG"),
            ("help", "what I can do"),
        ]
    )
    every = application.bot_data.get("notify_every")
    if every:
        application.bot_data["notifier"] = asyncio.get_running_loop().create_task(
            _notify_loop(application, float(every)), name="copilot-notifications"
        )


async def _post_shutdown(application: CopilotApplication) -> None:
    task = application.bot_data.pop("notifier", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _notify_loop(application: CopilotApplication, every: float) -> None:
    data = application.bot_data
    while True:
        try:
            await deliver_notifications(
                application.bot, session_factory=data["session_factory"], clock=data["clock"]
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # keep delivering; the next round retries
            log.exception("copilot: notification round failed")
        await asyncio.sleep(every)


# --- handlers --------------------------------------------------------------------------------


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/start CODE` links this Telegram account to the agent who holds the code."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    factory = context.bot_data["session_factory"]
    code = " ".join(context.args or []).strip()
    if code:
        name = await asyncio.to_thread(_link, factory, code, user.id)
        if name is None:
            await message.reply_text(
                "That link code is not valid (or was already used). Ask your admin for a "
                "new one: leaddesk agents link NAME."
            )
            return
        log.info("copilot: Telegram user linked to an agent")
        await message.reply_text(WELCOME.format(name=name))
        return
    agent = await asyncio.to_thread(_agent, factory, user.id)
    if agent is None:
        await message.reply_text(REFUSAL)
        return
    if agent.workspace_id is None:
        await message.reply_text(_choose_first(agent))
        return
    await _send(message, await _ask(context, agent, update, "/help"))


async def on_workspace(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/workspace` lists the agent's workspaces; `/workspace SLUG` makes the copilot work in
    that one (remembered for this agent)."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    factory = context.bot_data["session_factory"]
    agent = await asyncio.to_thread(_agent, factory, user.id)
    if agent is None:
        await message.reply_text(REFUSAL)
        return
    ref = " ".join(context.args or []).strip()
    if not ref:
        await message.reply_text(_list_workspaces(agent))
        return
    chosen = await asyncio.to_thread(_choose_workspace, factory, agent.id, ref)
    if chosen is None:
        await message.reply_text(
            f"You do not work in a workspace {ref!r}.\n\n{_list_workspaces(agent)}"
        )
        return
    await message.reply_text(f"Now working in {chosen}. Ask me about its leads.")


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None or not message.text:
        return
    agent = await asyncio.to_thread(_agent, context.bot_data["session_factory"], user.id)
    if agent is None:
        await message.reply_text(REFUSAL)
        return
    if agent.workspace_id is None:
        await message.reply_text(_choose_first(agent))
        return
    await message.chat.send_action("typing")
    await _send(message, await _ask(context, agent, update, message.text))


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    agent = await asyncio.to_thread(_agent, context.bot_data["session_factory"], user.id)
    await message.reply_text(
        REFUSAL
        if agent is None
        else "I read text only: type your question, or paste a business card as text."
    )


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirmation buttons ("c:<question>:<choice>") and notification buttons
    ("n:sum|take:<lead>", with ":<workspace>" for a workspace other than the first)."""
    query = update.callback_query
    if query is None or query.from_user is None:
        return
    agent = await asyncio.to_thread(_agent, context.bot_data["session_factory"], query.from_user.id)
    if agent is None or query.message is None or query.message.chat.type != ChatType.PRIVATE:
        await query.answer(REFUSAL[:190], show_alert=True)
        return
    data = query.data or ""
    if data.startswith("n:"):
        # A notification's buttons work in the notification's workspace, wherever the agent's
        # copilot is.
        _, action, lead_id, where = [*data.split(":", 3), "", "", ""][:4]
        named = int(where) if where.isdigit() else FIRST_WORKSPACE
        if not lead_id.isdigit() or (where and not where.isdigit()):
            return
        if named not in {w[3] for w in agent.workspaces}:
            await query.answer(REFUSAL[:190], show_alert=True)
            return
        agent = replace(agent, workspace_id=named)
    if agent.workspace_id is None:
        await query.answer(_choose_first(agent)[:190], show_alert=True)
        return
    await query.answer()
    copilot: Copilot = context.bot_data["copilot"]
    workspace_id = agent.workspace_id
    thread = _thread(agent, query.message.chat.id)
    if data.startswith("c:"):
        _, short_id, choice = [*data.split(":", 2), "", ""][:3]
        # The question is settled either way: its buttons go.
        with contextlib.suppress(BadRequest):
            await query.edit_message_reply_markup(reply_markup=None)
        answer = await asyncio.to_thread(
            _in_workspace, workspace_id, copilot.answer, agent.id, thread, choice, short_id
        )
    elif data.startswith("n:"):
        text = f"summarise lead {lead_id}" if action == "sum" else f"take over lead {lead_id}"
        answer = await asyncio.to_thread(
            _in_workspace, workspace_id, copilot.ask, agent.id, thread, text
        )
    else:
        return
    await _send(query.message, answer)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("copilot: error while handling a Telegram update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        with contextlib.suppress(TelegramError):
            await update.effective_message.reply_text(
                "Something went wrong on our side; it was logged. Please try again."
            )


async def _ask(
    context: ContextTypes.DEFAULT_TYPE, agent: _AgentRef, update: Update, text: str
) -> Answer:
    copilot: Copilot = context.bot_data["copilot"]
    chat = update.effective_chat
    assert chat is not None
    assert agent.workspace_id is not None
    return await asyncio.to_thread(
        _in_workspace, agent.workspace_id, copilot.ask, agent.id, _thread(agent, chat.id), text
    )


def _in_workspace(workspace_id: int, work: Callable[..., Answer], *args: Any) -> Answer:
    """Run the copilot in the agent's workspace: every lead it reads or changes is that one's."""
    with in_workspace(workspace_id):
        return work(*args)


def _thread(agent: _AgentRef, chat_id: int) -> str:
    """The chat's copilot thread; a workspace other than the first has threads of its own (what
    was said about one workspace's leads is not remembered in another)."""
    key: Any = (
        chat_id if agent.workspace_id == FIRST_WORKSPACE else f"w{agent.workspace_id}:{chat_id}"
    )
    return thread_id("telegram", agent.id, key)


def _list_workspaces(agent: _AgentRef) -> str:
    lines = ["Your workspaces (choose with /workspace SLUG):"]
    for slug, name, role, workspace_id in agent.workspaces:
        mark = " ← now" if workspace_id == agent.workspace_id else ""
        lines.append(f"• {slug}: {name} ({role}){mark}")
    return "\n".join(lines)


def _choose_first(agent: _AgentRef) -> str:
    return "You work in several workspaces: choose one first.\n\n" + _list_workspaces(agent)


async def _send(message: Any, answer: Answer) -> None:
    chunks = split_message(answer.reply)
    for index, chunk in enumerate(chunks):
        markup = (
            confirm_buttons(answer.pending) if index == len(chunks) - 1 and answer.pending else None
        )
        await message.reply_text(
            format_html(chunk), parse_mode=ParseMode.HTML, reply_markup=markup, do_quote=False
        )


# --- formatting ------------------------------------------------------------------------------


def format_html(text: str) -> str:
    """Escape for Telegram's HTML mode; the first line (the headline) in bold."""
    head, sep, rest = text.partition("\n")
    if not rest and len(head) > 120:
        return html.escape(text, quote=False)
    return f"<b>{html.escape(head, quote=False)}</b>{sep}{html.escape(rest, quote=False)}"


def split_message(text: str, limit: int = CHUNK_LIMIT) -> list[str]:
    """Split on line breaks so every piece stays under `limit` once escaped (a very long line is
    cut)."""
    budget = limit - len("<b></b>")
    pieces: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            pieces.append("\n".join(current))
        current, size = [], 0

    for line in (text or "").split("\n"):
        while _escaped_len(line) > budget:
            cut = _cut_point(line, budget)
            flush()
            pieces.append(line[:cut])
            line = line[cut:].lstrip()
        added = _escaped_len(line) + (1 if current else 0)
        if current and size + added > budget:
            flush()
            added = _escaped_len(line)
        current.append(line)
        size += added
    flush()
    return [piece.strip("\n") for piece in pieces if piece.strip()] or ["…"]


def _escaped_len(text: str) -> int:
    return len(html.escape(text, quote=False))


def _cut_point(line: str, budget: int) -> int:
    """The longest prefix that fits once escaped, ending at a space when one is near."""
    cut = min(len(line), budget)
    while cut > 1 and _escaped_len(line[:cut]) > budget:
        cut -= 1
    space = line.rfind(" ", cut // 2, cut)
    return space if space > 0 else cut


def confirm_buttons(pending: dict[str, Any]) -> InlineKeyboardMarkup:
    """One button per option; the callback names the question so a stale button is recognised."""
    short = str(pending.get("id", ""))[:8]
    buttons = []
    for option in pending.get("options", []):
        data = f"c:{short}:{option['value']}"[:64]
        buttons.append(InlineKeyboardButton(str(option["label"])[:60], callback_data=data))
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return InlineKeyboardMarkup(rows)


# --- notifications ---------------------------------------------------------------------------


@dataclass
class _AgentRef:
    id: int
    name: str
    # The workspace the copilot works in for them (None: they have several and chose none).
    workspace_id: int | None = FIRST_WORKSPACE
    # Their workspaces: (slug, name, role, id).
    workspaces: list[tuple[str, str, str, int]] = field(default_factory=list)


@dataclass
class _Due:
    notification_id: int
    chat_id: int
    text: str
    lead_id: int | None
    workspace_id: int = FIRST_WORKSPACE


async def deliver_notifications(
    bot: Any,
    *,
    session_factory: sessionmaker[Session],
    clock: Callable[[], datetime] = utcnow,
    limit: int = 50,
) -> int:
    """Send due, undelivered notifications to linked agents; returns how many were delivered.

    Each one is claimed (delivered_at set) before sending so that two copilot processes never send
    it twice; a transient failure releases it for the next round.
    """
    due = await asyncio.to_thread(_due, session_factory, clock(), limit)
    sent = 0
    for item in due:
        if not await asyncio.to_thread(
            _claim, session_factory, item.notification_id, clock(), item.workspace_id
        ):
            continue
        markup = None
        if item.lead_id is not None:
            # The buttons name the lead's workspace (other than the first): pressed, they work
            # there whichever workspace the agent's copilot is in.
            where = "" if item.workspace_id == FIRST_WORKSPACE else f":{item.workspace_id}"
            markup = InlineKeyboardMarkup(
                [
                    [
                        InlineKeyboardButton(
                            "Open summary", callback_data=f"n:sum:{item.lead_id}{where}"
                        ),
                        InlineKeyboardButton(
                            "Take over", callback_data=f"n:take:{item.lead_id}{where}"
                        ),
                    ]
                ]
            )
        try:
            await bot.send_message(
                chat_id=item.chat_id,
                text=format_html(split_message(item.text)[0]),
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
        except (Forbidden, BadRequest) as exc:
            # The agent blocked the bot or the chat is gone: retrying would not help.
            log.warning(
                "copilot: notification %s not deliverable (%s)",
                item.notification_id,
                type(exc).__name__,
            )
            continue
        except TelegramError as exc:
            log.warning(
                "copilot: notification %s failed (%s); will retry",
                item.notification_id,
                type(exc).__name__,
            )
            await asyncio.to_thread(
                _release, session_factory, item.notification_id, item.workspace_id
            )
            continue
        sent += 1
    if sent:
        log.info("copilot: delivered %d notification(s)", sent)
    return sent


def _due(session_factory: sessionmaker[Session], now: datetime, limit: int) -> list[_Due]:
    """The due notifications of every active workspace (each read in its own)."""
    with session_factory() as session:
        workspace_ids = active_workspace_ids(session=session)
    out: list[_Due] = []
    for workspace_id in workspace_ids:
        if len(out) >= limit:
            break
        with in_workspace(workspace_id):
            out += _due_here(session_factory, now, limit - len(out), workspace_id)
    return out


def _due_here(
    session_factory: sessionmaker[Session], now: datetime, limit: int, workspace_id: int
) -> list[_Due]:
    out = []
    with session_factory.begin() as session:
        for notification in due_notifications(session=session, now=now, limit=limit):
            agent = session.get(Agent, notification.agent_id)
            assert agent is not None
            assert agent.telegram_user_id is not None
            lead = session.get(Lead, notification.lead_id) if notification.lead_id else None
            lines = [f"🔔 {notification.text}"]
            if lead is not None:
                lines.append(
                    f"Lead #{lead.id} {lead.name or '(no name)'} · {lead.status}"
                    f" · score {lead.score}"
                )
                last = last_customer_message(lead.id, session=session)
                if last is not None and last.text:
                    lines.append(
                        f"Last message ({last.channel}, {when(last.sent_at, now)}):"
                        f" {quote(last.text)}"
                    )
            out.append(
                _Due(
                    notification.id,
                    agent.telegram_user_id,
                    "\n".join(lines),
                    notification.lead_id,
                    workspace_id,
                )
            )
    return out


def _claim(
    session_factory: sessionmaker[Session], notification_id: int, now: datetime, workspace_id: int
) -> bool:
    with in_workspace(workspace_id), session_factory.begin() as session:
        return claim_notification(notification_id, session=session, now=now)


def _release(
    session_factory: sessionmaker[Session], notification_id: int, workspace_id: int
) -> None:
    with in_workspace(workspace_id), session_factory.begin() as session:
        release_notification(notification_id, session=session)


def _agent(session_factory: sessionmaker[Session], telegram_user_id: int) -> _AgentRef | None:
    """The linked agent and the workspace the copilot works in for them: the one they chose with
    /workspace, else their only one; None when they work in no active workspace."""
    with session_factory.begin() as session:
        agent = agent_by_telegram(telegram_user_id, session=session)
        if agent is None:
            return None
        theirs = agent_workspaces(agent.id, session=session)
        if not theirs:
            return None
        ids = [w.id for w, _role in theirs]
        chosen = agent.copilot_workspace_id if agent.copilot_workspace_id in ids else None
        if chosen is None and len(ids) == 1:
            chosen = ids[0]
        return _AgentRef(
            agent.id,
            agent.name,
            chosen,
            [(w.slug, w.name, role, w.id) for w, role in theirs],
        )


def _choose_workspace(
    session_factory: sessionmaker[Session], agent_id: int, ref: str
) -> str | None:
    """Remember `ref` (a slug or id of one of the agent's workspaces) as the copilot's workspace;
    its name, or None when it is not one of theirs."""
    with session_factory.begin() as session:
        named = find_workspace(ref, session=session)
        theirs = {w.id: w.name for w, _role in agent_workspaces(agent_id, session=session)}
        if named is None or named.id not in theirs:
            return None
        agent = session.scalars(
            select(Agent).where(Agent.id == agent_id).execution_options(**all_workspaces())
        ).one()
        agent.copilot_workspace_id = named.id
        return theirs[named.id]


def _link(session_factory: sessionmaker[Session], code: str, telegram_user_id: int) -> str | None:
    with session_factory.begin() as session:
        agent = link_telegram(code, telegram_user_id, session=session)
        return agent.name if agent is not None else None
