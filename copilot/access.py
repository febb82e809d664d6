"""Who may see and change what: the acting agent, and leads found by id, phone, email or name
within what that agent may see (their own and unassigned leads; everything for an admin)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from rapidfuzz import fuzz, process
from sqlalchemy.orm import Session

from copilot.text import fold, name_score
from store.agents import find_agent, list_agents
from store.contacts import find_emails, try_normalize_phone
from store.domain import permissions
from store.domain.errors import NotAllowed
from store.domain.permissions import can_see, is_admin
from store.lead_lookups import lead_labels, leads_by_email
from store.leads import LeadNotFound, find_lead_by_phone, get_lead
from store.models import Agent, Lead
from store.query import LeadQuery, count_leads, query_leads

MAX_CANDIDATES = 8
MATCH_SCORE = 82.0  # a typed name this close names the lead
CLEAR_MARGIN = 4.0  # one match this far ahead of the next is the one meant
SUGGEST_SCORE = 60.0  # closest names offered when nothing matches
PREFILTER_SCORE = 50.0
PREFILTER_LIMIT = 60
_ID = re.compile(r"^(?:lead\s*)?(?:#|no\.?\s*|id\s*)?(\d{1,7})$", re.IGNORECASE)
_ME = {"me", "myself", "i", "mine", "my", "self"}
_NOBODY = {"nobody", "no one", "noone", "none", "unassigned", "unassign", "no-one"}


class CopilotError(Exception):
    """Something the agent should be told in plain words (nothing was changed)."""


class Denied(CopilotError):
    pass


class NotFound(CopilotError):
    """No lead matches; `near` holds the ids of the closest names, if any."""

    def __init__(self, message: str, near: list[int] | None = None):
        super().__init__(message)
        self.near = near or []


class Ambiguous(CopilotError):
    """Several leads match; the agent picks one."""

    def __init__(self, ref: str, leads: list[Lead], total: int):
        self.ref, self.leads, self.total = ref, leads, total
        super().__init__(f"{total} leads match {ref!r}")


def load_agent(agent_id: int | None, *, session: Session) -> Agent:
    """The registered, active agent the copilot acts for, or Denied."""
    agent = session.get(Agent, int(agent_id)) if agent_id is not None else None
    if agent is None or not agent.active:
        raise Denied("I only work for registered, active Leaddesk agents.")
    return agent


def visible(agent: Agent, q: LeadQuery | None = None) -> LeadQuery:
    """`q` restricted to what `agent` may see."""
    q = q or LeadQuery()
    return q if is_admin(agent) else replace(q, visible_to_agent_id=agent.id)


def check_visible(agent: Agent, lead: Lead) -> Lead:
    """The lead, if the domain's permissions let `agent` see it; else Denied, in our words."""
    try:
        return permissions.check_visible(agent, lead)
    except NotAllowed:
        raise Denied(
            f"Lead #{lead.id} is assigned to another agent, so I can't show or change it for you."
        ) from None


def find_lead(ref: str, agent: Agent, *, session: Session, region: str) -> Lead:
    """The one lead `ref` names (id, phone in any format, email or name) that `agent` may see."""
    ref = (ref or "").strip().strip("?.!,:;\"'")
    if not ref:
        raise CopilotError("Which lead? Give me an id, a phone number, an email or a name.")
    match = _ID.match(ref)
    if match:
        try:
            lead = get_lead(int(match.group(1)), session=session)
        except LeadNotFound:
            raise CopilotError(f"There is no lead #{match.group(1)}.") from None
        return check_visible(agent, lead)
    emails = find_emails(ref)
    if emails:
        return _one(
            ref,
            agent,
            list(leads_by_email(emails[0], session=session)),
            what=f"with the email {emails[0]}",
        )
    digits = re.sub(r"\D", "", ref)
    if len(digits) >= 7 and len(digits) >= len(re.sub(r"[\s()+.\-/]", "", ref)) - 1:
        phone = try_normalize_phone(ref, region)
        if phone:
            exact = find_lead_by_phone(phone, session=session)
            if exact is not None:
                return check_visible(agent, get_lead(exact.id, session=session))
        return _search(ref, agent, session=session, what="with that phone number")
    return _search(ref, agent, session=session, what=f"called {ref!r}")


def _one(ref: str, agent: Agent, leads: list[Lead], *, what: str) -> Lead:
    if not leads:
        raise NotFound(f"I found no lead {what}.")
    seen = [lead for lead in leads if can_see(agent, lead)]
    if not seen:
        raise Denied(
            f"The lead {what} is assigned to another agent, so I can't show or change it for you."
        )
    if len(seen) > 1:
        raise Ambiguous(ref, seen[:MAX_CANDIDATES], len(seen))
    return seen[0]


