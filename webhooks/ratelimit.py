"""In-process rate limits (token buckets per key) for the public web chat API."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Rate:
    """`burst` requests at once, refilled at `per_minute` a minute."""

    burst: int
    per_minute: float


class RateLimiter:
    def __init__(
        self, rate: Rate, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ):
        self._rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def hit(self, key: str) -> Optional[float]:
        """Take one token for `key`: None when allowed, else the seconds until one is available."""
        rate = self._rate
        refill = rate.per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(rate.burst), now))
            tokens = min(float(rate.burst), tokens + (now - updated) * refill)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / refill if refill > 0 else 60.0
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max_keys:
                self._prune(now, refill)
            return None

    def _prune(self, now: float, refill: float) -> None:
        """Forget keys whose bucket has refilled completely (they behave like new keys)."""
        full = [
            key
            for key, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * refill >= self._rate.burst
        ]
        for key in full:
            del self._buckets[key]
