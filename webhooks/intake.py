"""Storing what a webhook carried: every inbound message once (dedupe by the unique index), human
replies
echoed from native apps (which pause the bot), and delivery reports on the messages we sent.

Everything of one request is written in one short transaction; the caller dispatches afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import identity as rules
from store.domain.takeover import human_took_over
from store.leads import find_identity, get_lead, join_conversations, merge_leads
from store.messages import Ingested, ingest
from store.models import VERIFIED, Conversation, Identity, Lead, Message
from webhooks.events import DELIVERY_RANK, ParsedBatch, StatusUpdate

log = logging.getLogger(__name__)

HumanReplyHook = Callable[..., Any]


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    agent_replies: int = 0
    touched: list[int] = field(default_factory=list)  # conversations with pending customer messages


def store_batch(
    batch: ParsedBatch,
    *,
    session_factory: sessionmaker[Session],
    region: str,
    takeover_minutes: int,
    now: datetime,
    on_human_reply: Optional[HumanReplyHook] = None,
) -> StoreResult:
    """Store the batch in one transaction and return the conversations that now need the bot."""
    result = StoreResult()
    touched: dict[int, None] = {}
    with session_factory.begin() as session:
        for inbound in batch.messages:
            ingested = ingest(inbound, session=session, region=region)
            if ingested.duplicate:
                result.duplicates += 1
                # Still pending (stored by a delivery that was never dispatched): dispatch again.
                if ingested.message.direction == "in" and ingested.message.processed_at is None:
                    touched[ingested.conversation.id] = None
                continue
            result.stored += 1
            lead, conversation_id = ingested.lead, ingested.message.conversation_id
            aliases = inbound.extra.get("aliases") or []
            if aliases:
                lead = _link_aliases(ingested, aliases, session=session)
                # Joining the alias's conversation may have moved the message.
                conversation_id = session.scalars(
                    select(Message.conversation_id).where(Message.id == ingested.message.id)
                ).one()
            if inbound.author == "agent":
                result.agent_replies += 1
                _human_replied(
                    lead, session=session, now=now, minutes=takeover_minutes, hook=on_human_reply
                )
            else:
                touched[conversation_id] = None
        for status in batch.statuses:
            result.statuses += apply_status(status, session=session)
    result.touched = list(touched)
    return result


def _human_replied(
    lead: Lead, *, session: Session, now: datetime, minutes: int, hook: Optional[HumanReplyHook]
) -> None:
    """A person answered from the native app: the bot steps back for the takeover window."""
    if hook is None:
        hook = human_took_over
    hook(lead, session=session, now=now, minutes=minutes)
    log.info("lead %s: a human replied from the native app; the bot is paused", lead.id)


def _link_aliases(ingested: Ingested, aliases: list[str], *, session: Session) -> Lead:
    """Record other ids of the same person on this channel (e.g. the WhatsApp BSUID beside the
    phone).

    The channel vouches for both, so the alias is verified and shares the conversation; an alias
    already owned by another lead means the two leads are one person: they are merged (when
    `store.identity` allows, else a merge is suggested).
    """
    lead = ingested.lead
    channel = ingested.message.channel
    root_id = ingested.conversation.identity_id
    for alias in aliases:
        identity = find_identity(channel, alias, session=session)
        if identity is None:
            try:
                with session.begin_nested():
                    session.add(
                        Identity(
                            lead_id=lead.id,
                            channel=channel,
                            external_id=alias,
                            display_name=lead.name,
                            trust=VERIFIED,
                            alias_of_id=root_id,
                            created_at=ingested.message.created_at,
                        )
                    )
                    session.flush()
                continue
            except IntegrityError:
                identity = find_identity(channel, alias, session=session)
                if identity is None:
                    continue
        owner = get_lead(identity.lead_id, session=session)
        if owner.id != lead.id and rules.may_merge_automatically(lead, owner):
            lead = merge_leads(lead, owner, session=session, actor="merge")
        if owner.id == lead.id:
            # One person's two ids on this channel: one conversation.
            if root_id is not None:
                root_id = join_conversations(identity, root_id, session=session)
        else:
            rules.suggest_merge(lead, owner, "phone", session=session, source=channel,
                                claimed=False)
    return lead


def apply_status(status: StatusUpdate, *, session: Session) -> int:
    """Move our outbound messages forward (sent → delivered → read, or failed); never backwards."""
    lower = [
        name for name, rank in DELIVERY_RANK.items() if rank < DELIVERY_RANK.get(status.status, 99)
    ]
    if status.status == "failed":
        # A failure report after delivery or reading is stale; before that it is the outcome.
        lower = ["pending", "sending", "sent"]
    values: dict[str, Any] = {"delivery_status": status.status}
    if status.error:
        values["error"] = status.error[:2000]
    if status.channel_message_id:
        statement = (
            update(Message)
            .where(
                Message.channel == status.channel,
                Message.channel_message_id == status.channel_message_id,
                Message.direction == "out",
                Message.delivery_status.in_(lower),
            )
            .values(**values)
        )
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    if status.watermark is not None and status.recipient:
        conversation_ids = _conversations_of(status.channel, status.recipient, session=session)
        if not conversation_ids:
            return 0
        statement = (
            update(Message)
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == "out",
                Message.delivery_status.in_([s for s in lower if s not in ("pending", "sending")]),
                Message.sent_at <= status.watermark,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    return 0


def _conversations_of(channel: str, external_id: str, *, session: Session) -> list[int]:
    identity = find_identity(channel, external_id, session=session)
    if identity is None:
        return []
    root_id = identity.alias_of_id or identity.id
    return list(
        session.scalars(select(Conversation.id).where(Conversation.identity_id == root_id))
    )
