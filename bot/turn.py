"""Applying a bot turn in ONE transaction (the graph's `save`): the burst is claimed first, so a
crash or a concurrent run never leaves it scored but unanswered, or answered twice; then the score,
the lead's profile, the plan (through `store.domain`, the bot being the actor) and the reply."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from bot.config import PromptConfig
from bot.outbox import Reply
from bot.room import is_room_paused
from bot.scoring import (
    conversion_probability,
    derive_tags,
    merge_labels,
    next_best_action,
    summarize,
)
from bot.state import BotState, DraftReply
from bot.statuses import Decision, Plan, may_move
from store.domain.policy import Policy
from store.domain.status import change_status_by_bot, quiet_for_status
from store.domain.takeover import is_ai_paused
from store.identity import Standing, load_standing
from store.leads import batched_audit, update_lead
from store.messages import add_outbound, record_outbound
from store.models import Conversation, Lead, Message, table_of
from store.tenancy import current_workspace
from store.work import record_score

log = logging.getLogger(__name__)


class Superseded(Exception):
    """Another run processed (some of) these messages first; this run's effects are rolled back."""


def claim_pending(pending_ids: list[int], now: datetime, session: Session) -> None:
    """Mark the burst processed, or raise `Superseded` when another run got (some of) it first."""
    claimed = session.connection().execute(
        _claim_statement(),
        {"ids": list(pending_ids), "now": now, "workspace": current_workspace()},
    )
    if claimed.rowcount != len(pending_ids):
        raise Superseded()


@cache
def _claim_statement() -> Any:
    """`claim_pending`'s UPDATE, built once: a Core statement with the workspace's filter written
    in (the ORM's bulk UPDATE built a new statement, and worked out its cache key, at every run).
    No loaded message needs the new value, so the session has nothing to synchronise."""
    messages = table_of(Message).c
    return (
        update(table_of(Message))
        .where(
            messages.id.in_(bindparam("ids", expanding=True)),
            messages.processed_at.is_(None),
            messages.workspace_id == bindparam("workspace"),
        )
        .values(processed_at=bindparam("now", type_=messages.processed_at.type))
    )


def apply_turn(
    state: BotState,
    config: PromptConfig,
    policy: Policy,
    session: Session,
    *,
    known_keys: bool = True,
    delivery_status: str = "pending",
    standing: Standing | None = None,
    refresh: bool = False,
) -> BotState:
    """Everything the turn changes, in the caller's transaction (after `claim_pending`): the lead's
    score, profile and status with the plan applied through the domain layer, the conversation's
    summary and language, and the reply recorded for delivery.

    One statement loads (and locks) the lead with its conversation; the changes are written in one
    flush at the end (the score event, one update per row) and the audit rows in one insert.
    `known_keys=False` reads whether the reply's idempotency key is taken (and keeps that reply).
    A `standing` given (read earlier in this transaction, with nobody able to change it since) is
    not read again; `refresh` reads the rows the session holds anew (read earlier in this
    transaction, as they may have changed since).
    The reply is recorded with `delivery_status`: "pending" until an outbox sends it, "sent" where
    recording it is the delivery (a local outbox: nobody to send to)."""
    if standing is None:
        standing = load_standing(
            state["conversation_id"],
            session=session,
            lock_lead=True,
            pending_besides=state["pending_ids"],
            refresh=refresh,
        )
    assert standing is not None
    with batched_audit(session):
        return _apply(state, standing, config, policy, session, known_keys, delivery_status)


def _apply(
    state: BotState,
    standing: Standing,
    config: PromptConfig,
    policy: Policy,
    session: Session,
    known_keys: bool,
    delivery_status: str,
) -> BotState:
    now = state["now"]
    last_id = state["pending_ids"][-1]
    lead, conversation, alone = standing.lead, standing.conversation, standing.alone
    _end_expired_pause(lead, now, session)
    # Checked on the rows themselves: a human who replied during the model call silences this reply.
    quiet = is_ai_paused(lead, now) or is_room_paused(conversation, now)
    if not lead.locked:
        record_score(
            lead,
            state["assessment"].score,
            state["assessment"].factors,
            session=session,
            message_id=last_id,
            engine="llm" if state.get("engine") == "llm" else "offline",
            unscored=True,  # claimed in this transaction
        )
    decision = state["decision"]
    sets_status = _may_still_set(lead, decision, config)
    status = decision.status if sets_status else lead.status
    summary = _update_lead_profile(lead, state, config, session, status=status)
    _update_conversation(conversation, state, lead_summary=summary, alone=alone, status=status)
    reply = _reply_to_record(state, conversation, quiet=quiet)
    if reply is not None:
        # Before the plan, whose reads flush the lead: its changes then go in one UPDATE.
        _count_phone_ask(lead, reply)
    # After the profile: the notifications the status's action sends quote its next best action.
    _apply_plan(
        state["plan"], lead, conversation, sets_status, alone, policy, session, now, last_id
    )
    message = (
        None
        if reply is None
        else _record_reply(
            reply,
            state,
            lead,
            conversation,
            session,
            known_key=known_keys,
            delivery_status=delivery_status,
        )
    )
    session.flush()
    return {
        "outcome": "replied" if message is not None else "quiet",
        "replies": [_reply(message, state, lead, config)] if message is not None else [],
        "more_pending": standing.more_pending,
    }


