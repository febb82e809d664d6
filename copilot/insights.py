"""Offline judgement over a lead: BANT qualification, the hot check, the intro email draft, the
summary and contact-card parsing. Plain, deterministic Python over the lead's fields and messages,
so the copilot is useful without a model (and the model's tools return the same grounded facts)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from copilot.schemas import BantName, ContactCard, Criterion, HotCheck, Qualification, Verdict
from store.contacts import find_emails, find_phones

QUOTE_CHARS = 110


@dataclass
class Said:
    """One message of the lead's conversations."""

    channel: str
    author: str  # customer, bot, agent
    text: str
    sent_at: datetime


@dataclass
class LeadFacts:
    """Everything the analyses look at, copied out of the store inside one transaction."""

    id: int
    name: str | None
    status: str
    score: int
    company: str | None = None
    title: str | None = None
    email: str | None = None
    phone: str | None = None
    channels: list[str] = field(default_factory=list)
    assigned_to: str | None = None
    score_factors: list[dict[str, Any]] = field(default_factory=list)
    interests: list[str] = field(default_factory=list)
    objections: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    summary: str | None = None
    next_best_action: str | None = None
    conversion_probability: float | None = None
    created_at: datetime | None = None
    last_contacted_at: datetime | None = None
    ai_state: str = "answering"
    archived: bool = False
    messages: list[Said] = field(default_factory=list)  # oldest first, a bounded recent window
    message_counts: dict[str, int] = field(default_factory=dict)
    scores: list[int] = field(default_factory=list)  # score history, oldest first
    notes: list[tuple[str, str]] = field(default_factory=list)  # (category, text), newest last

    @property
    def label(self) -> str:
        who = self.name or "(no name)"
        return f"#{self.id} {who}" + (f" ({self.company})" if self.company else "")

    @property
    def first_name(self) -> str | None:
        if not self.name:
            return None
        return self.name.split()[0].strip(",")

    def customer_messages(self) -> list[Said]:
        return [m for m in self.messages if m.author == "customer" and m.text.strip()]


# --- quoting -------------------------------------------------------------------------------


def quote(text: str, match: re.Match[str] | None = None, limit: int = QUOTE_CHARS) -> str:
    """The sentence around `match` (or the start of `text`), shortened, in double quotes."""
    flat = " ".join((text or "").split())
    if match is not None:
        phrase = " ".join(match.group(0).split()).lower()
        start = flat.lower().find(phrase) if phrase else -1
        if start >= 0:
            end = start + len(phrase)
            left = max(flat.rfind(ch, 0, start) for ch in ".!?") + 1
            rights = [i for i in (flat.find(ch, end) for ch in ".!?") if i >= 0]
            right = (min(rights) + 1) if rights else len(flat)
            flat = flat[left:right].strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return f'"{flat}"'


def when(moment: datetime | None, now: datetime) -> str:
    """'5 min ago', '3 h ago', '2 days ago', or a date."""
    if moment is None:
        return "never"
    delta = now - moment
    if delta < timedelta(0):
        return moment.strftime("%d %b %H:%M")
    if delta < timedelta(hours=1):
        return f"{max(1, int(delta.total_seconds() // 60))} min ago"
    if delta < timedelta(days=1):
        return f"{int(delta.total_seconds() // 3600)} h ago"
    if delta < timedelta(days=30):
        days = delta.days
        return f"{days} day{'s' if days != 1 else ''} ago"
    return moment.strftime("%d %b %Y")


# --- BANT ------------------------------------------------------------------------------------


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_MONEY = (
    r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|sar|aed|dollars?|euros?|pounds?)\b)\s?\d[\d,.]*\s?(?:k|m|K|M)?\b"
    r"|\b\d[\d,.]*\s?(?:k|K)?\s?(?:[$€£]|usd|eur|gbp|sar|aed|dollars|euros|pounds)\b"
)

