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
from langchain_core.messages import ToolCall as ModelToolCall
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from sqlalchemy.orm import Session, sessionmaker

from copilot import config as cfg
from copilot.access import Denied, load_agent
from copilot.intents import Reply, ToolCall, route
from copilot.state import CopilotState
from copilot.tools import Confirm, ToolRunner, agent_id_of
from copilot.vocabulary import Vocabulary
from store.domain.permissions import is_admin
from store.models import Lead

log = logging.getLogger(__name__)

OFFLINE_CALL_PREFIX = "offline-"
REFUSAL = (
    "Sorry, I only work for registered, active Leaddesk agents. Ask your admin for a link code "
    "(leaddesk agents link)."
)
MAX_KEPT_MESSAGES = 60  # checkpointed history per chat; older turns are dropped
MODEL_WINDOW = 30  # messages the model sees
MAX_REPLY_CHARS = 12000
MAX_CALLS = 10  # tool calls taken from one model answer


class CopilotNodes:
    """Node functions bound to the graph's collaborators."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        prompts: Any,
        tools: Sequence[BaseTool],
        runner: ToolRunner,
        vocabulary: Vocabulary,
        clock: Callable[[], datetime],
        model: BaseChatModel | None = None,
        hot_score: int = 75,
        model_tools: set[str] | None = None,
    ):
        self.session_factory = session_factory
        self.prompts = prompts
        self.tools = list(tools)
        self.model_tools = [t for t in self.tools if model_tools is None or t.name in model_tools]
        self.runner = runner
        self.vocabulary = vocabulary
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
        intent = self._read(state)
        if isinstance(intent, Reply):
            return {"messages": [AIMessage(intent.text)], "clarify": None}
        assert isinstance(intent, ToolCall)
        call = {
            "name": intent.name,
            "args": intent.args,
            "id": f"{OFFLINE_CALL_PREFIX}{uuid.uuid4().hex[:12]}",
            "type": "tool_call",
        }
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def call_model(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        """Ask the model what to do next; on any failure answer with the offline engine instead."""
        assert self.model is not None
        try:
            with self.session_factory.begin() as session:
                agent = load_agent(agent_id_of(config), session=session)
                focus = state.get("focus_lead_id")
                lead = session.get(Lead, int(focus)) if focus is not None else None
                in_focus = f"#{lead.id} {lead.name or '(no name)'}" if lead is not None else None
                system = self._system_prompt(agent.name, is_admin(agent), in_focus)
            if self._bound is None:
                self._bound = self.model.bind_tools(self.model_tools)
            reply = self._bound.invoke([SystemMessage(system), *_window(state.get("messages", []))])
            checked = _checked(reply, self.runner, {tool.name for tool in self.model_tools})
        except Exception as exc:  # noqa: BLE001 - the model is untrusted: any failure falls back
            log.warning(
                "copilot model call failed (%s); answering with the offline engine",
                type(exc).__name__,
            )
            checked = None
        if checked is None:
            if _last_is_tool_result(state.get("messages", [])):
                return {"messages": [AIMessage(_tool_text(state.get("messages", [])))]}
            return self.route_intent(state, config)
        return {"messages": [checked]}

    def run_tools(self, state: CopilotState, config: RunnableConfig) -> dict[str, Any]:
        """Run the decided tool calls in order. A call that needs the agent's answer is asked
        alone: when something already ran in this step, the step ends first and the next one asks,
        so that resuming after the answer never runs a change twice, and each question gets its own
        answer."""
        messages = state.get("messages", [])
        caller = _last_tool_caller(messages)
        if caller is None:
            return {}
        agent_id = agent_id_of(config)
        answered = {m.tool_call_id for m in _last_tool_results(messages)}
        changed = _changed_this_turn(messages, self.runner)
        asked: dict[str, Any] | None = None
        if not all(_is_offline(c) for c in caller.tool_calls):
            reading = self._read(state)
            asked = (
                {"name": reading.name, "args": reading.args}
                if isinstance(reading, ToolCall)
                else None
            )
        results: list[ToolMessage] = []
        for call in caller.tool_calls:
            if call["id"] in answered:
                continue
            name = call["name"]
            raw_args = call.get("args") or {}
            args: dict[str, Any]
            problem: str | None
            if isinstance(raw_args, dict) and "_problem" in raw_args:
                args, problem = {}, str(raw_args["_problem"])
            else:
                args, problem = self.runner.check(name, raw_args)
            if problem is not None:
                results.append(
                    ToolMessage(problem, tool_call_id=call["id"], name=name, artifact={})
                )
                continue
            outcome: Any = None
            if not _is_offline(call):
                outcome = self.runner.approval(name, args, agent_id, asked=asked, changed=changed)
            if outcome is None:
                outcome = self.runner.plan(name, args, agent_id)
            if isinstance(outcome, Confirm):
                if results:
                    break  # asked in the next step, on its own
                outcome = self.runner.ask_and_apply(name, outcome, agent_id)
            text, artifact = outcome
            if (
                self.runner.changes_lead(name)
                and isinstance(artifact, dict)
                and artifact.get("focus_lead_id") is not None
            ):
                changed.add(int(artifact["focus_lead_id"]))
            results.append(
                ToolMessage(
                    str(text),
                    tool_call_id=call["id"],
                    name=name,
                    artifact=artifact if isinstance(artifact, dict) else {},
                )
            )
        return {"messages": results}

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

    def route_after_authorise(
        self, state: CopilotState
    ) -> Literal["call_model", "route_intent", "__end__"]:
        if state.get("denied"):
            return "__end__"
        return "call_model" if self.model is not None else "route_intent"

    def route_after_decision(self, state: CopilotState) -> Literal["run_tools", "__end__"]:
        last = state["messages"][-1]
        return "run_tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"

    def route_after_tools(self, state: CopilotState) -> Literal["run_tools", "remember_context"]:
        caller = _last_tool_caller(state.get("messages", []))
        answered = {m.tool_call_id for m in _last_tool_results(state.get("messages", []))}
        if caller is not None and any(c["id"] not in answered for c in caller.tool_calls):
            return "run_tools"
        return "remember_context"

    def route_after_remember(self, state: CopilotState) -> Literal["call_model", "compose_reply"]:
        caller = _last_tool_caller(state.get("messages", []))
        offline = caller is None or all(_is_offline(c) for c in caller.tool_calls)
        return "compose_reply" if offline or self.model is None else "call_model"

    # --- helpers -------------------------------------------------------------------------------

    def _read(self, state: CopilotState) -> Any:
        """The offline router's reading of the agent's latest message."""
        text = _last_human_text(state.get("messages", []))
        return route(
            text,
            focus_lead_id=state.get("focus_lead_id"),
            last_list=state.get("last_list"),
            clarify=state.get("clarify"),
            statuses=cfg.status_names(self.prompts),
            vocabulary=self.vocabulary,
            fields=[f.name for f in self.prompts.custom_fields],
            lost_statuses=[s.name for s in self.prompts.statuses if s.asks_reason],
        )

    def _system_prompt(self, agent_name: str, admin: bool, in_focus: str | None = None) -> str:
        scope = (
            "an admin: you may see and change every lead"
            if admin
            else "an agent: you may see and change only their own and unassigned leads"
        )
        focus = (
            f" The lead in focus is {in_focus}: 'he', 'she', 'it', 'that lead' (in any language)"
            " mean this lead."
            if in_focus
            else ""
        )
        return (
            cfg.system_prompt(self.prompts, agent_name=agent_name, now=self.clock())
            + f"\n\n{agent_name} is {scope}. Leads scoring {self.hot_score} or more are hot."
            f"{focus} Changes that affect many leads, another agent, a final status or the archive"
            " ask the agent to confirm; only change what the agent asked for, and tell them what"
            " the tool answered."
        )


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


def _is_offline(call: ModelToolCall) -> bool:
    """A call the offline router made (every call carries an id: see `_checked`)."""
    return (call["id"] or "").startswith(OFFLINE_CALL_PREFIX)


def _last_is_tool_result(messages: Sequence[AnyMessage]) -> bool:
    return bool(messages) and isinstance(messages[-1], ToolMessage)


def _tool_text(messages: Sequence[AnyMessage]) -> str:
    parts = [str(m.content) for m in _last_tool_results(messages) if str(m.content).strip()]
    return "\n\n".join(parts) or "Done."


def _window(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The recent turns for the model, starting at a human message so tool calls stay paired."""
    recent: list[AnyMessage] = list(messages[-MODEL_WINDOW:])
    while recent and not isinstance(recent[0], HumanMessage):
        recent.pop(0)
    if recent:
        return recent
    humans: list[AnyMessage] = [m for m in messages if isinstance(m, HumanMessage)]
    return humans[-1:]


