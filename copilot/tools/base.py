"""What every copilot tool is made of: the `Tool` record (name, argument schema, function and
confirm behaviour), the collaborators handed to each call (`ToolContext`), the outcomes a tool may
return, and the small helpers the tools share (finding the lead, one line per lead, tidy text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Generic, Literal, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from bot.policy import build_policy
from copilot.access import CopilotError, find_lead
from store.domain.assignment import Notices
from store.domain.errors import LeadLocked
from store.domain.permissions import LeadAction, check_unlocked, is_admin
from store.domain.policy import Policy
from store.models import HOT_SCORE, Agent, Lead

YES = {
    "yes",
    "y",
    "yeah",
    "yep",
    "yup",
    "yes please",
    "please do",
    "ok",
    "okay",
    "sure",
    "confirm",
    "confirmed",
    "do it",
    "go",
    "go ahead",
    "proceed",
    "approve",
    "approved",
    "true",
    "si",
    "sí",
    "sim",
    "oui",
    "ja",
    "claro",
    "vale",
    "dale",
    "d'accord",
    "نعم",
}

# Answers that pick "send" when a question offers it (the intro email draft).
SEND = {
    "send",
    "send it",
    "send email",
    "send the email",
    "enviar",
    "envialo",
    "envíalo",
    "envía",
    "envia",
    "mandalo",
    "mándalo",
}

Result = tuple[str, dict[str, Any]]

# How the copilot words the notifications an agent's change sends to a teammate.
NOTICES = Notices(
    assigned=lambda by, lead: f"{by.name} assigned you {lead.name or 'a lead'} (#{lead.id}).",
    status_set=lambda by, lead, status: (
        f"{by.name} set {lead.name or f'lead {lead.id}'} to {status}."
    ),
)


@dataclass
class Confirm:
    """A change that waits for the agent's answer: asked after the reading transaction has closed,
    applied in a fresh one with the plan that was shown."""

    kind: str
    question: str
    plan: dict[str, Any]
    # Applies the choice; may return a further question to ask first (e.g. "send it?").
    apply: Callable[[Agent, Session, str, dict[str, Any]], Result | Afterwards | Confirm]
    declined: Result
    options: Sequence[tuple[str, str]] = (("yes", "Yes"), ("no", "No"))


@dataclass
class Afterwards:
    """Work that runs its own transactions (the takeover path), done once the tool's has closed."""

    run: Callable[[], Result]


Outcome = Result | Confirm | Afterwards


@dataclass
class ToolContext:
    """The collaborators every tool needs, handed over by `build_graph`."""

    session_factory: sessionmaker[Session]
    prompts: Any
    clock: Callable[[], datetime]
    region: str
    takeover_fallback: int  # LEADDESK_TAKEOVER_MINUTES, when business.yaml sets no window
    outbox: Any = None
    hot_score: int = HOT_SCORE
    # The From address when email is set up (LEADDESK_SMTP_URL and LEADDESK_EMAIL_FROM); None:
    # drafts can only be saved as notes.
    email_from: str | None = None


def policy(ctx: ToolContext) -> Policy:
    """What the business rules read from the admin's configuration, as it is now (the prompt
    files may have been reloaded since the last call)."""
    return build_policy(ctx.prompts, takeover_fallback=ctx.takeover_fallback)


Args = TypeVar("Args", bound=BaseModel)
ToolFunction = Callable[[ToolContext, Agent, Session, Args], Outcome]
# How a change is confirmed: "never" (reading), "itself" (the tool always asks its own question),
# "unasked" (asked only when the agent's words did not ask for this very change; see
# `ToolRunner.approval`).
ConfirmBehaviour = Literal["never", "itself", "unasked"]


@dataclass(frozen=True)
class Tool(Generic[Args]):
    """One copilot tool: what the model is offered (name, argument schema, description), the
    function that does the work, and how the runner treats it."""

    name: str
    args: type[Args]
    description: str
    run: ToolFunction[Args]
    confirm: ConfirmBehaviour = "never"
    # It changes the lead it answers about (counts as "already changed" in this turn).
    changes_lead: bool = False
    # When the lead named is ambiguous, the agent's pick fills in the `lead` argument.
    clarify_lead: bool = False
    # What the answer says when the call's arguments are refused.
    could_not: str | None = None
    # With these arguments the tool asks by itself (no extra approval needed).
    asks_itself: Callable[[ToolContext, dict[str, Any]], bool] | None = None
    # The argument naming the agent who gets the lead.
    gives_lead_to: str | None = None
    # It sends a message in the agent's name (always approved unless asked for).
    speaks_for_agent: bool = False
    # One line for the approval question: (arguments, lead, the agent who gets it) → text.
    describe: Callable[[dict[str, Any], Lead, Agent | None], str] | None = None