# Within one message the specific phrases (not met / met) win over the vague ones (partly).
BANT_RULES: dict[BantName, dict[Verdict, re.Pattern[str]]] = {
    "Budget": {
        "not met": _rx(
            r"\btoo (?:expensive|pricey|much)\b",
            r"\bcan(?:'|no)?t afford\b",
            r"\bcannot afford\b",
            r"\bno budget\b",
            r"\bout of (?:our|my) budget\b",
            r"\bover (?:our|my) budget\b",
            r"\bdemasiado caro\b",
            r"\btrop cher\b",
            r"\bzu teuer\b",
        ),
        "met": _rx(
            r"\b(?:our|my|the) budget (?:is|of|was|will be)\b",
            r"\bbudget (?:of|around|about|approved)\b",
            r"\bwe have (?:a |the )?budget\b",
            r"\bbudget(?:ed)? for (?:it|this)\b",
            r"\b(?:happy|ready|willing|able) to pay\b",
            r"\bfits? (?:our|my|the) budget\b",
            r"\bpurchase order\b",
            r"\bsend (?:me |us )?(?:the |an )?invoice\b",
            _MONEY,
            r"\bpresupuesto (?:es|de)\b",
            r"\bnotre budget\b",
        ),
        "partly": _rx(
            r"\bhow much\b",
            r"\bpric(?:e|es|ing)\b",
            r"\bcosts?\b",
            r"\bquote\b",
            r"\bdiscount\b",
            r"\bbudget\b",
            r"\bpayment plan\b",
            r"\binstal?ments?\b",
            r"\bcu[aá]nto cuesta\b",
            r"\bprecio\b",
            r"\bcombien\b",
            r"\bprix\b",
            r"\bpreis\b",
            r"\bpreço\b",
            r"\bكم السعر\b",
            r"\bسعر\b",
        ),
    },
    "Authority": {
        "not met": _rx(
            r"\bnot (?:my|the) (?:decision|call)\b",
            r"\bnot the decision[- ]maker\b",
            r"\bi(?:'m| am) (?:just )?(?:an? )?(?:intern|student)\b",
            r"\bno say in\b",
        ),
        "met": _rx(
            r"\bi(?:'m| am) the (?:owner|founder|co-?founder|ceo|cto|cfo|coo|director|head|manager|"
            r"decision[- ]maker|boss|president|principal|buyer)\b",
            r"\bi (?:own|run|manage) (?:the|a|my|our)\b",
            r"\bi (?:make|sign off on) the decisions?\b",
            r"\bi decide\b",
            r"\bmy (?:company|business|shop|store|clinic|agency|firm)\b",
            r"\bi can sign\b",
            r"\bsoy el (?:dueño|director)\b",
            r"\bje suis le (?:directeur|gérant)\b",
        ),
        "partly": _rx(
            r"\b(?:check|talk|speak|discuss) (?:it )?with my "
            r"(?:boss|manager|team|partner|wife|husband|cofounder|co-founder|director)\b",
            r"\bneed (?:an? )?approval\b",
            r"\bmy boss\b",
            r"\bmy manager\b",
            r"\bthe team (?:decides|will decide)\b",
            r"\bget back to you after\b",
            r"\bwe(?:'ll| will) discuss\b",
            r"\bour team\b",
            r"\bwe are (?:looking|considering)\b",
        ),
    },
    "Need": {
        "not met": _rx(
            r"\bnot interested\b",
            r"\b(?:don'?t|do not|no longer) need\b",
            r"\bunsubscribe\b",
            r"\bstop (?:messaging|texting|contacting)\b",
            r"\bwrong number\b",
            r"\bno me interesa\b",
            r"\bpas intéressé\b",
            r"\bkein interesse\b",
        ),
        "met": _rx(
            r"\b(?:we|i) (?:really )?need\b"
            r"(?! to (?:check|ask|talk|think|discuss|speak|consult|see))",
            r"\b(?:we|i)(?:'re| are| am) looking for\b",
            r"\blooking for\b",
            r"\b(?:we|i) want to\b",
            r"\binterested in\b",
            r"\bwe require\b",
            r"\bproblem (?:with|is)\b",
            r"\bstruggling with\b",
            r"\bhelp us\b",
            r"\bsign (?:me |us )?up\b",
            r"\bbook a demo\b",
            r"\bnecesito\b",
            r"\bj'ai besoin\b",
            r"\bbrauche\b",
            r"\bpreciso\b",
            r"\bأحتاج\b",
        ),
        "partly": _rx(
            r"\bjust (?:looking|browsing|curious)\b",
            r"\bmaybe\b",
            r"\bwhat (?:do|does) (?:you|it)\b",
            r"\bdo you (?:offer|have|support)\b",
            r"\bcan (?:you|it)\b",
            r"\binfo(?:rmation)?\b",
        ),
    },
    "Timeline": {
        "not met": _rx(
            r"\bnext year\b",
            r"\bnot (?:right )?now\b",
            r"\bsomeday\b",
            r"\bno plans?\b",
            r"\bmaybe later\b",
            r"\bnot this year\b",
        ),
        "met": _rx(
            r"\btoday\b",
            r"\btomorrow\b",
            r"\btonight\b",
            r"\bthis week\b",
            r"\bnext week\b",
            r"\basap\b",
            r"\burgent(?:ly)?\b",
            r"\bright away\b",
            r"\bimmediately\b",
            r"\bthis month\b",
            r"\bby (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|the end of|"
            r"end of|the \d|\d)",
            r"\bwithin (?:a|one|two|three|\d+) (?:days?|weeks?)\b",
            r"\bneed (?:this|it) by\b",
            r"\bhoy\b",
            r"\bmañana\b",
            r"\burgente\b",
            r"\baujourd'hui\b",
            r"\bdringend\b",
        ),
        "partly": _rx(
            r"\bnext month\b",
            r"\bnext quarter\b",
            r"\bin (?:a few|two|three|\d+) months\b",
            r"\bsoon\b",
            r"\blater this year\b",
            r"\bq[1-4]\b",
            r"\bno rush\b",
            r"\bwhen can\b",
            r"\bhow (?:long|soon|fast)\b",
            r"\bdelivery time\b",
        ),
    },
}

