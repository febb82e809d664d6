"""The business rules' view of the admin's configuration: `store.domain.policy.Policy` built from
the bot's `PromptConfig`, with the takeover window's settings fallback."""

from __future__ import annotations

from bot.config import PromptConfig
from store.domain.policy import Policy, StatusPolicy, takeover_window


def build_policy(config: PromptConfig, *, takeover_fallback: int) -> Policy:
    """The Policy for `config`; `takeover_fallback` is LEADDESK_TAKEOVER_MINUTES, used when
    business.yaml sets no takeover window of its own."""
    business = config.business
    return Policy(
        statuses=tuple(
            StatusPolicy(
                name=status.name,
                action=status.action,
                ai_behaviour=status.ai_behaviour,
                pause_minutes=status.pause_minutes,
                terminal=status.terminal,
                locks=status.locks,
                asks_reason=status.asks_reason,
            )
            for status in config.statuses
        ),
        default_pause_minutes=business.default_pause_minutes,
        takeover_minutes=takeover_window(business.takeover_minutes, takeover_fallback),
        hours=business.hours,
        assign_on_reply=business.assign_on_reply,
        lost_reasons=tuple(config.lost_reasons),
    )
