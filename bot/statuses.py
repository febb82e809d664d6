"""Status rules in plain Python: which status fits, whether the bot may set it, what it triggers.

The bot never moves a lead back up the configured order, never leaves a terminal status, and only
picks statuses marked `ai_can_set`; humans can set anything (through the API and the copilot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Optional

from bot.config import PromptConfig, Status


@dataclass(frozen=True)
class Decision:
    status: str  # the status the lead ends with
    previous: str
    changed: bool
    source: str  # "model" | "rules" | "kept"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def offline_status(config: PromptConfig, signals: Iterable[str], score: int) -> Optional[str]:
    """The furthest status (in the configured order) the bot may set whose `when` rules match."""
    present = set(signals)
    chosen: Optional[Status] = None
    for status in config.statuses:
        if not status.ai_can_set or not status.rules:
            continue
        if any(rule.matches(present, score) for rule in status.rules):
            if chosen is None or status.rank > chosen.rank:
                chosen = status
    return chosen.name if chosen else None


def may_move(
    config: PromptConfig, current: Optional[str], proposed: Optional[str]
) -> tuple[bool, str]:
    """Whether the bot may move a lead from `current` to `proposed`, and why not."""
    target = config.status(proposed)
    if target is None:
        return False, f"{proposed!r} is not a configured status"
    if not target.ai_can_set:
        return False, f"only a human can set {target.name}"
    here = config.status(current)
    if here is None:
        # A status removed from the configuration: any configured status is a step forward.
        return (current != target.name), "unknown current status"
    if here.name == target.name:
        return False, "unchanged"
    if here.terminal:
        return False, f"{here.name} is terminal"
    if target.rank < here.rank:
        return False, f"the bot never moves a lead back from {here.name} to {target.name}"
    return True, "forward"


def decide(
    config: PromptConfig,
    current: Optional[str],
    proposed: Optional[str],
    *,
    source: str,
    locked: bool = False,
) -> Decision:
    """Apply the status rules to the proposed status."""
    previous = current or config.initial_status.name
    if locked:
        return Decision(previous, previous, False, "kept", "the lead is locked by a human")
    if proposed is None:
        return Decision(previous, previous, False, "kept", "no status fits better")
    allowed, reason = may_move(config, current, proposed)
    if not allowed:
        return Decision(previous, previous, False, "kept", reason)
    target = config.status(proposed)
    assert target is not None
    return Decision(target.name, previous, True, source, reason)


@dataclass(frozen=True)
class Plan:
    """What a status change triggers: its action and what happens to the bot."""

    action: str  # none | notify | auto_assign
    ai_behaviour: str  # continue | pause | stop
    pause_minutes: Optional[int]
    transition: Optional[str]  # "pause" | "stop" when this change quiets the bot now

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_for(config: PromptConfig, decision: Decision) -> Plan:
    """Actions run only when the status really changed; no `notify` for terminal statuses."""
    if not decision.changed:
        return Plan("none", "continue", None, None)
    status = config.status(decision.status)
    assert status is not None
    action = status.action
    if action == "notify" and status.terminal:
        action = "none"
    transition = status.ai_behaviour if status.ai_behaviour in ("pause", "stop") else None
    return Plan(action, status.ai_behaviour, status.pause_minutes, transition)


def statuses_for_prompt(config: PromptConfig, current: Optional[str]) -> str:
    """The statuses the bot may choose, described for the model."""
    lines = []
    for status in config.ai_settable:
        marker = " (current)" if current and status.name.lower() == current.lower() else ""
        lines.append(f"- {status.name}{marker}: {status.description}")
    return "\n".join(lines)