def _stale_messages(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    if len(messages) <= MAX_KEPT_MESSAGES:
        return []
    cut = len(messages) - MAX_KEPT_MESSAGES // 2
    while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
        cut += 1
    return list(messages[:cut])


def _checked(reply: Any, runner: ToolRunner, tool_names: set[str]) -> AIMessage | None:
    """The model's answer if it is usable: an AIMessage with text or calls to known tools, each
    call's arguments validated and bounded before anything runs or is stored (a call that fails
    keeps only a short error, which the tool step hands back to the model)."""
    if not isinstance(reply, AIMessage):
        return None
    calls = [c for c in reply.tool_calls or [] if c.get("name") in tool_names]
    if reply.tool_calls and len(calls) != len(reply.tool_calls):
        return None
    text = reply.text if isinstance(reply.text, str) else str(reply.content or "")
    if not calls and not text.strip():
        return None
    if calls:
        kept = []
        seen: set[str] = set()
        for c in calls[:MAX_CALLS]:
            args, problem = runner.check(c["name"], c.get("args"))
            call_id = str(c.get("id") or "")[:64] or f"call-{uuid.uuid4().hex[:12]}"
            if call_id.startswith(OFFLINE_CALL_PREFIX) or call_id in seen:
                # Only the router's calls are the agent's own words; every call needs its own
                # answer.
                call_id = f"call-{uuid.uuid4().hex[:12]}"
            seen.add(call_id)
            kept.append(
                {
                    "name": c["name"],
                    "args": {"_problem": problem} if problem else args,
                    "id": call_id,
                    "type": "tool_call",
                }
            )
        return AIMessage(content=text[:MAX_REPLY_CHARS], tool_calls=kept)
    return AIMessage(content=text.strip()[:MAX_REPLY_CHARS])


def _changed_this_turn(messages: Sequence[AnyMessage], runner: ToolRunner) -> set[int]:
    """Leads changed by tools since the agent's latest message."""
    changed: set[int] = set()
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, ToolMessage) and message.name and runner.changes_lead(message.name):
            artifact = message.artifact if isinstance(message.artifact, dict) else {}
            if artifact.get("focus_lead_id") is not None:
                changed.add(int(artifact["focus_lead_id"]))
    return changed
