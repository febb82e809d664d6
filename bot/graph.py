"""Wiring of the inbound conversation graph (no logic here; see `bot.nodes`).

ingest -> identify -> transcribe_audio -> fetch_profile -> extract_contacts -> [merge]
       -> score_intent -> decide_status -> act
       -> [draft_reply, skipped while the bot is paused] -> save
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Optional

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from sqlalchemy.orm import Session, sessionmaker

from bot import nodes
from bot.config import PromptConfig
from bot.state import BotContext, BotState
from store.models import utcnow


def build_graph(
    *,
    session_factory: sessionmaker[Session],
    prompts: PromptConfig | Callable[[], PromptConfig],
    model: Optional[BaseChatModel] = None,
    clock: Callable[[], datetime] = utcnow,
    region: str = "US",
    takeover_minutes: int = 60,
    window_size: int = 12,
    transcribe: Optional[Callable[[str, dict[str, Any]], Optional[str]]] = None,
    profile_name: Optional[Callable[[str, str], Optional[str]]] = None,
) -> Any:
    """Compile the bot graph.

    Invoke with `{"inbound": {...Inbound fields}}` or `{"conversation_id": id}`, optionally with
    `context=BotContext(prompts=..., now=...)` to pin the configuration and time of a run.
    """
    get_prompts = prompts if callable(prompts) else (lambda: prompts)
    deps = nodes.Deps(
        session_factory=session_factory,
        prompts=get_prompts,
        model=model,
        clock=clock,
        region=region,
        takeover_minutes=takeover_minutes,
        window_size=window_size,
        transcribe=transcribe,
        profile_name=profile_name,
    )
    builder = StateGraph(BotState, context_schema=BotContext)
    for name in (
        "ingest",
        "identify",
        "transcribe_audio",
        "fetch_profile",
        "extract_contacts",
        "merge",
        "score_intent",
        "decide_status",
        "act",
        "draft_reply",
        "save",
    ):
        builder.add_node(name, partial(getattr(nodes, name), deps=deps))
    builder.add_edge(START, "ingest")
    builder.add_conditional_edges("ingest", nodes.route_after_ingest)
    builder.add_conditional_edges("identify", nodes.route_after_identify)
    builder.add_edge("transcribe_audio", "fetch_profile")
    builder.add_edge("fetch_profile", "extract_contacts")
    builder.add_conditional_edges("extract_contacts", nodes.route_after_extract_contacts)
    builder.add_edge("merge", "score_intent")
    builder.add_edge("score_intent", "decide_status")
    builder.add_edge("decide_status", "act")
    builder.add_conditional_edges("act", nodes.route_after_act)
    builder.add_edge("draft_reply", "save")
    builder.add_edge("save", END)
    return builder.compile(name="leaddesk-bot")
