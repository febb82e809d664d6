"""The copilot's tools: thin wrappers over the store's repository functions and the bot's takeover
path. The offline router and the model call exactly these, with the same permission checks.

Every tool opens its own short transaction, acts for the agent named in the run's config
(`configurable.agent_id`, set by the front end, never by the model), and returns
`(text for the agent, artifact)`; the artifact feeds the follow-up context (focus lead, last list,
pending choice). Changes that touch many leads or end a lead ask first through a LangGraph
`interrupt`; nothing is held open while waiting, and the plan is re-checked when the answer comes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError
from rapidfuzz import fuzz, process
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.takeover import NoConversation, pause_bot, resume_bot, send_agent_reply
from copilot import config as cfg
from copilot.access import (
    Ambiguous,
    CopilotError,
    Denied,
    can_see,
    check_visible,
    clear_match,
    find_lead,
    find_teammate,
    is_admin,
    load_agent,
    visible,
    visible_labels,
)
from copilot.dates import period_range
from copilot.insights import (
    LeadFacts,
    Said,
    hot_check,
    intro_email,
    parse_contact_card,
    qualify,
    summary_lines,
)
from copilot.schemas import (
    AssignArgs,
    BulkArgs,
    CardArgs,
    DigestArgs,
    DraftEmailArgs,
    FieldArgs,
    FindLeadsArgs,
    LeadArgs,
    ListLeadsArgs,
    MergeArgs,
    NoArgs,
    NoteArgs,
    ReassignArgs,
    ReplyArgs,
    StatusArgs,
    SuggestArgs,
)
from copilot.text import fold
from store import identity as identity_rules
from store.agents import AgentError
from store.contacts import InvalidContact, find_emails, try_normalize_phone
from store.copilot_queries import (
    count_follow_up_leads,
    follow_up_leads,
    lead_ids_matching,
    leads_awaiting_reply,
    leads_by_email,
    message_counts,
    status_changes,
)
from store.leads import (
    LeadNotFound,
    find_lead_by_phone,
    get_lead,
    merge_leads,
    record_audit,
    resolve,
    update_lead,
)
from store.messages import recent_messages
from store.models import CLAIMED, HOT_SCORE, Agent, Lead
from store.query import LeadQuery, count_leads, query_leads
from store.work import (
    LeadAction,
    LeadLocked,
    WorkError,
    add_note,
    assign_lead,
    check_unlocked,
    list_notes,
    mark_read,
    next_available_agent,
    notify,
    score_history,
    unread_notifications,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 10
CONVERTED = "Converted"  # the status that closes a sale and locks the lead, as in the REST API
STALE_DAYS = 7
RECENT_DAYS = 7
YES = {"yes", "y", "yeah", "yep", "ok", "okay", "sure", "confirm", "confirmed", "do it", "go", "go ahead",
       "proceed", "approve", "approved", "true", "si", "sí", "sim", "oui", "ja", "claro", "vale", "dale", "d'accord", "نعم"}

Result = tuple[str, dict[str, Any]]


@dataclass
class Confirm:
    """A change that waits for the agent's answer: asked after the reading transaction has closed,
    applied in a fresh one with the plan that was shown."""

    kind: str
    question: str
    plan: dict[str, Any]
    apply: Callable[[Agent, Session, str, dict[str, Any]], Result]
    declined: Result
    options: Sequence[tuple[str, str]] = (("yes", "Yes"), ("no", "No"))


@dataclass
class Afterwards:
    """Work that runs its own transactions (the takeover path), done once the tool's has closed."""

    run: Callable[[], Result]


@dataclass
class ToolContext:
    """The collaborators every tool needs, handed over by `build_graph`."""

    session_factory: sessionmaker[Session]
    prompts: Any
    clock: Callable[[], datetime]
    region: str
    takeover_minutes: int
    outbox: Any = None
    hot_score: int = HOT_SCORE


def agent_id_of(config: RunnableConfig | None) -> int | None:
    value = ((config or {}).get("configurable") or {}).get("agent_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --- confirmations ---------------------------------------------------------------------------

def ask(kind: str, question: str, options: Sequence[tuple[str, str]] = (("yes", "Yes"), ("no", "No")),
        **plan: Any) -> tuple[str, dict[str, Any]]:
    """Pause the run until the agent answers; returns (chosen option value, the plan that was shown)."""
    payload = {"kind": kind, "question": question,
               "options": [{"value": value, "label": label} for value, label in options], **plan}
    answer = interrupt(payload)
    values = [value for value, _ in options]
    if isinstance(answer, dict):
        choice = str(answer.get("choice", "")).strip().lower()
        shown = answer.get("plan") if isinstance(answer.get("plan"), dict) else payload
    else:
        choice, shown = str(answer if answer is not None else "").strip().lower(), payload
    if choice in YES or choice == "true":
        choice = "yes" if "yes" in values else values[0]
    return (choice if choice in values else "no"), shown


# --- facts -----------------------------------------------------------------------------------

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
        id=lead.id, name=lead.name, status=lead.status, score=lead.score, company=lead.company,
        title=(lead.custom_fields or {}).get("title"), email=lead.email, phone=lead.phone,
        channels=lead.channels, assigned_to=lead.assigned_agent.name if lead.assigned_agent else None,
        score_factors=[f for f in (lead.score_factors or []) if isinstance(f, dict)],
        interests=[str(i) for i in lead.interests or []], objections=[str(o) for o in lead.objections or []],
        tags=[str(t) for t in lead.tags or []], summary=lead.summary, next_best_action=lead.next_best_action,
        conversion_probability=lead.conversion_probability, created_at=lead.created_at,
        last_contacted_at=lead.last_contacted_at, ai_state=ai_state, archived=lead.archived,
        messages=messages, message_counts=message_counts(lead.id, session=session),
        scores=[event.score for event in score_history(lead.id, session=session)][-10:],
        notes=[(note.category, note.text) for note in list_notes(lead.id, session=session)][-5:],
    )


def lead_line(lead: Lead) -> str:
    parts = [f"#{lead.id} {lead.name or '(no name)'}", lead.status, f"score {lead.score}"]
    if lead.channels:
        parts.append(", ".join(lead.channels))
    parts.append(lead.assigned_agent.name if lead.assigned_agent else "unassigned")
    if lead.archived:
        parts.append("archived")
    return " · ".join(parts)


# --- the tools -------------------------------------------------------------------------------

