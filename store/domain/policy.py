"""What the business rules need from the admin's configuration, as one typed, frozen value.

The bot builds it from its configuration (`bot.policy.build_policy`); the rules in `store.domain`
read only this, so `store` needs nothing from `bot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from store.domain.errors import Invalid

Action = Literal["none", "notify", "auto_assign"]
AiBehaviour = Literal["continue", "pause", "stop"]

DEFAULT_PAUSE_MINUTES = 60
DEFAULT_TAKEOVER_MINUTES = 60


class OpeningHours(Protocol):
    """The business's weekly opening hours (the bot's `BusinessHours`)."""

    def is_open(self, now: datetime) -> bool: ...

    def next_opening(self, now: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class StatusPolicy:
    """One configured status, as the rules see it."""

    name: str
    action: str = "none"  # an `Action`
    ai_behaviour: str = "continue"  # an `AiBehaviour`
    pause_minutes: int | None = None
    terminal: bool = False
    locks: bool = False  # setting it makes the lead read-only until an admin reopens it
    asks_reason: bool = False  # a "lost" status: setting it needs a reason (`Policy.lost_reasons`)


@dataclass(frozen=True)
class Policy:
    """The statuses in their configured order and the timing rules."""

    statuses: tuple[StatusPolicy, ...] = ()
    default_pause_minutes: int = DEFAULT_PAUSE_MINUTES
    takeover_minutes: int = DEFAULT_TAKEOVER_MINUTES
    hours: OpeningHours | None = None  # None: always open (notifications are never held back)
    # An agent who replies to an unassigned lead becomes its owner.
    assign_on_reply: bool = True
    # Why a lead was lost: the reasons a status with `asks_reason` accepts.
    lost_reasons: tuple[str, ...] = ()

    def status(self, name: str | None) -> StatusPolicy | None:
        """The status called `name`, ignoring case and surrounding spaces."""
        wanted = (name or "").strip().lower()
        for status in self.statuses:
            if status.name.lower() == wanted:
                return status
        return None

    def require_status(self, name: str | None) -> StatusPolicy:
        """The status called `name`, or `Invalid` (code `unknown_status`) listing the choices."""
        status = self.status(name)
        if status is None:
            choices = ", ".join(s.name for s in self.statuses) or "(no statuses configured)"
            raise Invalid(
                f"unknown status {name!r}; use one of: {choices}",
                code="unknown_status",
                field="status",
            )
        return status

    @property
    def status_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses)

    @property
    def terminal_statuses(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses if s.terminal)

    @property
    def lost_statuses(self) -> tuple[str, ...]:
        """The statuses that ask why the lead was lost."""
        return tuple(s.name for s in self.statuses if s.asks_reason)

    def lost_reason(self, reason: str | None) -> str | None:
        """The configured reason `reason` names (ignoring case and spaces), else None."""
        wanted = " ".join((reason or "").split()).lower()
        for known in self.lost_reasons:
            if known.lower() == wanted:
                return known
        return None

    @property
    def locking_statuses(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses if s.locks)

    def pause_minutes(self, status: StatusPolicy) -> int:
        """How long a `pause` status keeps the bot quiet (its own minutes, else the default)."""
        return status.pause_minutes or self.default_pause_minutes

    def deliver_after(self, now: datetime) -> datetime | None:
        """When a notification raised at `now` is shown: None while open, else the next opening."""
        if self.hours is None or self.hours.is_open(now):
            return None
        return self.hours.next_opening(now)


def takeover_window(configured: int | None, fallback: int) -> int:
    """The takeover window in minutes: the business file's own, else the setting
    (LEADDESK_TAKEOVER_MINUTES)."""
    return configured or fallback or DEFAULT_TAKEOVER_MINUTES
