"""Periods agents name ("today", "yesterday", "last month", "monday") as time ranges in the
business's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

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
