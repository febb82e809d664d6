"""Status rules in plain Python: which status fits, whether the bot may set it, what it triggers.

The bot never moves a lead back up the configured order, never leaves a terminal status, and only
picks statuses marked `ai_can_set`; humans can set anything (through the API and the copilot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import PromptConfig, Status


@dataclass(frozen=True)
class Decision:
    """The status the lead ends the turn with, and why."""

    status: str  # the status the lead ends with
    previous: str
    changed: bool
    source: str  # "model" | "rules" | "kept"
    reason: str


def offline_status(config: PromptConfig, signals: Iterable[str], score: int) -> str | None:
    """The furthest status (in the configured order) the bot may set whose `when` rules match."""
    present = set(signals)
    chosen: Status | None = None
    for status in config.statuses:
        if not status.ai_can_set or not status.rules:
            continue
        if any(rule.matches(present, score) for rule in status.rules) and (
            chosen is None or status.rank > chosen.rank
        ):
            chosen = status
    return chosen.name if chosen else None


def may_move(config: PromptConfig, current: str | None, proposed: str | None) -> tuple[bool, str]:
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
    current: str | None,
    proposed: str | None,
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
    """What the turn triggers: the status to apply with its action, and what happens to the bot.
    Made once by the graph's `plan` node, applied once by `save` through `store.domain.status`
    (which owns the action, the pause length and the lock)."""

    status: str | None  # the status whose action and AI behaviour apply; None: nothing
    action: str  # none | notify | auto_assign
    ai_behaviour: str  # continue | pause | stop
    transition: str | None  # "pause" | "stop" when this turn quiets the bot now
    # The pause or stop quiets this conversation only, with no status change: a customer on an
    # identity nobody vouches for said it, in one of the lead's several conversations.
    room_only: bool = False


NOTHING = Plan(None, "none", "continue", None)


def plan_for(config: PromptConfig, decision: Decision) -> Plan:
    """Actions run only when the status really changed; no `notify` for terminal statuses."""
    if not decision.changed:
        return NOTHING
    status = config.status(decision.status)
    assert status is not None
    action = status.action
    if action == "notify" and status.terminal:
        action = "none"
    transition = status.ai_behaviour if status.ai_behaviour in ("pause", "stop") else None
    return Plan(status.name, action, status.ai_behaviour, transition)


def quiet_room_plan(status: str, behaviour: str) -> Plan:
    """The pause or stop of `status` for this conversation only, with no status change and no
    action."""
    return Plan(status, "none", behaviour, behaviour, room_only=True)


def statuses_for_prompt(config: PromptConfig, current: str | None) -> str:
    """The statuses the bot may choose, described for the model."""
    lines = []
    for status in config.ai_settable:
        marker = " (current)" if current and status.name.lower() == current.lower() else ""
        lines.append(f"- {status.name}{marker}: {status.description}")
    return "\n".join(lines)