_SENIOR_TITLE = re.compile(
    r"\b(owner|founder|co-?founder|ceo|cto|cfo|coo|cmo|chief|president|director|head|vp|"
    r"vice president|partner|principal|managing|general manager|gm)\b",
    re.IGNORECASE,
)
_POINTS: dict[Verdict, int] = {"met": 25, "partly": 12, "not met": 0, "unknown": 0}


def _scan(
    facts: LeadFacts, rules: dict[Verdict, re.Pattern[str]]
) -> tuple[Verdict, Said, re.Match[str]] | None:
    """The verdict the conversation supports: the latest decisive statement (met / not met),
    else the latest vague one (partly), with the message and the match to quote."""
    said = facts.customer_messages()
    in_turn: tuple[tuple[Verdict, ...], ...] = (("not met", "met"), ("partly",))
    for verdicts in in_turn:
        for message in reversed(said):
            for verdict in verdicts:
                match = rules[verdict].search(message.text)
                if match:
                    return verdict, message, match
    return None


def _justify(verdict: str, said: Said, match: re.Match[str], now: datetime) -> str:
    return f"{quote(said.text, match)} ({said.channel}, {when(said.sent_at, now)})"


def qualify(
    facts: LeadFacts, *, now: datetime, terminal_negative: Sequence[str] = ("Not Interested",)
) -> Qualification:
    """BANT from the conversation and the lead's fields; every verdict quotes what it rests on."""
    criteria: list[Criterion] = []
    for name, rules in BANT_RULES.items():
        found = _scan(facts, rules)
        verdict: Verdict = "unknown"
        justification = ""
        if found:
            verdict, said, match = found
            justification = _justify(verdict, said, match, now)
        verdict, justification = _from_fields(
            name, verdict, justification, facts, terminal_negative
        )
        if not justification:
            justification = "nothing in the conversation or the lead's fields says so yet"
        criteria.append(Criterion(name=name, justification=justification, verdict=verdict))
    score = sum(_POINTS[c.verdict] for c in criteria)
    return Qualification(
        criteria=criteria, score=min(100, score), next_action=_next_action(criteria, score)
    )