class CopilotTools:
    """The tool functions, bound to one ToolContext."""

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx

    # reading

    def find_leads(self, agent: Agent, session: Session, query: str) -> Result:
        try:
            lead = find_lead(query, agent, session=session, region=self.ctx.region)
        except Ambiguous as many:
            lines = [f"{many.total} leads match {query!r}:"] + [lead_line(lead) for lead in many.leads]
            return "\n".join(lines), {}
        return lead_line(lead), {"focus_lead_id": lead.id}

    def lead_summary(self, agent: Agent, session: Session, lead: str) -> Result:
        found = self._lead(lead, agent, session)
        now = self.ctx.clock()
        facts = lead_facts(found, session=session, now=now)
        next_step = found.next_best_action or qualify(
            facts, now=now, terminal_negative=cfg.negative_statuses(self.ctx.prompts)).next_action
        return "\n".join(summary_lines(facts, now=now, next_step=next_step)), {"focus_lead_id": found.id}

    def qualify_lead(self, agent: Agent, session: Session, lead: str) -> Result:
        found = self._lead(lead, agent, session)
        now = self.ctx.clock()
        facts = lead_facts(found, session=session, now=now)
        result = qualify(facts, now=now, terminal_negative=cfg.negative_statuses(self.ctx.prompts))
        lines = [f"BANT for {facts.label}: {result.score}/100"]
        for criterion in result.criteria:
            lines.append(f"{criterion.name}: {criterion.verdict} — {criterion.justification}")
        lines.append(f"Recommended: {result.next_action}")
        return "\n".join(lines), {"focus_lead_id": found.id}

    def check_hot(self, agent: Agent, session: Session, lead: str) -> Result:
        found = self._lead(lead, agent, session)
        now = self.ctx.clock()
        facts = lead_facts(found, session=session, now=now)
        verdict = hot_check(facts, now=now, hot_score=self.ctx.hot_score,
                            terminal=cfg.terminal_statuses(self.ctx.prompts))
        head = f"Yes, {facts.label} is hot." if verdict.hot else f"No, {facts.label} is not hot."
        return "\n".join([head] + [f"- {reason}" for reason in verdict.reasons]), {"focus_lead_id": found.id}

    def list_leads(self, agent: Agent, session: Session, kind: str = "all", status: str | None = None,
                   channel: str | None = None, score_min: int | None = None,
                   score_max: int | None = None, page: int = 1, agent_ref: str | None = None,
                   period: str | None = None, detail: bool = False) -> Result:
        now = self.ctx.clock()
        args: dict[str, Any] = {"kind": kind, "status": status, "channel": channel, "score_min": score_min,
                                "score_max": score_max, "page": page}
        owner = self._owner(agent_ref, agent, session) if agent_ref else None
        if owner is not None:
            args["agent"] = str(owner.id) if owner.id != agent.id else "me"
        if period:
            args["period"] = period
        if detail:
            args["detail"] = True
        if score_min is not None and score_max is not None and score_min > score_max:
            score_min, score_max = score_max, score_min
        q = LeadQuery(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, sort="-score",
                      score_min=score_min, score_max=score_max, channel=(channel,) if channel else (),
                      status=(cfg.canonical_status(self.ctx.prompts, status),) if status else ())
        title = {"all": "Leads", "mine": "Your leads", "hot": "Hot leads", "follow_ups": "Today's follow-ups",
                 "unassigned": "Unassigned leads", "stale": f"Stale leads (quiet for {STALE_DAYS}+ days)",
                 "recent": f"Leads created in the last {RECENT_DAYS} days"}[kind]
        if kind == "mine":
            q.agent_id = agent.id
        elif kind == "hot":
            q.hot = True
        elif kind == "unassigned":
            q.unassigned = True
        elif kind == "stale":
            q.stale_days, q.sort = STALE_DAYS, "last_contacted_at"
            q.terminal_statuses = cfg.terminal_statuses(self.ctx.prompts)
        elif kind == "recent":
            q.created_from, q.sort = now - timedelta(days=RECENT_DAYS), "-created_at"
            if period:
                q.created_from, q.created_to, label = period_range(period, now=now, zone=self._zone())
                title = f"Leads created {label}"
        if owner is not None:
            q.agent_id = owner.id
            title += " — yours" if owner.id == agent.id else f" — {owner.name}'s"
        q = visible(agent, q)
        if kind == "follow_ups":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            wanted = cfg.follow_up_statuses(self.ctx.prompts)
            terminal = cfg.terminal_statuses(self.ctx.prompts)
            leads = follow_up_leads(q, session=session, statuses=wanted, since=start, exclude_statuses=terminal,
                                    now=now)
            total = count_follow_up_leads(q, session=session, statuses=wanted, since=start,
                                          exclude_statuses=terminal, now=now)
        else:
            leads = query_leads(q, session=session, now=now)
            total = count_leads(q, session=session, now=now)
        filters = [f for f in (f"status {q.status[0]}" if q.status else "", f"on {channel}" if channel else "",
                               _score_range(score_min, score_max)) if f]
        if filters:
            title += " (" + ", ".join(filters) + ")"
        if total == 0:
            return f"{title}: none.", {"last_list": args}
        pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
        if not leads:
            return f"{title}: there are only {pages} page(s).", {"last_list": {**args, "page": pages}}
        lines = [f"{title} — {total} in all, page {page} of {pages}:"]
        for lead in leads:
            lines.append(lead_line(lead))
            if detail:
                lines.append(f"   {self._gist(lead, session, now)}")
        if page < pages:
            lines.append('Say "more" for the next page.')
        artifact: dict[str, Any] = {"last_list": args}
        if len(leads) == 1:
            artifact["focus_lead_id"] = leads[0].id
        return "\n".join(lines), artifact

    def my_notifications(self, agent: Agent, session: Session) -> Result:
        items = unread_notifications(agent.id, session=session, now=self.ctx.clock())[:10]
        if not items:
            return "No unread notifications.", {}
        lines = [f"{len(items)} unread notification(s):"]
        for item in items:
            lines.append(f"#{item.lead_id}: {item.text}" if item.lead_id else item.text)
        mark_read([item.id for item in items], agent.id, session=session)
        return "\n".join(lines), {}

    # changing

    def add_note(self, agent: Agent, session: Session, lead: str, text: str, category: str = "General") -> Result:
        found = self._lead(lead, agent, session)
        note = add_note(found, text, session=session, category=category, agent=agent)
        article = "an" if note.category[0].lower() in "aeiou" else "a"
        return _tidy(f"Added {article} {note.category} note to #{found.id} {found.name or ''}."), {
            "focus_lead_id": found.id}

    def set_status(self, agent: Agent, session: Session, lead: str, status: str) -> Result | Confirm:
        found = _writable(self._lead(lead, agent, session))
        new = cfg.canonical_status(self.ctx.prompts, status)
        if found.status == new:
            return f"#{found.id} is already {new}.", {"focus_lead_id": found.id}
        lead_id, old = found.id, found.status
        if new not in cfg.terminal_statuses(self.ctx.prompts):
            return self._apply_status(agent, session, lead_id, new)
        return Confirm(
            "set_status", f"Set #{lead_id} {found.name or '(no name)'} from {old} to {new}? {new} is a final status.",
            {"lead_ids": [lead_id], "status": new},
            apply=lambda me, s, _choice, _plan: self._apply_status(me, s, lead_id, new),
            declined=(f"Okay, #{lead_id} stays {old}.", {"focus_lead_id": lead_id}))

    def _apply_status(self, agent: Agent, session: Session, lead_id: int, new: str) -> Result:
        """Set the status as a human, with the same rules as the REST API: any status may be set;
        Converted locks the lead; the status's AI behaviour applies; auto_assign gives an unassigned
        lead to the agent (an admin: to the next available agent); notify tells the owner."""
        found = _writable(check_visible(agent, get_lead(lead_id, session=session)))
        old, now = found.status, self.ctx.clock()
        rule = cfg.status(self.ctx.prompts, new)
        changes: dict[str, Any] = {"status": new}
        converted = new.lower() == CONVERTED.lower()
        if converted:
            changes.update(locked=True, converted_at=now)
        update_lead(found, changes, session=session, actor="agent", agent_id=agent.id)
        if converted:
            record_audit(session=session, lead_id=found.id, actor="agent", action="convert", field="status",
                         new=new, agent_id=agent.id)
        extra = ""
        if rule is not None and rule.ai_behaviour == "stop":
            if pause_bot(found, session=session, actor="agent", now=now, minutes=None, agent_id=agent.id,
                         reason="status"):
                extra += " The bot stops answering this lead."
        elif rule is not None and rule.ai_behaviour == "pause":
            minutes = rule.pause_minutes or self.ctx.prompts.business.default_pause_minutes
            if pause_bot(found, session=session, actor="agent", now=now, minutes=minutes, agent_id=agent.id,
                         reason="status"):
                extra += f" The bot pauses for {minutes} minutes."
        if rule is not None and rule.action == "auto_assign" and found.assigned_agent_id is None:
            target = agent if not is_admin(agent) else next_available_agent(
                session=session, terminal_statuses=cfg.terminal_statuses(self.ctx.prompts))
            if target is not None:
                assign_lead(found, target, session=session, actor="agent", by_agent=agent)
                extra += " It is now assigned to you." if target.id == agent.id else f" Assigned to {target.name}."
                if target.id != agent.id:
                    notify(target, found, f"{agent.name} assigned you {found.name or 'a lead'} (#{found.id}).",
                           session=session, kind="assigned")
        elif rule is not None and rule.action == "notify" and not rule.terminal \
                and found.assigned_agent_id not in (None, agent.id):
            owner = session.get(Agent, found.assigned_agent_id)
            if owner is not None and owner.active:
                notify(owner, found, f"{agent.name} set {found.name or f'lead {found.id}'} to {new}.",
                       session=session, kind="status")
        if converted:
            extra += " The lead is now read-only (an admin can reopen it)."
        return _tidy(f"#{found.id} {found.name or ''}: status {old} → {new}.{extra}"), {"focus_lead_id": found.id}

    def assign_lead(self, agent: Agent, session: Session, lead: str, agent_ref: str) -> Result:
        found = _writable(self._lead(lead, agent, session))
        target = find_teammate(agent_ref, agent, session=session)
        changed = assign_lead(found, target, session=session, actor="agent", by_agent=agent)
        who = target.name if target else "nobody"
        if not changed:
            return f"#{found.id} is already assigned to {who}.", {"focus_lead_id": found.id}
        if target is not None and target.id != agent.id:
            notify(target, found, f"{agent.name} assigned you {found.name or 'a lead'} (#{found.id}).",
                   session=session, kind="assigned")
        return _tidy(f"Assigned #{found.id} {found.name or ''} to {who}."), {"focus_lead_id": found.id}

    def reassign_leads(self, agent: Agent, session: Session, from_agent: str, to_agent: str) -> Result | Confirm:
        source = find_teammate(from_agent, agent, session=session)
        target = find_teammate(to_agent, agent, session=session)
        if source is None:
            raise CopilotError("Whose leads should I move? Name an agent (or say 'my leads').")
        if source.id != agent.id and not is_admin(agent):
            raise Denied(f"Only an admin can move {source.name}'s leads; you can move your own.")
        if target is not None and target.id == source.id:
            raise CopilotError("That is the same agent.")
        ids = lead_ids_matching(LeadQuery(agent_id=source.id, archived=False), session=session)
        if not ids:
            return f"{source.name} has no open leads to move.", {}
        source_id, source_name = source.id, source.name
        target_id, target_name = (target.id, target.name) if target else (None, "nobody (unassigned)")
        preview = ", ".join(f"#{i}" for i in ids[:10]) + (" …" if len(ids) > 10 else "")

        def apply(me: Agent, s: Session, _choice: str, plan: dict[str, Any]) -> Result:
            if not is_admin(me) and me.id != source_id:
                raise Denied(f"Only an admin can move {source_name}'s leads.")
            to = s.get(Agent, target_id) if target_id is not None else None
            if target_id is not None and (to is None or not to.active):
                raise CopilotError(f"{target_name} is no longer an active agent; nothing was moved.")
            shown = {int(i) for i in plan.get("lead_ids", ids)}
            # Only what was shown and still is the source's: leads that changed hands meanwhile stay.
            still = [i for i in lead_ids_matching(LeadQuery(agent_id=source_id, archived=False), session=s)
                     if i in shown]
            for lead_id in still:
                # Converted leads are read-only but still move with their owner's book.
                assign_lead(get_lead(lead_id, session=s), to, session=s, actor="agent", by_agent=me)
            if to is not None and still and to.id != me.id:
                notify(to, None, f"{me.name} moved {len(still)} of {source_name}'s leads to you.",
                       session=s, kind="assigned")
            skipped = len(shown) - len(still)
            tail = f" ({skipped} changed hands meanwhile and were left alone.)" if skipped else ""
            return f"Moved {len(still)} lead(s) from {source_name} to {target_name}.{tail}", {}

        return Confirm("reassign", f"Move {len(ids)} lead(s) from {source_name} to {target_name}? ({preview})",
                       {"lead_ids": ids, "from_agent_id": source_id, "to_agent_id": target_id},
                       apply=apply, declined=("Okay, nothing was moved.", {}))

    def archive_lead(self, agent: Agent, session: Session, lead: str) -> Result | Confirm:
        found = _writable(self._lead(lead, agent, session), "archive", agent)
        if found.archived:
            return f"#{found.id} is already archived.", {"focus_lead_id": found.id}
        lead_id, name = found.id, found.name or "(no name)"

        def apply(me: Agent, s: Session, _choice: str, _plan: dict[str, Any]) -> Result:
            target = _writable(check_visible(me, get_lead(lead_id, session=s)), "archive", me)
            update_lead(target, {"archived": True}, session=s, actor="agent", agent_id=me.id)
            return f"Archived #{lead_id} {name}.", {"focus_lead_id": lead_id}

        return Confirm("archive", f"Archive #{lead_id} {name}? It will no longer show in lists.",
                       {"lead_ids": [lead_id]}, apply=apply,
                       declined=(f"Okay, #{lead_id} stays.", {"focus_lead_id": lead_id}))

    def merge_leads(self, agent: Agent, session: Session, lead: str, into: str) -> Confirm:
        """Merge one lead into another after a yes, with the rules of `store.identity`."""
        other, target = self._lead(lead, agent, session), self._lead(into, agent, session)
        try:
            identity_rules.check_merge(agent, target, other, session=session)
        except identity_rules.NotAllowed as exc:
            raise CopilotError(f"I can't merge them: {exc}.") from None
        hint = next((s.reason for s in identity_rules.open_suggestions(target, session=session)
                     if s.other_lead_id == other.id), None)
        other_id, target_id = other.id, target.id
        question = (f"Merge #{other_id} {other.name or '(no name)'} into #{target_id} "
                    f"{target.name or '(no name)'}? #{target_id} stays with its owner; each "
                    "conversation stays separate.")
        if hint:
            question += f" ({hint})"

        def apply(me: Agent, s: Session, _choice: str, _plan: dict[str, Any]) -> Result:
            survivor = identity_rules.merge_by_hand(
                me, get_lead(target_id, session=s), get_lead(other_id, session=s), session=s)
            return f"Merged #{other_id} into #{survivor.id}.", {"focus_lead_id": survivor.id}

        return Confirm("merge_leads", question, {"lead_ids": [other_id, target_id]}, apply=apply,
                       declined=(f"Okay, #{other_id} and #{target_id} stay apart.",
                                 {"focus_lead_id": target_id}))

    def draft_intro_email(self, agent: Agent, session: Session, lead: str,
                          body: str | None = None) -> Result | Confirm:
        found = self._lead(lead, agent, session)
        facts = lead_facts(found, session=session, now=self.ctx.clock())
        subject, template = cfg.intro_template(self.ctx.prompts, customer_name=facts.first_name or "there",
                                               agent_name=agent.name)
        draft = (body or "").strip() or intro_email(facts, subject=subject, body=template, agent_name=agent.name,
                                                    business_name=cfg.business_name(self.ctx.prompts))
        lead_id = found.id

        def apply(me: Agent, s: Session, _choice: str, plan: dict[str, Any]) -> Result:
            target = check_visible(me, get_lead(lead_id, session=s))
            text = str(plan.get("draft") or draft)
            add_note(target, f"Intro email draft:\n\n{text}", session=s, category="Follow-up", agent=me)
            return f"Saved the intro email draft as a Follow-up note on #{lead_id}.", {"focus_lead_id": lead_id}

        warning = "" if found.email else (
            f"Note: #{lead_id} {found.name or ''} has no email address on file, so this cannot be sent as an email "
            f"yet (add one: \"set {lead_id}'s email to …\").\n\n")
        return Confirm("save_email", f"{_tidy(warning) + chr(10) * 2 if warning else ''}{draft}\n\n"
                                     f"Save this draft as a note on #{lead_id}?",
                       {"lead_ids": [lead_id], "draft": draft}, apply=apply,
                       declined=("Okay, the draft was not saved.", {"focus_lead_id": lead_id}))

    def reply_to_customer(self, agent: Agent, session: Session, lead: str, text: str) -> Afterwards:
        found = _writable(self._lead(lead, agent, session), "reply", agent)
        lead_id, name, agent_id = found.id, found.name or "the customer", agent.id

        def run() -> Result:
            minutes = self._takeover_minutes()
            try:
                reply = send_agent_reply(lead_id, text, session_factory=self.ctx.session_factory,
                                         outbox=self.ctx.outbox, agent_id=agent_id, now=self.ctx.clock(),
                                         minutes=minutes)
            except NoConversation:
                raise CopilotError(f"{name} (#{lead_id}) has never written on any channel, so there is "
                                   "nowhere to send a reply.") from None
            return (f"Sent to {name} (#{lead_id}) on {reply.channel} as you. The bot stays quiet for "
                    f"{minutes} minutes."), {"focus_lead_id": lead_id}

        return Afterwards(run)

    def resume_bot(self, agent: Agent, session: Session, lead: str) -> Result:
        found = _writable(self._lead(lead, agent, session), "resume", agent)
        resume_bot(found, session=session, actor="agent", agent_id=agent.id)
        return _tidy(f"The bot is answering #{found.id} {found.name or ''} again."), {"focus_lead_id": found.id}

    def take_over(self, agent: Agent, session: Session, lead: str) -> Result:
        found = _writable(self._lead(lead, agent, session), "pause", agent)
        now = self.ctx.clock()
        minutes = self._takeover_minutes()
        pause_bot(found, session=session, actor="agent", now=now, minutes=minutes, agent_id=agent.id,
                  reason="taken over by an agent")
        mine = ""
        if found.assigned_agent_id is None:
            assign_lead(found, agent, session=session, actor="agent", by_agent=agent)
            mine = " It is now assigned to you."
        if found.ai_stopped:
            quiet = "the bot is stopped for this lead until someone resumes it"
        else:
            until = found.ai_paused_until or now + timedelta(minutes=minutes)
            quiet = f"the bot stays quiet until {until:%H:%M} UTC (each reply of yours extends it)"
        return _tidy(f"You have #{found.id} {found.name or ''}: {quiet}.{mine}"), {"focus_lead_id": found.id}

    def fill_contact_card(self, agent: Agent, session: Session, text: str) -> Confirm:
        card = parse_contact_card(text, region=self.ctx.region)
        if card.empty:
            raise CopilotError("I couldn't find a name, email or phone number in that.")
        owners: list[Lead] = []
        if card.phone:
            owner = find_lead_by_phone(card.phone, session=session)
            if owner is not None:
                owners.append(get_lead(owner.id, session=session))
        if card.email:
            owners += [lead for lead in leads_by_email(card.email, session=session) if lead not in owners]
        hidden = [lead for lead in owners if not can_see(agent, lead)]
        if hidden:
            what = "phone number" if card.phone and hidden[0].phone == card.phone else "email"
            raise Denied(f"A lead with this {what} already exists (#{hidden[0].id}) and is assigned to another "
                         "agent; ask an admin.")
        similar: list[Lead] = list(owners)
        if card.name:
            for lead in query_leads(visible(agent, LeadQuery(search=card.name, limit=5, sort="-score")),
                                    session=session):
                if lead not in similar:
                    similar.append(lead)
        similar = similar[:3]
        fields = [f"  {label}: {value}" for label, value in (
            ("Name", card.name), ("Title", card.title), ("Company", card.company), ("Email", card.email),
            ("Phone", card.phone), ("Website", card.website)) if value]
        lines = ["From the card:", *fields]
        options: list[tuple[str, str]] = []
        if similar:
            lines.append("Possible duplicates:")
            lines += [f"  {lead_line(lead)}" for lead in similar]
            options += [(f"merge:{lead.id}", f"Merge into #{lead.id}") for lead in similar]
        if owners:
            lines.append("This contact already has a lead: merge the card into it, or cancel?")
        elif similar:
            options.append(("create", "Create new lead"))
            lines.append("Create a new lead, merge into one of these, or cancel?")
        else:
            options.append(("create", "Create lead"))
            lines.append("Create this lead?")
        options.append(("no", "Cancel"))
        card_data = card.model_dump()

        def apply(me: Agent, s: Session, choice: str, _plan: dict[str, Any]) -> Result:
            target_id = int(choice.split(":", 1)[1]) if choice.startswith("merge:") else None
            return self._save_card(me, s, card_data, target_id)

        return Confirm("contact_card", "\n".join(lines), {"card": card_data}, apply=apply,
                       declined=("Okay, nothing was created.", {}), options=options)

    def _save_card(self, agent: Agent, session: Session, card: dict[str, Any], target_id: int | None) -> Result:
        target = _writable(check_visible(agent, get_lead(target_id, session=session))) if target_id else None
        known_before = None
        if card.get("phone"):
            known_before = find_lead_by_phone(card["phone"], session=session)
        if known_before is None and card.get("email"):
            known_before = next(iter(leads_by_email(card["email"], session=session)), None)
        if known_before is not None and not can_see(agent, known_before):
            raise Denied("That contact belongs to another agent's lead now; ask an admin.")
        # Details pasted from a card are claims: matching another lead they only suggest a merge.
        # The one merge made here is the one the agent chose ("merge into #X"), audited as theirs.
        lead = resolve("manual", f"card:{uuid.uuid4().hex}", phone=card.get("phone"),
                       email=card.get("email"), name=card.get("name"), session=session,
                       region=self.ctx.region, source="copilot", actor="agent", trust=CLAIMED)
        if target is not None and lead.id != target.id:
            lead = merge_leads(target, lead, session=session, actor="agent", agent_id=agent.id,
                               into=target, reason="contact card merged by the agent")
        fills: dict[str, Any] = {}
        if card.get("company") and not lead.company:
            fills["company"] = card["company"]
        if card.get("name") and not lead.name:
            fills["name"] = card["name"]
        extra = dict(lead.custom_fields or {})
        for key in ("title", "website"):
            if card.get(key) and not extra.get(key):
                extra[key] = card[key]
        others = [p for p in card.get("other_phones") or [] if p != lead.phone]
        if others:
            known = list(extra.get("other_phones", []))
            extra["other_phones"] = known + [p for p in others if p not in known]
        if extra != (lead.custom_fields or {}):
            fills["custom_fields"] = extra
        update_lead(lead, fills, session=session, actor="agent", agent_id=agent.id)
        if lead.assigned_agent_id is None:
            assign_lead(lead, agent, session=session, actor="agent", by_agent=agent)
        verb = "Merged the card into" if target is not None else "Created"
        said = f"{verb} lead #{lead.id} {lead.name or ''}."
        before = get_lead(known_before.id, session=session) if known_before is not None else None
        maybe = [s for s in identity_rules.open_suggestions(lead, session=session)
                 if before is not None and s.other_lead_id == before.id]
        if maybe:
            other_id = maybe[0].other_lead_id
            said += (f" It may be the same person as #{other_id} (same {maybe[0].kind}): "
                     f"say \"merge {lead.id} into {other_id}\" if it is.")
        return _tidy(said), {"focus_lead_id": lead.id}

    def next_action(self, agent: Agent, session: Session, lead: str) -> Result:
        found = self._lead(lead, agent, session)
        now = self.ctx.clock()
        step = self._next_step(found, session, now)
        return _tidy(f"Next step for #{found.id} {found.name or ''}: {step}"), {"focus_lead_id": found.id}

    def activity_digest(self, agent: Agent, session: Session, period: str = "today") -> Result:
        now = self.ctx.clock()
        start, end, label = period_range(period, now=now, zone=self._zone())
        scope = visible(agent, LeadQuery(limit=1000))
        created = query_leads(replace(scope, created_from=start, created_to=end, sort="-created_at", limit=5),
                              session=session, now=now)
        created_total = count_leads(replace(scope, created_from=start, created_to=end), session=session, now=now)
        changes = status_changes(scope, session=session, since=start, until=end, limit=8)
        terminal = cfg.terminal_statuses(self.ctx.prompts)
        hot = [lead for lead in leads_awaiting_reply(replace(scope, hot=True), session=session, limit=20)
               if lead.status not in terminal][:5]
        owed = [lead for lead in leads_awaiting_reply(scope, session=session, limit=50)
                if lead.status not in terminal]
        who = "the desk" if is_admin(agent) else "your leads and the unassigned ones"
        lines = [f"Activity {label} ({who}):", f"New leads: {created_total}"]
        lines += [f"  {lead_line(lead)}" for lead in created]
        lines.append(f"Status changes: {len(changes)}" + (" (latest 8)" if len(changes) >= 8 else ""))
        lines += [f"  #{lead_id} {name or '(no name)'}: {old or '?'} → {new}" for lead_id, name, old, new, _ in changes]
        lines.append(f"Hot leads waiting for an answer: {len(hot)}")
        lines += [f"  {lead_line(lead)}" for lead in hot]
        lines.append(f"Replies owed (the customer wrote last): {len(owed)}")
        lines += [f"  {lead_line(lead)}" for lead in owed[:5]]
        if len(owed) > 5:
            lines.append(f"  … and {len(owed) - 5} more")
        return "\n".join(lines), {}

    def set_field(self, agent: Agent, session: Session, lead: str, field: str, value: str) -> Result:
        found = _writable(self._lead(lead, agent, session))
        name, new = self._field_value(field, value)
        if name in PROFILE_FIELDS:
            old = getattr(found, name)
            changes: dict[str, Any] = {name: new}
        else:
            extra = dict(found.custom_fields or {})
            old = extra.get(name)
            if new is None:
                extra.pop(name, None)
            else:
                extra[name] = new
            changes = {"custom_fields": extra}
        if old == new:
            return f"#{found.id}'s {name} is already {new!r}.", {"focus_lead_id": found.id}
        try:
            with session.begin_nested():
                update_lead(found, changes, session=session, actor="agent", agent_id=agent.id)
        except IntegrityError:
            raise CopilotError(f"Another lead already has that {name}; nothing was changed.") from None
        shown = "(empty)" if new is None else new
        return _tidy(f"#{found.id} {found.name or ''}: {name} {old or '(empty)'} → {shown}."), {
            "focus_lead_id": found.id}

    def bulk_update(self, agent: Agent, session: Session, action: str, kind: str = "all",
                    status: str | None = None, agent_ref: str | None = None, filter_status: str | None = None,
                    channel: str | None = None, score_min: int | None = None, score_max: int | None = None,
                    period: str | None = None) -> Result | Confirm:
        now = self.ctx.clock()
        q = self._filter_query(agent, kind, filter_status, channel, score_min, score_max, period, now)
        if action == "status":
            if not status:
                raise CopilotError("Which status should they get?")
            new_status = cfg.canonical_status(self.ctx.prompts, status)
        target: Agent | None = None
        if action == "assign":
            target = find_teammate(agent_ref or "", agent, session=session)
            if target is not None and target.id != agent.id and not is_admin(agent):
                raise Denied("Only an admin can give leads to another agent in bulk; you can take them yourself.")
        ids = lead_ids_matching(q, session=session, now=now)
        leads = [get_lead(i, session=session) for i in ids]
        if action == "status":
            leads = [lead for lead in leads if lead.status != new_status and not lead.locked]
        elif action == "assign":
            leads = [lead for lead in leads if lead.assigned_agent_id != (target.id if target else None)
                     and not lead.locked]
        if not leads:
            return "No lead you can change matches that, so nothing would change.", {}
        ids = [lead.id for lead in leads]
        preview = [lead_line(lead) for lead in leads[:8]] + ([f"… and {len(leads) - 8} more"] if len(leads) > 8 else [])
        if action == "assign":
            what = f"Assign {len(ids)} lead(s) to {target.name if target else 'nobody (unassigned)'}?"
            plan: dict[str, Any] = {"lead_ids": ids, "to_agent_id": target.id if target else None}
        elif action == "status":
            what = f"Set {len(ids)} lead(s) to {new_status}?"
            plan = {"lead_ids": ids, "status": new_status}
        else:
            what = f"Archive {len(ids)} lead(s)? They will no longer show in lists."
            plan = {"lead_ids": ids}

        def apply(me: Agent, s: Session, _choice: str, shown_plan: dict[str, Any]) -> Result:
            done = 0
            shown = [int(i) for i in shown_plan.get("lead_ids", ids)]
            for lead_id in shown:
                try:
                    lead = _writable(check_visible(me, get_lead(lead_id, session=s)))
                except (CopilotError, LeadNotFound):
                    continue  # changed hands or was converted meanwhile: left alone
                if action == "assign":
                    to = s.get(Agent, plan["to_agent_id"]) if plan["to_agent_id"] is not None else None
                    if assign_lead(lead, to, session=s, actor="agent", by_agent=me):
                        done += 1
                elif action == "status":
                    self._apply_status(me, s, lead.id, plan["status"])
                    done += 1
                elif not lead.archived:
                    update_lead(lead, {"archived": True}, session=s, actor="agent", agent_id=me.id)
                    done += 1
            if action == "assign" and plan["to_agent_id"] not in (None, me.id) and done:
                to = s.get(Agent, plan["to_agent_id"])
                if to is not None:
                    notify(to, None, f"{me.name} assigned you {done} lead(s).", session=s, kind="assigned")
            skipped = len(shown) - done
            tail = f" ({skipped} changed meanwhile and were left alone.)" if skipped else ""
            verb = {"assign": "Assigned", "status": "Updated", "archive": "Archived"}[action]
            return f"{verb} {done} lead(s).{tail}", {}

        return Confirm(f"bulk_{action}", "\n".join([what, *preview]), plan, apply=apply,
                       declined=("Okay, nothing was changed.", {}))

    def suggest_requests(self, agent: Agent, session: Session, text: str) -> Result:
        """The two or three closest requests to words the router did not understand."""
        words = fold(text).split()[:12]
        labels = visible_labels(agent, session=session)
        lead: Lead | None = None
        used: list[str] = []
        for size in (3, 2, 1):
            for i in range(len(words) - size + 1):
                chunk = " ".join(words[i:i + size])
                if chunk in _VERB_WORDS or len(chunk) < 3 or any(w.isdigit() for w in words[i:i + size]):
                    continue
                match = clear_match(chunk, labels)
                if match is None:
                    continue
                lead = get_lead(match.id, session=session)
                used = words[i:i + size]
                break
            if lead is not None:
                break
        verbs = _closest_verbs([w for w in words if w not in used])
        if lead is None:
            ids = [w.lstrip("#") for w in words if w.lstrip("#").isdigit() and len(w) <= 7]
            for candidate in ids:
                try:
                    lead = self._lead(candidate, agent, session)
                    break
                except CopilotError:
                    continue
        options: list[str] = []
        if lead is not None:
            who = f"{lead.name or 'lead'} (#{lead.id})"
            for verb in (verbs or ["summarise", "qualify", "next step for"])[:3]:
                options.append(f"{verb} {who}")
        else:
            options = [_EXAMPLES[verb] for verb in (verbs or ["summarise", "hot leads", "what happened"])[:3]]
        return ("Sorry, I didn't get that. Did you mean: " + " · ".join(f"{o}?" for o in options)
                + "\n(/help lists everything I can do.)"), ({"focus_lead_id": lead.id} if lead is not None else {})

    # helpers

    def _takeover_minutes(self) -> int:
        return cfg.takeover_minutes(self.ctx.prompts, self.ctx.takeover_minutes)

    def _lead(self, ref: str, agent: Agent, session: Session) -> Lead:
        return find_lead(ref, agent, session=session, region=self.ctx.region)

    def _zone(self) -> Any:
        try:
            return self.ctx.prompts.business.hours.zone
        except Exception:  # noqa: BLE001 - a bad zone name is reported by prompts check; UTC meanwhile
            return UTC

    def _owner(self, ref: str, agent: Agent, session: Session) -> Agent | None:
        owner = find_teammate(ref, agent, session=session)
        if owner is None:
            raise CopilotError("Say whose leads: an agent's name, or 'my leads'. For unassigned ones, /unassigned.")
        if owner.id != agent.id and not is_admin(agent):
            raise Denied(f"Only an admin can list {owner.name}'s leads; you can list your own.")
        return owner

    def _next_step(self, lead: Lead, session: Session, now: datetime) -> str:
        if lead.next_best_action:
            return lead.next_best_action
        facts = lead_facts(lead, session=session, now=now)
        return qualify(facts, now=now, terminal_negative=cfg.negative_statuses(self.ctx.prompts)).next_action

    def _gist(self, lead: Lead, session: Session, now: datetime) -> str:
        summary = " ".join((lead.summary or "").split())
        step = self._next_step(lead, session, now)
        head = f"{summary[:160]}{'…' if len(summary) > 160 else ''} " if summary else ""
        return f"{head}Next: {step}"

    def _field_value(self, field: str, value: str) -> tuple[str, Any]:
        """The field's name and the typed value checked and converted, or a CopilotError."""
        name = fold(field).replace(" ", "_")
        text = (value or "").strip()
        if name in ("full_name", "lead_name"):
            name = "name"
        if name in PROFILE_FIELDS:
            if not text:
                if name == "name":
                    raise CopilotError("A lead's name cannot be empty.")
                return name, None
            if name == "email":
                emails = find_emails(text)
                if not emails or emails[0].lower() != text.lower():
                    raise CopilotError(f"{text!r} is not an email address.")
                return name, emails[0]
            if name == "phone":
                phone = try_normalize_phone(text, self.ctx.region)
                if not phone:
                    raise CopilotError(f"{text!r} is not a phone number I can use.")
                return name, phone
            return name, text[:200]
        custom = next((f for f in self.ctx.prompts.custom_fields
                       if fold(f.name) == fold(field) or fold(f.label) == fold(field)), None)
        if custom is None:
            known = ", ".join([*PROFILE_FIELDS, *(f.name for f in self.ctx.prompts.custom_fields)])
            raise CopilotError(f"Leads have no field {field!r}. Fields: {known}.")
        if not text:
            return custom.name, None
        try:
            return custom.name, custom.coerce(text)
        except (ValueError, TypeError) as exc:
            raise CopilotError(f"{text!r} does not fit {custom.label}: {exc}") from None

    def _filter_query(self, agent: Agent, kind: str, status: str | None, channel: str | None,
                      score_min: int | None, score_max: int | None, period: str | None, now: datetime) -> LeadQuery:
        q = LeadQuery(limit=1000, score_min=score_min, score_max=score_max, channel=(channel,) if channel else (),
                      status=(cfg.canonical_status(self.ctx.prompts, status),) if status else ())
        if kind == "mine":
            q.agent_id = agent.id
        elif kind == "hot":
            q.hot = True
        elif kind == "unassigned":
            q.unassigned = True
        elif kind == "stale":
            q.stale_days = STALE_DAYS
            q.terminal_statuses = cfg.terminal_statuses(self.ctx.prompts)
        elif kind == "recent":
            q.created_from = now - timedelta(days=RECENT_DAYS)
            if period:
                q.created_from, q.created_to, _label = period_range(period, now=now, zone=self._zone())
        elif kind == "follow_ups":
            q.status = tuple(cfg.follow_up_statuses(self.ctx.prompts))
        return visible(agent, q)



