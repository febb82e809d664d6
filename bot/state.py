"""What flows through the bot graph: raw data only (ids, texts, numbers, small dicts).

The SQL store is the source of truth; each run loads a bounded window from it, so nothing here
grows with the length of the conversation. Prompts are built inside the node that calls the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, TypedDict

from bot.config import PromptConfig


class BotState(TypedDict, total=False):
    # Input: a new inbound event (a dict of `store.messages.Inbound` fields) or a conversation.
    inbound: dict[str, Any]
    conversation_id: int
    # ingest
    duplicate: bool
    echo: bool  # an agent's message echoed by the channel: no bot processing
    # identify
    now: str  # ISO time pinned for the whole run
    lead_id: int
    channel: str
    external_id: Optional[str]  # the customer's id on this channel
    pending_ids: list[int]  # every unprocessed inbound message of the conversation
    pending: list[
        dict[str, Any]
    ]  # the burst to read: [{"id", "text", "sent_at"}], oldest first (bounded)
    greeted: bool  # whether the business ever wrote to this lead
    window: list[dict[str, Any]]  # recent messages [{"id", "author", "text"}], oldest first
    summary: Optional[str]  # the conversation's rolling summary
    conversation_language: Optional[str]  # the language the conversation is in so far
    lead: dict[str, Any]  # a snapshot of the lead's fields the bot reads
    ai: dict[str, Any]  # {"paused", "resuming", "notice_due", "reason"}
    # {"alone", "speaks_for_lead", "paused"}: whether this conversation is the lead's only room,
    # whether it may end the lead (verified, or alone) and whether the bot is quiet in it
    room: dict[str, Any]
    room_quiet: Optional[dict[str, Any]]  # a stop/pause said in a room that cannot end the lead
    # extract_contacts / merge
    contacts: dict[str, Any]  # {"phones", "emails", "name", "phone_declined"}
    # score_intent
    assessment: dict[str, Any]
    model_turn: Optional[
        dict[str, Any]
    ]  # the model's validated answer, None when offline or failed
    engine: str  # "offline" | "llm" | "offline-fallback"
    # decide_status / act
    decision: dict[str, Any]  # {"status", "previous", "changed", "source"}
    plan: dict[str, Any]  # {"action", "ai_behaviour", "pause_minutes", "transition"}
    # draft_reply
    reply: Optional[dict[str, Any]]  # {"text", "asked_phone", "language", "source", "knowledge"}
    # save
    outcome: str  # "replied" | "quiet" | "duplicate" | "nothing_pending" | "superseded" | "echo"
    replies: list[dict[str, Any]]  # `bot.outbox.Reply` fields of what to deliver
    more_pending: bool  # messages arrived during this run: run again


@dataclass(frozen=True)
class BotContext:
    """Per-run collaborators pinned for the whole run (a hot reload never mixes two configs)."""

    prompts: PromptConfig
    now: Optional[datetime] = None
