"""The bot as a service: what the webhooks, web chat, `leaddesk chat` and `leaddesk replay` call.

`handle` stores and answers one inbound event; `process_conversation` answers everything a
conversation has pending (the webhooks store events first, acknowledge, then call it). Replies are
handed to the outbox only after the transaction that recorded them committed (a local outbox has
nobody to send to: its replies are recorded as sent in that transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from sqlalchemy.orm import Session, sessionmaker

from bot.bursts import pending_span, reply_due
from bot.config import PromptConfig
from bot.graph import build_graph
from bot.outbox import LocalOutbox, Outbox, Reply
from bot.policy import build_policy
from bot.state import BotContext, BotState
from bot.takeover import send_agent_reply
from bot.transaction import TurnTransaction
from store.db import read_session
from store.messages import Inbound, conversations_with_pending, in_conversation_workspace
from store.messages import ingest as store_ingest
from store.models import utcnow

log = logging.getLogger(__name__)

# Runs per call after a run that another one superseded (it found its burst claimed first). A run
# that leaves customer messages waiting besides its burst (a backlog of more than `Deps.max_burst`
# messages, or messages that came while it ran) is followed by another until none waits, whatever
# their number: each of those runs claims its burst in the transaction that saves it.
MAX_RUNS = 6
# What a run hands back to the service: LangGraph then reads only these of the state's channels
# after each step, not all 31 (reading them all was a twentieth of a steady message's work).
RUN_OUTPUT = ("replies", "conversation_id", "outcome", "more_pending")


class BotService:
    """Answers customers. `prompts` may be a callable so that a hot reload swaps the configuration.

    Without an outbox, replies are recorded as "pending" and returned for the caller to send.
    """

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        prompts: PromptConfig | Callable[[], PromptConfig],
        model: BaseChatModel | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], datetime] = utcnow,
        region: str = "US",
        takeover_minutes: int = 60,
        transcribe: Callable[[str, dict[str, Any]], str | None] | None = None,
        profile_name: Callable[[str, str], str | None] | None = None,
    ):
        self.session_factory = session_factory
        self._prompts = prompts
        self.model = model
        self.outbox = outbox
        self.clock = clock
        self.region = region
        self._takeover_minutes = takeover_minutes
        self.graph = build_graph(
            session_factory=session_factory,
            prompts=self._current_prompts,
            model=model,
            clock=clock,
            region=region,
            takeover_minutes=takeover_minutes,
            transcribe=transcribe,
            profile_name=profile_name,
            # A local outbox only marks replies sent: `save` records them so, in its transaction.
            delivered_on_record=isinstance(outbox, LocalOutbox),
        )

    def _current_prompts(self) -> PromptConfig:
        prompts = self._prompts
        return prompts() if callable(prompts) else prompts

    @property
    def prompts(self) -> PromptConfig:
        return self._current_prompts()

    @property
    def engine(self) -> str:
        return "offline" if self.model is None else "llm"

    @property
    def takeover_minutes(self) -> int:
        return build_policy(self.prompts, takeover_fallback=self._takeover_minutes).takeover_minutes

    def handle(self, inbound: Inbound) -> list[Reply]:
        """Store one inbound event (deduplicated by its channel message id) and answer it."""
        return self._run({"inbound": inbound})

    def store(self, inbound: Inbound) -> int | None:
        """Store one customer message without answering it yet (as a webhook does); its
        conversation id, or None when the channel sent it before (a duplicate)."""
        with self.session_factory.begin() as session:
            stored = store_ingest(inbound, session=session, region=self.region)
            return None if stored.duplicate else stored.conversation.id

    def process_conversation(self, conversation_id: int) -> list[Reply]:
        """Answer every stored, unprocessed inbound message of the conversation: one reply.

        Idempotent: messages are claimed in the transaction that records the reply, so a retry or a
        concurrent run never answers or scores them twice. Runs in the conversation's workspace,
        with that workspace's prompts, whichever is in force when called.
        """
        with in_conversation_workspace(int(conversation_id), session_factory=self.session_factory):
            return self._run({"conversation_id": int(conversation_id)})

    def seconds_until_due(self, conversation_id: int, *, session: Session | None = None) -> float:
        """How long the conversation's burst should still wait for the customer to finish typing
        (0: answer now, or nothing pending). Measured on the clock that stamped the messages'
        arrival (the store's), so it holds across restarts and between processes. Read in
        `session` when given."""
        if session is None:
            with read_session(self.session_factory) as own:
                span = pending_span(int(conversation_id), session=own)
        else:
            span = pending_span(int(conversation_id), session=session)
        if span is None:
            return 0.0
        channel, first, last = span
        window = self.prompts.business.quiet_window(channel)
        if window <= 0:
            return 0.0
        return max(0.0, (reply_due(first, last, window) - utcnow()).total_seconds())

    def process_pending(self, limit: int = 1000) -> list[Reply]:
        """Answer every conversation with stored but unprocessed messages (e.g. after a restart)."""
        with self.session_factory() as session:
            conversation_ids = conversations_with_pending(session=session, limit=limit)
        replies: list[Reply] = []
        for conversation_id in conversation_ids:
            replies.extend(self.process_conversation(conversation_id))
        return replies

    def send_agent_reply(
        self,
        lead_id: int,
        text: str,
        *,
        agent_id: int | None,
        idempotency_key: str | None = None,
        conversation_id: int | None = None,
    ) -> Reply:
        """Send a human agent's message to the lead, in `conversation_id` or the latest conversation
        on a verified identity (pauses the bot for the takeover window)."""
        return send_agent_reply(
            lead_id,
            text,
            session_factory=self.session_factory,
            outbox=self.outbox,
            agent_id=agent_id,
            now=self.clock(),
            minutes=self.takeover_minutes,
            idempotency_key=idempotency_key,
            conversation_id=conversation_id,
        )

    def _run(self, graph_input: BotState) -> list[Reply]:
        replies: list[Reply] = []
        reruns = 0
        while True:
            context = BotContext(prompts=self.prompts, now=self.clock())
            result = self._invoke(graph_input, context)
            turn: list[Reply] = list(result.get("replies") or [])
            self._deliver(turn)
            replies.extend(turn)
            conversation_id = result.get("conversation_id")
            outcome = result.get("outcome")
            if conversation_id is None:
                return replies
            # Messages waiting besides the burst this run claimed get the next burst's turn.
            if not (outcome in ("replied", "quiet") and result.get("more_pending")):
                reruns += 1
                if outcome != "superseded" or reruns >= MAX_RUNS:
                    return replies
            graph_input = {"conversation_id": conversation_id}

    def _invoke(self, graph_input: BotState, context: BotContext) -> Any:
        """One run of the graph. A new message's run is one transaction from storing the message
        to saving the turn where its route allows (`bot.transaction`); when it fails before its
        commit, nothing of it was written, the message included, and it runs again with each
        step in a transaction of its own: the message is stored whatever the turn does."""
        if graph_input.get("inbound") is None:
            return self.graph.invoke(graph_input, context=context, output_keys=RUN_OUTPUT)
        transaction = TurnTransaction()
        try:
            return self.graph.invoke(
                graph_input,
                context=replace(context, transaction=transaction),
                output_keys=RUN_OUTPUT,
            )
        except Exception as exc:
            transaction.abandon()
            if not transaction.lost:
                raise
            log.info(
                "a new message's turn failed before its commit (%s): again, a step at a time",
                type(exc).__name__,
            )
            return self.graph.invoke(graph_input, context=context, output_keys=RUN_OUTPUT)
        finally:
            transaction.abandon()

    def _deliver(self, replies: list[Reply]) -> None:
        if not replies or self.outbox is None or isinstance(self.outbox, LocalOutbox):
            return
        try:
            self.outbox.deliver([r.message_id for r in replies])
        except Exception:  # the replies are recorded as pending and can be retried
            log.exception("delivering %d reply(ies) failed; they stay pending", len(replies))
