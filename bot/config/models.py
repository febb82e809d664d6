"""The business configuration: one pydantic model per file of the admin's `prompts/` directory.

Every model refuses keys it does not know (`extra="forbid"`), reads `key: null` as leaving the
key out, and is immutable. `load.py` reads the files into them; `errors.py` turns a refusal into
`file:line: message`, naming each mapping as its `what` says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from functools import cache, cached_property
from typing import Annotated, Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.config.fields import (
    LANGUAGE_CODE,
    SNAKE_CASE,
    flag,
    keywords,
    one_of,
    problem,
    problems,
    text,
    whole,
    with_placeholders,
)
from bot.text import KeywordSet

ACTIONS = ("none", "notify", "auto_assign")
AI_BEHAVIOURS = ("continue", "pause", "stop")
# Signals computed in code rather than by keywords; statuses may refer to them too.
COMPUTED_SIGNALS = ("question", "phone_given")
# Texts whose scoring answers a configuration keeps (`ScoringConfig.remembered`): a few per text
# of the windows of the conversations being answered.
FOUND_CACHE_SIZE = 4096
_UNKNOWN = object()
T = TypeVar("T")
FIELD_TYPES = ("text", "number", "date", "boolean", "choice")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_MINUTES = 60 * 24 * 30

TEMPLATE_PLACEHOLDERS = frozenset(
    {
        "business_name",
        "customer_name",
        "agent_name",
        "topic",
        "next_opening",
        "business_phone",
        "business_email",
        "website",
    }
)
# Templates the default language must have (phone_ask and out_of_hours may come from business.yaml).
CORE_TEMPLATES = (
    "greeting",
    "phone_ask",
    "handover",
    "resume_disclosure",
    "out_of_hours",
    "intro_email_subject",
    "intro_email",
)
OPTIONAL_TEMPLATES = (
    "answer_intro",
    "untranslated_note",
    "ack_pricing",
    "ack_demo",
    "ack_timeline",
    "ack_purchase",
    "ack_comparison",
    "no_answer",
    "fallback",
    "opt_out",
    "not_interested",
    "phone_thanks",
    "phone_declined",
    "refusal",
    "media_voice",
    "media_file",
    "media_location",
)
# Templates business.yaml supplies for the default language.
BUSINESS_TEMPLATES = ("phone_ask", "out_of_hours")

# People type in bursts: on these channels the bot waits this long after the last message.
QUIET_WINDOW_CHANNELS = ("web", "whatsapp", "messenger", "instagram")
DEFAULT_QUIET_SECONDS = 2.5
MAX_QUIET_SECONDS = 60.0


class ConfigModel(BaseModel):
    """A mapping in one of the admin's files: unknown keys refused, `key: null` read as leaving
    the key out (where `null_is_left_out`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    # How messages name the mapping; `{key}` is the key (or index) it sits under.
    what: ClassVar[str] = ""
    not_a_mapping: ClassVar[str] = "{what} must be a mapping of `key: value` lines"
    unknown_key: ClassVar[str] = "unknown key {key!r} in {what}; expected one of: {expected}"
    # Messages for a missing key other than "missing `key`" (given on the line of `{key}`).
    missing: ClassVar[dict[str, str]] = {}
    null_is_left_out: ClassVar[bool] = True

    @classmethod
    @cache
    def keys(cls) -> tuple[str, ...]:
        """The YAML keys, in order (both spellings where a key has two)."""
        keys: list[str] = []
        for name, info in cls.model_fields.items():
            if isinstance(info.validation_alias, AliasChoices):
                keys.extend(str(choice) for choice in info.validation_alias.choices)
            else:
                keys.append(info.alias or name)
        return tuple(keys)

    @model_validator(mode="before")
    @classmethod
    def _leave_out_nulls(cls, data: Any) -> Any:
        if not cls.null_is_left_out or not isinstance(data, dict):
            return data
        known = cls.keys()
        return {key: value for key, value in data.items() if value is not None or key not in known}


def _language_code(example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not LANGUAGE_CODE.fullmatch(value):
            raise problem(f"{value!r} is not a language code like {example}")
        return value

    return AfterValidator(check)


# --------------------------------------------------------------------------------------------
# business.yaml


class Contact(ConfigModel):
    what = "`contact`"

    phone: Annotated[str | None, text(required=False)] = None
    email: Annotated[str | None, text(required=False)] = None
    website: Annotated[str | None, text(required=False)] = None


_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def _opening(value: Any, info: ValidationInfo) -> tuple[int, int] | None:
    """`"HH:MM-HH:MM"` as (opening minute, closing minute); `closed` (or false) as None."""
    day = info.field_name
    if value is False or (isinstance(value, str) and value.strip().lower() == "closed"):
        return None
    match = _HOURS.fullmatch(str(value))
    if not match:
        raise problem(f'{day}: write opening hours as "HH:MM-HH:MM" or closed, got {value!r}')
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not 0 <= start < end <= 24 * 60 or m1 > 59 or m2 > 59:
        raise problem(f"{day}: {value!r} is not a valid range within one day")
    return start, end


Opening = Annotated[tuple[int, int] | None, PlainValidator(_opening)]


class BusinessHours(ConfigModel):
    """Weekly opening hours (`hours:`) in the time zone `timezone:` beside them; a day not
    listed is closed."""

    what = "`hours`"
    unknown_key = f"unknown day {{key!r}}; use {', '.join(DAYS)}"

    mon: Opening = None
    tue: Opening = None
    wed: Opening = None
    thu: Opening = None
    fri: Opening = None
    sat: Opening = None
    sun: Opening = None
    _timezone: str = PrivateAttr("UTC")

    @classmethod
    def always_open(cls) -> BusinessHours:
        """No hours configured: always open, so nothing is ever queued."""
        return cls(**dict.fromkeys(DAYS, (0, 24 * 60)))

    def in_zone(self, timezone: str) -> BusinessHours:
        hours = self.model_copy()
        hours._timezone = timezone
        return hours

    @property
    def timezone(self) -> str:
        return self._timezone

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self._timezone)

    @property
    def days(self) -> tuple[tuple[int, int] | None, ...]:
        """(opening minute, closing minute) or None per day, Monday first."""
        return tuple(getattr(self, day) for day in DAYS)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        span = self.days[local.weekday()]
        minute = local.hour * 60 + local.minute
        return span is not None and span[0] <= minute < span[1]

    def next_opening(self, now: datetime) -> datetime | None:
        """`now` when open, else the start of the next opening period (None if never open)."""
        if self.is_open(now):
            return now
        local = now.astimezone(self.zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            span = self.days[day.weekday()]
            if span is None:
                continue
            opening = datetime(
                day.year, day.month, day.day, span[0] // 60, span[0] % 60, tzinfo=self.zone
            )
            if opening > local:
                return opening
        return None

    def describe(self) -> str:
        parts = [
            f"{name.capitalize()} {hhmm(span[0])}-{hhmm(span[1])}"
            if span
            else f"{name.capitalize()} closed"
            for name, span in zip(DAYS, self.days, strict=True)
        ]
        return f"{', '.join(parts)} ({self._timezone})"


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class PhoneAsk(ConfigModel):
    what = "`phone_ask`"

    wording: Annotated[
        str | None,
        text(500, required=False),
        AfterValidator(with_placeholders(TEMPLATE_PLACEHOLDERS, below_key=False)),
    ] = None
    max_per_conversation: Annotated[int, whole(0, 10)] = 2
    min_score: Annotated[int, whole(0, 100)] = 21


PRECHAT_FIELDS = ("name", "email", "phone")


def _prechat_fields(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise problem("`web_chat.ask` must be a list like [name, email, phone]")
    unknown = [item for item in value if item not in PRECHAT_FIELDS]
    if unknown:
        raise problem(f"`web_chat.ask` can hold {', '.join(PRECHAT_FIELDS)}; not {unknown[0]!r}")
    return tuple(dict.fromkeys(value))


class WebChat(ConfigModel):
    """`web_chat`: the widget's pre-chat form (who the visitor is, before the first message)."""

    what = "`web_chat`"

    prechat: bool = False
    ask: Annotated[tuple[str, ...], PlainValidator(_prechat_fields)] = ("name", "email")
    # Whether the visitor must fill the form in (else they may skip it).
    required: bool = False


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem(f"{what} must be a number of seconds like 2.5 (0 turns it off)")
    if not 0 <= value <= MAX_QUIET_SECONDS:
        raise problem(f"{what} must be between 0 and {MAX_QUIET_SECONDS:g} seconds")
    return float(value)


Seconds = Annotated[
    float, PlainValidator(lambda value, info: _seconds(value, f"`quiet_window.{info.field_name}`"))
]


class QuietWindows(ConfigModel):
    """Seconds of silence the bot waits for before answering a burst, per channel (0: at once);
    one number sets every channel."""

    what = "`quiet_window`"

    web: Seconds = DEFAULT_QUIET_SECONDS
    whatsapp: Seconds = DEFAULT_QUIET_SECONDS
    messenger: Seconds = DEFAULT_QUIET_SECONDS
    instagram: Seconds = DEFAULT_QUIET_SECONDS

    @model_validator(mode="before")
    @classmethod
    def _one_number_for_every_channel(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        seconds = _seconds(data, "`quiet_window`")
        return dict.fromkeys(QUIET_WINDOW_CHANNELS, seconds)


DEFAULT_TONE = "friendly and concise"


class BusinessConfig(ConfigModel):
    """business.yaml: who the business is, its languages, hours, hand-over timings and wording."""

    what = "business.yaml"

    name: Annotated[str, text(200)]
    tone: Annotated[str, text(required=False, default=DEFAULT_TONE)] = DEFAULT_TONE
    default_language: Annotated[str, text(required=False, default="en"), _language_code("en")] = (
        "en"
    )
    # The default language first, then the others listed.
    languages: tuple[str, ...] = Field((), validate_default=True)
    contact: Contact = Contact()
    timezone: Annotated[str, text(required=False, default="UTC")] = "UTC"
    hours: BusinessHours = Field(default_factory=BusinessHours.always_open, validate_default=True)
    takeover_minutes: Annotated[int | None, whole(1, MAX_MINUTES)] = None
    default_pause_minutes: Annotated[int, whole(1, MAX_MINUTES)] = 60
    phone_ask: PhoneAsk = PhoneAsk()
    out_of_hours_message: Annotated[
        str | None,
        text(500, required=False),
        AfterValidator(with_placeholders(TEMPLATE_PLACEHOLDERS, below_key=False)),
    ] = None
    quiet: QuietWindows = Field(QuietWindows(), alias="quiet_window")
    web_chat: WebChat = WebChat()
    # An agent who replies to an unassigned lead becomes its owner (false: leads stay unassigned
    # until someone assigns them).
    assign_on_reply: bool = True

    @field_validator("languages", mode="plain")
    @classmethod
    def _default_first(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        languages = [info.data.get("default_language", "en")]
        if not value:
            return tuple(languages)
        if not isinstance(value, list):
            raise problem("`languages` must be a list like [en, es]")
        wrong = [
            ((index,), problem(f"{item!r} is not a language code like en, es"))
            for index, item in enumerate(value)
            if not isinstance(item, str) or not LANGUAGE_CODE.fullmatch(item)
        ]
        if wrong:
            raise problems(wrong)
        return tuple(dict.fromkeys([*languages, *value]))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(f"unknown time zone {value!r} (use a name like Europe/Madrid)") from None
        return value

    @field_validator("hours")
    @classmethod
    def _in_the_time_zone(cls, hours: BusinessHours, info: ValidationInfo) -> BusinessHours:
        return hours.in_zone(info.data.get("timezone", "UTC"))

    @property
    def phone(self) -> str | None:
        return self.contact.phone

    @property
    def email(self) -> str | None:
        return self.contact.email

    @property
    def website(self) -> str | None:
        return self.contact.website

    @property
    def phone_ask_max(self) -> int:
        return self.phone_ask.max_per_conversation

    @property
    def phone_ask_min_score(self) -> int:
        return self.phone_ask.min_score

    @property
    def phone_ask_wording(self) -> str | None:
        return self.phone_ask.wording

    @property
    def quiet_windows(self) -> tuple[tuple[str, float], ...]:
        return tuple((channel, getattr(self.quiet, channel)) for channel in QUIET_WINDOW_CHANNELS)

    def quiet_window(self, channel: str) -> float:
        """Seconds the customer must have been quiet on `channel` before the bot answers."""
        return dict(self.quiet_windows).get(channel, 0.0)


# --------------------------------------------------------------------------------------------
# scoring.yaml

Keywords = Annotated[KeywordSet, keywords()]


class Weights(ConfigModel):
    """The points each computed factor may add; read like a dict (`weights["trend"]`)."""

    what = "`weights`"

    engagement: Annotated[int, whole(0, 100)] = 0
    question_depth: Annotated[int, whole(0, 100)] = 0
    trend: Annotated[int, whole(0, 100)] = 0
    model_judgement: Annotated[int, whole(0, 100)] = 0

    def __getitem__(self, name: str) -> int:
        return int(getattr(self, name))

    def get(self, name: str, default: int = 0) -> int:
        return int(getattr(self, name, default))


class Signal(ConfigModel):
    what = "signal {key!r}"
    not_a_mapping = "signal {key!r} needs `points` and `keywords`"
    missing = {"keywords": "signal {key!r} needs `keywords`"}

    points: Annotated[int, whole(-100, 100)]
    keywords: Keywords = Field(title="{what} keywords")


def _signal_name(name: Any) -> str:
    if not isinstance(name, str) or not SNAKE_CASE.fullmatch(name):
        raise problem(f"signal name {name!r} must be lower_case_with_underscores")
    if name in COMPUTED_SIGNALS:
        raise problem(f"{name!r} is computed by Leaddesk; choose another signal name")
    return name


def _label(label: Any, info: ValidationInfo) -> str:
    if not isinstance(label, str) or not label.strip() or len(label) > 60:
        raise problem(f"{info.field_name}: {label!r} must be a short label")
    return label.strip()


Label = Annotated[str, PlainValidator(_label)]


class ScoringConfig(ConfigModel):
    """scoring.yaml: how intent is scored 0-100, and the keywords of each signal and label."""

    what = "scoring.yaml"

    base: Annotated[int, whole(0, 100)] = 10
    intent_cap: Annotated[int, whole(0, 100)] = 60
    weights: Weights = Weights()
    signals: dict[Annotated[str, PlainValidator(_signal_name)], Signal]
    phone_decline: Keywords = Field(KeywordSet({}), title="`phone_decline`")
    interests: dict[Label, Keywords] = Field({}, title="interests {key!r}")
    objections: dict[Label, Keywords] = Field({}, title="objections {key!r}")
    tags: dict[Label, Keywords] = Field({}, title="tags {key!r}")

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(self.signals) + COMPUTED_SIGNALS

    def remembered(self, kind: str, text: str, terms: frozenset[str], find: Callable[[], T]) -> T:
        """`find()`'s answer about `text` (of `kind`, with the knowledge base's `terms`), worked
        out once for the last texts. The answer is shared: callers must not change it."""
        memo, key = self._found, (kind, text, terms)
        found: Any = memo.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = find()
            if len(memo) >= FOUND_CACHE_SIZE:
                memo.clear()  # plain dict operations: safe across the server's threads
            memo[key] = found
        return found  # type: ignore[no-any-return]

    @cached_property
    def _found(self) -> dict[tuple[str, str, frozenset[str]], Any]:
        """What the scorer (`bot.scoring`) found in a text under this configuration, kept for the
        last texts: every turn scores the whole window again, and most of it is the turn
        before's. Not a field: it is neither validated nor compared."""
        return {}


# --------------------------------------------------------------------------------------------
# statuses.yaml


def _known_signals(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    """The signals of a `when` alternative; each must be one scoring.yaml (or the code) knows
    (the validation context's `signals`)."""
    if not isinstance(value, list):
        raise problem("`signals` must be a list like [pricing, demo]")
    known = (info.context or {}).get("signals")
    if known is not None:
        unknown = [signal for signal in value if signal not in known]
        if unknown:
            listed = ", ".join(sorted(known))
            raise problems(
                ((), problem(f"unknown signal {signal!r}; known: {listed}")) for signal in unknown
            )
    return tuple(str(signal) for signal in value)


class StatusRule(ConfigModel):
    """One way the offline engine recognises a status: any of `signals`, and/or a minimum score."""

    what = "`when`"
    not_a_mapping = "each `when` alternative must be a mapping with `signals` and/or `min_score`"

    signals: Annotated[tuple[str, ...], PlainValidator(_known_signals)] = ()
    min_score: Annotated[int | None, whole(0, 100)] = None

    @model_validator(mode="after")
    def _says_when(self) -> StatusRule:
        if not self.signals and self.min_score is None:
            raise problem("a `when` alternative needs `signals` or `min_score`")
        return self

    def matches(self, signals: set[str], score: int) -> bool:
        if self.signals and not signals.intersection(self.signals):
            return False
        if self.min_score is not None and score < self.min_score:
            return False
        return bool(self.signals) or self.min_score is not None


def _colour(value: Any) -> str:
    colour = str(value).strip()
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise problem(f'colour must look like "#1e88e5", got {colour!r}')
    return colour


class Status(ConfigModel):
    """A lead status. `rank` is its place in statuses.yaml (the bot never moves a lead back up)."""

    what = "a status"
    not_a_mapping = "each status must be a mapping with at least `name` and `description`"

    name: Annotated[str, text(60)]
    colour: Annotated[str, PlainValidator(_colour)] = Field(
        "#9e9e9e", validation_alias=AliasChoices("colour", "color")
    )
    description: Annotated[str, text(500)]
    action: Annotated[str, one_of(ACTIONS)] = "none"
    ai_behaviour: Annotated[str, one_of(AI_BEHAVIOURS)] = Field(
        "continue", validation_alias=AliasChoices("ai_behaviour", "ai_behavior")
    )
    # Minutes the bot stays quiet (ai_behaviour: pause); defaults to business.yaml's.
    pause_minutes: Annotated[int | None, whole(1, MAX_MINUTES)] = None
    terminal: Annotated[bool, flag()] = False
    ai_can_set: Annotated[bool, flag()] = True
    # Setting this status makes the lead read-only until an admin reopens it.
    locks: Annotated[bool, flag()] = False
    # A "lost" status: moving a lead here asks why (one of `lost_reasons`, plus free text).
    asks_reason: Annotated[bool, flag()] = False
    rules: tuple[StatusRule, ...] = Field((), alias="when")
    _rank: int = PrivateAttr(0)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """`colour` wins over `color`; a pause without minutes lasts the business default (the
        validation context's `default_pause`)."""
        if not isinstance(data, dict):
            return data
        if "colour" in data:
            data = {key: value for key, value in data.items() if key != "color"}
        behaviour = data.get("ai_behaviour", data.get("ai_behavior"))
        if behaviour == "pause" and data.get("pause_minutes") is None:
            data = data | {"pause_minutes": (info.context or {}).get("default_pause", 60)}
        return data

    @field_validator("rules", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        return value if isinstance(value, list) else [value]

    @model_validator(mode="after")
    def _pause_only_when_pausing(self) -> Status:
        if self.pause_minutes is not None and self.ai_behaviour != "pause":
            message = "`pause_minutes` only applies to ai_behaviour: pause"
            raise problems([(("pause_minutes",), problem(message))])
        if self.asks_reason and not self.terminal:
            message = "`asks_reason` is for a terminal (lost) status: set terminal: true"
            raise problems([(("asks_reason",), problem(message))])
        if self.asks_reason and self.ai_can_set:
            message = (
                "a status that asks for a reason is set by people only (the bot cannot give "
                "one): set ai_can_set: false"
            )
            raise problems([(("asks_reason",), problem(message))])
        return self

    @property
    def rank(self) -> int:
        return self._rank


def _reason(value: Any) -> str:
    reason = " ".join(str(value).split()) if isinstance(value, str | int | float) else ""
    if isinstance(value, bool) or not reason or len(reason) > 100:
        raise problem("a lost reason must be text of 1 to 100 characters")
    return reason


class StatusesFile(ConfigModel):
    """statuses.yaml: the lead statuses, in the order a lead moves through them."""

    what = "statuses.yaml"

    statuses: tuple[Status, ...] = Field((), validate_default=True)
    # Why a lead was lost: the choices a status with `asks_reason` offers (plus free text).
    lost_reasons: tuple[Annotated[str, PlainValidator(_reason)], ...] = ()

    @field_validator("lost_reasons", mode="before")
    @classmethod
    def _reasons_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise problem("`lost_reasons` must be a list like [Price, Went with a competitor]")
        return value

    @field_validator("lost_reasons")
    @classmethod
    def _distinct_reasons(cls, reasons: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        found: list[tuple[tuple[int | str, ...], PydanticCustomError]] = []
        for index, reason in enumerate(reasons):
            if reason.lower() in seen:
                found.append(((index,), problem(f"lost reason {reason!r} is listed twice")))
            seen.add(reason.lower())
        if found:
            raise problems(found)
        return reasons

    @model_validator(mode="after")
    def _reasons_to_ask(self) -> StatusesFile:
        asking = [s.name for s in self.statuses if s.asks_reason]
        if asking and not self.lost_reasons:
            message = (
                f"status {asking[0]!r} asks for a reason, so `lost_reasons` must list at least one"
            )
            raise problems([(("lost_reasons",), problem(message))])
        return self

    @field_validator("statuses", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise problem("`statuses` must be a non-empty list of statuses")
        return value

    @field_validator("statuses")
    @classmethod
    def _ranked(cls, statuses: tuple[Status, ...]) -> tuple[Status, ...]:
        found: list[tuple[tuple[int | str, ...], PydanticCustomError]] = []
        seen: set[str] = set()
        for rank, status in enumerate(statuses):
            if status.name.lower() in seen:
                found.append(((rank, "name"), problem(f"status {status.name!r} is defined twice")))
            seen.add(status.name.lower())
            status._rank = rank
        if statuses[0].terminal:
            message = "the first status is where new leads start; it cannot be terminal"
            found.append(((0,), problem(message)))
        if found:
            raise problems(found)
        return statuses


# --------------------------------------------------------------------------------------------
# custom_fields.yaml


def _choices(value: Any) -> tuple[str, ...]:
    return tuple(str(choice).strip() for choice in value) if isinstance(value, list) else ()


class CustomField(ConfigModel):
    """An extra field agents fill on a lead."""

    what = "a custom field"
    not_a_mapping = "each field must be a mapping with `name`, `label` and `type`"

    name: Annotated[str, text(60)]
    label: Annotated[str, text(200)]
    type: Annotated[str, one_of(FIELD_TYPES)] = "text"
    choices: Annotated[tuple[str, ...], PlainValidator(_choices)] = ()

    @model_validator(mode="before")
    @classmethod
    def _label_from_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("label") and isinstance(data.get("name"), str):
            return data | {"label": data["name"].strip().replace("_", " ").capitalize()}
        return data

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        if not SNAKE_CASE.fullmatch(name):
            raise problem(f"field name {name!r} must be lower_case_with_underscores")
        return name

    @model_validator(mode="after")
    def _choices_for_a_choice(self) -> CustomField:
        if self.type == "choice" and not self.choices:
            message = "a choice field needs `choices: [one, two, ...]`"
            raise problems([(("type",), problem(message))])
        if self.type != "choice" and "choices" in self.model_fields_set:
            raise problems([(("choices",), problem("`choices` only applies to type: choice"))])
        return self

    def coerce(self, value: Any) -> Any:
        """Check and convert a value for this field (None clears it); ValueError if it is wrong."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if self.type == "text":
            return str(value).strip()[:1000]
        if self.type == "number":
            if isinstance(value, bool):
                raise ValueError(f"{self.label} must be a number")
            try:
                number = float(str(value).replace(",", "").strip())
            except ValueError:
                raise ValueError(f"{self.label} must be a number") from None
            return int(number) if number.is_integer() else number
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            answer = str(value).strip().lower()
            if answer in ("yes", "true", "1", "y", "si", "sí"):
                return True
            if answer in ("no", "false", "0", "n"):
                return False
            raise ValueError(f"{self.label} must be yes or no")
        if self.type == "date":
            try:
                return date.fromisoformat(str(value).strip()).isoformat()
            except ValueError:
                raise ValueError(f"{self.label} must be a date like 2025-03-31") from None
        answer = str(value).strip()
        for choice in self.choices:
            if choice.lower() == answer.lower():
                return choice
        raise ValueError(f"{self.label} must be one of: {', '.join(self.choices)}")


class CustomFieldsFile(ConfigModel):
    """custom_fields.yaml: the extra fields of a lead."""

    what = "custom_fields.yaml"

    fields: tuple[CustomField, ...] = ()

    @field_validator("fields", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise problem("`fields` must be a list")
        return value

    @field_validator("fields")
    @classmethod
    def _once_each(cls, fields: tuple[CustomField, ...]) -> tuple[CustomField, ...]:
        seen: set[str] = set()
        twice = []
        for index, item in enumerate(fields):
            if item.name in seen:
                twice.append(((index, "name"), problem(f"field {item.name!r} is defined twice")))
            seen.add(item.name)
        if twice:
            raise problems(twice)
        return fields


# --------------------------------------------------------------------------------------------
# templates/<language>.yaml


def _template(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem(f"template {info.field_name!r} must be non-empty text")
    # Block scalars (|) keep their lines; a one-line text is trimmed.
    return value.rstrip("\n") if "\n" in value.rstrip("\n") else value.strip()


Template = Annotated[
    str | None,
    PlainValidator(_template),
    AfterValidator(with_placeholders(TEMPLATE_PLACEHOLDERS, below_key=True)),
]


class _TemplatesBase(ConfigModel):
    what = "{file}"
    unknown_key = "unknown template {key!r}; expected one of: {expected}"
    null_is_left_out = False

    def texts(self) -> dict[str, str]:
        return {key: value for key, value in self if value is not None}


TemplatesFile = create_model(  # one optional text per template key
    "TemplatesFile",
    __base__=_TemplatesBase,
    __doc__="templates/<language>.yaml: the bot's fixed messages in one language.",
    **dict.fromkeys(CORE_TEMPLATES + OPTIONAL_TEMPLATES, (Template, None)),  # type: ignore[call-overload]
)