def tool(
    args: type[Args],
    description: str,
    *,
    confirm: ConfirmBehaviour = "never",
    changes_lead: bool = False,
    clarify_lead: bool = False,
    could_not: str | None = None,
    asks_itself: Callable[[ToolContext, dict[str, Any]], bool] | None = None,
    gives_lead_to: str | None = None,
    speaks_for_agent: bool = False,
    describe: Callable[[dict[str, Any], Lead, Agent | None], str] | None = None,
) -> Callable[[ToolFunction[Args]], Tool[Args]]:
    """Make the decorated function a `Tool` named after it."""

    def make(function: ToolFunction[Args]) -> Tool[Args]:
        return Tool(
            name=function.__name__,
            args=args,
            description=description,
            run=function,
            confirm=confirm,
            changes_lead=changes_lead,
            clarify_lead=clarify_lead,
            could_not=could_not,
            asks_itself=asks_itself,
            gives_lead_to=gives_lead_to,
            speaks_for_agent=speaks_for_agent,
            describe=describe,
        )

    return make


def agent_id_of(config: RunnableConfig | None) -> int | None:
    """The acting agent's id from the run's config (set by the front end, never by the model)."""
    value = ((config or {}).get("configurable") or {}).get("agent_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def ask(
    kind: str,
    question: str,
    options: Sequence[tuple[str, str]] = (("yes", "Yes"), ("no", "No")),
    **plan: Any,
) -> tuple[str, dict[str, Any]]:
    """Pause the run until the agent answers; returns (the option chosen, the plan shown)."""
    payload = {
        "kind": kind,
        "question": question,
        "options": [{"value": value, "label": label} for value, label in options],
        **plan,
    }
    answer = interrupt(payload)
    values = [value for value, _ in options]
    if isinstance(answer, dict):
        choice = str(answer.get("choice", "")).strip().lower()
        plan_shown = answer.get("plan")
        shown = plan_shown if isinstance(plan_shown, dict) else payload
    else:
        choice, shown = str(answer if answer is not None else "").strip().lower(), payload
    if choice in YES or choice == "true":
        choice = "yes" if "yes" in values else values[0]
    return (choice if choice in values else "no"), shown


def find(ctx: ToolContext, ref: str, agent: Agent, session: Session) -> Lead:
    """The one lead `ref` names that `agent` may see."""
    return find_lead(ref, agent, session=session, region=ctx.region)


def zone(ctx: ToolContext) -> tzinfo:
    """The business's time zone, for periods like "today"."""
    try:
        business_zone: tzinfo = ctx.prompts.business.hours.zone
    except Exception:  # noqa: BLE001 - a bad zone name is reported by prompts check; UTC meanwhile
        return UTC
    return business_zone


def lead_line(lead: Lead) -> str:
    parts = [f"#{lead.id} {lead.name or '(no name)'}", lead.status, f"score {lead.score}"]
    if lead.channels:
        parts.append(", ".join(lead.channels))
    parts.append(lead.assigned_agent.name if lead.assigned_agent else "unassigned")
    if lead.archived:
        parts.append("archived")
    return " · ".join(parts)


def writable(lead: Lead, action: LeadAction = "edit", agent: Agent | None = None) -> Lead:
    """The lead, if the domain's rule for locked leads allows this action; else a CopilotError
    in the copilot's words."""
    try:
        check_unlocked(lead, action, admin=agent is not None and is_admin(agent))
    except LeadLocked:
        raise CopilotError(
            f"Lead #{lead.id} was converted and is read-only; an admin can reopen it."
        ) from None
    return lead


def tidy(text: str) -> str:
    return " ".join(text.split()).replace(" .", ".").replace(" :", ":")


def label(lead: Lead) -> str:
    return f"#{lead.id} {lead.name or '(no name)'}"
