"""Running the copilot's tools: arguments checked against each tool's schema, one short
transaction per call, questions asked through a LangGraph `interrupt` with no transaction open,
and every failure turned into a short sentence for the agent. Tools are found in a dict built
from the list the graph hands over."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.errors import GraphBubbleUp
from pydantic import ValidationError
from sqlalchemy.orm import Session

from copilot.access import Ambiguous, CopilotError, find_lead, find_teammate, load_agent
from copilot.tools.base import (
    Afterwards,
    Confirm,
    Outcome,
    Result,
    Tool,
    ToolContext,
    agent_id_of,
    ask,
    label,
    lead_line,
)
from store.agents import AgentError
from store.contacts import InvalidContact
from store.domain.errors import RuleError
from store.leads import LeadNotFound
from store.models import Agent, Lead

log = logging.getLogger(__name__)

FAILED = (
    "Something went wrong on our side while doing that; it was logged. Nothing else was changed."
)


class ToolRunner:
    """Runs one tool call in two steps: `plan` (checks, reads, and for plain changes does them in
    one transaction) and, when the plan is a question, `ask_and_apply` (one interrupt, then the
    change in a fresh transaction). Every failure becomes a short sentence for the agent."""

    def __init__(self, ctx: ToolContext, tools: Sequence[Tool[Any]]):
        self.ctx = ctx
        self.tools: dict[str, Tool[Any]] = {tool.name: tool for tool in tools}

    def changes_lead(self, name: str) -> bool:
        """Whether the tool called `name` changes the lead it answers about."""
        known = self.tools.get(name)
        return known is not None and known.changes_lead

    def check(self, name: str, args: Any) -> tuple[dict[str, Any], str | None]:
        """The call's arguments validated and bounded, or a short plain error."""
        known = self.tools.get(name)
        if known is None:
            return {}, f"There is no tool called {str(name)[:40]!r}."
        if not isinstance(args, dict):
            return {}, f"{name} needs named arguments."
        try:
            checked = known.args.model_validate(args)
        except ValidationError as exc:
            return {}, explain_tool_failure(known, exc)
        return checked.model_dump(exclude_none=True, exclude_defaults=False), None

    def plan(self, name: str, args: dict[str, Any], agent_id: int | None) -> Result | Confirm:
        known = self.tools[name]
        try:
            with self.ctx.session_factory.begin() as session:
                agent = load_agent(agent_id, session=session)
                try:
                    outcome = self._run(known, args, agent, session)
                except Ambiguous as many:
                    return _which_one(known, args, many)
            if isinstance(outcome, Afterwards):
                return outcome.run()
            return outcome
        except GraphBubbleUp:
            raise
        except (CopilotError, RuleError, AgentError, InvalidContact, LeadNotFound) as exc:
            return str(exc), {}
        except ValueError as exc:
            return f"Could not run {name}: {exc}", {}
        except Exception:  # the agent gets an answer; the details go to the log
            log.exception("copilot tool %s failed", name)
            return FAILED, {}

    def ask_and_apply(self, name: str, outcome: Confirm, agent_id: int | None) -> Result:
        """Ask the agent (the run pauses here, with no transaction open) and apply on yes."""
        choice, plan = ask(outcome.kind, outcome.question, outcome.options, **outcome.plan)
        if choice == "no":
            return outcome.declined
        try:
            with self.ctx.session_factory.begin() as session:
                me = load_agent(agent_id, session=session)
                result = outcome.apply(me, session, choice, plan)
            if isinstance(result, Confirm):
                # The choice needs a confirmation of its own (sending the drafted email): asked
                # once this transaction has closed.
                return self.ask_and_apply(name, result, agent_id)
            return result.run() if isinstance(result, Afterwards) else result
        except GraphBubbleUp:  # the follow-up question pauses the run
            raise
        except (CopilotError, RuleError, AgentError, InvalidContact, LeadNotFound) as exc:
            return str(exc), {}
        except Exception:
            log.exception("copilot tool %s failed after confirmation", name)
            return FAILED, {}

    def approval(
        self,
        name: str,
        args: dict[str, Any],
        agent_id: int | None,
        *,
        asked: dict[str, Any] | None,
        changed: set[int],
    ) -> Confirm | None:
        """A question for a change the agent did not ask for in this turn's words that touches
        another lead than the one changed already, gives a lead to someone else, or unassigns it.
        (Final statuses, archiving and bulk changes always ask by themselves.)"""
        known = self.tools.get(name)
        if known is None or known.confirm != "unasked":
            return None
        if known.asks_itself is not None and known.asks_itself(self.ctx, args):
            return None
        try:
            with self.ctx.session_factory.begin() as session:
                agent = load_agent(agent_id, session=session)
                lead = find_lead(
                    str(args.get("lead", "")), agent, session=session, region=self.ctx.region
                )
                other_owner: Agent | None = None
                unassign = False
                if known.gives_lead_to is not None:
                    target = find_teammate(
                        str(args.get(known.gives_lead_to, "")), agent, session=session
                    )
                    unassign = target is None
                    other_owner = target if target is not None and target.id != agent.id else None
                    if asked and asked.get("name") == name:
                        wanted = find_teammate(
                            str(asked["args"].get(known.gives_lead_to, "")), agent, session=session
                        )
                        if (wanted.id if wanted else None) == (
                            target.id if target else None
                        ) and self._same_lead(asked, lead.id, agent, session):
                            return None
                elif (
                    asked
                    and asked.get("name") == name
                    and self._same_lead(asked, lead.id, agent, session)
                ):
                    return None
                another_lead = bool(changed) and lead.id not in changed
                # A message to a customer goes out in the agent's name: only as the agent asked.
                if not (other_owner or unassign or another_lead or known.speaks_for_agent):
                    return None
                preview = _describe(known, args, lead, other_owner)
        except (CopilotError, AgentError, LeadNotFound):
            return None  # the tool itself explains the problem
        lead_id = lead.id
        reason = (
            "it gives a lead to another agent"
            if other_owner
            else "it unassigns a lead"
            if unassign
            else "it changes another lead than the one already changed"
            if another_lead
            else "it messages a customer in your name"
        )

        def apply(
            me: Agent, s: Session, _choice: str, _plan: dict[str, Any]
        ) -> Result | Afterwards | Confirm:
            return self._approved(known, args, me, s)

        return Confirm(
            "approve",
            f"You did not ask for this in your message ({reason}): {preview}. Do it?",
            {"lead_ids": [lead_id], "tool": name},
            apply=apply,
            declined=("The agent said no: nothing was changed.", {}),
        )

    def _run(
        self, known: Tool[Any], args: dict[str, Any], agent: Agent, session: Session
    ) -> Outcome:
        return known.run(self.ctx, agent, session, known.args.model_validate(args))

    def _approved(
        self, known: Tool[Any], args: dict[str, Any], agent: Agent, session: Session
    ) -> Result | Afterwards | Confirm:
        """Run a change the agent has just approved, in the approval's transaction (a reply to a
        customer runs its own transactions once this one has closed)."""
        outcome = self._run(known, args, agent, session)
        if isinstance(outcome, Confirm):
            return outcome.apply(agent, session, "yes", outcome.plan)
        return outcome  # an Afterwards (a reply) runs once the approval's transaction has closed

    def _same_lead(
        self, asked: dict[str, Any], lead_id: int, agent: Agent, session: Session
    ) -> bool:
        ref = str(asked.get("args", {}).get("lead", ""))
        try:
            return find_lead(ref, agent, session=session, region=self.ctx.region).id == lead_id
        except CopilotError:
            return False


