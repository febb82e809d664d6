"""Dashboard figures: leads by status, channel and score band, lost reasons, new leads per day,
conversions per week, and the hot leads that need someone's attention. Agents get the figures of
their own and unassigned leads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import g, jsonify
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from store.db import read_session
from store.domain.permissions import visible_clause
from store.models import HOT_SCORE, Agent, Conversation, Identity, Lead, Message, as_utc
from webhooks.api import catalog, schemas
from webhooks.api.base import endpoint, now
from webhooks.api.serialize import BANDS, dump, lead_summary
from webhooks.app import services

TAG = "Dashboard"
DAYS = 14
WEEKS = 12


def _visible(stmt: Any, agent: Agent) -> Any:
    stmt = stmt.where(Lead.merged_into_id.is_(None), Lead.archived.is_(False))
    return stmt.where(visible_clause(agent))


def dashboard(agent: Agent, *, session: Session, at: datetime) -> dict[str, Any]:
    total = session.scalar(_visible(select(func.count()).select_from(Lead), agent)) or 0

    counts = dict(
        session.execute(
            _visible(select(Lead.status, func.count()).group_by(Lead.status), agent)
        ).all()
    )
    order = [s.name for s in catalog.statuses()]
    names = order + sorted(name for name in counts if name not in order)
    by_status = [{"label": name, "count": int(counts.get(name, 0))} for name in names]

    channel_rows = session.execute(
        _visible(
            select(Identity.channel, func.count(func.distinct(Identity.lead_id)))
            .join(Lead, Lead.id == Identity.lead_id)
            .group_by(Identity.channel),
            agent,
        )
    ).all()
    by_channel = sorted(
        ({"label": c, "count": int(n)} for c, n in channel_rows), key=lambda r: -r["count"]
    )

    band = case(*[(Lead.score <= upper, label) for upper, label in BANDS], else_=BANDS[-1][1])
    band_counts = dict(
        session.execute(_visible(select(band, func.count()).group_by(band), agent)).all()
    )
    by_band = [{"label": label, "count": int(band_counts.get(label, 0))} for _upper, label in BANDS]

    today = at.replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=DAYS - 1)
    days = {(since + timedelta(days=i)).date(): 0 for i in range(DAYS)}
    for (created,) in session.execute(
        _visible(select(Lead.created_at).where(Lead.created_at >= since), agent)
    ):
        day = as_utc(created).date()  # type: ignore[union-attr]
        if day in days:
            days[day] += 1
    new_per_day = [{"label": day.isoformat(), "count": n} for day, n in days.items()]

    week_start = today - timedelta(days=today.weekday())
    first_week = week_start - timedelta(weeks=WEEKS - 1)
    weeks = {(first_week + timedelta(weeks=i)).date(): 0 for i in range(WEEKS)}
    converted = select(Lead.converted_at).where(Lead.converted_at >= first_week)
    converted = converted.where(visible_clause(agent))
    for (converted_at,) in session.execute(converted.where(Lead.merged_into_id.is_(None))):
        day = as_utc(converted_at).date()  # type: ignore[union-attr]
        monday = day - timedelta(days=day.weekday())
        if monday in weeks:
            weeks[monday] += 1
    conversions_per_week = [
        {"label": f"{monday.isoformat()}", "count": n} for monday, n in weeks.items()
    ]

    # Why leads were lost: the configured reasons in their order (zeros included), then any other
    # reason still on a lead (one removed from statuses.yaml since).
    lost_counts = dict(
        session.execute(
            _visible(
                select(Lead.lost_reason, func.count())
                .where(Lead.lost_reason.is_not(None))
                .group_by(Lead.lost_reason),
                agent,
            )
        ).all()
    )
    reasons = list(catalog.policy().lost_reasons)
    reasons += sorted(str(r) for r in lost_counts if r not in reasons)
    lost_reasons = [{"label": r, "count": int(lost_counts.get(r, 0))} for r in reasons]

    return {
        "total": int(total),
        "by_status": by_status,
        "lost_reasons": lost_reasons,
        "by_channel": by_channel,
        "by_band": by_band,
        "new_per_day": new_per_day,
        "conversions_per_week": conversions_per_week,
        "hot_needing_attention": [
            lead_summary(lead, at) for lead in hot_needing_attention(agent, session=session)
        ],
    }


def hot_needing_attention(agent: Agent, *, session: Session, limit: int = 10) -> list[Lead]:
    """Hot, open leads nobody owns yet or whose customer wrote after the last human reply."""
    last_agent_reply = (
        select(func.max(Message.sent_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.lead_id == Lead.id, Message.author == "agent")
        .correlate(Lead)
        .scalar_subquery()
    )
    stmt = (
        _visible(select(Lead), agent)
        .where(
            Lead.score >= HOT_SCORE,
            Lead.locked.is_(False),
            Lead.status.not_in(list(catalog.terminal_statuses())),
            or_(
                Lead.assigned_agent_id.is_(None),
                last_agent_reply.is_(None),
                last_agent_reply < Lead.last_contacted_at,
            ),
        )
        .order_by(Lead.score.desc(), Lead.last_contacted_at.desc().nulls_last(), Lead.id.desc())
        .limit(limit)
    )
    stmt = stmt.options(selectinload(Lead.identities), selectinload(Lead.assigned_agent))
    return list(session.scalars(stmt))


@endpoint(
    "GET",
    "/dashboard",
    summary="Dashboard figures",
    tag=TAG,
    response=schemas.Dashboard,
    errors=(401,),
)
def get_dashboard() -> Any:
    """Counts by status, channel and score band, why leads were lost (by configured reason), new
    leads per day (14 days), conversions per week (12 weeks) and the hot leads needing attention,
    over the leads the agent may see."""
    with read_session(services().session_factory) as session:
        data = dashboard(g.agent, session=session, at=now())
    return jsonify(dump(schemas.Dashboard, data))
