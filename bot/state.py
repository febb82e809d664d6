"""What flows through the bot graph: raw data only (ids, texts, numbers, small typed records).

The SQL store is the source of truth; each run loads a bounded window from it, so nothing here
grows with the length of the conversation. Prompts are built inside the node that calls the model.
Every record is a frozen dataclass named in `RunState`, so a checkpointer (LangGraph's msgpack
serializer, strict allowlist included) stores and restores it as itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

from bot.config import PromptConfig
from bot.outbox import Reply
from bot.schemas import ModelTurn
from bot.scoring import Assessment
from bot.statuses import Decision, Plan
from bot.transaction import TurnTransaction
from store.messages import Inbound

Engine = Literal["offline", "llm", "offline-fallback"]
Outcome = Literal["replied", "quiet", "duplicate", "nothing_pending", "superseded", "echo"]


@dataclass(frozen=True)
class PendingMessage:
    """One unprocessed customer message of the burst being answered."""

    id: int
    text: str  # what the customer said: the text, a caption or a voice note's transcript
    kind: str = "text"
    transcribed: bool = False
    media: dict[str, Any] | None = None  # a voice note's stored payload, for transcription
    sent_at: datetime | None = None


@dataclass(frozen=True)
class WindowMessage:
    """One recent message of the conversation (any author), for context."""

    id: int
    author: str  # "customer" | "bot" | "agent"
    text: str
    channel: str
    sent_at: datetime | None = None


@dataclass(frozen=True)
class LeadSnapshot:
    """The lead's fields the bot reads, as this conversation may see them."""

    id: int
    name: str | None
    company: str | None
    email: str | None
    phone: str | None
    status: str
    score: int
    tags: list[str]
    interests: list[str]
    objections: list[str]
    summary: str | None
    assigned_agent_id: int | None
    ai_stopped: bool
    ai_paused_until: datetime | None
    ai_pause_reason: str | None
    ai_resume_notice_due: bool
    phone_asks: int
    phone_declined: bool
    last_reply_asked_phone: bool
    locked: bool


@dataclass(frozen=True)
class AiState:
    """Whether the bot may speak in this turn, and whether it owes a "I'm back" notice."""

    paused: bool  # paused or stopped, for the lead or for this conversation
    resuming: bool  # its pause ran out since the last turn
    stopped: bool
    notice_due: bool


@dataclass(frozen=True)
class Room:
    """This conversation: its standing among the lead's others, where it is and what it holds so
    far. One record, not a key each: every key of the state is a channel, which costs LangGraph
    work at every step."""

    alone: bool  # the lead's only conversation
    speaks_for_lead: bool  # it may end the lead (a verified identity, or alone)
    paused: bool  # the bot is quiet in this conversation only
    channel: str
    external_id: str | None  # the customer's id on this channel
    # Whether the business ever wrote in this conversation; None when the turn began with the bot
    # quiet (it drafts no reply, so nothing asks and nothing is looked up).
    greeted: bool | None
    summary: str | None  # the conversation's rolling summary
    language: str | None  # the language the conversation is in so far


@dataclass(frozen=True)
class RoomQuiet:
    """A terminal status said in a room that cannot end the lead: its stop or pause quiets that
    room only."""

    status: str
    behaviour: str  # "pause" | "stop" | "continue"


@dataclass(frozen=True)
class Contacts:
    """What the new messages say about the customer."""

    phones: list[str] = field(default_factory=list)
    new_phones: list[str] = field(default_factory=list)
    new_emails: list[str] = field(default_factory=list)
    name: str | None = None
    company: str | None = None
    phone_declined: bool = False

    @property
    def anything_new(self) -> bool:
        return bool(self.new_phones or self.new_emails or self.name or self.company)


@dataclass(frozen=True)
class DraftReply:
    """The one reply to the burst, before `save` records it."""

    text: str
    asked_phone: bool
    language: str
    source: str  # "llm" | "offline"
    knowledge: list[str]  # ids of the knowledge sections it answers from
    notice: bool  # it carries the "I'm back" notice


class RunState(TypedDict, total=False):
    """The graph's state: each key a channel, kept from the step that writes it to the steps after.

    Every channel costs LangGraph work at every step (it copies, checks and bumps each one), so a
    fact no later step reads is no channel: see `BotState`."""

    # Input: a new inbound event or a conversation with pending messages.
    inbound: Inbound
    conversation_id: int
    # ingest
    now: datetime  # pinned for the whole run
    # identify
    pending_ids: list[int]  # every unprocessed inbound message of the conversation
    pending: list[PendingMessage]  # the burst to read, oldest first (bounded)
    window: list[WindowMessage]  # recent messages, oldest first
    lead: LeadSnapshot
    ai: AiState
    room: Room  # this conversation: its channel, summary, language, standing
    # extract_contacts / merge
    contacts: Contacts
    # detect_language / call_model
    language: str  # the language to answer in
    language_clear: bool  # the new messages leave no doubt about it
    model_turn: ModelTurn | None  # the model's validated answer; None offline or on failure
    engine: Engine
    # score
    assessment: Assessment
    # decide_status
    decision: Decision
    # plan
    plan: Plan
    # draft_reply
    reply: DraftReply | None
    # save
    outcome: Outcome
    replies: list[Reply]  # what to deliver, recorded as pending
    more_pending: bool  # messages arrived during this run: run again


class BotState(RunState, total=False):
    """What a step reads and writes: the run's state, and facts a step hands only to its own route
    or to the next function inside it. LangGraph keeps no such fact (a key that is no channel of
    `RunState` is dropped from a step's writes)."""

    # ingest, for its route
    echo: bool  # an agent's message echoed by the channel: no bot processing
    identified: bool  # ingest read the turn too (in its transaction): identify is skipped
    # decide_status, for plan (both inside decide_turn)
    room_quiet: RoomQuiet | None


@dataclass(frozen=True)
class BotContext:
    """Per-run collaborators pinned for the whole run (a hot reload never mixes two configs)."""

    prompts: PromptConfig
    now: datetime | None = None
    # A new message's turn in one transaction, from storing to saving (`bot.transaction`); None:
    # each step that writes commits its own.
    transaction: TurnTransaction | None = None
