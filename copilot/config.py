"""What the copilot reads from the admin's prompt files (`bot.PromptConfig`): statuses, the
copilot's system prompt, the intro email template and the business name. (What the business rules
read, the takeover window included, is the domain's `Policy`: see `copilot.tools.base.policy`.)"""

from __future__ import annotations

from datetime import datetime

from bot.config import PromptConfig
from copilot.access import CopilotError


def status_names(prompts: PromptConfig) -> list[str]:
    return list(prompts.status_names)


def terminal_statuses(prompts: PromptConfig) -> list[str]:
    return list(prompts.terminal_statuses)


def negative_statuses(prompts: PromptConfig) -> list[str]:
    """Final statuses that end the conversation (the bot stops), e.g. Not Interested."""
    return [s.name for s in prompts.statuses if s.terminal and s.ai_behaviour == "stop"] or [
        "Not Interested"
    ]


def follow_up_statuses(prompts: PromptConfig) -> list[str]:
    return [name for name in prompts.status_names if "follow" in name.lower()]


def canonical_status(prompts: PromptConfig, text: str) -> str:
    """The configured status `text` names (any case, any spacing), or a CopilotError listing
    them."""
    wanted = " ".join((text or "").replace("-", " ").replace("_", " ").split()).lower()
    for name in prompts.status_names:
        if " ".join(name.replace("-", " ").replace("_", " ").split()).lower() == wanted:
            return name
    raise CopilotError(
        f"{text!r} is not a status here. Statuses: {', '.join(prompts.status_names)}."
    )


def system_prompt(prompts: PromptConfig, *, agent_name: str, now: datetime) -> str:
    return prompts.render_copilot_system(
        agent_name=agent_name, now=now.strftime("%A %d %B %Y %H:%M UTC")
    )


def business_name(prompts: PromptConfig) -> str:
    return prompts.business.name


def intro_template(
    prompts: PromptConfig, *, customer_name: str, agent_name: str
) -> tuple[str, str]:
    """(subject, body) of the admin's intro email template, filled in."""
    values = {"customer_name": customer_name, "agent_name": agent_name}
    return prompts.template("intro_email_subject", **values), prompts.template(
        "intro_email", **values
    )
