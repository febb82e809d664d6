"""The copilot graph's nodes and routers: check the agent, decide what to do (the model, or the
offline intent router), run the tools, remember the context, answer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from sqlalchemy.orm import Session, sessionmaker

from copilot import config as cfg
from copilot.access import Denied, load_agent
from copilot.intents import Reply, ToolCall, route
from copilot.state import CopilotState
from copilot.tools import agent_id_of

log = logging.getLogger(__name__)

OFFLINE_CALL_PREFIX = "offline-"
REFUSAL = ("Sorry, I only work for registered, active Leaddesk agents. Ask your admin for a link code "
           "(leaddesk agents link).")
MAX_KEPT_MESSAGES = 60  # checkpointed history per chat; older turns are dropped
MODEL_WINDOW = 30  # messages the model sees
MAX_REPLY_CHARS = 12000


class CopilotNodes:
    """Node functions bound to the graph's collaborators."""

    def __init__(self, *, session_factory: sessionmaker[Session], prompts: Any, tools: Sequence[BaseTool],
                 clock: Callable[[], datetime], model: BaseChatModel | None = None, hot_score: int = 75):
        self.session_factory = session_factory
        self.prompts = prompts
        self.tools = list(tools)
        self.clock = clock
        self.model = model
        self.hot_score = hot_score
        self._bound: Any = None

    # --- nodes ---------------------------------------------------------------------------------

    def authorise_agent(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        """Refuse anyone who is not a registered, active agent; trim old history."""
        try:
            with self.session_factory.begin() as session:
                load_agent(agent_id_of(config), session=session)
        except Denied:
            log.info("copilot refused a request for an unknown or disabled agent")
            return {"messages": [AIMessage(REFUSAL)], "denied": True}
        update: dict[str, Any] = {"denied": False}
        stale = _stale_messages(state.get("messages", []))
        if stale:
            update["messages"] = [RemoveMessage(id=m.id) for m in stale if m.id]
        return update

    def route_intent(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        """The offline engine: turn the agent's words into a tool call, as the model would."""
        text = _last_human_text(state.get("messages", []))
        intent = route(text, focus_lead_id=state.get("focus_lead_id"), last_list=state.get("last_list"),
                       clarify=state.get("clarify"), statuses=cfg.status_names(self.prompts))
        if isinstance(intent, Reply):
            return {"messages": [AIMessage(intent.text)], "clarify": None}
        assert isinstance(intent, ToolCall)
        call = {"name": intent.name, "args": intent.args, "id": f"{OFFLINE_CALL_PREFIX}{uuid.uuid4().hex[:12]}",
                "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def call_model(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        """Ask the model what to do next; on any failure answer with the offline engine instead."""
        assert self.model is not None
        try:
            with self.session_factory.begin() as session:
                agent = load_agent(agent_id_of(config), session=session)
                system = self._system_prompt(agent.name, agent.role)
            if self._bound is None:
                self._bound = self.model.bind_tools(self.tools)
            reply = self._bound.invoke([SystemMessage(system), *_window(state.get("messages", []))])
            checked = _checked(reply, {tool.name for tool in self.tools})
        except Exception as exc:  # noqa: BLE001 - the model is untrusted: any failure falls back
            log.warning("copilot model call failed (%s); answering with the offline engine", type(exc).__name__)
            checked = None
        if checked is None:
            if _last_is_tool_result(state.get("messages", [])):
                return {"messages": [AIMessage(_tool_text(state.get("messages", [])))]}
            return self.route_intent(state, config)
        return {"messages": [checked]}

    def remember_context(self, state: CopilotState) -> dict[str, Any]:
        """Keep the focus lead, the last list and a pending choice from the tools' artifacts."""
        update: dict[str, Any] = {"clarify": None}
        for message in _last_tool_results(state.get("messages", [])):
            artifact = message.artifact if isinstance(message.artifact, dict) else {}
            if artifact.get("focus_lead_id") is not None:
                update["focus_lead_id"] = int(artifact["focus_lead_id"])
            if artifact.get("last_list") is not None:
                update["last_list"] = artifact["last_list"]
            if artifact.get("clarify") is not None:
                update["clarify"] = artifact["clarify"]
        return update

    def compose_reply(self, state: CopilotState) -> dict[str, Any]:
        """Offline: the answer is what the tools said."""
        return {"messages": [AIMessage(_tool_text(state.get("messages", [])))]}

    # --- routers -------------------------------------------------------------------------------

    def route_after_authorise(self, state: CopilotState) -> Literal["call_model", "route_intent", "__end__"]:
        if state.get("denied"):
            return "__end__"
        return "call_model" if self.model is not None else "route_intent"

    def route_after_decision(self, state: CopilotState) -> Literal["run_tools", "__end__"]:
        last = state["messages"][-1]
        return "run_tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"

    def route_after_remember(self, state: CopilotState) -> Literal["call_model", "compose_reply"]:
        caller = _last_tool_caller(state.get("messages", []))
        offline = caller is None or all(c["id"].startswith(OFFLINE_CALL_PREFIX) for c in caller.tool_calls)
        return "compose_reply" if offline or self.model is None else "call_model"

    # --- helpers -------------------------------------------------------------------------------

    def _system_prompt(self, agent_name: str, role: str) -> str:
        scope = ("an admin: you may see and change every lead" if role == "admin" else
                 "an agent: you may see and change only their own and unassigned leads")
        return (cfg.system_prompt(self.prompts, agent_name=agent_name, now=self.clock())
                + f"\n\n{agent_name} is {scope}. Leads scoring {self.hot_score} or more are hot. Changes that "
                "affect many leads, set a final status or archive ask the agent to confirm; tell them what "
                "the tool answered.")


def _last_human_text(messages: Sequence[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def _last_tool_caller(messages: Sequence[AnyMessage]) -> AIMessage | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage) and message.tool_calls:
            return message
        if isinstance(message, HumanMessage):
            return None
    return None


def _last_tool_results(messages: Sequence[AnyMessage]) -> list[ToolMessage]:
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            results.append(message)
        else:
            break
    return list(reversed(results))


def _last_is_tool_result(messages: Sequence[AnyMessage]) -> bool:
    return bool(messages) and isinstance(messages[-1], ToolMessage)


def _tool_text(messages: Sequence[AnyMessage]) -> str:
    parts = [str(m.content) for m in _last_tool_results(messages) if str(m.content).strip()]
    return "\n\n".join(parts) or "Done."


def _window(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The recent turns for the model, starting at a human message so tool calls stay paired."""
    recent = list(messages[-MODEL_WINDOW:])
    while recent and not isinstance(recent[0], HumanMessage):
        recent.pop(0)
    return recent or [m for m in messages if isinstance(m, HumanMessage)][-1:]


def _stale_messages(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    if len(messages) <= MAX_KEPT_MESSAGES:
        return []
    cut = len(messages) - MAX_KEPT_MESSAGES // 2
    while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
        cut += 1
    return list(messages[:cut])


def _checked(reply: Any, tool_names: set[str]) -> AIMessage | None:
    """The model's answer if it is usable: an AIMessage with text or calls to known tools."""
    if not isinstance(reply, AIMessage):
        return None
    calls = [c for c in reply.tool_calls or [] if c.get("name") in tool_names and isinstance(c.get("args"), dict)]
    if reply.tool_calls and len(calls) != len(reply.tool_calls):
        return None
    text = reply.text if isinstance(reply.text, str) else str(reply.content or "")
    if not calls and not text.strip():
        return None
    if calls:
        return AIMessage(content=text[:MAX_REPLY_CHARS], tool_calls=[
            {"name": c["name"], "args": c["args"], "id": c.get("id") or f"call-{uuid.uuid4().hex[:12]}",
             "type": "tool_call"} for c in calls])
    return AIMessage(content=text.strip()[:MAX_REPLY_CHARS])
