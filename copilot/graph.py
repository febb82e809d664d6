"""Wiring of the copilot graph: check the agent → decide (model or offline router) → tools →
remember context → answer (the model again, or the tools' own words offline)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from sqlalchemy.orm import Session, sessionmaker

from copilot.nodes import CopilotNodes
from copilot.state import CopilotState
from copilot.tools import OFFLINE_TOOLS, TOOLS, ToolContext, ToolRunner, build_tools
from copilot.vocabulary import vocabulary_for
from store.models import HOT_SCORE, utcnow


def build_graph(
    *,
    session_factory: sessionmaker[Session],
    prompts: Any,
    checkpointer: Any,
    model: BaseChatModel | None = None,
    outbox: Any = None,
    clock: Callable[[], datetime] = utcnow,
    region: str = "US",
    takeover_minutes: int = 60,
    email_from: str | None = None,
) -> Any:
    """Compile the copilot graph. With `model`, a tool-calling agent; without, the offline
    router. `email_from` (set when email is set up) lets the intro email draft be sent through
    `outbox`."""
    context = ToolContext(
        session_factory=session_factory,
        prompts=prompts,
        clock=clock,
        region=region,
        takeover_fallback=takeover_minutes,
        outbox=outbox,
        hot_score=HOT_SCORE,
        email_from=email_from,
    )
    runner = ToolRunner(context, [*TOOLS, *OFFLINE_TOOLS])
    nodes = CopilotNodes(
        session_factory=session_factory,
        prompts=prompts,
        tools=build_tools(runner),
        runner=runner,
        vocabulary=vocabulary_for(prompts),
        clock=clock,
        model=model,
        hot_score=HOT_SCORE,
        model_tools={tool.name for tool in TOOLS},
    )
    graph = StateGraph(CopilotState)
    graph.add_node("authorise_agent", nodes.authorise_agent)
    graph.add_node("route_intent", nodes.route_intent)
    graph.add_node("run_tools", nodes.run_tools)
    graph.add_node("remember_context", nodes.remember_context)
    graph.add_node("compose_reply", nodes.compose_reply)
    if model is not None:
        graph.add_node("call_model", nodes.call_model)
        graph.add_conditional_edges("call_model", nodes.route_after_decision, ["run_tools", END])

    graph.add_edge(START, "authorise_agent")
    graph.add_conditional_edges(
        "authorise_agent",
        nodes.route_after_authorise,
        ["call_model", "route_intent", END] if model is not None else ["route_intent", END],
    )
    graph.add_conditional_edges("route_intent", nodes.route_after_decision, ["run_tools", END])
    graph.add_conditional_edges(
        "run_tools", nodes.route_after_tools, ["run_tools", "remember_context"]
    )
    graph.add_conditional_edges(
        "remember_context",
        nodes.route_after_remember,
        ["call_model", "compose_reply"] if model is not None else ["compose_reply"],
    )
    graph.add_edge("compose_reply", END)
    return graph.compile(checkpointer=checkpointer, name="copilot")
