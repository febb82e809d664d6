"""The copilot's tools: thin functions over the store's repository functions and the bot's takeover
path. The offline router and the model call exactly these, with the same permission checks.

Every tool runs in its own short transaction, acts for the agent named in the run's config
(`configurable.agent_id`, set by the front end, never by the model), and returns
`(text for the agent, artifact)`; the artifact feeds the follow-up context (focus lead, last list,
pending choice). Changes that touch many leads or end a lead ask first through a LangGraph
`interrupt`; nothing is held open while waiting, and the plan is re-checked when the answer comes.
"""

from typing import Any

from copilot.tools.assignment import assign_lead, reassign_leads
from copilot.tools.base import Confirm, Tool, ToolContext, agent_id_of
from copilot.tools.bulk import bulk_update
from copilot.tools.cards import fill_contact_card
from copilot.tools.drafts import draft_intro_email
from copilot.tools.editing import add_note, archive_lead, merge_leads, set_field
from copilot.tools.reading import (
    activity_digest,
    check_hot,
    find_leads,
    lead_summary,
    list_leads,
    my_notifications,
    next_action,
    qualify_lead,
)
from copilot.tools.runner import ToolRunner, build_tools
from copilot.tools.status import set_status
from copilot.tools.suggestions import suggest_requests
from copilot.tools.takeover import reply_to_customer, resume_bot, take_over
from copilot.tools.tasks import my_tasks, schedule_task

# What the model is offered, in this order.
TOOLS: list[Tool[Any]] = [
    find_leads,
    lead_summary,
    qualify_lead,
    check_hot,
    draft_intro_email,
    list_leads,
    my_notifications,
    next_action,
    activity_digest,
    my_tasks,
    set_field,
    bulk_update,
    add_note,
    schedule_task,
    set_status,
    assign_lead,
    reassign_leads,
    archive_lead,
    merge_leads,
    reply_to_customer,
    resume_bot,
    take_over,
    fill_contact_card,
]
# Offline only: what the router answers when it did not understand (the model answers in words).
OFFLINE_TOOLS: list[Tool[Any]] = [suggest_requests]

__all__ = [
    "OFFLINE_TOOLS",
    "TOOLS",
    "Confirm",
    "Tool",
    "ToolContext",
    "ToolRunner",
    "agent_id_of",
    "build_tools",
]