def build_tools(runner: ToolRunner) -> list[BaseTool]:
    """The LangChain tools over the runner's tools (what the model is offered, in the list's
    order), each guarded: permission errors and bad input become plain answers."""
    return [
        StructuredTool.from_function(
            func=_as_function(name, runner),
            name=name,
            description=known.description,
            args_schema=known.args,
            response_format="content_and_artifact",
        )
        for name, known in runner.tools.items()
    ]


def _as_function(name: str, runner: ToolRunner) -> Callable[..., Result]:
    def run(config: RunnableConfig, **kwargs: Any) -> Result:
        outcome = runner.plan(name, kwargs, agent_id_of(config))
        if isinstance(outcome, Confirm):
            return runner.ask_and_apply(name, outcome, agent_id_of(config))
        return outcome

    run.__name__ = name
    return run


def _which_one(known: Tool[Any], args: dict[str, Any], many: Ambiguous) -> Result:
    """List the candidates (inside the transaction that loaded them) and remember the request."""
    lines = [f"{many.total} leads match {many.ref!r}. Which one?"]
    lines += [f"{i}. {lead_line(lead)}" for i, lead in enumerate(many.leads, 1)]
    lines.append("Answer with the number, the id or a name.")
    artifact: dict[str, Any] = {}
    if known.clarify_lead:
        artifact = {
            "clarify": {
                "tool": known.name,
                "args": args,
                "arg": "lead",
                "candidates": [lead.id for lead in many.leads],
                "labels": [
                    f"{lead.name or ''} {lead.company or ''}".strip() for lead in many.leads
                ],
            }
        }
    return "\n".join(lines), artifact


def _describe(known: Tool[Any], args: dict[str, Any], lead: Lead, owner: Agent | None) -> str:
    if known.describe is not None:
        return known.describe(args, lead, owner)
    return f"{known.name.replace('_', ' ')} {label(lead)}"


def explain_tool_failure(known: Tool[Any], exc: ValidationError) -> str:
    """The answer to a tool call whose arguments the tool refuses: the details go to the log, the
    agent (or the model, to relay) gets a plain sentence naming what was not understood, never the
    exception's text."""
    log.error("copilot tool %s refused its arguments", known.name, exc_info=exc)
    could_not = known.could_not or f"I couldn't {known.name.replace('_', ' ')}"
    problems = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return f"{could_not} ({'; '.join(problems)}); nothing was changed."
