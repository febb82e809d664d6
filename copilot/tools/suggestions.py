"""The offline router's answer when it did not understand: the two or three closest requests,
about the lead the words seem to name (the model answers in words instead)."""

from __future__ import annotations

from rapidfuzz import fuzz, process
from sqlalchemy.orm import Session

from copilot.access import CopilotError, clear_match, visible_labels
from copilot.schemas import SuggestArgs
from copilot.text import fold
from copilot.tools.base import Result, ToolContext, find, tool
from store.leads import get_lead
from store.models import Agent, Lead

_EXAMPLES = {
    "summarise": '"summarise 42"',
    "qualify": '"qualify 42"',
    "next step for": '"next step for 42"',
    "check if hot": '"is 42 hot?"',
    "draft an intro email for": '"draft an intro email for 42"',
    "archive": '"archive 42"',
    "take over": '"take over 42"',
    "hot leads": '"my hot leads"',
    "what happened": '"what happened today?"',
    "assign": '"assign 42 to me"',
    "add a note to": '"note for 42: text"',
    "set the status of": '"set 42 to Follow Up"',
}
_VERBS = {
    "summarise": "summarise",
    "summary": "summarise",
    "show": "summarise",
    "qualify": "qualify",
    "bant": "qualify",
    "next": "next step for",
    "step": "next step for",
    "hot": "check if hot",
    "warm": "check if hot",
    "draft": "draft an intro email for",
    "email": "draft an intro email for",
    "write": "draft an intro email for",
    "archive": "archive",
    "takeover": "take over",
    "take": "take over",
    "leads": "hot leads",
    "happened": "what happened",
    "today": "what happened",
    "assign": "assign",
    "give": "assign",
    "note": "add a note to",
    "status": "set the status of",
}
_VERB_WORDS = set(_VERBS) | {
    "the",
    "a",
    "an",
    "for",
    "to",
    "of",
    "me",
    "please",
    "lead",
    "with",
    "on",
    "is",
}


@tool(SuggestArgs, "Offer the closest requests to words that were not understood.")
def suggest_requests(ctx: ToolContext, agent: Agent, session: Session, args: SuggestArgs) -> Result:
    """The two or three closest requests to words the router did not understand."""
    words = fold(args.text).split()[:12]
    labels = visible_labels(agent, session=session)
    lead: Lead | None = None
    used: list[str] = []
    for size in (3, 2, 1):
        for i in range(len(words) - size + 1):
            chunk = " ".join(words[i : i + size])
            if (
                chunk in _VERB_WORDS
                or len(chunk) < 3
                or any(w.isdigit() for w in words[i : i + size])
            ):
                continue
            match = clear_match(chunk, labels)
            if match is None:
                continue
            lead = get_lead(match.id, session=session)
            used = words[i : i + size]
            break
        if lead is not None:
            break
    verbs = _closest_verbs([w for w in words if w not in used])
    if lead is None:
        ids = [w.lstrip("#") for w in words if w.lstrip("#").isdigit() and len(w) <= 7]
        for candidate in ids:
            try:
                lead = find(ctx, candidate, agent, session)
                break
            except CopilotError:
                continue
    options: list[str] = []
    if lead is not None:
        who = f"{lead.name or 'lead'} (#{lead.id})"
        for verb in (verbs or ["summarise", "qualify", "next step for"])[:3]:
            options.append(f"{verb} {who}")
    else:
        options = [
            _EXAMPLES[verb] for verb in (verbs or ["summarise", "hot leads", "what happened"])[:3]
        ]
    return (
        "Sorry, I didn't get that. Did you mean: "
        + " · ".join(f"{o}?" for o in options)
        + "\n(/help lists everything I can do.)"
    ), ({"focus_lead_id": lead.id} if lead is not None else {})


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
