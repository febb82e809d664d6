"""Tools that read: find a lead, summarise, qualify and check it, list leads, the agent's
notifications and the activity digest. None of them changes a lead (reading notifications marks
them read)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from copilot import config as cfg
from copilot.access import Ambiguous, CopilotError, Denied, find_teammate, visible
from copilot.dates import period_range
from copilot.insights import LeadFacts, Said, hot_check, qualify, summary_lines
from copilot.schemas import (
    DigestArgs,
    FindLeadsArgs,
    LeadArgs,
    ListLeadsArgs,
    NoArgs,
    Qualification,
)
from copilot.tools.base import Result, ToolContext, find, lead_line, tidy, tool, zone
from store.domain.permissions import is_admin
from store.lead_lookups import (
    count_follow_up_leads,
    follow_up_leads,
    leads_awaiting_reply,
    message_counts,
    status_changes,
)
from store.messages import recent_messages
from store.models import Agent, Lead
from store.query import LeadQuery, count_leads, query_leads
from store.work import list_notes, mark_read, score_history, unread_notifications

PAGE_SIZE = 10
STALE_DAYS = 7
RECENT_DAYS = 7


def lead_facts(lead: Lead, *, session: Session, now: datetime) -> LeadFacts:
    """Copy what the analyses need out of the store (a bounded window of recent messages)."""
    messages = [
        Said(channel=m.channel, author=m.author, text=m.text or "", sent_at=m.sent_at)
        for m in recent_messages(lead.id, session=session, limit=40)
    ]
    if lead.ai_stopped:
        ai_state = "stopped (a human handles this lead)"
    elif lead.ai_paused_until and lead.ai_paused_until > now:
        ai_state = f"paused until {lead.ai_paused_until:%H:%M} UTC"
    else:
        ai_state = "answering"
    return LeadFacts(
        id=lead.id,
        name=lead.name,
        status=lead.status,
        score=lead.score,
        company=lead.company,
        title=(lead.custom_fields or {}).get("title"),
        email=lead.email,
        phone=lead.phone,
        channels=lead.channels,
        assigned_to=lead.assigned_agent.name if lead.assigned_agent else None,
        score_factors=[f for f in (lead.score_factors or []) if isinstance(f, dict)],
        interests=[str(i) for i in lead.interests or []],
        objections=[str(o) for o in lead.objections or []],
        tags=[str(t) for t in lead.tags or []],
        summary=lead.summary,
        next_best_action=lead.next_best_action,
        conversion_probability=lead.conversion_probability,
        created_at=lead.created_at,
        last_contacted_at=lead.last_contacted_at,
        ai_state=ai_state,
        archived=lead.archived,
        messages=messages,
        message_counts=message_counts(lead.id, session=session),
        scores=[event.score for event in score_history(lead.id, session=session)][-10:],
        notes=[(note.category, note.text) for note in list_notes(lead.id, session=session)][-5:],
    )


@tool(FindLeadsArgs, "Find leads by id, phone (any format), email, name or company.")
def find_leads(ctx: ToolContext, agent: Agent, session: Session, args: FindLeadsArgs) -> Result:
    try:
        lead = find(ctx, args.query, agent, session)
    except Ambiguous as many:
        lines = [f"{many.total} leads match {args.query!r}:"] + [
            lead_line(lead) for lead in many.leads
        ]
        return "\n".join(lines), {}
    return lead_line(lead), {"focus_lead_id": lead.id}


@tool(
    LeadArgs,
    "Summarise a lead: status, score and why, conversations across channels, notes "
    "and the next best action. Use for 'summarise' and 'what should I do next'.",
    clarify_lead=True,
)
def lead_summary(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found, facts, now = _read(ctx, args.lead, agent, session)
    next_step = found.next_best_action or _qualify(ctx, facts, now).next_action
    return "\n".join(summary_lines(facts, now=now, next_step=next_step)), {
        "focus_lead_id": found.id
    }


@tool(
    LeadArgs,
    "BANT-qualify a lead (budget, authority, need, timeline) with quoted evidence, "
    "an overall score and a recommended next action.",
    clarify_lead=True,
)
def qualify_lead(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found, facts, now = _read(ctx, args.lead, agent, session)
    result = _qualify(ctx, facts, now)
    lines = [f"BANT for {facts.label}: {result.score}/100"]
    for criterion in result.criteria:
        lines.append(f"{criterion.name}: {criterion.verdict} — {criterion.justification}")
    lines.append(f"Recommended: {result.next_action}")
    return "\n".join(lines), {"focus_lead_id": found.id}


@tool(
    LeadArgs,
    "Say whether a lead is hot (yes/no) with the reasoning: score, trend, signals.",
    clarify_lead=True,
)
def check_hot(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found, facts, now = _read(ctx, args.lead, agent, session)
    verdict = hot_check(
        facts, now=now, hot_score=ctx.hot_score, terminal=cfg.terminal_statuses(ctx.prompts)
    )
    head = f"Yes, {facts.label} is hot." if verdict.hot else f"No, {facts.label} is not hot."
    return "\n".join([head] + [f"- {reason}" for reason in verdict.reasons]), {
        "focus_lead_id": found.id
    }


@tool(
    LeadArgs,
    "Only the next best action for a lead (use for 'what next', 'next step').",
    clarify_lead=True,
)
def next_action(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found = find(ctx, args.lead, agent, session)
    step = next_step(ctx, found, session, ctx.clock())
    return tidy(f"Next step for #{found.id} {found.name or ''}: {step}"), {
        "focus_lead_id": found.id
    }


@tool(
    ListLeadsArgs,
    "List leads: all, mine, hot, today's follow-ups, unassigned, stale, recent; "
    "optionally by status, channel or score range. 10 per page.",
    could_not="I couldn't list those leads",
)
def list_leads(ctx: ToolContext, agent: Agent, session: Session, args: ListLeadsArgs) -> Result:
    kind, status, channel, page, period = (
        args.kind,
        args.status,
        args.channel,
        args.page,
        args.period,
    )
    score_min, score_max = args.score_min, args.score_max
    now = ctx.clock()
    shown: dict[str, Any] = {
        "kind": kind,
        "status": status,
        "channel": channel,
        "score_min": score_min,
        "score_max": score_max,
        "page": page,
    }
    owner = _owner(args.agent, agent, session) if args.agent else None
    if owner is not None:
        shown["agent"] = str(owner.id) if owner.id != agent.id else "me"
    if period:
        shown["period"] = period
    if args.detail:
        shown["detail"] = True
    if score_min is not None and score_max is not None and score_min > score_max:
        score_min, score_max = score_max, score_min
    q = LeadQuery(
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        sort="-score",
        score_min=score_min,
        score_max=score_max,
        channel=(channel,) if channel else (),
        status=(cfg.canonical_status(ctx.prompts, status),) if status else (),
    )
    title = {
        "all": "Leads",
        "mine": "Your leads",
        "hot": "Hot leads",
        "follow_ups": "Today's follow-ups",
        "unassigned": "Unassigned leads",
        "stale": f"Stale leads (quiet for {STALE_DAYS}+ days)",
        "recent": f"Leads created in the last {RECENT_DAYS} days",
    }[kind]
    if kind == "mine":
        q.agent_id = agent.id
    elif kind == "hot":
        q.hot = True
    elif kind == "unassigned":
        q.unassigned = True
    elif kind == "stale":
        q.stale_days, q.sort = STALE_DAYS, "last_contacted_at"
        q.terminal_statuses = cfg.terminal_statuses(ctx.prompts)
    elif kind == "recent":
        q.created_from, q.sort = now - timedelta(days=RECENT_DAYS), "-created_at"
        if period:
            q.created_from, q.created_to, label = period_range(period, now=now, zone=zone(ctx))
            title = f"Leads created {label}"
    if owner is not None:
        q.agent_id = owner.id
        title += " — yours" if owner.id == agent.id else f" — {owner.name}'s"
    q = visible(agent, q)
    if kind == "follow_ups":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        wanted = cfg.follow_up_statuses(ctx.prompts)
        terminal = cfg.terminal_statuses(ctx.prompts)
        leads = follow_up_leads(
            q, session=session, statuses=wanted, since=start, exclude_statuses=terminal, now=now
        )
        total = count_follow_up_leads(
            q, session=session, statuses=wanted, since=start, exclude_statuses=terminal, now=now
        )
    else:
        leads = query_leads(q, session=session, now=now)
        total = count_leads(q, session=session, now=now)
    filters = [
        f
        for f in (
            f"status {q.status[0]}" if q.status else "",
            f"on {channel}" if channel else "",
            _score_range(score_min, score_max),
        )
        if f
    ]
    if filters:
        title += " (" + ", ".join(filters) + ")"
    if total == 0:
        return f"{title}: none.", {"last_list": shown}
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    if not leads:
        return f"{title}: there are only {pages} page(s).", {"last_list": {**shown, "page": pages}}
    lines = [f"{title} — {total} in all, page {page} of {pages}:"]
    for lead in leads:
        lines.append(lead_line(lead))
        if args.detail:
            lines.append(f"   {_gist(ctx, lead, session, now)}")
    if page < pages:
        lines.append('Say "more" for the next page.')
    artifact: dict[str, Any] = {"last_list": shown}
    if len(leads) == 1:
        artifact["focus_lead_id"] = leads[0].id
    return "\n".join(lines), artifact


@tool(NoArgs, "Show (and mark read) the agent's unread notifications.")
def my_notifications(ctx: ToolContext, agent: Agent, session: Session, args: NoArgs) -> Result:
    items = unread_notifications(agent.id, session=session, now=ctx.clock())[:10]
    if not items:
        return "No unread notifications.", {}
    lines = [f"{len(items)} unread notification(s):"]
    for item in items:
        lines.append(f"#{item.lead_id}: {item.text}" if item.lead_id else item.text)
    mark_read([item.id for item in items], agent.id, session=session)
    return "\n".join(lines), {}


@tool(
    DigestArgs,
    "What happened in a period: new leads, status changes, hot leads waiting, "
    "replies owed, within what the agent may see.",
)
def activity_digest(ctx: ToolContext, agent: Agent, session: Session, args: DigestArgs) -> Result:
    now = ctx.clock()
    start, end, label = period_range(args.period, now=now, zone=zone(ctx))
    scope = visible(agent, LeadQuery(limit=1000))
    created = query_leads(
        replace(scope, created_from=start, created_to=end, sort="-created_at", limit=5),
        session=session,
        now=now,
    )
    created_total = count_leads(
        replace(scope, created_from=start, created_to=end), session=session, now=now
    )
    changes = status_changes(scope, session=session, since=start, until=end, limit=8)
    terminal = cfg.terminal_statuses(ctx.prompts)
    hot = [
        lead
        for lead in leads_awaiting_reply(replace(scope, hot=True), session=session, limit=20)
        if lead.status not in terminal
    ][:5]
    owed = [
        lead
        for lead in leads_awaiting_reply(scope, session=session, limit=50)
        if lead.status not in terminal
    ]
    who = "the desk" if is_admin(agent) else "your leads and the unassigned ones"
    lines = [f"Activity {label} ({who}):", f"New leads: {created_total}"]
    lines += [f"  {lead_line(lead)}" for lead in created]
    lines.append(f"Status changes: {len(changes)}" + (" (latest 8)" if len(changes) >= 8 else ""))
    lines += [
        f"  #{lead_id} {name or '(no name)'}: {old or '?'} → {new}"
        for lead_id, name, old, new, _ in changes
    ]
    lines.append(f"Hot leads waiting for an answer: {len(hot)}")
    lines += [f"  {lead_line(lead)}" for lead in hot]
    lines.append(f"Replies owed (the customer wrote last): {len(owed)}")
    lines += [f"  {lead_line(lead)}" for lead in owed[:5]]
    if len(owed) > 5:
        lines.append(f"  … and {len(owed) - 5} more")
    return "\n".join(lines), {}


def next_step(ctx: ToolContext, lead: Lead, session: Session, now: datetime) -> str:
    """The lead's next best action: the bot's, else the one the BANT reading recommends."""
    if lead.next_best_action:
        return lead.next_best_action
    return _qualify(ctx, lead_facts(lead, session=session, now=now), now).next_action


def _read(
    ctx: ToolContext, ref: str, agent: Agent, session: Session
) -> tuple[Lead, LeadFacts, datetime]:
    """The lead `ref` names, what the analyses need of it, and the time they were read at."""
    found = find(ctx, ref, agent, session)
    now = ctx.clock()
    return found, lead_facts(found, session=session, now=now), now


def _qualify(ctx: ToolContext, facts: LeadFacts, now: datetime) -> Qualification:
    return qualify(facts, now=now, terminal_negative=cfg.negative_statuses(ctx.prompts))


def filter_query(
    ctx: ToolContext,
    agent: Agent,
    kind: str,
    status: str | None,
    channel: str | None,
    score_min: int | None,
    score_max: int | None,
    period: str | None,
    now: datetime,
) -> LeadQuery:
    """The leads a list `kind` with these filters names, within what `agent` may see (no paging)."""
    q = LeadQuery(
        limit=1000,
        score_min=score_min,
        score_max=score_max,
        channel=(channel,) if channel else (),
        status=(cfg.canonical_status(ctx.prompts, status),) if status else (),
    )
    if kind == "mine":
        q.agent_id = agent.id
    elif kind == "hot":
        q.hot = True
    elif kind == "unassigned":
        q.unassigned = True
    elif kind == "stale":
        q.stale_days = STALE_DAYS
        q.terminal_statuses = cfg.terminal_statuses(ctx.prompts)
    elif kind == "recent":
        q.created_from = now - timedelta(days=RECENT_DAYS)
        if period:
            q.created_from, q.created_to, _label = period_range(period, now=now, zone=zone(ctx))
    elif kind == "follow_ups":
        q.status = tuple(cfg.follow_up_statuses(ctx.prompts))
    return visible(agent, q)


def _gist(ctx: ToolContext, lead: Lead, session: Session, now: datetime) -> str:
    summary = " ".join((lead.summary or "").split())
    step = next_step(ctx, lead, session, now)
    head = f"{summary[:160]}{'…' if len(summary) > 160 else ''} " if summary else ""
    return f"{head}Next: {step}"


def _owner(ref: str, agent: Agent, session: Session) -> Agent:
    owner = find_teammate(ref, agent, session=session)
    if owner is None:
        raise CopilotError(
            "Say whose leads: an agent's name, or 'my leads'. For unassigned ones, /unassigned."
        )
    if owner.id != agent.id and not is_admin(agent):
        raise Denied(f"Only an admin can list {owner.name}'s leads; you can list your own.")
    return owner


def _score_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"score {low}–{high}"
    if low is not None:
        return f"score ≥ {low}"
    if high is not None:
        return f"score ≤ {high}"
    return ""
