"""Request and response models of the REST API: they validate bodies and produce the OpenAPI
schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from store.models import AGENT_ROLES, CHANNELS, NOTE_CATEGORIES
from store.query import LIST_COUNT_CAP, SEARCH_COUNT_CAP, SortKey

Channel = Literal["web", "messenger", "instagram", "whatsapp", "manual"]
NoteCategory = Literal["General", "Qualification", "Follow-up", "Objection", "Positive Signal"]
Role = Literal["agent", "admin"]

assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]
assert set(NoteCategory.__args__) == set(NOTE_CATEGORIES)  # type: ignore[attr-defined]
assert set(Role.__args__) == set(AGENT_ROLES)  # type: ignore[attr-defined]

MAX_BULK = 5000
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    """Request bodies: unknown fields are refused so that a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _category(value: Any) -> Any:
    if isinstance(value, str):
        for category in NOTE_CATEGORIES:
            if category.lower() == value.strip().lower():
                return category
    return value


def _comma_list(value: Any) -> Any:
    """Query parameters given as "a,b" or repeated become one list of trimmed parts."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [part.strip() for v in value for part in v.split(",") if part.strip()]
    return value


def _archived(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        lowered = value.strip().lower()
        return {
            "0": "false",
            "no": "false",
            "1": "true",
            "yes": "true",
            "any": "all",
            "both": "all",
        }.get(lowered, lowered)
    return value


# ---- lead filters -------------------------------------------------------------------------


class LeadFilters(Strict):
    """Every filter of the shared lead query; unset filters do not filter."""

    status: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Statuses to include (repeat the parameter or separate with commas).",
    )
    score_min: int | None = Field(None, ge=0, le=100)
    score_max: int | None = Field(None, ge=0, le=100)
    hot: bool = Field(False, description="Only hot leads (score >= 75).")
    agent_id: int | None = Field(None, ge=1, le=MAX_ID, description="Assigned to this agent.")
    mine: bool = Field(False, description="Assigned to the calling agent.")
    unassigned: bool = Field(False, description="Not assigned to anyone.")
    channel: list[Channel] = Field(
        default_factory=list, max_length=5, description="Has an identity on one of these channels."
    )
    created_from: datetime | None = None
    created_to: datetime | None = None
    contacted_from: datetime | None = None
    contacted_to: datetime | None = None
    stale_days: int | None = Field(
        None,
        ge=0,
        le=3650,
        description="No contact for this many days and not in a terminal status.",
    )
    archived: Literal["false", "true", "all"] = Field(
        "false", description="Archived leads: hide, only, or both."
    )
    q: str | None = Field(
        None, max_length=200, description="Text search over name, email, phone and company."
    )

    _archived = field_validator("archived", mode="before")(_archived)

    _split_status = field_validator("status", mode="before")(_comma_list)

    @field_validator("channel", mode="before")
    @classmethod
    def _split_channel(cls, value: Any) -> Any:
        value = _comma_list(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v.lower() for v in value]
        return value


class LeadListParams(LeadFilters):
    sort: SortKey = Field("-created_at", description="Sort key; a leading '-' sorts descending.")
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(
        None, max_length=500, description="Opaque cursor from a previous page's `next_cursor`."
    )


class ExportParams(LeadFilters):
    sort: SortKey = "-created_at"
    ids: list[RowId] = Field(
        default_factory=list,
        max_length=MAX_BULK,
        description="Only these lead ids (comma separated or repeated).",
    )

    _split_ids = field_validator("ids", mode="before")(_comma_list)


# ---- request bodies -----------------------------------------------------------------------


class LeadCreate(Strict):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    company: str | None = Field(None, max_length=200)
    status: str | None = Field(None, max_length=60)
    lost_reason: str | None = Field(
        None,
        max_length=100,
        description="Why the lead was lost: one of GET /api/statuses' lost_reasons; required "
        "with a status that asks for a reason (asks_reason).",
    )
    lost_note: str | None = Field(
        None, max_length=1000, description="The agent's own words on why the lead was lost."
    )
    source: str | None = Field(None, max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    assign_to_me: bool = False


class LeadUpdate(Strict):
    """Fields to change; a field left out stays as it is, `null` clears it."""

    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    company: str | None = Field(None, max_length=200)
    status: str | None = Field(None, max_length=60)
    lost_reason: str | None = Field(
        None,
        max_length=100,
        description="Why the lead was lost: one of GET /api/statuses' lost_reasons; required "
        "with a status that asks for a reason (asks_reason).",
    )
    lost_note: str | None = Field(
        None, max_length=1000, description="The agent's own words on why the lead was lost."
    )
    source: str | None = Field(None, max_length=100)
    summary: str | None = Field(None, max_length=5000)
    next_best_action: str | None = Field(None, max_length=2000)
    tags: list[str] | None = Field(None, max_length=50)
    custom_fields: dict[str, Any] | None = Field(
        None,
        description="Custom field values by name (merged into the current ones; null removes one).",
    )


class NoteCreate(Strict):
    text: str = Field(min_length=1, max_length=10000)
    category: NoteCategory = "General"

    _category = field_validator("category", mode="before")(_category)


class AssignBody(Strict):
    agent_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="The agent to assign to; null unassigns."
    )
    round_robin: bool = Field(
        False, description="Pick the next available agent instead of agent_id."
    )


class BulkSelection(Strict):
    ids: list[RowId] = Field(default_factory=list, max_length=MAX_BULK)
    filter: LeadFilters | None = Field(None, description="Select the leads matching these filters.")


class BulkAssignBody(BulkSelection):
    agent_id: int | None = Field(None, ge=1, le=MAX_ID)
    round_robin: bool = False


class BulkStatusBody(BulkSelection):
    status: str = Field(min_length=1, max_length=60)
    lost_reason: str | None = Field(
        None,
        max_length=100,
        description="Why the lead was lost: one of GET /api/statuses' lost_reasons; required "
        "with a status that asks for a reason (asks_reason).",
    )
    lost_note: str | None = Field(
        None, max_length=1000, description="The agent's own words on why the lead was lost."
    )


class ConvertBody(Strict):
    note: str | None = Field(
        None, max_length=10000, description="Optional note recorded with the conversion."
    )


class ArchiveBody(Strict):
    archived: bool = True


class ReplyBody(Strict):
    text: str = Field(min_length=1, max_length=4096)
    conversation_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="The conversation to answer in; by default the most recent one on a verified "
        "identity (a conversation only claimed is chosen only when there is no verified one).",
    )


class EmailBody(Strict):
    subject: str = Field(min_length=1, max_length=200, description="One line.")
    body: str = Field(min_length=1, max_length=20_000, description="Plain text.")


class EmailOut(BaseModel):
    message: MessageOut = Field(description="The email in the lead's timeline (channel email).")
    to: str
    subject: str
    message_id_header: str = Field(description="The email's Message-ID header.")
    delivery_status: str = Field(
        description="sent; failed (with error: the server refused it, or transient failures "
        "outlasted the retries); unknown (the connection broke after the content went out: it "
        "may have been delivered and is not sent again by itself; POST .../resend to send it "
        "again); pending or sending while the outbox still works on it."
    )
    error: str | None


class MergeBody(Strict):
    other_lead_id: int = Field(
        ge=1, le=MAX_ID, description="The lead merged into this one (this lead survives)."
    )


class PauseBody(Strict):
    minutes: int | None = Field(
        None, ge=1, le=60 * 24 * 30, description="Pause for this long; without it, until resumed."
    )


class AgentCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    role: Role = "agent"
    capacity: int = Field(50, ge=0, le=100000)
    password: str | None = Field(None, min_length=8, max_length=200)


class AgentUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    role: Role | None = None
    capacity: int | None = Field(None, ge=0, le=100000)
    active: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=200)


class MemberAdd(Strict):
    email: str = Field(min_length=3, max_length=320, description="The person's email.")
    role: Role = "agent"


class NotificationsRead(Strict):
    ids: list[RowId] = Field(default_factory=list, max_length=1000)
    all: bool = Field(False, description="Mark every unread notification read.")


class NotificationParams(Strict):
    unread: bool = Field(True, description="Only unread notifications (false: the latest 200).")


# ---- responses ----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class AgentRef(BaseModel):
    id: int
    name: str


class LeadSummary(BaseModel):
    id: int
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    status: str
    score: int
    band: str
    hot: bool
    channels: list[str]
    assigned_agent: AgentRef | None
    archived: bool
    locked: bool
    ai_paused: bool
    created_at: datetime
    last_contacted_at: datetime | None
    converted_at: datetime | None


class LeadPage(BaseModel):
    leads: list[LeadSummary]
    total: int = Field(
        description=f"How many leads match, counted up to {LIST_COUNT_CAP:,} "
        f"({SEARCH_COUNT_CAP:,} with a text search `q`; see total_capped)."
    )
    total_capped: bool = Field(
        description=f"More than {LIST_COUNT_CAP:,} leads match: `total` is {LIST_COUNT_CAP:,}, "
        f'shown as "{LIST_COUNT_CAP:,}+" (with a text search, more than {SEARCH_COUNT_CAP:,}: '
        f'"{SEARCH_COUNT_CAP:,}+"). Counting stops there so that lists stay fast.'
    )
    next_cursor: str | None


class ScoreFactor(BaseModel):
    model_config = ConfigDict(extra="allow")

    factor: str | None = None
    points: float | None = None
    evidence: Any | None = None


class IdentityOut(BaseModel):
    channel: str
    external_id: str
    display_name: str | None
    trust: str = Field(description="`verified` when the channel vouches for it, else `claimed`.")
    created_at: datetime


class ContactOut(BaseModel):
    kind: str = Field(description="`phone` or `email`.")
    value: str
    trust: str = Field(description="`verified` when a channel vouches for it, else `claimed`.")
    source: str
    created_at: datetime


class SuggestionOut(BaseModel):
    id: int
    other_lead_id: int
    other_name: str | None
    kind: str
    source: str
    reason: str
    created_at: datetime


class MessageOut(BaseModel):
    id: int
    channel: str
    direction: str
    author: str
    agent_id: int | None
    agent_name: str | None
    text: str
    kind: str
    transcript: str | None = Field(
        None, description="What a voice note said, transcribed (LEADDESK_TRANSCRIBE=1)"
    )
    delivery_status: str | None
    error: str | None
    sent_at: datetime
    subject: str | None = Field(None, description="An email's subject (channel email).")


class ConversationOut(BaseModel):
    id: int
    channel: str
    trust: str = Field(description="The trust of the identity this conversation is with.")
    external_id: str | None
    ai_stopped: bool
    ai_paused_until: datetime | None
    summary: str | None
    last_inbound_at: datetime | None
    messages: list[MessageOut]


class NoteOut(BaseModel):
    id: int
    lead_id: int
    author: str
    agent_id: int | None
    category: str
    text: str
    created_at: datetime


class ScoreEventOut(BaseModel):
    id: int
    previous_score: int
    score: int
    engine: str
    factors: list[ScoreFactor]
    created_at: datetime


class AuditOut(BaseModel):
    id: int
    actor: str
    agent_id: int | None
    agent_name: str | None
    action: str
    field: str | None
    old_value: str | None
    new_value: str | None
    created_at: datetime


class LeadDetail(LeadSummary):
    source: str | None
    summary: str | None
    next_best_action: str | None
    conversion_probability: float | None
    tags: list[Any]
    interests: list[Any]
    objections: list[Any]
    score_factors: list[ScoreFactor]
    custom_fields: dict[str, Any]
    ai_paused_until: datetime | None
    ai_stopped: bool
    ai_pause_reason: str | None
    lost_reason: str | None = Field(description="Why the lead was lost (a lost status).")
    lost_note: str | None
    updated_at: datetime
    identities: list[IdentityOut]
    contacts: list[ContactOut]
    phone_trust: str | None
    email_trust: str | None
    merge_suggestions: list[SuggestionOut]
    conversations: list[ConversationOut]
    notes: list[NoteOut]
    score_history: list[ScoreEventOut]
    audit: list[AuditOut]


class NoteList(BaseModel):
    notes: list[NoteOut]


class BulkResult(BaseModel):
    matched: int
    changed: int
    unchanged: int
    skipped: list[dict[str, Any]] = Field(
        description="Leads left alone, with the reason: `{id, reason}`."
    )


class ReplyOut(BaseModel):
    message: MessageOut
    ai_paused_until: datetime | None


class StatusOut(BaseModel):
    name: str
    colour: str
    description: str
    terminal: bool
    ai_can_set: bool
    action: str
    ai_behaviour: str
    asks_reason: bool = Field(
        False, description="A lost status: setting it needs a lost_reason (and takes lost_note)."
    )


class StatusList(BaseModel):
    statuses: list[StatusOut]
    lost_reasons: list[str] = Field(
        default_factory=list, description="The reasons a status with asks_reason accepts."
    )


class CustomFieldOut(BaseModel):
    name: str
    label: str
    type: str
    description: str
    required: bool
    choices: list[str]


class CustomFieldList(BaseModel):
    custom_fields: list[CustomFieldOut]


class AgentOut(BaseModel):
    id: int
    name: str
    email: str | None
    role: str
    active: bool
    capacity: int
    open_leads: int
    telegram_linked: bool
    created_at: datetime


class AgentList(BaseModel):
    agents: list[AgentOut]


class AgentWithToken(AgentOut):
    token: str = Field(description="The agent's API token: shown only now, stored hashed.")


class MemberRemoved(BaseModel):
    id: int
    unassigned_leads: list[int] = Field(
        description="The leads of theirs in this workspace, now unassigned."
    )


class WorkspaceOut(BaseModel):
    id: int
    slug: str
    name: str
    role: str = Field(description="The calling agent's role in this workspace.")


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class NotificationOut(BaseModel):
    id: int
    lead_id: int | None
    lead_name: str | None
    kind: str
    text: str
    read: bool
    created_at: datetime


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
    unread: int


class MarkedRead(BaseModel):
    marked: int


class Rejection(BaseModel):
    line: int
    reason: str


class ImportReport(BaseModel):
    """The report `leaddesk leads import --json` prints."""

    model_config = ConfigDict(extra="allow")

    file: str
    rows: int
    created: int
    merged: int
    rejected: list[Rejection]
    rejected_count: int
    unknown_columns: list[str]
    ignored_columns: list[str]
    custom_columns: list[str]


class Counted(BaseModel):
    label: str
    count: int


class Dashboard(BaseModel):
    total: int
    by_status: list[Counted]
    lost_reasons: list[Counted] = Field(
        default_factory=list, description="Leads lost, by the reason given (statuses.yaml's list)."
    )
    by_channel: list[Counted]
    by_band: list[Counted]
    new_per_day: list[Counted]
    conversions_per_week: list[Counted]
    hot_needing_attention: list[LeadSummary]


# ---- tasks --------------------------------------------------------------------------------

TaskKind = Literal["call", "email", "meeting", "other"]
TaskWindow = Literal["today", "overdue", "week", "open", "done", "all"]
Outcome = Literal[
    "reached", "no_answer", "voicemail", "wrong_number", "held", "no_show", "rescheduled"
]


def _lower(value: Any) -> Any:
    return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


class TaskParams(Strict):
    window: TaskWindow = Field("open", description="today, overdue, week, open, done or all.")
    agent_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Whose tasks (admins; default your own)."
    )

    _window = field_validator("window", mode="before")(_lower)


class LeadTaskParams(Strict):
    window: TaskWindow = "all"

    _window = field_validator("window", mode="before")(_lower)


class TaskCreate(Strict):
    lead_id: RowId
    kind: TaskKind = "call"
    due_at: datetime | None = Field(None, description="ISO 8601 with its offset (or Z).")
    title: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    agent_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Whose task (admins; default yours)."
    )

    _kind = field_validator("kind", mode="before")(_lower)


class TaskUpdate(Strict):
    kind: TaskKind | None = None
    due_at: datetime | None = Field(None, description="A new due time; null clears it.")
    title: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    agent_id: int | None = Field(None, ge=1, le=MAX_ID)
    done: bool | None = Field(None, description="true completes the task, false reopens it.")

    _kind = field_validator("kind", mode="before")(_lower)


class TaskComplete(Strict):
    outcome: Outcome | None = None

    _outcome = field_validator("outcome", mode="before")(_lower)


class ActivityCreate(Strict):
    kind: Literal["call", "meeting", "email", "other"] = "call"
    outcome: Outcome
    notes: str | None = Field(None, max_length=4000)

    _kind = field_validator("kind", mode="before")(_lower)
    _outcome = field_validator("outcome", mode="before")(_lower)


class TaskOut(BaseModel):
    id: int
    lead_id: int
    lead_name: str | None
    agent_id: int
    kind: str
    title: str
    notes: str
    due_at: datetime | None
    done: bool
    done_at: datetime | None
    outcome: str | None
    overdue: bool
    source: str
    created_at: datetime


class TaskList(BaseModel):
    tasks: list[TaskOut]


class CalendarTokenOut(BaseModel):
    token: str = Field(description="Shown once; a new one replaces it.")
    url: str = Field(description="The feed to subscribe to in a calendar app.")


class CalendarParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field("", max_length=200, description="The agent's calendar token.")
