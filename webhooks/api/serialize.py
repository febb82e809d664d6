"""Turning store rows into the API's JSON shapes (validated against the response models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.media import transcript_of
from store import identity as rules
from store.models import Agent, AuditEvent, Identity, Lead, Message, Note, Notification, ScoreEvent
from store.work import audit_trail, list_notes, score_history

BANDS = (
    (20, "very low"),
    (40, "mild"),
    (60, "moderate"),
    (80, "high"),
    (100, "ready to buy"),
)


def band(score: int) -> str:
    for upper, label in BANDS:
        if score <= upper:
            return label
    return BANDS[-1][1]


def ai_paused(lead: Lead, now: datetime) -> bool:
    return bool(
        lead.ai_stopped or (lead.ai_paused_until is not None and lead.ai_paused_until > now)
    )


def lead_summary(lead: Lead, now: datetime) -> dict[str, Any]:
    agent = lead.assigned_agent
    return {
        "id": lead.id,
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "status": lead.status,
        "score": lead.score,
        "band": band(lead.score),
        "hot": lead.is_hot,
        "channels": lead.channels,
        "assigned_agent": {"id": agent.id, "name": agent.name} if agent else None,
        "archived": lead.archived,
        "locked": lead.locked,
        "ai_paused": ai_paused(lead, now),
        "created_at": lead.created_at,
        "last_contacted_at": lead.last_contacted_at,
        "converted_at": lead.converted_at,
    }


def _factors(raw: Any) -> list[dict[str, Any]]:
    return [f if isinstance(f, dict) else {"factor": str(f)} for f in (raw or [])]


def message_out(message: Message, agent_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel": message.channel,
        "direction": message.direction,
        "author": message.author,
        "agent_id": message.agent_id,
        "agent_name": agent_names.get(message.agent_id) if message.agent_id else None,
        "text": message.text,
        "kind": message.kind,
        "transcript": transcript_of(message.payload),
        "delivery_status": message.delivery_status,
        "error": message.error,
        "sent_at": message.sent_at,
        "subject": _subject_of(message),
    }


def _subject_of(message: Message) -> str | None:
    """An email's subject (kept in the message's payload)."""
    if message.channel != "email" or not isinstance(message.payload, dict):
        return None
    subject = message.payload.get("subject")
    return str(subject) if subject else None


def note_out(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "lead_id": note.lead_id,
        "author": note.author,
        "agent_id": note.agent_id,
        "category": note.category,
        "text": note.text,
        "created_at": note.created_at,
    }


def score_event_out(event: ScoreEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "previous_score": event.previous_score,
        "score": event.score,
        "engine": event.engine,
        "factors": _factors(event.factors),
        "created_at": event.created_at,
    }


def audit_out(event: AuditEvent, agent_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": event.id,
        "actor": event.actor,
        "agent_id": event.agent_id,
        "agent_name": agent_names.get(event.agent_id) if event.agent_id else None,
        "action": event.action,
        "field": event.field,
        "old_value": event.old_value,
        "new_value": event.new_value,
        "created_at": event.created_at,
    }


def agent_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Agent.id, Agent.name)).all())


def lead_detail(
    lead: Lead, now: datetime, *, session: Session, notes: list[Note] | None = None
) -> dict[str, Any]:
    names = agent_names(session)
    identities = {i.id: i for i in lead.identities}

    def talks_with(identity_id: int | None) -> Identity | None:
        if identity_id is None:
            return None
        return identities.get(identity_id) or session.get(Identity, identity_id)

    data = lead_summary(lead, now)
    data.update(
        {
            "source": lead.source,
            "summary": lead.summary,
            "next_best_action": lead.next_best_action,
            "conversion_probability": lead.conversion_probability,
            "tags": list(lead.tags or []),
            "interests": list(lead.interests or []),
            "objections": list(lead.objections or []),
            "score_factors": _factors(lead.score_factors),
            "custom_fields": dict(lead.custom_fields or {}),
            "ai_paused_until": lead.ai_paused_until,
            "ai_stopped": lead.ai_stopped,
            "ai_pause_reason": lead.ai_pause_reason,
            "lost_reason": lead.lost_reason,
            "lost_note": lead.lost_note,
            "updated_at": lead.updated_at,
            "identities": [
                {
                    "channel": i.channel,
                    "external_id": i.external_id,
                    "display_name": i.display_name,
                    "trust": i.trust,
                    "created_at": i.created_at,
                }
                for i in lead.identities
            ],
            "contacts": [
                {
                    "kind": c.kind,
                    "value": c.value,
                    "trust": c.trust,
                    "source": c.source,
                    "created_at": c.created_at,
                }
                for c in lead.contacts
            ],
            "phone_trust": rules.detail_trust(lead, "phone", session=session),
            "email_trust": rules.detail_trust(lead, "email", session=session),
            "merge_suggestions": [
                {
                    "id": s.id,
                    "other_lead_id": s.other_lead_id,
                    "other_name": s.other_name,
                    "kind": s.kind,
                    "source": s.source,
                    "reason": s.reason,
                    "created_at": s.created_at,
                }
                for s in rules.open_suggestions(lead, session=session)
            ],
            "conversations": [
                {
                    "id": c.id,
                    "channel": c.channel,
                    "trust": rules.conversation_trust(c, session=session),
                    "external_id": (
                        talks_with(c.identity_id).external_id  # type: ignore[union-attr]
                        if talks_with(c.identity_id) is not None
                        else None
                    ),
                    "ai_stopped": c.ai_stopped,
                    "ai_paused_until": c.ai_paused_until,
                    "summary": c.summary,
                    "last_inbound_at": c.last_inbound_at,
                    "messages": [message_out(m, names) for m in c.messages],
                }
                for c in lead.conversations
            ],
            "notes": [
                note_out(n)
                for n in (notes if notes is not None else list_notes(lead.id, session=session))
            ],
            "score_history": [score_event_out(e) for e in score_history(lead.id, session=session)],
            "audit": [audit_out(e, names) for e in audit_trail(lead.id, session=session)],
        }
    )
    return data


def notification_out(notification: Notification, lead_name: str | None) -> dict[str, Any]:
    return {
        "id": notification.id,
        "lead_id": notification.lead_id,
        "lead_name": lead_name,
        "kind": notification.kind,
        "text": notification.text,
        "read": notification.read,
        "created_at": notification.created_at,
    }


def dump(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """Validate `data` against the documented response model and return its JSON form."""
    return model.model_validate(data).model_dump(mode="json")
