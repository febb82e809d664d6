"""Notification endpoints: the calling agent's notifications and marking them read."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from sqlalchemy import select

from store.db import read_session
from store.models import Lead, Notification
from store.work import mark_read, unread_notifications
from webhooks.api import schemas
from webhooks.api.base import endpoint, now
from webhooks.api.serialize import dump, notification_out
from webhooks.app import services

TAG = "Notifications"


def agent_notifications(agent_id: int, *, unread: bool, session: Any) -> list[dict[str, Any]]:
    if unread:
        rows = unread_notifications(agent_id, session=session, now=now())
    else:
        rows = list(
            session.scalars(
                select(Notification)
                .where(Notification.agent_id == agent_id)
                .where(
                    (Notification.deliver_after.is_(None)) | (Notification.deliver_after <= now())
                )
                .order_by(Notification.id.desc())
                .limit(200)
            )
        )
    lead_ids = {n.lead_id for n in rows if n.lead_id}
    names = (
        dict(session.execute(select(Lead.id, Lead.name).where(Lead.id.in_(lead_ids))).all())
        if lead_ids
        else {}
    )
    return [notification_out(n, names.get(n.lead_id)) for n in rows]


def scheduled_notifications(agent_id: int, *, session: Any) -> list[dict[str, Any]]:
    """The agent's notifications held until later (out of hours), soonest first."""
    rows = list(
        session.scalars(
            select(Notification)
            .where(Notification.agent_id == agent_id, Notification.read.is_(False))
            .where(Notification.deliver_after > now())
            .order_by(Notification.deliver_after, Notification.id)
            .limit(200)
        )
    )
    lead_ids = {n.lead_id for n in rows if n.lead_id}
    names = (
        dict(session.execute(select(Lead.id, Lead.name).where(Lead.id.in_(lead_ids))).all())
        if lead_ids
        else {}
    )
    return [
        {**notification_out(n, names.get(n.lead_id)), "deliver_after": n.deliver_after}
        for n in rows
    ]


def unread_count(agent_id: int, *, session: Any) -> int:
    return len(unread_notifications(agent_id, session=session, now=now()))


@endpoint(
    "GET",
    "/notifications",
    summary="List my notifications",
    tag=TAG,
    query=schemas.NotificationParams,
    response=schemas.NotificationList,
    errors=(400, 401, 422),
)
def list_notifications(params: schemas.NotificationParams) -> Any:
    """The agent's due notifications, newest first (unread only unless `unread=false`)."""
    with read_session(services().session_factory) as session:
        items = agent_notifications(g.agent.id, unread=params.unread, session=session)
        count = unread_count(g.agent.id, session=session)
    return jsonify(dump(schemas.NotificationList, {"notifications": items, "unread": count}))


@endpoint(
    "POST",
    "/notifications/read",
    summary="Mark notifications read",
    tag=TAG,
    body=schemas.NotificationsRead,
    response=schemas.MarkedRead,
    errors=(400, 401, 422),
)
def read_notifications(body: schemas.NotificationsRead) -> Any:
    """Mark the given ids (or `all`) read; other agents' notifications are never touched."""
    with services().session_factory.begin() as session:
        ids = body.ids
        if body.all:
            ids = [n.id for n in unread_notifications(g.agent.id, session=session, now=now())]
        marked = mark_read(ids, g.agent.id, session=session) if ids else 0
    return jsonify(dump(schemas.MarkedRead, {"marked": marked}))
