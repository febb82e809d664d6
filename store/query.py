"""The one lead query every front end shares (CLI, copilot, REST API, console)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Optional, Sequence

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from store.contacts import _ascii_digits
from store.models import HOT_SCORE, Identity, Lead, utcnow

SortKey = Literal["created_at", "-created_at", "score", "-score", "last_contacted_at",
                  "-last_contacted_at", "name", "-name", "id", "-id"]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]


@dataclass
class LeadQuery:
    """Filters, sort and page. Every field is optional; unset fields do not filter."""

    status: Sequence[str] = ()
    score_min: Optional[int] = None
    score_max: Optional[int] = None
    hot: bool = False
    agent_id: Optional[int] = None
    unassigned: bool = False
    # Agents see their own and unassigned leads: set this to restrict to that.
    visible_to_agent_id: Optional[int] = None
    channel: Sequence[str] = ()
    created_from: Optional[datetime] = None
    created_to: Optional[datetime] = None
    contacted_from: Optional[datetime] = None
    contacted_to: Optional[datetime] = None
    stale_days: Optional[int] = None
    terminal_statuses: Sequence[str] = ("Not Interested", "Converted")
    archived: Optional[bool] = False  # None: both
    search: Optional[str] = None
    sort: str = "-created_at"
    limit: int = 50
    offset: int = 0
    after_id: Optional[int] = None  # keyset cursor on id (with sort "id" / "-id")
    ids: Sequence[int] = field(default_factory=tuple)


def build_lead_query(q: LeadQuery, *, now: Optional[datetime] = None) -> Select[tuple[Lead]]:
    """The SELECT for `q` without paging (also used for export and bulk actions)."""
    now = now or utcnow()
    stmt = select(Lead).where(Lead.merged_into_id.is_(None))
    if q.ids:
        stmt = stmt.where(Lead.id.in_(list(q.ids)))
    if q.archived is not None:
        stmt = stmt.where(Lead.archived.is_(q.archived))
    if q.status:
        stmt = stmt.where(Lead.status.in_(list(q.status)))
    if q.hot:
        stmt = stmt.where(Lead.score >= HOT_SCORE)
    if q.score_min is not None:
        stmt = stmt.where(Lead.score >= q.score_min)
    if q.score_max is not None:
        stmt = stmt.where(Lead.score <= q.score_max)
    if q.unassigned:
        stmt = stmt.where(Lead.assigned_agent_id.is_(None))
    elif q.agent_id is not None:
        stmt = stmt.where(Lead.assigned_agent_id == q.agent_id)
    if q.visible_to_agent_id is not None:
        stmt = stmt.where(or_(Lead.assigned_agent_id == q.visible_to_agent_id, Lead.assigned_agent_id.is_(None)))
    if q.channel:
        stmt = stmt.where(exists().where(Identity.lead_id == Lead.id, Identity.channel.in_(list(q.channel))))
    if q.created_from:
        stmt = stmt.where(Lead.created_at >= q.created_from)
    if q.created_to:
        stmt = stmt.where(Lead.created_at < q.created_to)
    if q.contacted_from:
        stmt = stmt.where(Lead.last_contacted_at >= q.contacted_from)
    if q.contacted_to:
        stmt = stmt.where(Lead.last_contacted_at < q.contacted_to)
    if q.stale_days is not None:
        cutoff = now - timedelta(days=q.stale_days)
        stmt = stmt.where(
            or_(Lead.last_contacted_at < cutoff, and_(Lead.last_contacted_at.is_(None), Lead.created_at < cutoff))
        )
        if q.terminal_statuses:
            stmt = stmt.where(Lead.status.not_in(list(q.terminal_statuses)))
    if q.search and q.search.strip():
        stmt = stmt.where(_search_clause(q.search.strip()))
    return stmt


def _search_clause(text: str):  # type: ignore[no-untyped-def]
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    clauses = [Lead.name.ilike(like, escape="\\"), Lead.email.ilike(like, escape="\\"),
               Lead.company.ilike(like, escape="\\")]
    digits = re.sub(r"\D", "", _ascii_digits(text))
    if len(digits) >= 3:
        # Phones are stored as E.164, so searching the digits finds any typed format; a number
        # typed with a "00" international prefix or a national trunk 0 is also tried without it.
        clauses.append(Lead.phone.like(f"%{digits}%"))
        if digits.startswith("00") and len(digits) > 5:
            clauses.append(Lead.phone.like(f"+{digits[2:]}%"))
        elif digits.startswith("0") and len(digits) > 4:
            clauses.append(Lead.phone.like(f"%{digits[1:]}"))
    if text.isdecimal() and len(text) <= 9:  # an id (bounded: larger would overflow INTEGER)
        clauses.append(Lead.id == int(text))
    return or_(*clauses)


def order_leads(stmt: Select[tuple[Lead]], sort: str) -> Select[tuple[Lead]]:
    """Apply a SORT_KEYS sort (ties broken by id, so pages are stable); ValueError if unknown."""
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of: {', '.join(SORT_KEYS)}")
    column = getattr(Lead, sort.lstrip("-"))
    if sort.startswith("-"):
        return stmt.order_by(column.desc().nulls_last(), Lead.id.desc())
    return stmt.order_by(column.asc().nulls_last(), Lead.id.asc())


def query_leads(q: LeadQuery, *, session: Session, now: Optional[datetime] = None) -> list[Lead]:
    """One page of leads matching `q`, with identities and agent loaded."""
    stmt = build_lead_query(q, now=now)
    if q.after_id is not None:
        stmt = stmt.where(Lead.id < q.after_id if q.sort == "-id" else Lead.id > q.after_id)
    stmt = order_leads(stmt, q.sort).limit(max(1, min(q.limit, 1000))).offset(max(0, q.offset))
    stmt = stmt.options(selectinload(Lead.identities), selectinload(Lead.assigned_agent))
    return list(session.scalars(stmt))


def count_leads(q: LeadQuery, *, session: Session, now: Optional[datetime] = None) -> int:
    from sqlalchemy import func

    sub = build_lead_query(q, now=now).with_only_columns(Lead.id).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)
