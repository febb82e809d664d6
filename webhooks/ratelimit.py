"""Request limits (the web chat's, the console sign-in's) counted with Flask-Limiter's engine
(`limits`: a moving window): in the process by default, in Redis when the broker is a Redis server,
so that every web process of a deployment counts together.

Only the views that name a limit count; nothing runs for other requests (the webhooks' hot path
pays nothing for limits it does not have).

Views ask `hit(limit, *keys)` (count one and say whether it is allowed) or `exceeded(limit, *keys)`
(look without counting), with limits written the Flask-Limiter way ("10 per 15 minutes") or as a
`Rate` (a burst and a steady rate).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    """`burst` requests at once, and `per_minute` a minute on average after that."""

    burst: int
    per_minute: float

    def item(self) -> RateLimitItem:
        """As a moving window: `burst` requests in the time the rate takes to earn them."""
        seconds = math.ceil(self.burst * 60 / self.per_minute) if self.per_minute > 0 else 86400
        return RateLimitItemPerSecond(self.burst, max(1, seconds))


def storage_uri(settings: Any) -> str:
    """Redis when the broker is Redis (shared by all web processes), else this process's memory."""
    broker = str(getattr(settings, "broker_url", None) or "")
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return "memory://"


def init_limiter(app: Flask, settings: Any) -> MovingWindowRateLimiter:
    """Give the app its limiter; its keys carry the deployment's broker queue name."""
    limiter = MovingWindowRateLimiter(storage_from_string(storage_uri(settings)))
    app.extensions["leaddesk_limits"] = (
        limiter,
        f"leaddesk:{getattr(settings, 'broker_queue', 'leaddesk')}",
    )
    return limiter


def limit(text: str) -> RateLimitItem:
    return parse(text)


def _limiter() -> tuple[MovingWindowRateLimiter, str]:
    return current_app.extensions["leaddesk_limits"]  # type: ignore[no-any-return]


def hit(item: RateLimitItem, *keys: str) -> float | None:
    """Count one request for `keys`: None when allowed, else the seconds until one is again."""
    limiter, prefix = _limiter()
    try:
        if limiter.hit(item, prefix, *keys):
            return None
        reset_at = limiter.get_window_stats(item, prefix, *keys).reset_time
    except Exception as exc:  # noqa: BLE001 - a storage outage must not take the service down
        log.warning("rate limit storage unavailable (%s); allowing the request", type(exc).__name__)
        return None
    return float(max(1, math.ceil(reset_at - time.time())))


def exceeded(item: RateLimitItem, *keys: str) -> bool:
    """Whether `keys` have used up `item` (without counting this look)."""
    limiter, prefix = _limiter()
    try:
        return not limiter.test(item, prefix, *keys)
    except Exception as exc:  # noqa: BLE001
        log.warning("rate limit storage unavailable (%s); allowing the request", type(exc).__name__)
        return False


@dataclass(frozen=True)
class ChatLimits:
    """Abuse limits of the public chat API; `leaddesk serve` sizes `max_waiters` to its threads."""

    message_chars: int = 2000
    name_chars: int = 200
    session_messages: Rate = Rate(burst=8, per_minute=20)
    ip_messages: Rate = Rate(burst=40, per_minute=120)
    ip_sessions: Rate = Rate(burst=20, per_minute=20)
    session_polls: Rate = Rate(burst=30, per_minute=120)
    max_wait: float = 25.0
    max_waiters: int = 32
    poll_interval: float = 2.0  # how often a long poll re-reads the store when no signal comes
