"""The agents' copilot: a LangGraph graph over the lead store that sales agents talk to in
Telegram and over HTTP (`POST /api/copilot`).

Front doors: `build_graph(...)` (the compiled graph), `Copilot` (ask/answer on a thread),
`build_application(...)` (the Telegram bot), `open_checkpointer(...)` (per-chat memory),
`deliver_notifications(...)` (due notifications to linked agents).
"""

from copilot.graph import build_graph
from copilot.memory import open_checkpointer
from copilot.service import Answer, Copilot, thread_id
from copilot.telegram import build_application, deliver_notifications

__all__ = [
    "Answer",
    "Copilot",
    "build_application",
    "build_graph",
    "deliver_notifications",
    "open_checkpointer",
    "thread_id",
]