PROFILE_FIELDS = ("name", "company", "email", "phone")
_EXAMPLES = {
    "summarise": '"summarise 42"', "qualify": '"qualify 42"', "next step for": '"next step for 42"',
    "check if hot": '"is 42 hot?"', "draft an intro email for": '"draft an intro email for 42"',
    "archive": '"archive 42"', "take over": '"take over 42"', "hot leads": '"my hot leads"',
    "what happened": '"what happened today?"', "assign": '"assign 42 to me"', "add a note to": '"note for 42: text"',
    "set the status of": '"set 42 to Follow Up"',
}
_VERBS = {
    "summarise": "summarise", "summary": "summarise", "show": "summarise", "qualify": "qualify", "bant": "qualify",
    "next": "next step for", "step": "next step for", "hot": "check if hot", "warm": "check if hot",
    "draft": "draft an intro email for", "email": "draft an intro email for", "write": "draft an intro email for",
    "archive": "archive", "takeover": "take over", "take": "take over", "leads": "hot leads",
    "happened": "what happened", "today": "what happened", "assign": "assign", "give": "assign",
    "note": "add a note to", "status": "set the status of",
}
_VERB_WORDS = set(_VERBS) | {"the", "a", "an", "for", "to", "of", "me", "please", "lead", "with", "on", "is"}


