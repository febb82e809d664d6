"""The inbound conversation agent: a LangGraph graph that answers a customer, collects their phone,
scores their intent with evidence and sets the lead's status; plus its admin-editable prompts.

Front doors: `build_graph(...)` (the compiled graph) and `BotService` (what entry points call).
"""

from bot.config import PromptConfig, PromptError, load_prompts
from bot.graph import build_graph
from bot.outbox import LocalOutbox, Outbox, Reply
from bot.service import BotService

__all__ = [
    "BotService",
    "LocalOutbox",
    "Outbox",
    "PromptConfig",
    "PromptError",
    "Reply",
    "build_graph",
    "load_prompts",
]
