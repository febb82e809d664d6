"""The bot graph's typed state goes through a checkpointer intact: the PostgreSQL checkpointer
(what a scaled-out deployment would use), with LangGraph's strict msgpack allowlist built from
`BotState`, restores every record as itself; and the graph's nodes say what they do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from itertools import cycle
from typing import Any

import psycopg
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph._internal import _serde
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot import PromptConfig, Reply, build_graph
from bot.schemas import ModelTurn
from bot.scoring import Assessment
from bot.state import (
    AiState,
    BotContext,
    BotState,
    Contacts,
    DraftReply,
    LeadSnapshot,
    PendingMessage,
    Room,
    RunState,
    WindowMessage,
)
from bot.statuses import Decision, Plan
from store import make_engine, make_session_factory
from store.messages import Inbound
from tests.bot.support import Clock

ANSWER = {
    "reasoning": "They ask what the Home package costs: comparing prices.",
    "intent_evidence": "How much is the Home package?",
    "intent_level": "high",
    "intent_score": 72,
    "status": "Scouting",
    "interests": ["Home package"],
    "objections": [],
    "summary": "Asked for the price of the Home package.",
    "next_best_action": "Send a quote for the Home package.",
    "language": "en",
    "reply": "The Home 6.5 kW package is $12,400 installed, before the 30% tax credit.",
}


@pytest.fixture
def pg_factory(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(postgres_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def strict_saver(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresSaver]:
    """A PostgreSQL checkpointer that only revives safe types and those `compile` allowlists from
    the graph's state schema (LANGGRAPH_STRICT_MSGPACK), in a schema of its own that is dropped
    afterwards (the test database's other schemas stay as the migrations and the copilot left
    them)."""
    monkeypatch.setattr(_serde, "STRICT_MSGPACK_ENABLED", True)
    conninfo = (
        make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    schema = f"bot_state_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        with psycopg.connect(
            conninfo, autocommit=True, row_factory=dict_row, options=f"-c search_path={schema}"
        ) as conn:
            saver = PostgresSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
            saver.setup()
            yield saver
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
def test_every_typed_record_of_a_model_turn_is_restored_from_postgresql(
    pg_factory: sessionmaker[Session],
    strict_saver: PostgresSaver,
    prompts: PromptConfig,
    clock: Clock,
) -> None:
    model = GenericFakeChatModel(messages=cycle([AIMessage(content=json.dumps(ANSWER))]))
    graph = build_graph(
        session_factory=pg_factory,
        prompts=prompts,
        model=model,
        clock=clock,
        checkpointer=strict_saver,
    )
    config: Any = {"configurable": {"thread_id": f"bot-{uuid.uuid4().hex}"}}
    inbound = Inbound(
        channel="web",
        external_id=f"visitor-{uuid.uuid4().hex[:8]}",
        text="Hi, I'm Ana. How much is the Home package?",
    )
    result = graph.invoke(
        {"inbound": inbound}, config, context=BotContext(prompts=prompts, now=clock())
    )
    restored = graph.get_state(config).values

    assert result["engine"] == "llm" and result["outcome"] == "replied"
    expected_types = {
        "inbound": Inbound,
        "lead": LeadSnapshot,
        "ai": AiState,
        "room": Room,
        "contacts": Contacts,
        "model_turn": ModelTurn,
        "assessment": Assessment,
        "decision": Decision,
        "plan": Plan,
        "reply": DraftReply,
    }
    for key, kind in expected_types.items():
        assert isinstance(restored[key], kind), (key, type(restored[key]))
        assert restored[key] == result[key], key
    assert all(isinstance(m, PendingMessage) for m in restored["pending"])
    assert all(isinstance(m, WindowMessage) for m in restored["window"])
    assert restored["pending"] == result["pending"] and restored["window"] == result["window"]
    assert [type(r) for r in restored["replies"]] == [Reply]
    assert restored["replies"] == result["replies"]
    assert restored["now"] == result["now"]
    assert restored["model_turn"].reply == ANSWER["reply"]
    assert restored["decision"].status == "Scouting"


def test_the_graph_names_each_step_for_its_work(
    bot_db: sessionmaker[Session], prompts: PromptConfig
) -> None:
    offline = build_graph(session_factory=bot_db, prompts=prompts).get_graph()
    with_model = build_graph(
        session_factory=bot_db, prompts=prompts, model=GenericFakeChatModel(messages=iter([]))
    ).get_graph()
    steps = [
        "ingest",
        "identify",
        "transcribe_audio",
        "fetch_profile",
        "merge",
        "decide_and_save",
    ]
    assert set(offline.nodes) == {"__start__", "__end__", *steps}
    # The one model call is a step of its own, wired in only when a model is configured.
    assert set(with_model.nodes) == {"__start__", "__end__", "call_model", *steps}
    # The step that completes the turn's input reads the burst and goes where reading leads.
    read = {"merge", "call_model", "decide_and_save"}
    edges = {(e.source, e.target) for e in with_model.edges}
    for step in ("ingest", "identify", "transcribe_audio", "fetch_profile"):
        assert {(step, after) for after in read} <= edges
    assert edges >= {
        ("merge", "call_model"),
        ("merge", "decide_and_save"),
        ("call_model", "decide_and_save"),
        ("decide_and_save", "__end__"),
    }
    assert ("ingest", "call_model") not in {(e.source, e.target) for e in offline.edges}


def test_every_channel_keeps_its_last_value(bot_db: sessionmaker[Session], prompts: PromptConfig):
    # A step with a route reads the state it leaves as its input with its writes over it
    # (`bot.graph`): right only while no key of the state has a reducer.
    graph = build_graph(session_factory=bot_db, prompts=prompts)
    kinds = {type(graph.channels[key]).__name__ for key in RunState.__annotations__}
    assert kinds == {"LastValue"}


def test_what_a_step_hands_only_to_its_route_is_no_channel(
    bot_db: sessionmaker[Session], prompts: PromptConfig
) -> None:
    # Every channel costs LangGraph work at every step: the facts a step hands to its own route
    # (or to the next function inside it) are kept by none.
    graph = build_graph(session_factory=bot_db, prompts=prompts)
    step_only = set(BotState.__annotations__) - set(RunState.__annotations__)
    assert step_only == {"echo", "identified", "room_quiet"}
    assert not step_only & set(graph.channels)