def _closest_verbs(words: list[str]) -> list[str]:
    """Request kinds whose words are closest to the typed ones (typos allowed), best first."""
    found: list[tuple[float, str]] = []
    for word in words[:6]:
        if len(word) < 3:
            continue
        match = process.extractOne(word, list(_VERBS), scorer=fuzz.ratio, score_cutoff=60)
        if match is not None:
            verb = _VERBS[match[0]]
            if verb not in [v for _, v in found]:
                found.append((match[1], verb))
    found.sort(key=lambda item: -item[0])
    return [verb for _, verb in found]


def _writable(lead: Lead, action: LeadAction = "edit", agent: Agent | None = None) -> Lead:
    """The lead, if the rule for converted leads (`check_unlocked`) allows this action."""
    try:
        check_unlocked(lead, action, admin=agent is not None and is_admin(agent))
    except LeadLocked:
        raise CopilotError(f"Lead #{lead.id} was converted and is read-only; an admin can reopen it.") from None
    return lead


def _tidy(text: str) -> str:
    return " ".join(text.split()).replace(" .", ".").replace(" :", ":")


def _score_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"score {low}–{high}"
    if low is not None:
        return f"score ≥ {low}"
    if high is not None:
        return f"score ≤ {high}"
    return ""


# --- wiring them as LangChain tools ----------------------------------------------------------

