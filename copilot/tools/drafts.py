"""The intro email tool: a personalised first email for a lead, saved as a note or, when email is
set up and the lead has an address, sent once the agent confirms with yes (the copilot never sends
an email the agent has not seen and approved)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from copilot import config as cfg
from copilot.access import CopilotError, check_visible
from copilot.insights import intro_email
from copilot.schemas import DraftEmailArgs
from copilot.tools.base import Afterwards, Confirm, Result, ToolContext, find, tidy, tool
from copilot.tools.reading import lead_facts
from store.domain.mail import send_email
from store.leads import get_lead
from store.models import Agent
from store.work import add_note


@tool(
    DraftEmailArgs,
    "Draft a personalised intro email for a lead; the agent is asked whether to save it as a note "
    "or send it (send=true when they asked to send it: they confirm with yes or no).",
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
    address = found.email or ""
    email_on = bool(ctx.email_from) and ctx.outbox is not None
    if args.send:
        if not email_on:
            raise CopilotError(
                "Email is not set up here (LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM), so I "
                f'can\'t send it; "draft an intro email for {lead_id}" saves it as a note.'
            )
        if not address:
            raise CopilotError(
                f"#{lead_id} {found.name or ''} has no email address on file, so there is "
                f'nowhere to send it (add one: "set {lead_id}\'s email to …").'
            )
        return _confirm_send(ctx, lead_id, address, subject, draft)

    def apply(me: Agent, s: Session, choice: str, plan: dict[str, Any]) -> Result | Confirm:
        text = str(plan.get("draft") or draft)
        if choice == "send":
            return _confirm_send(ctx, lead_id, address, subject, text)
        target = check_visible(me, get_lead(lead_id, session=s))
        add_note(target, f"Intro email draft:\n\n{text}", session=s, category="Follow-up", agent=me)
        return f"Saved the intro email draft as a Follow-up note on #{lead_id}.", {
            "focus_lead_id": lead_id
        }

    can_send = email_on and bool(address)
    warning = (
        ""
        if address
        else (
            f"Note: #{lead_id} {found.name or ''} has no email address on file, so this cannot be "
            "sent as an email "
            f'yet (add one: "set {lead_id}\'s email to …").\n\n'
        )
    )
    question = (
        f"Save this draft as a note on #{lead_id} (yes), send it to {address} (send), or no?"
        if can_send
        else f"Save this draft as a note on #{lead_id}?"
    )
    options = (
        (("yes", "Save as note"), ("send", "Send email"), ("no", "No"))
        if can_send
        else (("yes", "Yes"), ("no", "No"))
    )
    return Confirm(
        "save_email",
        f"{tidy(warning) + chr(10) * 2 if warning else ''}{draft}\n\n{question}",
        {"lead_ids": [lead_id], "draft": draft},
        apply=apply,
        declined=("Okay, the draft was not saved.", {"focus_lead_id": lead_id}),
        options=options,
    )


def _confirm_send(
    ctx: ToolContext, lead_id: int, address: str, subject: str, draft: str
) -> Confirm:
    """Ask yes/no before the email goes out; on yes, send it (its own transactions, after the
    question's has closed) and say how it went."""

    def apply(me: Agent, s: Session, _choice: str, plan: dict[str, Any]) -> Afterwards:
        check_visible(me, get_lead(lead_id, session=s))
        body = str(plan.get("draft") or draft)
        return Afterwards(lambda: _send(ctx, me, lead_id, subject, body))

    return Confirm(
        "send_email",
        f"{draft}\n\nSend this email to {address} now? (yes/no)",
        {"lead_ids": [lead_id], "draft": draft},
        apply=apply,
        declined=("Okay, the email was not sent.", {"focus_lead_id": lead_id}),
    )


def split_subject(draft: str, fallback: str) -> tuple[str, str]:
    """(subject, body) of a draft whose first line may be "Subject: …" (the drafts' form)."""
    first, _, rest = draft.strip().partition("\n")
    if first.lower().startswith("subject:") and first[8:].strip():
        return first[8:].strip(), rest.strip()
    return fallback.strip(), draft.strip()


def _send(ctx: ToolContext, me: Agent, lead_id: int, subject: str, draft: str) -> Result:
    subject, body = split_subject(draft, subject or cfg.business_name(ctx.prompts))
    result = send_email(
        lead_id,
        subject,
        body,
        by=me,
        session_factory=ctx.session_factory,
        deliver=ctx.outbox.deliver,
        sender=ctx.email_from,
    )
    focus = {"focus_lead_id": lead_id}
    if result.sent:
        return f"Sent the email to {result.to} (#{lead_id}); it is in the lead's timeline.", focus
    if result.status == "unknown":
        return (
            f"The email to {result.to} may or may not have arrived ({result.error}). It is marked "
            "uncertain in the timeline; check with the lead before sending it again.",
            focus,
        )
    if result.status == "failed":
        return f"The email to {result.to} was not sent: {result.error}", focus
    return f"The email to {result.to} is on its way (#{lead_id}).", focus
