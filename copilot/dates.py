"""Periods agents name ("today", "yesterday", "last month", "monday") as time ranges, and due times
("tomorrow at 10", "on Thursday 3pm"), in the business's time zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo

PERIODS = (
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
)
_WEEKDAYS = PERIODS[6:]


def period_range(
    period: str, *, now: datetime, zone: tzinfo = UTC
) -> tuple[datetime, datetime, str]:
    """(start, end, label) of `period` as of `now`, in UTC: calendar days and months of `zone`;
    a weekday is its latest occurrence (today's when today is that day)."""
    name = " ".join((period or "today").lower().replace("_", " ").split())
    if name not in PERIODS:
        raise ValueError(f"unknown period {period!r}; say one of: {', '.join(PERIODS)}")
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "today":
        start, end, label = midnight, local, "today"
    elif name == "yesterday":
        start, end, label = midnight - timedelta(days=1), midnight, "yesterday"
    elif name == "this week":
        start, end, label = midnight - timedelta(days=local.weekday()), local, "this week"
    elif name == "last week":
        end = midnight - timedelta(days=local.weekday())
        start, label = end - timedelta(days=7), "last week"
    elif name == "this month":
        start, end, label = midnight.replace(day=1), local, "this month"
    elif name == "last month":
        end = midnight.replace(day=1)
        start, label = (end - timedelta(days=1)).replace(day=1), "last month"
    else:
        back = (local.weekday() - _WEEKDAYS.index(name)) % 7
        start = midnight - timedelta(days=back)
        end, label = min(start + timedelta(days=1), local), f"{name.capitalize()} {start:%d %b}"
    return _utc(start, zone), _utc(end, zone), label


def _utc(value: datetime, zone: tzinfo) -> datetime:
    # Midnights are rebuilt in the zone so a daylight-saving change in between keeps them at 00:00.
    rebuilt = datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, tzinfo=zone
    )
    return rebuilt.astimezone(UTC)


# ---- due times ("tomorrow at 10", "on Thursday 3pm", "in 2 hours") -----------------------------

_DAY = re.compile(
    r"\b(?:on\s+|next\s+|this\s+)?(?P<day>today|tonight|day after tomorrow|tomorrow|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|\d{4}-\d{2}-\d{2})\b"
)
_TIME = re.compile(
    r"^(?:at\s+)?(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?P<half>am|pm|a\.m\.|p\.m\.)?$"
)
_NAMED_TIME = re.compile(
    r"^(?:at\s+|in\s+the\s+)?(?P<named>noon|midday|morning|afternoon|evening)$"
)
_IN = re.compile(r"^in\s+(?P<amount>\d{1,3}|an?|one)\s+(?P<unit>minute|hour|day|week)s?$")
# Where a due time starts in a request ("call Dana | tomorrow at 10").
WHEN_START = re.compile(
    r"\b(?:today|tonight|tomorrow|day after tomorrow|(?:on\s+|next\s+|this\s+)?"
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|\d{4}-\d{2}-\d{2}|"
    r"in\s+(?:\d{1,3}|an?|one)\s+(?:minute|hour|day|week)s?|at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?|"
    r"at\s+noon|"
    r"\d{1,2}(?::\d{2})?\s*(?:am|pm))\b",
    re.IGNORECASE,
)
_NAMED_HOURS = {"noon": 12, "midday": 12, "morning": 9, "afternoon": 15, "evening": 18}
DEFAULT_HOUR = 9  # a day without a time: its morning


def parse_when(text: str, *, now: datetime, zone: tzinfo = UTC) -> datetime:
    """The moment `text` names, in UTC, read in `zone` as of `now`: "tomorrow at 10", "on Thursday
    3pm", "friday", "at 4pm" (today, or tomorrow once past), "in 2 hours", "2025-03-07 14:30" or
    an ISO 8601 time. A day without a time is at 09:00; a weekday is the next one to come (a week
    ahead when it is today). ValueError when it is none of these."""
    raw = " ".join((text or "").strip().lower().rstrip(".!?").split())
    if not raw:
        raise ValueError("say when, e.g. 'tomorrow at 10' or 'on Thursday 3pm'")
    try:
        iso = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:
        iso = None
    if iso is not None:
        if iso.tzinfo is None:
            iso = iso.replace(tzinfo=zone)
        return iso.astimezone(UTC)
    local = now.astimezone(zone)
    span = _IN.match(raw)
    if span:
        amount = span.group("amount")
        count = int(amount) if amount.isdigit() else 1
        unit = span.group("unit")
        delta = timedelta(**{f"{unit}s": count})
        return (now + delta).astimezone(UTC)
    found = _DAY.search(raw)
    day_text = found.group("day") if found else None
    rest = (raw[: found.start()] + " " + raw[found.end() :]) if found else raw
    rest = " ".join(rest.replace(",", " ").split())
    timed, named = _TIME.match(rest), _NAMED_TIME.match(rest)
    if rest and timed is None and named is None:
        raise ValueError(
            f"I can't tell when {text!r} is; say e.g. 'tomorrow at 10', 'on Thursday 3pm' or "
            "'in 2 hours'"
        )
    if named is not None:
        hour, minute = _NAMED_HOURS[named.group("named")], 0
    elif timed is not None:
        hour, minute = int(timed.group("hour")), int(timed.group("minute") or 0)
        half = (timed.group("half") or "").replace(".", "")
        if half and not 1 <= hour <= 12:
            raise ValueError(f"{hour}{half} is not a time")
        if half == "pm" and hour != 12:
            hour += 12
        elif half == "am" and hour == 12:
            hour = 0
        elif not half and 1 <= hour <= 7:
            hour += 12  # "at 3" in a working day is the afternoon
    else:
        hour, minute = (20 if day_text == "tonight" else DEFAULT_HOUR), 0
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"{text!r} is not a time of day")
    today = local.date()
    if day_text is None or day_text in ("today", "tonight"):
        day = today
        if day_text is None and (hour, minute) <= (local.hour, local.minute):
            day = today + timedelta(days=1)  # "at 9" said at 11 is tomorrow's
    elif day_text == "tomorrow":
        day = today + timedelta(days=1)
    elif day_text == "day after tomorrow":
        day = today + timedelta(days=2)
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", day_text):
        day = date.fromisoformat(day_text)
    else:
        name = day_text.split()[-1]
        ahead = (_WEEKDAYS.index(name) - local.weekday()) % 7
        if ahead == 0 and ((hour, minute) <= (local.hour, local.minute) or "next" in raw):
            ahead = 7  # today's has passed: next week's
        day = today + timedelta(days=ahead)
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return moment.astimezone(UTC)