TOOL_SPECS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("find_leads", FindLeadsArgs, "Find leads by id, phone (any format), email, name or company."),
    ("lead_summary", LeadArgs, "Summarise a lead: status, score and why, conversations across channels, notes "
                               "and the next best action. Use for 'summarise' and 'what should I do next'."),
    ("qualify_lead", LeadArgs, "BANT-qualify a lead (budget, authority, need, timeline) with quoted evidence, "
                               "an overall score and a recommended next action."),
    ("check_hot", LeadArgs, "Say whether a lead is hot (yes/no) with the reasoning: score, trend, signals."),
    ("draft_intro_email", DraftEmailArgs, "Draft a personalised intro email for a lead; the agent is asked "
                                          "whether to save it as a note."),
    ("list_leads", ListLeadsArgs, "List leads: all, mine, hot, today's follow-ups, unassigned, stale, recent; "
                                  "optionally by status, channel or score range. 10 per page."),
    ("my_notifications", NoArgs, "Show (and mark read) the agent's unread notifications."),
    ("next_action", LeadArgs, "Only the next best action for a lead (use for 'what next', 'next step')."),
    ("activity_digest", DigestArgs, "What happened in a period: new leads, status changes, hot leads waiting, "
                                    "replies owed, within what the agent may see."),
    ("set_field", FieldArgs, "Set one profile field (name, company, email, phone) or custom field of a lead; "
                             "'rename' sets the name."),
    ("bulk_update", BulkArgs, "Assign, set the status of, or archive every lead matching a filter (shows a "
                              "preview and asks to confirm)."),
    ("add_note", NoteArgs, "Add a note to a lead."),
    ("set_status", StatusArgs, "Set a lead's status (final statuses ask the agent to confirm)."),
    ("assign_lead", AssignArgs, "Assign one lead to an agent ('me' for yourself, 'nobody' to unassign)."),
    ("reassign_leads", ReassignArgs, "Move all open leads of one agent to another (asks to confirm)."),
    ("archive_lead", LeadArgs, "Archive a lead (asks to confirm)."),
    ("merge_leads", MergeArgs, "Merge one lead into another that is the same person, e.g. one a merge "
                               "suggestion names (asks to confirm)."),
    ("reply_to_customer", ReplyArgs, "Send a message to the customer on their channel as the agent; the bot "
                                     "pauses for the takeover window."),
    ("resume_bot", LeadArgs, "Let the bot answer a lead again (lifts a pause or stop)."),
    ("take_over", LeadArgs, "Take over a lead: the bot stays quiet for the takeover window."),
    ("fill_contact_card", CardArgs, "Read a pasted business card or email signature, show possible duplicates "
                                    "and, once confirmed, create or merge the lead."),
)
_NEEDS_LEAD_ARG = {"lead_summary", "qualify_lead", "check_hot", "draft_intro_email", "add_note", "set_status",
                   "assign_lead", "archive_lead", "reply_to_customer", "resume_bot", "take_over", "next_action",
                   "set_field"}
