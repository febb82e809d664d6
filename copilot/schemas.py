"""Structured shapes: the arguments of every copilot tool (what the model may call) and the
results of the offline analyses (BANT qualification, the hot check, contact cards)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

LEAD_REF = "The lead: its id (42 or #42), a phone number in any format, an email address or a name."

ListKind = Literal["all", "mine", "hot", "follow_ups", "unassigned", "stale", "recent"]
Verdict = Literal["met", "partly", "not met", "unknown"]
BantName = Literal["Budget", "Authority", "Need", "Timeline"]


Period = Literal[
    "today",
    "yesterday",
    "this week",
    "last week",
    "this month",
    "last month",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
]


class _Args(BaseModel):
    # Numbers a model sends for text (a lead id as 42) are read as text; bounds apply after.
    model_config = {"extra": "ignore", "str_strip_whitespace": True, "coerce_numbers_to_str": True}


class LeadArgs(_Args):
    lead: str = Field(description=LEAD_REF, min_length=1, max_length=200)


class MergeArgs(_Args):
    lead: str = Field(description="The lead merged away: " + LEAD_REF, min_length=1, max_length=200)
    into: str = Field(
        description="The lead that stays (keeps its owner): " + LEAD_REF,
        min_length=1,
        max_length=200,
    )


class FindLeadsArgs(_Args):
    query: str = Field(
        description="Id, phone (any format), email, name or company to look for.",
        min_length=1,
        max_length=200,
    )


class ListLeadsArgs(_Args):
    kind: ListKind = Field(
        "all",
        description=(
            "Which list: all (every lead you may see), mine (assigned to you), hot (score >= 75), "
            "follow_ups (due today), unassigned, stale (no contact for a week), "
            "recent (created in the last 7 days)."
        ),
    )
    status: str | None = Field(None, description="Only leads with this status.", max_length=60)
    channel: Literal["web", "messenger", "instagram", "whatsapp", "manual"] | None = Field(
        None, description="Only leads reachable on this channel."
    )
    score_min: int | None = Field(None, ge=0, le=100, description="Lowest score to include.")
    score_max: int | None = Field(None, ge=0, le=100, description="Highest score to include.")
    page: int = Field(1, ge=1, le=10000, description="Page number (10 leads per page).")
    agent: str | None = Field(
        None,
        max_length=200,
        description="Only this agent's leads: a name, email or id, or 'me'. Agents may "
        "list only their own; admins anyone's.",
    )
    period: Period | None = Field(None, description="With kind 'recent': created in this period.")
    detail: bool = Field(
        False, description="Give each lead's summary and next step, not just a line."
    )


class DigestArgs(_Args):
    period: Period = Field("today", description="What happened in this period.")


class FieldArgs(LeadArgs):
    field: str = Field(
        description="name, company, email, phone, or a custom field's name.",
        min_length=1,
        max_length=60,
    )
    value: str = Field(description="The new value; empty clears the field.", max_length=500)


class BulkArgs(_Args):
    action: Literal["assign", "status", "archive"] = Field(
        description="What to do to every matching lead."
    )
    kind: ListKind = Field("all", description="Which leads, as in list_leads.")
    status: str | None = Field(
        None, max_length=60, description="With action 'status': the new status. Otherwise unused."
    )
    agent: str | None = Field(
        None, max_length=200, description="With action 'assign': who gets the leads."
    )
    filter_status: str | None = Field(
        None, max_length=60, description="Only leads with this status now."
    )
    channel: Literal["web", "messenger", "instagram", "whatsapp", "manual"] | None = None
    score_min: int | None = Field(None, ge=0, le=100)
    score_max: int | None = Field(None, ge=0, le=100)
    period: Period | None = Field(None, description="With kind 'recent': created in this period.")


class SuggestArgs(_Args):
    text: str = Field(description="What the agent wrote.", min_length=1, max_length=400)


class NoteArgs(LeadArgs):
    text: str = Field(description="The note.", min_length=1, max_length=10000)
    category: str = Field(
        "General",
        description="One of: General, Qualification, Follow-up, Objection, Positive Signal.",
        max_length=30,
    )


class StatusArgs(LeadArgs):
    status: str = Field(
        description="The new status, one of the configured statuses.", min_length=1, max_length=60
    )
    reason: str | None = Field(
        None,
        max_length=1000,
        description=(
            "Why the lead was lost, in the agent's words (for a status that asks for a reason); "
            "matched to the configured lost reasons, the agent picks one when it is unclear."
        ),
    )


class AssignArgs(LeadArgs):
    agent: str = Field(
        description="The agent's name, email or id; 'me' for yourself; 'nobody' to unassign.",
        min_length=1,
        max_length=200,
    )


class ReassignArgs(_Args):
    from_agent: str = Field(
        description="Whose leads to move: a name, email or id, or 'me'.",
        min_length=1,
        max_length=200,
    )
    to_agent: str = Field(
        description="Who gets them: a name, email or id, or 'me'.", min_length=1, max_length=200
    )


class ReplyArgs(LeadArgs):
    text: str = Field(
        description="The message to send to the customer, as written.",
        min_length=1,
        max_length=4000,
    )


class DraftEmailArgs(LeadArgs):
    body: str | None = Field(
        None,
        max_length=6000,
        description=(
            "Your own draft of the email; leave empty to get the built-in personalised draft."
        ),
    )
    send: bool = Field(
        False,
        description=(
            "True when the agent asks to send the email (not only draft it); they still "
            "confirm with yes or no before it goes out."
        ),
    )


class CardArgs(_Args):
    text: str = Field(
        description="The pasted business card or email signature.", min_length=3, max_length=5000
    )


class NoArgs(_Args):
    pass


class TaskArgs(LeadArgs):
    kind: Literal["call", "email", "meeting", "other"] = Field(
        "call", description="call, email, meeting (a demo, a visit) or other."
    )
    when: str = Field(
        description="When it is due, as the agent said it ('tomorrow at 10', 'on Thursday 3pm', "
        "'in 2 hours') or ISO 8601; read in the business's time zone.",
        min_length=1,
        max_length=80,
    )
    notes: str = Field("", description="What it is about, if the agent said.", max_length=400)


class TasksArgs(_Args):
    window: Literal["today", "overdue", "week", "open"] = Field(
        "today",
        description="today (overdue ones too), overdue, week (this week) or open (all open).",
    )


class Criterion(BaseModel):
    """One BANT criterion: the justification comes before the verdict."""

    name: BantName
    justification: str = Field(
        description="One line, quoting the conversation or the lead's fields."
    )
    verdict: Verdict


class Qualification(BaseModel):
    criteria: list[Criterion]
    score: int = Field(ge=0, le=100)
    next_action: str


class HotCheck(BaseModel):
    reasons: list[str]
    hot: bool


class ContactCard(BaseModel):
    """What a business card or email signature says about a person."""

    name: str | None = None
    title: str | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    other_phones: list[str] = Field(default_factory=list)
    website: str | None = None

    @field_validator("name", "title", "company", "website")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())[:200]
        return value or None

    @property
    def empty(self) -> bool:
        return not (self.name or self.email or self.phone or self.company)
