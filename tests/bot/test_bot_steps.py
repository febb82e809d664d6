"""The graph's fuller steps do what the verb-named functions do in sequence: `read_burst`
(which ends the step that completes the turn's input) is `extract_contacts` then
`detect_language`, `decide_turn` is `score_intent`, `decide_status`, `plan` and `draft_reply`
(none while the bot is paused), and `decide_and_save` is `decide_turn` then `save`; and a local
outbox's reply is recorded as sent in the run's own transaction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, PromptConfig, build_graph, nodes
from bot.nodes import Deps
from bot.state import BotContext, BotState
from store.messages import Inbound
from store.models import Lead, Message
from tests.bot.support import Clock


class _Runtime:
    """What a node reads of LangGraph's runtime: the run's context."""

    def __init__(self, context: BotContext):
        self.context = context


def _state_before(
    step: str | tuple[str, ...],
    factory: sessionmaker[Session],
    prompts: PromptConfig,
    clock: Clock,
    texts: list[str],
    sender: str,
) -> tuple[BotState, Deps, Any]:
    """Run the offline graph over `texts` (all but the last answered), stopping the last run
    before `step` (or the first of several steps it reaches): the state that step would read."""
    steps = (step,) if isinstance(step, str) else step
    graph = build_graph(
        session_factory=factory, prompts=prompts, clock=clock, checkpointer=InMemorySaver()
    )
    context = BotContext(prompts=prompts, now=clock())
    for text in texts[:-1]:
        config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
        graph.invoke({"inbound": Inbound("web", sender, text)}, config, context=context)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke(
        {"inbound": Inbound("web", sender, texts[-1])},
        config,
        context=context,
        interrupt_before=list(steps),
    )
    snapshot = graph.get_state(config)
    assert len(snapshot.next) == 1 and snapshot.next[0] in steps
    deps = Deps(
        session_factory=factory,
        prompts=lambda: prompts,
        model=None,
        clock=clock,
        region="US",
        takeover_minutes=60,
    )
    return dict(snapshot.values), deps, _Runtime(context)  # type: ignore[return-value]


def _in_sequence(state: BotState, runtime: Any, deps: Deps, *steps: Any) -> BotState:
    update: BotState = {}
    for step in steps:
        update.update(step({**state, **update}, runtime, deps=deps))
    return update


CONVERSATIONS = [
    ["Hi there", "I'm Ana, call me at (415) 555-0132, how much is the Home package?"],
    ["Hola", "¿Cuánto cuesta el paquete Plus? Mi correo es ana@example.com"],
    ["Hi", "I'm thinking about solar panels", "I want to buy the Home package, book a visit"],
    ["Please stop messaging me"],
]


READ = ("contacts", "language", "language_clear", "engine")


def test_read_burst_is_extract_contacts_then_detect_language(
    bot_db: sessionmaker[Session], prompts: PromptConfig, clock: Clock
) -> None:
    for number, texts in enumerate(CONVERSATIONS):
        # The state `ingest` leaves: it read the burst at its end.
        done, deps, runtime = _state_before(
            ("merge", "decide_and_save"), bot_db, prompts, clock, texts, f"reader-{number}"
        )
        state: Any = {key: value for key, value in done.items() if key not in READ}
        merged = nodes.read_burst(state, runtime, deps=deps)
        assert merged == _in_sequence(
            state, runtime, deps, nodes.extract_contacts, nodes.detect_language
        )
        assert set(READ) <= set(merged)
        assert {key: done[key] for key in READ} == {key: merged[key] for key in READ}


def test_decide_turn_is_the_four_decisions_in_sequence(
    bot_db: sessionmaker[Session], prompts: PromptConfig, clock: Clock
) -> None:
    for number, texts in enumerate(CONVERSATIONS):
        state, deps, runtime = _state_before(
            "decide_and_save", bot_db, prompts, clock, texts, f"decider-{number}"
        )
        merged = nodes.decide_turn(state, runtime, deps=deps)
        expected = _in_sequence(
            state,
            runtime,
            deps,
            nodes.score_intent,
            nodes.decide_status,
            nodes.plan,
            nodes.draft_reply,
        )
        assert merged == expected
        assert merged["reply"] is not None and merged["reply"].text


def test_decide_turn_drafts_no_reply_while_the_bot_is_paused(
    bot_db: sessionmaker[Session], prompts: PromptConfig, clock: Clock
) -> None:
    state, deps, runtime = _state_before(
        "decide_and_save", bot_db, prompts, clock, ["Hi", "How much is the Home package?"], "paused"
    )
    paused: BotState = {**state, "ai": replace(state["ai"], paused=True)}
    merged = nodes.decide_turn(paused, runtime, deps=deps)
    assert "reply" not in merged
    assert merged == _in_sequence(
        paused, runtime, deps, nodes.score_intent, nodes.decide_status, nodes.plan
    )


def test_decide_and_save_saves_what_decide_turn_decided(
    bot_db: sessionmaker[Session], prompts: PromptConfig, clock: Clock
) -> None:
    texts = ["Hi", "I want to buy the Home package, book a visit"]
    state, deps, runtime = _state_before(
        "decide_and_save", bot_db, prompts, clock, texts, "decided"
    )
    decided = nodes.decide_turn(state, runtime, deps=deps)
    done = nodes.decide_and_save(state, runtime, deps=deps)
    # The decisions stay in the state (a checkpointer records them), the save's writes beside them.
    assert {key: done[key] for key in decided} == decided
    assert done["outcome"] == "replied" and len(done["replies"]) == 1
    lead_id = state["lead"].id
    with bot_db() as session:
        stored = session.scalars(
            select(Message.text).where(Message.direction == "out").order_by(Message.id.desc())
        ).first()
        lead = session.get(Lead, lead_id)
        assert lead is not None
        decision = (decided["assessment"].score, decided["decision"].status)
        assert (lead.score, lead.status) == decision
    assert stored == decided["reply"].text == done["replies"][0].text


def test_a_local_outbox_reply_is_recorded_sent_in_the_run_transaction(
    bot_db: sessionmaker[Session], prompts: PromptConfig, clock: Clock
) -> None:
    service = BotService(
        session_factory=bot_db, prompts=prompts, outbox=LocalOutbox(bot_db), clock=clock
    )
    service.handle(Inbound("web", "visitor", "Hi there"))
    conversation_id = service.store(Inbound("web", "visitor", "How much is the Home package?"))
    assert conversation_id is not None
    engine = bot_db.kw["bind"]
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count)
    try:
        replies = service.process_conversation(conversation_id)
    finally:
        event.remove(engine, "commit", count)
    assert len(replies) == 1
    assert len(commits) == 1  # the turn's one transaction: no second one to mark the reply sent
    with bot_db() as session:
        statuses = session.scalars(
            select(Message.delivery_status).where(Message.direction == "out")
        ).all()
    assert statuses == ["sent", "sent"]
