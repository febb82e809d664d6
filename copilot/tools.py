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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from bot.takeover import NoConversation, pause_bot, resume_bot, send_agent_reply
from copilot import config as cfg
from copilot.access import (
    Ambiguous,
    CopilotError,
    Denied,
    can_see,
    check_visible,
    find_lead,
    find_teammate,
    is_admin,
    load_agent,
    visible,
)
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
    CardArgs,
    DraftEmailArgs,
    FindLeadsArgs,
    LeadArgs,
    ListLeadsArgs,
    MergeArgs,
    NoArgs,
    NoteArgs,
    ReassignArgs,
    ReplyArgs,
    StatusArgs,
)
from store import identity as identity_rules
from store.agents import AgentError
from store.contacts import InvalidContact
from store.copilot_queries import (
    count_follow_up_leads,
    follow_up_leads,
    lead_ids_matching,
    leads_by_email,
    message_counts,
)
from store.leads import (
    find_lead_by_phone,
    get_lead,
    merge_leads,
    record_audit,
    resolve,
    update_lead,
)
from store.messages import recent_messages
from store.models import HOT_SCORE, Agent, Lead
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
       "proceed", "approve", "approved", "true", "si", "sí", "oui", "ja", "نعم"}

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
                   score_max: int | None = None, page: int = 1) -> Result:
        now = self.ctx.clock()
        args = {"kind": kind, "status": status, "channel": channel, "score_min": score_min,
                "score_max": score_max, "page": page}
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
        lines = [f"{title} — {total} in all, page {page} of {pages}:"] + [lead_line(lead) for lead in leads]
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

        return Confirm("save_email", f"{draft}\n\nSave this draft as a note on #{lead_id}?",
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
        lead = resolve("manual", f"card:{uuid.uuid4().hex}", phone=card.get("phone"), email=card.get("email"),
                       name=card.get("name"), session=session, region=self.ctx.region, source="copilot",
                       actor="agent")
        if target is not None and lead.id != target.id:
            lead = merge_leads(target, lead, session=session, actor="agent", agent_id=agent.id)
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
        if target is not None:
            verb = "Merged the card into"
        elif known_before is not None:
            verb = "Updated the existing"
        else:
            verb = "Created"
        return _tidy(f"{verb} lead #{lead.id} {lead.name or ''}."), {"focus_lead_id": lead.id}

    # helpers

    def _takeover_minutes(self) -> int:
        return cfg.takeover_minutes(self.ctx.prompts, self.ctx.takeover_minutes)

    def _lead(self, ref: str, agent: Agent, session: Session) -> Lead:
        return find_lead(ref, agent, session=session, region=self.ctx.region)



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
                   "assign_lead", "archive_lead", "reply_to_customer", "resume_bot", "take_over"}


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    """The LangChain tools over `ctx`, each guarded: permission errors and bad input become plain answers."""
    impl = CopilotTools(ctx)
    tools: list[BaseTool] = []
    for name, schema, description in TOOL_SPECS:
        tools.append(StructuredTool.from_function(
            func=_guarded(name, impl, ctx), name=name, description=description, args_schema=schema,
            response_format="content_and_artifact"))
    return tools


def _which_one(name: str, args: dict[str, Any], many: Ambiguous) -> Result:
    """List the candidates (inside the transaction that loaded them) and remember the request."""
    lines = [f"{many.total} leads match {many.ref!r}. Which one?"]
    lines += [f"{i}. {lead_line(lead)}" for i, lead in enumerate(many.leads, 1)]
    lines.append("Answer with the number or the id.")
    artifact: dict[str, Any] = {}
    if name in _NEEDS_LEAD_ARG:
        artifact = {"clarify": {"tool": name, "args": args, "arg": "lead",
                                "candidates": [lead.id for lead in many.leads]}}
    return "\n".join(lines), artifact


def _guarded(name: str, impl: CopilotTools, ctx: ToolContext) -> Callable[..., Result]:
    method = getattr(impl, name)

    def run(config: RunnableConfig, **kwargs: Any) -> Result:
        call = {"agent_ref" if k == "agent" else k: v for k, v in kwargs.items()}
        try:
            with ctx.session_factory.begin() as session:
                agent = load_agent(agent_id_of(config), session=session)
                agent_id = agent.id
                try:
                    outcome = method(agent, session, **call)
                except Ambiguous as many:
                    return _which_one(name, kwargs, many)
            if isinstance(outcome, Afterwards):
                return outcome.run()
            if isinstance(outcome, Confirm):
                # Asked with no transaction open: the run pauses here until the agent answers.
                choice, plan = ask(outcome.kind, outcome.question, outcome.options, **outcome.plan)
                if choice == "no":
                    return outcome.declined
                with ctx.session_factory.begin() as session:
                    me = load_agent(agent_id, session=session)
                    return outcome.apply(me, session, choice, plan)
            return outcome
        except GraphBubbleUp:
            raise
        except identity_rules.NotAllowed as exc:
            return f"I can't merge them: {exc}.", {}
        except (CopilotError, WorkError, AgentError, InvalidContact) as exc:
            return str(exc), {}
        except Exception:  # noqa: BLE001 - the agent gets an answer; the details go to the log
            log.exception("copilot tool %s failed", name)
            return "Something went wrong on our side while doing that; it was logged. Nothing else was changed.", {}

    run.__name__ = name
    return run


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
}


def explain_tool_failure(exc: Exception) -> str:
    """The answer to a tool call that failed before or outside its own handling (e.g. arguments
    the tool's schema refuses): the traceback goes to the log, the agent gets a plain sentence
    naming the arguments that were not understood, never the exception's text."""
    name = getattr(exc, "tool_name", None) or "that tool"
    log.error("copilot tool %s failed", name, exc_info=exc)
    could_not = _COULD_NOT.get(name, "I couldn't do that")
    errors = getattr(exc, "filtered_errors", None)
    if errors is None and isinstance(getattr(exc, "source", None), ValidationError):
        errors = exc.source.errors()  # type: ignore[attr-defined]
    fields = sorted({str(error["loc"][0]) for error in errors or () if error.get("loc")})
    if fields:
        return f"{could_not}: the {', '.join(fields)} given could not be understood; nothing was changed."
    return f"{could_not}; nothing was changed."
