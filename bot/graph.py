"""Wiring of the inbound conversation graph (no logic here; see `bot.nodes`).

ingest -> identify -> [transcribe_audio] -> [fetch_profile] -> extract_contacts -> [merge]
       -> detect_language -> [call_model, with a model, the bot speaking and words to answer]
       -> score_intent -> decide_status -> plan
       -> [draft_reply, skipped while the bot is paused] -> save

`call_model` is the one model call; without a model the offline engine writes the reply in
`draft_reply`. `plan` decides once what the turn triggers; `save` applies it in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
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
    model: BaseChatModel | None = None,
    clock: Callable[[], datetime] = utcnow,
    region: str = "US",
    takeover_minutes: int = 60,
    window_size: int = 12,
    transcribe: Callable[[str, dict[str, Any]], str | None] | None = None,
    profile_name: Callable[[str, str], str | None] | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> Any:
    """Compile the bot graph.

    Invoke with `{"inbound": Inbound(...)}` or `{"conversation_id": id}`, optionally with
    `context=BotContext(prompts=..., now=...)` to pin the configuration and time of a run. The
    store is the bot's memory, so no checkpointer is needed; one given (with a `thread_id` per run)
    records each step's typed state.
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
    builder.add_node("ingest", partial(nodes.ingest, deps=deps))
    builder.add_node("identify", partial(nodes.identify, deps=deps))
    builder.add_node("transcribe_audio", partial(nodes.transcribe_audio, deps=deps))
    builder.add_node("fetch_profile", partial(nodes.fetch_profile, deps=deps))
    builder.add_node("extract_contacts", partial(nodes.extract_contacts, deps=deps))
    builder.add_node("merge", partial(nodes.merge, deps=deps))
    builder.add_node("detect_language", partial(nodes.detect_language, deps=deps))
    builder.add_node("score_intent", partial(nodes.score_intent, deps=deps))
    builder.add_node("decide_status", partial(nodes.decide_status, deps=deps))
    builder.add_node("plan", partial(nodes.plan, deps=deps))
    builder.add_node("draft_reply", partial(nodes.draft_reply, deps=deps))
    builder.add_node("save", partial(nodes.save, deps=deps))

    builder.add_edge(START, "ingest")
    builder.add_conditional_edges("ingest", nodes.route_after_ingest)
    builder.add_conditional_edges(
        "identify",
        partial(nodes.route_after_identify, deps=deps),
        ["transcribe_audio", "fetch_profile", "extract_contacts", END],
    )
    builder.add_conditional_edges(
        "transcribe_audio",
        partial(nodes.route_after_transcribe_audio, deps=deps),
        ["fetch_profile", "extract_contacts"],
    )
    builder.add_edge("fetch_profile", "extract_contacts")
    builder.add_conditional_edges("extract_contacts", nodes.route_after_extract_contacts)
    builder.add_edge("merge", "detect_language")
    if model is not None:
        builder.add_node("call_model", partial(nodes.call_model, deps=deps))
        builder.add_conditional_edges("detect_language", nodes.route_after_detect_language)
        builder.add_edge("call_model", "score_intent")
    else:
        builder.add_edge("detect_language", "score_intent")
    builder.add_edge("score_intent", "decide_status")
    builder.add_edge("decide_status", "plan")
    builder.add_conditional_edges("plan", nodes.route_after_plan)
    builder.add_edge("draft_reply", "save")
    builder.add_edge("save", END)
    return builder.compile(name="leaddesk-bot", checkpointer=checkpointer)