def _search(ref: str, agent: Agent, *, session: Session, what: str) -> Lead:
    """Names (and companies) compared folded and fuzzily over the leads the agent may see."""
    typed = fold(ref)
    matches = (
        rank_names(
            typed,
            lead_labels(session=session, visible_to_agent_id=None if is_admin(agent) else agent.id),
        )
        if typed
        else []
    )
    strong = [m for m in matches if m.score >= MATCH_SCORE]
    if strong:
        best = strong[0].score
        close = [m for m in strong if m.score >= best - CLEAR_MARGIN]
        if any(not m.archived for m in close):
            close = [m for m in close if not m.archived]
        if len(close) == 1:
            return get_lead(close[0].id, session=session)
        close.sort(key=lambda m: (m.archived, -m.lead_score, m.id))
        shown = [get_lead(m.id, session=session) for m in close[:MAX_CANDIDATES]]
        raise Ambiguous(ref, shown, len(close))
    # Emails and phone numbers typed in part: the store's text search.
    for archived in (False, None):
        q = visible(
            agent, LeadQuery(search=ref, archived=archived, sort="-score", limit=MAX_CANDIDATES)
        )
        found = query_leads(q, session=session)
        if len(found) == 1:
            return found[0]
        if found and any(ch.isdigit() or ch == "@" for ch in ref):
            raise Ambiguous(ref, found, count_leads(q, session=session))
    if not is_admin(agent) and count_leads(LeadQuery(search=ref, archived=None), session=session):
        raise Denied(
            f"The lead {what} is assigned to another agent, so I can't show or change it for you."
        )
    if not what.startswith("called"):
        raise NotFound(f"I found no lead {what}.")
    near = [m for m in matches if m.score >= SUGGEST_SCORE][:3]
    if near:
        names = ", ".join(f"{m.name or m.company} (#{m.id})" for m in near)
        raise NotFound(
            f"No lead you can see matches {ref!r}. Closest: {names}.", near=[m.id for m in near]
        )
    raise NotFound(f"No lead you can see matches {ref!r}.")


def clear_match(typed: str, labels: Sequence[tuple[int, str, str, bool, int]]) -> NameMatch | None:
    """The one lead `typed` (folded) clearly names among `labels`, if any."""
    strong = [m for m in rank_names(typed, labels) if m.score >= MATCH_SCORE]
    if not strong:
        return None
    close = [m for m in strong if m.score >= strong[0].score - CLEAR_MARGIN]
    if any(not m.archived for m in close):
        close = [m for m in close if not m.archived]
    return close[0] if len(close) == 1 else None


def visible_labels(agent: Agent, *, session: Session) -> list[tuple[int, str, str, bool, int]]:
    return lead_labels(session=session, visible_to_agent_id=None if is_admin(agent) else agent.id)


class NameMatch(NamedTuple):
    score: float
    id: int
    name: str
    company: str
    archived: bool
    lead_score: int = 0


def rank_names(typed: str, labels: Sequence[tuple[int, str, str, bool, int]]) -> list[NameMatch]:
    """Leads ranked by how well `typed` (folded) names them or their company; best first."""
    if not typed:
        return []
    ranked: list[NameMatch] = []
    # A quick pass in C over every name and company keeps the careful score to the likely few.
    texts = [
        fold(name) + (" | " + fold(company) if company else "")
        for _id, name, company, _a, _s in labels
    ]
    likely = process.extract(
        typed, texts, scorer=fuzz.WRatio, score_cutoff=PREFILTER_SCORE, limit=PREFILTER_LIMIT
    )
    for _text, _quick, index in likely:
        lead_id, name, company, archived, lead_score = labels[index]
        folded = fold(name)
        score = name_score(typed, folded) if folded else 0.0
        if company:
            score = max(score, name_score(typed, fold(company)) * 0.9)
        if score > 0:
            ranked.append(NameMatch(score, lead_id, name, company, archived, lead_score))
    ranked.sort(key=lambda m: (-m.score, m.archived, -m.lead_score, m.id))
    return ranked


def find_teammate(ref: str, me: Agent, *, session: Session) -> Agent | None:
    """An agent named by name, email or id; 'me' is the acting agent; 'nobody' is None
    (unassign)."""
    text = (ref or "").strip().strip("?.!,:;\"'")
    text = re.sub(r"^(?:agent|@)\s*", "", text, flags=re.IGNORECASE)
    if text.lower() in _ME:
        return me
    if text.lower() in _NOBODY:
        return None
    agent = find_agent(text, session=session)
    if agent is None:
        # First names are what people say: "give it to Mike".
        typed = fold(text)
        matches = [
            a
            for a in list_agents(session=session, include_inactive=False)
            if typed
            and (
                fold(a.name) == typed
                or fold(a.name).split()[:1] == [typed]
                or fold(a.name).startswith(typed + " ")
            )
        ]
        if len(matches) == 1:
            agent = matches[0]
        elif len(matches) > 1:
            names = ", ".join(a.name for a in matches)
            raise CopilotError(f"Several agents match {text!r}: {names}. Which one?")
    if agent is None:
        raise CopilotError(f"I know no agent called {text!r}.")
    if not agent.active:
        raise CopilotError(f"{agent.name} is disabled and cannot take leads.")
    return agent