# Offline only: what the router answers when it did not understand (the model answers in words).
OFFLINE_SPECS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("suggest_requests", SuggestArgs, "Offer the closest requests to words that were not understood."),
)


CHANGE_TOOLS = frozenset({"add_note", "set_status", "assign_lead", "reassign_leads", "archive_lead", "set_field",
                          "bulk_update", "reply_to_customer", "resume_bot", "take_over"})


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    """The LangChain tools over `ctx` (what the model is offered), each guarded: permission errors
    and bad input become plain answers. The graph runs them through `ToolRunner`."""
    runner = ToolRunner(ctx)
    tools: list[BaseTool] = []
    for name, schema, description in TOOL_SPECS + OFFLINE_SPECS:
        tools.append(StructuredTool.from_function(
            func=_as_function(name, runner), name=name, description=description, args_schema=schema,
            response_format="content_and_artifact"))
    return tools


def model_tool_names() -> set[str]:
    return {name for name, _schema, _description in TOOL_SPECS}


def _as_function(name: str, runner: ToolRunner) -> Callable[..., Result]:
    def run(config: RunnableConfig, **kwargs: Any) -> Result:
        outcome = runner.plan(name, kwargs, agent_id_of(config))
        if isinstance(outcome, Confirm):
            return runner.ask_and_apply(name, outcome, agent_id_of(config))
        return outcome

    run.__name__ = name
    return run


