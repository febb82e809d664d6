"""Agent endpoints: who is calling, the team list, and (admins) creating, changing and re-keying
agents.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from store.agents import (
    AgentError,
    agent_summary,
    list_agents,
    set_password,
)
from store.agents import rotate_token as new_agent_token
from store.contacts import InvalidContact, normalize_email
from store.db import read_session
from store.domain import waiting
from store.domain.permissions import is_admin
from store.models import Agent
from store.work import open_lead_counts
from webhooks.api import catalog, schemas
from webhooks.api.base import endpoint, now
from webhooks.api.serialize import dump
from webhooks.app import ApiError, services

TAG = "Agents"


def agent_error(exc: AgentError) -> ApiError:
    message = str(exc)
    field = "email" if "email" in message else "name" if "name" in message else None
    status = 409 if "already exists" in message else 422
    return ApiError(status, "duplicate" if status == 409 else "validation_error", message, field)


def _counts(session: Any) -> dict[int, int]:
    return open_lead_counts(session=session, terminal_statuses=catalog.terminal_statuses())


def _agent(agent_id: int, session: Any) -> Agent:
    agent = session.get(Agent, agent_id) if 0 < agent_id <= schemas.MAX_ID else None
    if agent is None:
        raise ApiError(404, "not_found", f"no agent with id {agent_id}")
    return agent  # type: ignore[no-any-return]


@endpoint(
    "GET", "/me", summary="The calling agent", tag=TAG, response=schemas.AgentOut, errors=(401,)
)
def me() -> Any:
    with read_session(services().session_factory) as session:
        agent = _agent(g.agent.id, session)
        summary = agent_summary(agent, _counts(session).get(agent.id, 0))
        return jsonify(dump(schemas.AgentOut, summary))


@endpoint(
    "GET", "/agents", summary="List agents", tag=TAG, response=schemas.AgentList, errors=(401,)
)
def agents() -> Any:
    """Admins see every agent; agents see their active colleagues (to hand leads over)."""
    with read_session(services().session_factory) as session:
        counts = _counts(session)
        rows = list_agents(session=session, include_inactive=is_admin(g.agent))
        data = [agent_summary(a, counts.get(a.id, 0)) for a in rows]
    return jsonify(dump(schemas.AgentList, {"agents": data}))


@endpoint(
    "POST",
    "/agents",
    summary="Create an agent",
    tag=TAG,
    admin=True,
    body=schemas.AgentCreate,
    response=schemas.AgentWithToken,
    status=201,
    errors=(400, 401, 403, 409, 422),
)
def add_agent(body: schemas.AgentCreate) -> Any:
    """Create an agent; the answer holds its API token, shown this once and stored hashed."""
    try:
        with services().session_factory.begin() as session:
            agent, token = waiting.add_agent(
                body.name,
                session=session,
                policy=catalog.policy(),
                now=now(),
                email=body.email,
                role=body.role,
                capacity=body.capacity,
                password=body.password,
            )
            data = {**agent_summary(agent, 0), "token": token}
    except InvalidContact as exc:
        raise ApiError(422, "validation_error", f"email: {exc}", "email") from None
    except AgentError as exc:
        raise agent_error(exc) from None
    except IntegrityError:
        raise ApiError(
            409, "duplicate", "an agent with this email already exists", "email"
        ) from None
    return jsonify(dump(schemas.AgentWithToken, data)), 201


@endpoint(
    "PATCH",
    "/agents/<int:agent_id>",
    summary="Change or disable an agent",
    tag=TAG,
    admin=True,
    body=schemas.AgentUpdate,
    response=schemas.AgentOut,
    errors=(400, 401, 403, 404, 409, 422),
)
def change_agent(agent_id: int, body: schemas.AgentUpdate) -> Any:
    """Change name, email, role, capacity or password (`null` removes it: token sign-in only);
    `active: false` disables the agent and its token. A new password or disabling ends the agent's
    console sessions.
    """
    sent = body.model_fields_set
    try:
        with services().session_factory.begin() as session:
            agent = _agent(agent_id, session)
            for name in ("name", "capacity", "role", "active"):
                if name in sent and getattr(body, name) is None:
                    raise ApiError(422, "validation_error", f"{name}: cannot be null", name)
            if ("active" in sent and body.active is False) or (
                "role" in sent and body.role != "admin"
            ):
                _keep_an_admin(agent, session)
            if "name" in sent:
                agent.name = body.name  # type: ignore[assignment]
            if "role" in sent:
                agent.role = body.role  # type: ignore[assignment]
            # Capacity before `active`: an agent enabled with a new capacity takes waiting leads
            # up to the new one.
            if "capacity" in sent:
                waiting.set_agent_capacity(
                    agent,
                    body.capacity,  # type: ignore[arg-type]
                    session=session,
                    policy=catalog.policy(),
                    now=now(),
                )
            if "active" in sent:
                waiting.set_agent_active(
                    agent, bool(body.active), session=session, policy=catalog.policy(), now=now()
                )
            if "email" in sent:
                agent.email = normalize_email(body.email) if body.email else None
                if (
                    agent.email
                    and session.scalars(
                        select(Agent).where(Agent.email == agent.email, Agent.id != agent.id)
                    ).first()
                ):
                    raise ApiError(409, "duplicate", "another agent has this email", "email")
            if "password" in sent:
                set_password(agent, body.password or None, session=session)
            session.flush()
            data = agent_summary(agent, _counts(session).get(agent.id, 0))
    except InvalidContact as exc:
        raise ApiError(422, "validation_error", f"email: {exc}", "email") from None
    except IntegrityError:
        raise ApiError(409, "duplicate", "another agent has this email", "email") from None
    return jsonify(dump(schemas.AgentOut, data))


def _keep_an_admin(agent: Agent, session: Any) -> None:
    if agent.role != "admin" or not agent.active:
        return
    admins = session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(Agent.role == "admin", Agent.active.is_(True), Agent.id != agent.id)
    )
    if not admins:
        raise ApiError(409, "last_admin", "this is the last active admin; make another admin first")


@endpoint(
    "POST",
    "/agents/<int:agent_id>/token",
    summary="Rotate an agent's API token",
    tag=TAG,
    response=schemas.AgentWithToken,
    errors=(401, 403, 404),
)
def rotate_token(agent_id: int) -> Any:
    """Issue a new token (the old one stops working at once). Admins for anyone, agents for
    themselves.
    """
    if not is_admin(g.agent) and g.agent.id != agent_id:
        raise ApiError(403, "forbidden", "only an admin can rotate another agent's token")
    with services().session_factory.begin() as session:
        agent = _agent(agent_id, session)
        token = new_agent_token(agent, session=session)
        data = {**agent_summary(agent, _counts(session).get(agent.id, 0)), "token": token}
    return jsonify(dump(schemas.AgentWithToken, data))
