"""Wiring of the inbound conversation graph (no logic here; see `bot.nodes`).

ingest -> [identify] -> [transcribe_audio] -> [fetch_profile]
       (the last of these ends with read_burst: extract_contacts, detect_language)
       -> [merge]
       -> [call_model, with a model, the bot speaking and words to answer]
       -> decide_and_save: decide_turn (score_intent, decide_status, plan, draft_reply unless
          paused), then save

A new message's turn is read by `ingest` in the transaction that stores it, and where the next step
saves the turn, that transaction is the turn's too (`bot.transaction`); `identify` reads it for a
run on a stored conversation (the workers, a retry). `call_model` is the one model call;
without a model the offline engine writes the reply in `draft_reply`. `plan` decides once what the
turn triggers; `save` applies it in one transaction. The DB-free functions run inside the steps
around them: reading the burst ends the step that completes the turn's input, and the decisions
begin the step whose transaction applies them. Every graph step costs the framework more than the
functions it runs. For the same reason a step that can go more than one way runs its route itself
and names the next step (a `Command`): a conditional edge has LangGraph copy every channel of the
state to read it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command
from sqlalchemy.orm import Session, sessionmaker

from bot import nodes
from bot.config import PromptConfig
from bot.state import BotContext, BotState, RunState
from store.models import utcnow

Step = Callable[..., BotState]  # a step's function: (state, runtime, *, deps) -> its writes
Route = Callable[..., str]  # where a step goes next: (state) -> the next step's name


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
    delivered_on_record: bool = False,
) -> Any:
    """Compile the bot graph.

    Invoke with `{"inbound": Inbound(...)}` or `{"conversation_id": id}`, optionally with
    `context=BotContext(prompts=..., now=...)` to pin the configuration and time of a run. The
    store is the bot's memory, so no checkpointer is needed; one given (with a `thread_id` per run)
    records each step's typed state. With `delivered_on_record` a reply is recorded as sent (a
    local outbox, where recording is the delivery) instead of pending for an outbox.
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
        delivered_on_record=delivered_on_record,
    )
    builder = StateGraph(RunState, context_schema=BotContext)

    def routed(name: str, step: Step, route: Route, destinations: list[str]) -> None:
        builder.add_node(
            name,
            partial(_step_and_route, step=step, route=partial(route, deps=deps), deps=deps),
            destinations=tuple(destinations),
        )

    after_read: list[str] = ["merge", "decide_and_save"]
    after_merge: list[str] = ["decide_and_save"]
    if model is not None:
        builder.add_node("call_model", partial(nodes.call_model, deps=deps))
        builder.add_edge("call_model", "decide_and_save")
        after_read.append("call_model")
        after_merge.append("call_model")
    # A step whose route says the turn's input is complete reads the burst itself, and goes where
    # reading leads (`after_read`).
    routed(
        "ingest",
        nodes.ingest,
        nodes.route_after_ingest,
        ["identify", "transcribe_audio", "fetch_profile", *after_read, END],
    )
    routed(
        "identify",
        nodes.identify,
        nodes.route_after_identify,
        ["transcribe_audio", "fetch_profile", *after_read, END],
    )
    routed(
        "transcribe_audio",
        nodes.transcribe_audio,
        nodes.route_after_transcribe_audio,
        ["fetch_profile", *after_read],
    )
    routed("fetch_profile", nodes.fetch_profile, nodes.route_after_fetch_profile, after_read)
    routed("merge", nodes.merge, nodes.route_after_merge, after_merge)
    builder.add_node("decide_and_save", partial(nodes.decide_and_save, deps=deps))

    builder.add_edge(START, "ingest")
    builder.add_edge("decide_and_save", END)
    return builder.compile(name="leaddesk-bot", checkpointer=checkpointer)


def _step_and_route(
    state: BotState, runtime: Runtime[BotContext], *, step: Step, route: Route, deps: nodes.Deps
) -> Command[str]:
    """Run a step, then its route on the state it leaves, and go there: the route reads the
    step's input with the step's writes over it (every channel keeps its last value), where a
    conditional edge would have LangGraph copy all the state's channels to read it back. A route
    that answers `read_burst` (the turn's input is complete) has the step read the burst as well
    and go where reading leads."""
    update = step(state, runtime, deps=deps)
    after: BotState = {**state, **update}
    goto = route(after)
    if goto == nodes.READ_BURST:
        # The turn's input is complete: the step reads the burst too.
        read = nodes.read_burst(after, runtime, deps=deps)
        update = {**update, **read}
        goto = nodes.route_after_read_burst({**after, **read}, deps=deps)
    held = runtime.context.transaction if runtime is not None and runtime.context else None
    if held is not None and goto != "decide_and_save":
        # Only the saving step continues the run's transaction (`bot.transaction`).
        held.commit()
    return Command(update=update, goto=goto)
