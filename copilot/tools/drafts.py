"""The intro email tool: a personalised first email for a lead, saved as a note once the agent
says yes (the copilot never sends email itself)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot import config as cfg
from copilot.access import check_visible
from copilot.insights import intro_email
from copilot.schemas import DraftEmailArgs
from copilot.tools.base import Confirm, Result, ToolContext, find, tidy, tool
from copilot.tools.reading import lead_facts
from store.leads import get_lead
from store.models import Agent
from store.work import add_note


@tool(
    DraftEmailArgs,
    "Draft a personalised intro email for a lead; the agent is asked whether to save it as a note.",
    confirm="itself",
    clarify_lead=True,
    could_not="I couldn't draft that email",
)
def draft_intro_email(
    ctx: ToolContext, agent: Agent, session: Session, args: DraftEmailArgs
) -> Confirm:
    found = find(ctx, args.lead, agent, session)
    facts = lead_facts(found, session=session, now=ctx.clock())
    subject, template = cfg.intro_template(
        ctx.prompts, customer_name=facts.first_name or "there", agent_name=agent.name
    )
    draft = (args.body or "").strip() or intro_email(
        facts,
        subject=subject,
        body=template,
        agent_name=agent.name,
        business_name=cfg.business_name(ctx.prompts),
    )
    lead_id = found.id

    def apply(me: Agent, s: Session, _choice: str, plan: dict[str, Any]) -> Result:
        target = check_visible(me, get_lead(lead_id, session=s))
        text = str(plan.get("draft") or draft)
        add_note(target, f"Intro email draft:\n\n{text}", session=s, category="Follow-up", agent=me)
        return f"Saved the intro email draft as a Follow-up note on #{lead_id}.", {
            "focus_lead_id": lead_id
        }

    warning = (
        ""
        if found.email
        else (
            f"Note: #{lead_id} {found.name or ''} has no email address on file, so this cannot be "
            "sent as an email "
            f'yet (add one: "set {lead_id}\'s email to …").\n\n'
        )
    )
    return Confirm(
        "save_email",
        f"{tidy(warning) + chr(10) * 2 if warning else ''}{draft}\n\n"
        f"Save this draft as a note on #{lead_id}?",
        {"lead_ids": [lead_id], "draft": draft},
        apply=apply,
        declined=("Okay, the draft was not saved.", {"focus_lead_id": lead_id}),
    )
