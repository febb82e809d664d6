"""Tools between the agent, the customer and the bot: reply to the customer as the agent, take a
conversation over (the bot stays quiet), hand it back to the bot."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.takeover import NoConversation, send_agent_reply
from copilot.access import CopilotError
from copilot.schemas import LeadArgs, ReplyArgs
from copilot.tools.base import (
    Afterwards,
    Result,
    ToolContext,
    find,
    label,
    policy,
    tidy,
    tool,
    writable,
)
from store.domain import takeover
from store.domain.waiting import claim_on_reply
from store.models import Agent, Lead


def _describe_reply(args: dict[str, Any], lead: Lead, _owner: Agent | None) -> str:
    return f"send {label(lead)} the message {str(args.get('text'))[:120]!r}"


@tool(
    ReplyArgs,
    "Send a message to the customer on their channel as the agent; the bot "
    "pauses for the takeover window.",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't send that reply",
    speaks_for_agent=True,
    describe=_describe_reply,
)
def reply_to_customer(
    ctx: ToolContext, agent: Agent, session: Session, args: ReplyArgs
) -> Afterwards:
    found = writable(find(ctx, args.lead, agent, session), "reply", agent)
    lead_id, name, agent_id, text = found.id, found.name or "the customer", agent.id, args.text

    def run() -> Result:
        minutes = policy(ctx).takeover_minutes
        try:
            reply = send_agent_reply(
                lead_id,
                text,
                session_factory=ctx.session_factory,
                outbox=ctx.outbox,
                agent_id=agent_id,
                now=ctx.clock(),
                minutes=minutes,
            )
        except NoConversation:
            raise CopilotError(
                f"{name} (#{lead_id}) has never written on any channel, so there is "
                "nowhere to send a reply."
            ) from None
        with ctx.session_factory.begin() as session:
            claimed = claim_on_reply(lead_id, agent_id, session=session, policy=policy(ctx))
        mine = " It is now assigned to you." if claimed else ""
        return (
            f"Sent to {name} (#{lead_id}) on {reply.channel} as you. The bot stays quiet for "
            f"{minutes} minutes.{mine}"
        ), {"focus_lead_id": lead_id}

    return Afterwards(run)


@tool(
    LeadArgs,
    "Let the bot answer a lead again (lifts a pause or stop).",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't hand that conversation back to the bot",
)
def resume_bot(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found = writable(find(ctx, args.lead, agent, session), "resume", agent)
    takeover.resume_by_agent(found, agent, session=session)
    return tidy(f"The bot is answering #{found.id} {found.name or ''} again."), {
        "focus_lead_id": found.id
    }


@tool(
    LeadArgs,
    "Take over a lead: the bot stays quiet for the takeover window.",
    confirm="unasked",
    changes_lead=True,
    clarify_lead=True,
    could_not="I couldn't take over that conversation",
)
def take_over(ctx: ToolContext, agent: Agent, session: Session, args: LeadArgs) -> Result:
    found = writable(find(ctx, args.lead, agent, session), "pause", agent)
    taken = takeover.take_over(found, agent, session=session, policy=policy(ctx), now=ctx.clock())
    mine = " It is now assigned to you." if taken.assigned_to_agent else ""
    if taken.stopped or taken.paused_until is None:
        quiet = "the bot is stopped for this lead until someone resumes it"
    else:
        quiet = (
            f"the bot stays quiet until {taken.paused_until:%H:%M} UTC "
            "(each reply of yours extends it)"
        )
    return tidy(f"You have #{found.id} {found.name or ''}: {quiet}.{mine}"), {
        "focus_lead_id": found.id
    }
