"""The copilot as the front ends use it: ask a question on a thread, get a reply and maybe a pending
confirmation; answer the confirmation with yes/no (or a button). One per process, thread-safe."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from copilot.memory import forget_old_checkpoints
from copilot.tools.base import SEND, YES
from store.tenancy import FIRST_WORKSPACE, current_workspace
from store.text import clean_text

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 8000
MAX_PENDING = 20  # questions one run may still hold when the agent moves on
_NO = {
    "no",
    "n",
    "nope",
    "nah",
    "cancel",
    "stop",
    "abort",
    "don't",
    "dont",
    "no thanks",
    "never mind",
    "nevermind",
    "non",
    "nein",
    "não",
    "nao",
    "لا",
}


@dataclass
class Answer:
    """What the copilot says, and the question it waits on (None when nothing is pending)."""

    reply: str
    pending: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"reply": self.reply, "pending_confirmation": self.pending}


def thread_id(front: str, agent_id: int, key: Any) -> str:
    """A chat's memory is keyed by front end, agent and chat: relinking an account starts afresh."""
    return f"{front}:{agent_id}:{key}"


class Copilot:
    """Runs the compiled copilot graph for agents, one conversation thread at a time."""

    def __init__(self, graph: Any, *, recursion_limit: int = 30):
        self.graph = graph
        self.recursion_limit = recursion_limit
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def ask(self, agent_id: int, thread: str, text: str) -> Answer:
        """Handle one message. With a confirmation pending, yes/no answers it; anything else
        cancels it and is handled as a new request."""
        text = clean_text(text or "").strip()[:MAX_MESSAGE_CHARS]
        if not text:
            return Answer("Send me a question or a command; /help lists them.")
        with self._lock(thread):
            config = self._config(agent_id, thread)
            pending = self._pending(config)
            if pending is not None:
                choice = match_choice(text, pending.get("options", []))
                if choice is not None:
                    return self._resume(config, pending, choice)
                # Every question still waiting is declined (one run may hold several, asked in
                # turn).
                cancelled = self._resume(config, pending, "no")
                for _ in range(MAX_PENDING):
                    if cancelled.pending is None:
                        break
                    cancelled = self._resume(config, cancelled.pending, "no")
                answer = self._invoke(config, {"messages": [HumanMessage(text)]})
                answer.reply = (
                    f"(Left the earlier question unanswered: {cancelled.reply})\n\n{answer.reply}"
                )
                return answer
            return self._invoke(config, {"messages": [HumanMessage(text)]})

    def answer(
        self, agent_id: int, thread: str, choice: str, interrupt_id: str | None = None
    ) -> Answer:
        """Answer the pending confirmation (a button press); a stale button changes nothing."""
        with self._lock(thread):
            config = self._config(agent_id, thread)
            pending = self._pending(config)
            if pending is None or (
                interrupt_id and not str(pending["id"]).startswith(interrupt_id)
            ):
                return Answer("That question was already answered or has expired.")
            values = [str(o.get("value")) for o in pending.get("options", [])]
            if choice not in values:
                choice = match_choice(choice, pending.get("options", [])) or "no"
            return self._resume(config, pending, choice)

    def pending(self, agent_id: int, thread: str) -> dict[str, Any] | None:
        return self._pending(self._config(agent_id, thread))

    # --- internals ---------------------------------------------------------------------------

    def _config(self, agent_id: int, thread: str) -> dict[str, Any]:
        # An agent of several workspaces has a memory in each (what the copilot remembers of one
        # business's leads never reaches another's); the first workspace's keeps its old key.
        workspace_id = current_workspace()
        if workspace_id != FIRST_WORKSPACE:
            thread = f"w{workspace_id}:{thread}"
        return {
            "configurable": {"thread_id": thread, "agent_id": int(agent_id)},
            "recursion_limit": self.recursion_limit,
        }

    def _lock(self, thread: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(thread, threading.Lock())

    def _pending(self, config: dict[str, Any]) -> dict[str, Any] | None:
        snapshot = self.graph.get_state(config)
        for item in getattr(snapshot, "interrupts", ()) or ():
            if isinstance(item.value, dict):
                return {"id": item.id, **item.value}
        return None

    def _resume(self, config: dict[str, Any], pending: dict[str, Any], choice: str) -> Answer:
        plan = {k: v for k, v in pending.items() if k != "id"}
        return self._invoke(
            config, Command(resume={pending["id"]: {"choice": choice, "plan": plan}})
        )

    def _invoke(self, config: dict[str, Any], payload: Any) -> Answer:
        thread = config["configurable"]["thread_id"]
        try:
            # One checkpoint per turn (or at the question it stops on), and only the latest is kept.
            result = self.graph.invoke(payload, config, durability="exit")
        except GraphRecursionError:
            log.warning("copilot run hit the step limit on thread %s", thread)
            return Answer("That took too many steps; please ask in smaller pieces.")
        finally:
            if self.graph.checkpointer is not None:
                forget_old_checkpoints(self.graph.checkpointer, thread)
        interrupts = result.get("__interrupt__") or []
        for item in interrupts:
            if isinstance(item.value, dict):
                pending = {"id": item.id, **item.value}
                return Answer(str(item.value.get("question", "Confirm?")), pending)
        for message in reversed(result.get("messages", [])):
            if isinstance(message, AIMessage) and not message.tool_calls:
                return Answer(
                    message.text if isinstance(message.text, str) else str(message.content)
                )
        return Answer("Done.")


def match_choice(text: str, options: list[dict[str, Any]]) -> str | None:
    """Which option `text` picks: yes/no words, an option's value or label, 'merge 12', 'create'."""
    said = " ".join((text or "").lower().strip().strip("!.?").split())
    values = [str(o.get("value")) for o in options]
    for option in options:
        if said in (str(option.get("value", "")).lower(), str(option.get("label", "")).lower()):
            return str(option["value"])
    if said in YES:
        if "yes" in values:
            return "yes"
        creates = [v for v in values if v == "create"]
        merges = [v for v in values if v.startswith("merge:")]
        if creates:
            return creates[0]
        if len(merges) == 1:
            return merges[0]
        return None
    if said in _NO:
        return "no"
    if said in SEND and "send" in values:
        return "send"
    match = re.fullmatch(r"(?:merge(?: (?:it |them )?(?:into|with))?\s*)?#?(\d+)", said)
    if match and f"merge:{match.group(1)}" in values:
        return f"merge:{match.group(1)}"
    if (
        said in ("create", "new", "create new", "create it", "new lead", "create a new lead")
        and "create" in values
    ):
        return "create"
    return None
