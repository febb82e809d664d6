"""What flows through the copilot graph: the chat with one agent, plus the little context that
lets a follow-up ("is it hot?", "more", "the second one") refer back to an earlier answer."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages
from typing_extensions import TypedDict


class CopilotState(TypedDict, total=False):
    """The checkpointed state of one agent's chat (one thread per agent and chat)."""

    messages: Annotated[list[AnyMessage], add_messages]
    # The lead the conversation is about, so that "it" / "this lead" resolve.
    focus_lead_id: int | None
    # The arguments of the last list shown, so that "more" pages on.
    last_list: dict[str, Any] | None
    # A request waiting for the agent to pick one of several matching leads:
    # {"tool": name, "args": {...}, "arg": "lead", "candidates": [ids]}.
    clarify: dict[str, Any] | None
    # Whether the current turn was refused (unknown or disabled agent).
    denied: bool
