"""Trying a channel send again with backoff while its failure is transient (the Graph API, SMTP)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class Transient:
    """An attempt that failed in a way worth trying again (a timeout, a refused connection, a
    server's "try later")."""

    error: str


def with_backoff(
    attempt: Callable[[], R | Transient],
    *,
    delays: Sequence[float],
    sleep: Callable[[float], None],
    what: str,
) -> tuple[R | Transient, int]:
    """Call `attempt` until it gives a result (success or a failure not worth retrying), sleeping
    `delays[i]` after the i-th transient failure; the outcome and the number of attempts made (the
    last `Transient` when the delays run out)."""
    attempts = len(delays) + 1
    for index in range(attempts):
        outcome = attempt()
        if not isinstance(outcome, Transient):
            return outcome, index + 1
        if index < len(delays):
            log.info(
                "%s attempt %d failed (%s); retrying in %.1fs",
                what,
                index + 1,
                outcome.error,
                delays[index],
            )
            sleep(delays[index])
    return outcome, attempts