def _end_expired_pause(lead: Lead, now: datetime, session: Session) -> None:
    """The bot's own pause ran out: it speaks again (and says so in its next message)."""
    if not lead.ai_stopped and lead.ai_paused_until is not None and lead.ai_paused_until <= now:
        update_lead(
            lead,
            {"ai_paused_until": None, "ai_pause_reason": None, "ai_resume_notice_due": True},
            session=session,
            actor="bot",
        )


def _may_still_set(lead: Lead, decision: Decision, config: PromptConfig) -> bool:
    """Whether the decided status still applies: not if a human locked the lead or moved it past
    it meanwhile."""
    return (
        decision.changed and not lead.locked and may_move(config, lead.status, decision.status)[0]
    )


def _update_lead_profile(
    lead: Lead, state: BotState, config: PromptConfig, session: Session, *, status: str
) -> str:
    """Tags, interests, objections, summary, conversion chance and next best action, for the lead
    in `status` (the one it ends the turn with); the lead's summary is returned."""
    assessment, turn = state["assessment"], state.get("model_turn")
    has_phone = bool(lead.phone)
    summary = (turn.summary if turn else "") or summarize(
        assessment, name=lead.name, has_phone=has_phone, status=status
    )
    action = (turn.next_best_action if turn else "") or next_best_action(
        assessment, status, has_phone=has_phone, config=config
    )
    changes: dict[str, Any] = {
        "tags": derive_tags(lead.tags or [], assessment, config),
        "interests": merge_labels(
            lead.interests or [], [*assessment.interests, *(turn.interests if turn else [])]
        ),
        "objections": merge_labels(
            lead.objections or [], [*assessment.objections, *(turn.objections if turn else [])]
        ),
        "summary": summary,
        "conversion_probability": conversion_probability(lead.score, status, config),
        "next_best_action": action,
    }
    contacts = state.get("contacts")
    if contacts is not None and contacts.phone_declined:
        changes["phone_declined"] = True
    update_lead(lead, changes, session=session, actor="bot")
    return summary


def _update_conversation(
    conversation: Conversation, state: BotState, *, lead_summary: str, alone: bool, status: str
) -> None:
    """The conversation's own summary and the language it is in."""
    if alone:
        conversation.summary = lead_summary[:2000]
    else:
        # The room's own summary names only what this conversation said.
        room, turn = state["lead"], state.get("model_turn")
        conversation.summary = (
            (turn.summary if turn else "")
            or summarize(
                state["assessment"],
                name=room.name,
                has_phone=bool(room.phone),
                status=status,
            )
        )[:2000]
    language = state.get("language")
    if language and conversation.language != language:
        conversation.language = language


def _apply_plan(
    planned: Plan,
    lead: Lead,
    conversation: Conversation,
    sets_status: bool,
    alone: bool,
    policy: Policy,
    session: Session,
    now: datetime,
    trigger: int,
) -> None:
    """Apply the plan through the domain layer, the bot being the actor: the new status with its
    lock, action and AI behaviour (the pause or stop holds in this conversation only when it is
    one of several), or only the pause or stop of this conversation. `trigger`: the newest
    customer message of the burst, the one that brought the change."""
    if planned.status is None:
        return
    if planned.room_only:
        quiet_for_status(
            lead,
            planned.status,
            session=session,
            policy=policy,
            now=now,
            conversation=conversation,
        )
    elif sets_status:
        change_status_by_bot(
            lead,
            planned.status,
            session=session,
            policy=policy,
            now=now,
            conversation=None if alone else conversation,
            trigger=trigger,
        )


def _reply_to_record(
    state: BotState, conversation: Conversation, *, quiet: bool
) -> DraftReply | None:
    """The drafted reply the turn records, if any: none when a human took over meanwhile."""
    reply = state.get("reply")
    if reply is None:
        return None
    if quiet:
        log.info(
            "conversation %s: a human took over while the bot was thinking; no bot reply",
            conversation.id,
        )
        return None
    return reply if reply.text else None


def _count_phone_ask(lead: Lead, reply: DraftReply) -> None:
    """Whether the reply asks for the phone number, and how often the bot has asked."""
    if reply.asked_phone:
        lead.phone_asks = (lead.phone_asks or 0) + 1
    lead.last_reply_asked_phone = reply.asked_phone


def _record_reply(
    reply: DraftReply,
    state: BotState,
    lead: Lead,
    conversation: Conversation,
    session: Session,
    *,
    known_key: bool,
    delivery_status: str,
) -> Message:
    """Record the reply for delivery."""
    key = f"bot-reply:{state['pending_ids'][-1]}"
    if known_key:
        # The key is new: the burst it answers was unclaimed until this transaction.
        message = add_outbound(
            conversation,
            reply.text,
            session=session,
            idempotency_key=key,
            external_id=state["room"].external_id,
            delivery_status=delivery_status,
        )
    else:
        message = record_outbound(
            conversation,
            reply.text,
            session=session,
            idempotency_key=key,
            external_id=state["room"].external_id,
            delivery_status=delivery_status,
        )
    if reply.notice:
        # After the plan: this reply carries the notice, also one a resume in the plan made due.
        lead.ai_resume_notice_due = False
    return message


def _reply(message: Message, state: BotState, lead: Lead, config: PromptConfig) -> Reply:
    """What to deliver, once the recorded reply has its id."""
    reply = state.get("reply")
    assert reply is not None
    return Reply(
        message_id=message.id,
        lead_id=lead.id,
        conversation_id=message.conversation_id,
        channel=message.channel,
        external_id=message.external_id,
        text=message.text,
        language=reply.language or config.business.default_language,
        source="model" if reply.source == "llm" else "offline",
        knowledge=tuple(reply.knowledge),
    )