def _which_one(name: str, args: dict[str, Any], many: Ambiguous) -> Result:
    """List the candidates (inside the transaction that loaded them) and remember the request."""
    lines = [f"{many.total} leads match {many.ref!r}. Which one?"]
    lines += [f"{i}. {lead_line(lead)}" for i, lead in enumerate(many.leads, 1)]
    lines.append("Answer with the number, the id or a name.")
    artifact: dict[str, Any] = {}
    if name in _NEEDS_LEAD_ARG:
        artifact = {"clarify": {"tool": name, "args": args, "arg": "lead",
                                "candidates": [lead.id for lead in many.leads],
                                "labels": [f"{lead.name or ''} {lead.company or ''}".strip()
                                           for lead in many.leads]}}
    return "\n".join(lines), artifact


class ToolRunner:
    """Runs one tool call in two steps: `plan` (checks, reads, and for plain changes does them in
    one transaction) and, when the plan is a question, `ask_and_apply` (one interrupt, then the
    change in a fresh transaction). Every failure becomes a short sentence for the agent."""

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        self.impl = CopilotTools(ctx)
        self.schemas = {name: schema for name, schema, _ in TOOL_SPECS + OFFLINE_SPECS}

    def check(self, name: str, args: Any) -> tuple[dict[str, Any], str | None]:
        """The call's arguments validated and bounded, or a short plain error."""
        schema = self.schemas.get(name)
        if schema is None:
            return {}, f"There is no tool called {str(name)[:40]!r}."
        if not isinstance(args, dict):
            return {}, f"{name} needs named arguments."
        try:
            checked = schema.model_validate(args)
        except ValidationError as exc:
            return {}, explain_tool_failure(name, exc)
        return checked.model_dump(exclude_none=True, exclude_defaults=False), None

    def plan(self, name: str, args: dict[str, Any], agent_id: int | None) -> Result | Confirm:
        method = getattr(self.impl, name)
        call = {"agent_ref" if k == "agent" else k: v for k, v in args.items()}
        try:
            with self.ctx.session_factory.begin() as session:
                agent = load_agent(agent_id, session=session)
                try:
                    outcome = method(agent, session, **call)
                except Ambiguous as many:
                    return _which_one(name, args, many)
            if isinstance(outcome, Afterwards):
                return outcome.run()
            return outcome
        except GraphBubbleUp:
            raise
        except identity_rules.NotAllowed as exc:
            return f"I can't merge them: {exc}.", {}
        except (CopilotError, WorkError, AgentError, InvalidContact, LeadNotFound) as exc:
            return str(exc), {}
        except ValueError as exc:
            return f"Could not run {name}: {exc}", {}
        except Exception:  # noqa: BLE001 - the agent gets an answer; the details go to the log
            log.exception("copilot tool %s failed", name)
            return "Something went wrong on our side while doing that; it was logged. Nothing else was changed.", {}

    def ask_and_apply(self, name: str, outcome: Confirm, agent_id: int | None) -> Result:
        """Ask the agent (the run pauses here, with no transaction open) and apply on yes."""
        choice, plan = ask(outcome.kind, outcome.question, outcome.options, **outcome.plan)
        if choice == "no":
            return outcome.declined
        try:
            with self.ctx.session_factory.begin() as session:
                me = load_agent(agent_id, session=session)
                result: Any = outcome.apply(me, session, choice, plan)
            return result.run() if isinstance(result, Afterwards) else result
        except (CopilotError, WorkError, AgentError, InvalidContact, LeadNotFound) as exc:
            return str(exc), {}
        except Exception:  # noqa: BLE001
            log.exception("copilot tool %s failed after confirmation", name)
            return "Something went wrong on our side while doing that; it was logged. Nothing else was changed.", {}

    def approval(self, name: str, args: dict[str, Any], agent_id: int | None, *, asked: dict[str, Any] | None,
                 changed: set[int]) -> Confirm | None:
        """A question for a change the agent did not ask for in this turn's words that touches
        another lead than the one changed already, gives a lead to someone else, or unassigns it.
        (Final statuses, archiving and bulk changes always ask by themselves.)"""
        if name not in CHANGE_TOOLS or name in ("reassign_leads", "bulk_update", "archive_lead"):
            return None
        if name == "set_status":
            try:
                if cfg.canonical_status(self.ctx.prompts, str(args.get("status", ""))) in \
                        cfg.terminal_statuses(self.ctx.prompts):
                    return None  # a final status asks by itself, with what will change
            except CopilotError:
                return None
        try:
            with self.ctx.session_factory.begin() as session:
                agent = load_agent(agent_id, session=session)
                lead = find_lead(str(args.get("lead", "")), agent, session=session, region=self.ctx.region)
                other_owner: Agent | None = None
                unassign = False
                if name == "assign_lead":
                    target = find_teammate(str(args.get("agent", "")), agent, session=session)
                    unassign = target is None
                    other_owner = target if target is not None and target.id != agent.id else None
                    if asked and asked.get("name") == name:
                        wanted = find_teammate(str(asked["args"].get("agent", "")), agent, session=session)
                        if (wanted.id if wanted else None) == (target.id if target else None) and \
                                self._same_lead(asked, lead.id, agent, session):
                            return None
                elif asked and asked.get("name") == name and self._same_lead(asked, lead.id, agent, session):
                    return None
                another_lead = bool(changed) and lead.id not in changed
                # A message to a customer goes out in the agent's name: only as the agent asked.
                unasked_message = name == "reply_to_customer"
                if not (other_owner or unassign or another_lead or unasked_message):
                    return None
                preview = _describe(name, args, lead, other_owner)
        except (CopilotError, AgentError, LeadNotFound):
            return None  # the tool itself explains the problem
        lead_id = lead.id
        reason = ("it gives a lead to another agent" if other_owner else "it unassigns a lead" if unassign
                  else "it changes another lead than the one already changed" if another_lead
                  else "it messages a customer in your name")

        def apply(me: Agent, s: Session, _choice: str, _plan: dict[str, Any]) -> Result:
            outcome = self.impl_call(name, args, me, s)
            return outcome

        return Confirm("approve", f"You did not ask for this in your message ({reason}): {preview}. Do it?",
                       {"lead_ids": [lead_id], "tool": name}, apply=apply,
                       declined=("The agent said no: nothing was changed.", {}))

    def impl_call(self, name: str, args: dict[str, Any], agent: Agent, session: Session) -> Result | Afterwards:
        """Run a change the agent has just approved, in the approval's transaction (a reply to a
        customer runs its own transactions once this one has closed)."""
        call = {"agent_ref" if k == "agent" else k: v for k, v in args.items()}
        outcome = getattr(self.impl, name)(agent, session, **call)
        if isinstance(outcome, Confirm):
            return outcome.apply(agent, session, "yes", outcome.plan)
        return outcome  # an Afterwards (a reply) runs once the approval's transaction has closed

    def _same_lead(self, asked: dict[str, Any], lead_id: int, agent: Agent, session: Session) -> bool:
        ref = str(asked.get("args", {}).get("lead", ""))
        try:
            return find_lead(ref, agent, session=session, region=self.ctx.region).id == lead_id
        except CopilotError:
            return False