def _from_fields(
    name: BantName,
    verdict: Verdict,
    justification: str,
    facts: LeadFacts,
    terminal_negative: Sequence[str],
) -> tuple[Verdict, str]:
    """Fill what the messages did not settle from the lead's fields (title, tags, interests,
    status)."""
    if (
        name == "Authority"
        and verdict in ("unknown", "partly")
        and facts.title
        and _SENIOR_TITLE.search(facts.title)
    ):
        return "met", f'title on file: "{facts.title}"'
    if (
        name == "Authority"
        and verdict == "unknown"
        and any(t.lower() == "decision maker" for t in facts.tags)
    ):
        return "met", 'tagged "Decision Maker"'
    if name == "Need" and facts.status in terminal_negative:
        return "not met", f"status is {facts.status}" + (
            f"; {justification}" if justification else ""
        )
    if name == "Need" and verdict == "unknown" and facts.interests:
        return "partly", "interested in " + ", ".join(f'"{i}"' for i in facts.interests[:3])
    if name == "Budget" and verdict == "unknown":
        objections = [
            o for o in facts.objections if re.search(r"pric|cost|expens|budget", str(o), re.I)
        ]
        if objections:
            return "partly", f'objection on file: "{objections[0]}"'
        if any(t.lower() == "price sensitive" for t in facts.tags):
            return "partly", 'tagged "Price Sensitive"'
    return verdict, justification


def _next_action(criteria: Sequence[Criterion], score: int) -> str:
    verdicts = {c.name: c.verdict for c in criteria}
    open_points = [c.name.lower() for c in criteria if c.verdict in ("unknown", "partly")]
    if verdicts["Need"] == "not met" or (
        verdicts["Budget"] == "not met" and verdicts["Timeline"] == "not met"
    ):
        return (
            "Disqualify (or move to a long-term nurture list): the need or the means is not there."
        )
    if score >= 75:
        return "Schedule a call now: they are qualified."
    if score >= 40:
        asks = " and ".join(open_points[:2]) if open_points else "their next step"
        return f"Send a follow-up that settles the {asks}, then propose a call."
    if open_points:
        return f"Keep nurturing: ask about {', '.join(open_points)}."
    return "Keep nurturing with useful information before asking for a call."


# --- hot -------------------------------------------------------------------------------------


def trend(scores: Sequence[int]) -> tuple[str, int | None]:
    """('rising' | 'falling' | 'steady' | 'new', change over the last few updates)."""
    if len(scores) < 2:
        return "new", None
    window = list(scores[-4:])
    change = window[-1] - window[0]
    if change >= 5:
        return "rising", change
    if change <= -5:
        return "falling", change
    return "steady", change


def hot_check(
    facts: LeadFacts, *, now: datetime, hot_score: int, terminal: Sequence[str]
) -> HotCheck:
    """Yes when the score is at or above the hot line and the lead is still open, with the
    reasons."""
    reasons = [f"score {facts.score}/100 (hot from {hot_score})"]
    direction, change = trend(facts.scores)
    if change is not None:
        sign = "+" if change >= 0 else ""
        reasons.append(f"trend {direction} ({sign}{change} over the last updates)")
    signals = sorted(facts.score_factors, key=lambda f: -abs(_points(f)))[:3]
    for factor in signals:
        evidence = factor.get("evidence")
        shown = f" — {quote(str(evidence))}" if evidence else ""
        reasons.append(f"{factor.get('factor', 'signal')} ({_signed(_points(factor))}){shown}")
    last = facts.customer_messages()[-1] if facts.customer_messages() else None
    if last is not None:
        reasons.append(f"last customer message {when(last.sent_at, now)}: {quote(last.text)}")
    hot = facts.score >= hot_score and facts.status not in terminal and not facts.archived
    if facts.status in terminal:
        reasons.append(f"status is {facts.status}, which is final")
    elif facts.archived:
        reasons.append("the lead is archived")
    return HotCheck(reasons=reasons, hot=hot)


def _points(factor: dict[str, Any]) -> int:
    try:
        return int(factor.get("points", 0))
    except (TypeError, ValueError):
        return 0


def _signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


# --- intro email -----------------------------------------------------------------------------


