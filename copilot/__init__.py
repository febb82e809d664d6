"""The agents' copilot: a LangGraph graph over the lead store that sales agents talk to in
Telegram and over HTTP (`POST /api/copilot`).

Front doors: `build_graph(...)` (the compiled graph), `Copilot` (ask/answer on a thread),
`build_application(...)` (the Telegram bot), `open_checkpointer(...)` (per-chat memory),
`deliver_notifications(...)` (due notifications to linked agents).
"""

from copilot.graph import build_graph
from copilot.memory import open_checkpointer
from copilot.service import Answer, Copilot, thread_id

__all__ = ["Answer", "Copilot", "build_application", "build_graph", "deliver_notifications", "open_checkpointer",
           "thread_id"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # The Telegram side loads python-telegram-bot only when asked for.
    if name in ("build_application", "deliver_notifications"):
        from copilot import telegram

        return getattr(telegram, name)
    raise AttributeError(name)
