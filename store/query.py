"""The one lead query every front end shares (CLI, copilot, REST API, console)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Boolean, Select, String, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from store.contacts import _ascii_digits
from store.models import HOT_SCORE, Identity, Lead, utcnow

SortKey = Literal[
    "created_at",
    "-created_at",
    "score",
    "-score",
    "last_contacted_at",
    "-last_contacted_at",
    "name",
    "-name",
    "id",
    "-id",
]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]


@dataclass
class LeadQuery:
    """Filters, sort and page. Every field is optional; unset fields do not filter."""

    status: Sequence[str] = ()
    score_min: int | None = None
    score_max: int | None = None
    hot: bool = False
    agent_id: int | None = None
    unassigned: bool = False
    # Agents see their own and unassigned leads: set this to restrict to that.
    visible_to_agent_id: int | None = None
    channel: Sequence[str] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    contacted_from: datetime | None = None
    contacted_to: datetime | None = None
    stale_days: int | None = None
    terminal_statuses: Sequence[str] = ()  # the configured ones (`stale_days` leaves them out)
    archived: bool | None = False  # None: both
    search: str | None = None
    sort: str = "-created_at"
    limit: int = 50
    offset: int = 0
    after_id: int | None = None  # keyset cursor on id (with sort "id" / "-id")
    # Keyset cursor for any sort: the sort key's value and the id of the last lead shown. The next
    # page starts right after it (the API's and console's cursors), at the cost of the first page.
    after: tuple[Any, int] | None = None
    ids: Sequence[int] = field(default_factory=tuple)


def last_activity() -> ColumnElement[datetime]:
    """When the lead was last heard from: its last contact, or its creation if never contacted."""
    return func.coalesce(Lead.last_contacted_at, Lead.created_at)


def build_lead_query(
    q: LeadQuery, *, now: datetime | None = None, walk_sort_index: bool = False
) -> Select[Lead]:
    """The SELECT for `q` without paging (also used for export and bulk actions).

    `walk_sort_index` (for a page on SQLite): write the score and last-contact ranges so that
    no index serves them. SQLite's planner otherwise takes a range such as "score >= 75" to an
    index, then sorts thousands of rows for 50; walking the sort's index and filtering is far
    cheaper for the broad ranges lists use. Counts keep the indexed form.
    """
    now = now or utcnow()
    score: Any = Lead.score + 0 if walk_sort_index else Lead.score
    contacted: Any = (
        func.coalesce(Lead.last_contacted_at, None) if walk_sort_index else Lead.last_contacted_at
    )
    stmt = select(Lead).where(Lead.merged_into_id.is_(None))
    if q.ids:
        stmt = stmt.where(Lead.id.in_(list(q.ids)))
    if q.archived is not None:
        stmt = stmt.where(Lead.archived.is_(q.archived))
    if q.status:
        stmt = stmt.where(Lead.status.in_(list(q.status)))
    if q.hot:
        stmt = stmt.where(score >= HOT_SCORE)
    if q.score_min is not None:
        stmt = stmt.where(score >= q.score_min)
    if q.score_max is not None:
        stmt = stmt.where(score <= q.score_max)
    if q.unassigned:
        stmt = stmt.where(Lead.assigned_agent_id.is_(None))
    elif q.agent_id is not None:
        stmt = stmt.where(Lead.assigned_agent_id == q.agent_id)
    if q.visible_to_agent_id is not None:
        stmt = stmt.where(
            or_(Lead.assigned_agent_id == q.visible_to_agent_id, Lead.assigned_agent_id.is_(None))
        )
    if q.channel:
        stmt = stmt.where(
            exists().where(Identity.lead_id == Lead.id, Identity.channel.in_(list(q.channel)))
        )
    if q.created_from:
        stmt = stmt.where(Lead.created_at >= q.created_from)
    if q.created_to:
        stmt = stmt.where(Lead.created_at < q.created_to)
    if q.contacted_from:
        stmt = stmt.where(contacted >= q.contacted_from)
    if q.contacted_to:
        stmt = stmt.where(contacted < q.contacted_to)
    if q.stale_days is not None:
        cutoff = now - timedelta(days=max(0, min(q.stale_days, 36500)))  # beyond: OverflowError
        # Last contact before the cutoff, or never contacted and created before it: written as
        # the expression ix_leads_live_created carries, so a newest-first page walks that index
        # and skips the recent leads inside it, without visiting their rows.
        stmt = stmt.where(last_activity() < cutoff)
        if q.terminal_statuses:
            stmt = stmt.where(Lead.status.not_in(list(q.terminal_statuses)))
    if q.search and q.search.strip():
        stmt = stmt.where(_search_clause(q.search.strip()))
    return stmt


class _ContainsText(ColumnElement[bool]):
    """`column` contains `text`, ignoring case; wildcards in `text` are literal.

    PostgreSQL: ILIKE (served by the trigram index). SQLite: plain LIKE, which already ignores
    ASCII case, as lower() does there; skipping lower() makes the scan markedly faster.
    """

    type = Boolean()
    inherit_cache = True
    # A class attribute, but SQLAlchemy's base class declares it without ClassVar, and mypy
    # rejects a ClassVar overriding it.
    _traverse_internals: list[tuple[str, InternalTraversal]] = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any] | InstrumentedAttribute[Any], text: str) -> None:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self.column = column
        self.pattern = bindparam(None, f"%{escaped}%", type_=String())


def _like(element: _ContainsText, compiler: Any, template: str, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(element.pattern, **kw)
    return template.format(column=column, pattern=pattern) + " ESCAPE '\\')"


@compiles(_ContainsText)
def _contains_text(element: _ContainsText, compiler: Any, **kw: Any) -> str:
    return _like(element, compiler, "(lower({column}) LIKE {pattern}", **kw)


@compiles(_ContainsText, "sqlite")
def _contains_text_sqlite(element: _ContainsText, compiler: Any, **kw: Any) -> str:
    return _like(element, compiler, "({column} LIKE {pattern}", **kw)


@compiles(_ContainsText, "postgresql")
def _contains_text_postgresql(element: _ContainsText, compiler: Any, **kw: Any) -> str:
    return _like(element, compiler, "({column} ILIKE {pattern}", **kw)


def _search_clause(text: str) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [
        _ContainsText(Lead.name, text),
        _ContainsText(Lead.email, text),
        _ContainsText(Lead.company, text),
    ]
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


def order_leads(stmt: Select[Lead], sort: str) -> Select[Lead]:
    """Apply a SORT_KEYS sort (ties broken by id, so pages are stable); ValueError if unknown."""
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of: {', '.join(SORT_KEYS)}")
    column = getattr(Lead, sort.lstrip("-"))
    descending = sort.startswith("-")
    key = column.desc() if descending else column.asc()
    if Lead.__table__.columns[column.key].nullable:
        # Leads never contacted (or without a name) go last either way. Only for nullable
        # columns: on the others NULLS LAST would stop PostgreSQL from reading an index backwards.
        key = key.nulls_last()
    return stmt.order_by(key, Lead.id.desc() if descending else Lead.id.asc())


def after_cursor(stmt: Select[Lead], sort: str, value: Any, last_id: int) -> Select[Lead]:
    """Keep the leads that come after (`value`, `last_id`) in `sort`'s order (keyset paging).

    With a value on a nullable column this leaves out the trailing block of empty ones (never
    contacted, no name): `query_leads` reads that block with a query of its own once the page
    reaches it, so that both parts start inside an index instead of walking up to the cursor.
    """
    key = sort.lstrip("-")
    descending = sort.startswith("-")
    beyond_id = Lead.id < last_id if descending else Lead.id > last_id
    if key == "id":
        return stmt.where(beyond_id)
    column = getattr(Lead, key)
    if value is None:  # already in the trailing block of empty values
        return stmt.where(column.is_(None), beyond_id)
    beyond = column < value if descending else column > value
    # The bound lets the sort's index start at the cursor; it also leaves out the empty values.
    bound = column <= value if descending else column >= value
    return stmt.where(bound, or_(beyond, and_(column == value, beyond_id)))


def query_leads(q: LeadQuery, *, session: Session, now: datetime | None = None) -> list[Lead]:
    """One page of leads matching `q`, with identities and agent loaded.

    The page finds its ids first, then loads those leads: on PostgreSQL unless it searches text,
    since the indexes the pages walk carry the filtered columns (not the searched ones), so a
    filter that skips thousands of leads skips index entries rather than rows; and on both for an
    offset page (the skipped leads cost an entry of the sort's index each rather than a row).
    """
    if q.after is not None and q.offset:
        raise ValueError("a page starts at an offset or after a cursor, not both")
    key = q.sort.lstrip("-")
    dialect = session.get_bind().dialect.name
    walk = dialect == "sqlite" and key not in ("score", "last_contacted_at")
    searching = bool(q.search and q.search.strip())
    ids_first = (dialect == "postgresql" and not searching) or q.offset > 0
    limit = max(1, min(q.limit, 1000))
    stmt = build_lead_query(q, now=now, walk_sort_index=walk)
    if q.after_id is not None:
        stmt = stmt.where(Lead.id < q.after_id if q.sort == "-id" else Lead.id > q.after_id)
    empty_block: Select[Lead] | None = None
    if q.after is not None:
        value, last_id = q.after
        column = Lead.__table__.columns.get(key)
        if value is not None and column is not None and column.nullable:
            empty_block = stmt.where(getattr(Lead, key).is_(None))
        stmt = after_cursor(stmt, q.sort, value, last_id)
    rows = _load_page(stmt, q.sort, limit, max(0, q.offset), session, ids_first=ids_first)
    if empty_block is not None and len(rows) < limit:
        more = _load_page(empty_block, q.sort, limit - len(rows), 0, session, ids_first=ids_first)
        rows += more
    return rows


def _load_page(
    stmt: Select[Lead], sort: str, limit: int, offset: int, session: Session, *, ids_first: bool
) -> list[Lead]:
    if ids_first:
        ids = order_leads(stmt.with_only_columns(Lead.id), sort).limit(limit).offset(offset)
        stmt = select(Lead).where(Lead.id.in_(ids.scalar_subquery()))
        offset = 0
    stmt = order_leads(stmt, sort).limit(limit).offset(offset)
    stmt = stmt.options(selectinload(Lead.identities), selectinload(Lead.assigned_agent))
    return list(session.scalars(stmt))


def count_leads(q: LeadQuery, *, session: Session, now: datetime | None = None) -> int:
    """How many leads match `q`, exactly (for exports, bulk actions and reports).

    It visits every match: lists show `count_leads_capped` instead.
    """
    sub = build_lead_query(q, now=now).with_only_columns(Lead.id).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)


# Lists count exactly up to here and show "10,000+" beyond, as large inboxes do: an exact count
# visits every match (half a second for half a million leads), this one at most the cap.
LIST_COUNT_CAP = 10_000
# A text search counts up to 1,000 and shows "1,000+" beyond. Its matches come from the trigram
# index as a bitmap and each one is then read to check the text, so counting a common first name to
# 10,000 read 10,000 rows; a search is for finding someone, and more than a thousand matches
# means "type more", which the exact figure would not say any better.
SEARCH_COUNT_CAP = 1_000


@dataclass(frozen=True)
class LeadCount:
    """How many leads match a list: exact up to a cap; beyond it `capped` and `total` is the cap."""

    total: int
    capped: bool = False

    def __str__(self) -> str:
        return f"{self.total:,}+" if self.capped else f"{self.total:,}"


def list_count_cap(q: LeadQuery) -> int:
    """Where a list of `q` stops counting: `SEARCH_COUNT_CAP` for a text search, else the
    list cap.
    """
    if q.search and q.search.strip():
        return min(LIST_COUNT_CAP, SEARCH_COUNT_CAP)
    return LIST_COUNT_CAP


def count_leads_capped(
    q: LeadQuery, *, session: Session, now: datetime | None = None, cap: int | None = None
) -> LeadCount:
    """How many leads match `q`, counting no further than `cap` (default `list_count_cap(q)`)."""
    cap = list_count_cap(q) if cap is None else cap
    matches = build_lead_query(q, now=now).with_only_columns(Lead.id).limit(cap + 1).subquery()
    found = int(session.scalar(select(func.count()).select_from(matches)) or 0)
    return LeadCount(total=min(found, cap), capped=found > cap)