def intro_email(
    facts: LeadFacts, *, subject: str, body: str, agent_name: str, business_name: str
) -> str:
    """The admin's intro email (already filled in) personalised with the lead's company, interests
    and objections, placed after the opening paragraph."""
    interests = [str(i) for i in facts.interests if str(i).strip()][:3]
    objections = [str(o) for o in facts.objections if str(o).strip()][:2]
    personal: list[str] = []
    if facts.company:
        personal.append(
            f"I'd like to understand what {facts.company} needs so I can suggest the right fit."
        )
    if interests:
        personal.append(
            f"You mentioned interest in {_join(interests)}, so I'll come prepared with the details"
            " that matter for that."
        )
    if objections:
        personal.append(
            f"I also know {_join(objections)} came up; I'm happy to walk you through how other"
            " customers handled it."
        )
    if not body.strip():
        body = (
            f"Hi {facts.first_name or 'there'},\n\nThanks for your interest in {business_name}."
            f" I'm {agent_name} and I'll be your point of contact."
            "\n\nWould you have 15 minutes this week for a quick call?"
            f"\n\nBest regards,\n{agent_name}\n{business_name}"
        )
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", body.strip())]
    if personal:
        at = 2 if len(paragraphs) >= 3 else max(1, len(paragraphs) - 1)
        paragraphs.insert(at, " ".join(personal))
    text = "\n\n".join(paragraphs)
    return (f"Subject: {subject.strip()}\n\n{text}" if subject.strip() else text).strip()


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- summary ---------------------------------------------------------------------------------


def summary_lines(facts: LeadFacts, *, now: datetime, next_step: str) -> list[str]:
    """The lead at a glance: who, status and score with factors, conversations, notes, next step."""
    lines = [f"Lead {facts.label}"]
    direction, change = trend(facts.scores)
    lines.append(
        f"Status {facts.status} · score {facts.score}/100"
        + (f" ({direction})" if change is not None else "")
        + (" · archived" if facts.archived else "")
    )
    contact = [x for x in (facts.phone, facts.email, facts.title) if x]
    if contact:
        lines.append("Contact: " + " · ".join(contact))
    lines.append(f"Assigned to {facts.assigned_to or 'nobody'} · bot {facts.ai_state}")
    if facts.message_counts:
        per_channel = ", ".join(f"{ch} ({n})" for ch, n in sorted(facts.message_counts.items()))
        lines.append(
            f"Conversations: {per_channel}; last contact {when(facts.last_contacted_at, now)}"
        )
    else:
        lines.append("Conversations: none yet")
    if facts.summary:
        lines.append(f"Summary: {facts.summary}")
    customer = facts.customer_messages()
    for said in customer[-3:]:
        lines.append(f"  {said.channel}, {when(said.sent_at, now)}: {quote(said.text)}")
    if facts.score_factors:
        lines.append("Why this score:")
        for factor in sorted(facts.score_factors, key=lambda f: -abs(_points(f)))[:5]:
            evidence = factor.get("evidence")
            lines.append(
                f"  {_signed(_points(factor))} {factor.get('factor', 'signal')}"
                + (f" — {quote(str(evidence))}" if evidence else "")
            )
    if facts.interests:
        lines.append("Interests: " + ", ".join(str(i) for i in facts.interests[:5]))
    if facts.objections:
        lines.append("Objections: " + ", ".join(str(o) for o in facts.objections[:5]))
    for category, text in facts.notes[-3:]:
        lines.append(f"Note ({category}): {quote(text)}")
    lines.append(f"Next step: {next_step}")
    return lines


# --- contact cards ---------------------------------------------------------------------------