def _describe(name: str, args: dict[str, Any], lead: Lead, owner: Agent | None) -> str:
    label = f"#{lead.id} {lead.name or '(no name)'}"
    if name == "assign_lead":
        return f"assign {label} to {owner.name if owner else 'nobody'}"
    if name == "set_status":
        return f"set {label} from {lead.status} to {args.get('status')}"
    if name == "set_field":
        return f"set {label}'s {args.get('field')} to {str(args.get('value'))[:80]!r}"
    if name == "add_note":
        return f"add a note to {label}: {str(args.get('text'))[:80]!r}"
    if name == "reply_to_customer":
        return f"send {label} the message {str(args.get('text'))[:120]!r}"
    return f"{name.replace('_', ' ')} {label}"


# What a failed tool says it could not do (the agent reads it, or the model passes it on).
_COULD_NOT = {
    "add_note": "I couldn't save that note",
    "set_status": "I couldn't change that status",
    "assign_lead": "I couldn't assign that lead",
    "reassign_leads": "I couldn't reassign those leads",
    "archive_lead": "I couldn't archive that lead",
    "draft_intro_email": "I couldn't draft that email",
    "reply_to_customer": "I couldn't send that reply",
    "resume_bot": "I couldn't hand that conversation back to the bot",
    "take_over": "I couldn't take over that conversation",
    "fill_contact_card": "I couldn't save that contact card",
    "set_field": "I couldn't change that field",
    "bulk_update": "I couldn't change those leads",
    "merge_leads": "I couldn't merge those leads",
    "list_leads": "I couldn't list those leads",
}


def explain_tool_failure(name: str, exc: ValidationError) -> str:
    """The answer to a tool call whose arguments the tool refuses: the details go to the log, the
    agent (or the model, to relay) gets a plain sentence naming what was not understood, never the
    exception's text."""
    log.error("copilot tool %s refused its arguments", name, exc_info=exc)
    could_not = _COULD_NOT.get(name, f"I couldn't {name.replace('_', ' ')}")
    problems = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return f"{could_not} ({'; '.join(problems)}); nothing was changed."