_TITLE_WORDS = re.compile(
    r"\b(ceo|cto|cfo|coo|cmo|cio|chief|founder|co-?founder|owner|president|director|head|manager|vp|"
    r"vice president|engineer|developer|designer|consultant|officer|partner|principal|specialist|"
    r"coordinator|assistant|lead|executive|representative|rep|analyst|architect|advisor|adviser|"
    r"associate|administrator|agent|broker|accountant|attorney|lawyer|doctor|dr\.|professor|sales|"
    r"marketing|account)\b",
    re.IGNORECASE,
)
_COMPANY_WORDS = re.compile(
    r"\b(inc|inc\.|llc|ltd|ltd\.|limited|gmbh|ag|sa|s\.a\.|sarl|srl|bv|b\.v\.|plc|corp|corporation|"
    r"company|co\.|group|holdings|solutions|technologies|technology|labs|studio|agency|partners|"
    r"consulting|systems|services|ventures|industries|enterprises|llp|pty|oy|ab|as)\b",
    re.IGNORECASE,
)
_URL = re.compile(
    r"\b(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:/\S*)?", re.IGNORECASE
)
_FREE_MAIL = {
    "gmail",
    "googlemail",
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "icloud",
    "me",
    "aol",
    "proton",
    "protonmail",
    "gmx",
    "mail",
    "yandex",
    "zoho",
    "msn",
}
_LABEL = re.compile(
    r"^\s*(?:name|title|position|role|company|organi[sz]ation|email|e-mail|mail|phone|tel|"
    r"mobile|cell|mob|m|t|p|w|web|website|office|fax)\s*[:.]\s*",
    re.IGNORECASE,
)
_NAME = re.compile(
    r"^(?:(?:dr|mr|mrs|ms|prof)\.?\s+)?[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){1,3}$"
)


def parse_contact_card(text: str, *, region: str) -> ContactCard:
    """Pull name, title, company, email, phone and website out of a pasted card or signature."""
    emails = find_emails(text)
    phones = find_phones(text, region)
    lines = []
    for raw in re.split(r"[\n|•·]+", text or ""):
        line = raw.strip().strip("-–—*_>").strip()
        if line:
            lines.append(line)
    name = title = company = website = None
    labelled: dict[str, str] = {}
    for line in lines:
        match = re.match(
            r"^\s*(name|title|position|role|company|organi[sz]ation)\s*:\s*(.+)$", line, re.I
        )
        if match:
            labelled[match.group(1).lower()] = match.group(2).strip()
    name = labelled.get("name")
    title = labelled.get("title") or labelled.get("position") or labelled.get("role")
    company = (
        labelled.get("company") or labelled.get("organisation") or labelled.get("organization")
    )

    candidates = []
    for line in lines:
        bare = _LABEL.sub("", line).strip()
        if (
            not bare
            or find_emails(bare)
            or (find_phones(bare, region) and sum(c.isdigit() for c in bare) >= 7)
        ):
            continue
        if _URL.fullmatch(bare):
            website = website or bare
            continue
        if re.match(
            r"^(?:regards|best|thanks|thank you|cheers|sincerely|kind regards|best regards)\b",
            bare,
            re.I,
        ):
            continue
        candidates.append(bare)

    for line in candidates:
        # "Jane Doe, CEO" / "CEO at Acme" / "Head of Sales - Acme Ltd"
        parts = [p.strip() for p in re.split(r",|\s+[-–—]\s+|\s+at\s+|\s+@\s+", line) if p.strip()]
        for part in parts:
            if company is None and _COMPANY_WORDS.search(part) and not _TITLE_WORDS.fullmatch(part):
                company = part
            elif title is None and _TITLE_WORDS.search(part) and len(part.split()) <= 6:
                title = part
            elif (
                name is None
                and _NAME.match(part)
                and not _TITLE_WORDS.search(part)
                and not _COMPANY_WORDS.search(part)
                and len(part) <= 60
            ):
                name = part
    if company is None:
        # A line right after the title that is not the name is usually the company.
        leftovers = [
            c
            for c in candidates
            if c not in (name, title) and not (title and title in c) and not (name and name in c)
        ]
        if leftovers and len(leftovers[0].split()) <= 6:
            company = leftovers[0]
    if company is None and emails:
        domain = emails[0].rsplit("@", 1)[1].split(".")[0]
        if domain.lower() not in _FREE_MAIL:
            company = domain.replace("-", " ").title()
    if website is None:
        for line in lines:
            match = _URL.search(_LABEL.sub("", line))
            if match and "@" not in line:
                website = match.group(0)
                break
    return ContactCard(
        name=name,
        title=title,
        company=company,
        email=emails[0] if emails else None,
        phone=phones[0] if phones else None,
        other_phones=phones[1:],
        website=website,
    )
