"""Agent endpoints: who is calling and in which workspaces, the workspace's team, and (admins)
creating, adding, changing, re-keying and removing its agents.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from sqlalchemy.exc import IntegrityError

from store.agents import (
    AgentError,
    agent_summary,
    list_agents,
    person_by_email,
    set_password,
)
from store.agents import rotate_token as new_agent_token
from store.contacts import InvalidContact, normalize_email
from store.db import read_session
from store.domain import team, waiting
from store.domain.permissions import is_admin
from store.models import Agent
from store.work import open_lead_counts
from store.workspaces import agent_workspaces
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
    "GET",
    "/workspaces",
    summary="The calling agent's workspaces",
    tag=TAG,
    response=schemas.WorkspaceList,
    errors=(401,),
    workspace=False,
)
def workspaces() -> Any:
    """The workspaces the calling agent works in, with their role in each: what
    `X-Leaddesk-Workspace` (or `/api/w/<slug>/...`) may name."""
    with read_session(services().session_factory) as session:
        data = [
            {"id": w.id, "slug": w.slug, "name": w.name, "role": role}
            for w, role in agent_workspaces(g.agent.id, session=session)
        ]
    return jsonify(dump(schemas.WorkspaceList, {"workspaces": data}))


@endpoint(
    "GET", "/agents", summary="List agents", tag=TAG, response=schemas.AgentList, errors=(401,)
)
def agents() -> Any:
    """The workspace's team: admins see every member; agents their active colleagues (to hand
    leads over)."""
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
    "POST",
    "/agents/members",
    summary="Add an existing person to this workspace",
    tag=TAG,
    admin=True,
    body=schemas.MemberAdd,
    response=schemas.AgentOut,
    status=201,
    errors=(400, 401, 403, 404, 409, 422),
)
def add_member(body: schemas.MemberAdd) -> Any:
    """Add the person with this email (an agent of another workspace) to this one with a role;
    they sign in as before and name the workspace they work in."""
    with services().session_factory.begin() as session:
        agent = team.add_member(body.email, body.role, session=session)
        data = agent_summary(agent, _counts(session).get(agent.id, 0))
    return jsonify(dump(schemas.AgentOut, data)), 201


@endpoint(
    "DELETE",
    "/agents/<int:agent_id>",
    summary="Remove an agent from this workspace",
    tag=TAG,
    admin=True,
    response=schemas.MemberRemoved,
    errors=(400, 401, 403, 404, 409),
)
def remove_member(agent_id: int) -> Any:
    """Take the agent out of this workspace (the person and their other workspaces stay); their
    leads here become unassigned. The last admin stays."""
    with services().session_factory.begin() as session:
        agent = _agent(agent_id, session)
        me = _agent(g.agent.id, session)
        moved = team.remove_member(agent, by=me, session=session)
    return jsonify(dump(schemas.MemberRemoved, {"id": agent_id, "unassigned_leads": moved}))


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
            if sent - {"role"}:
                # What is the person's in every workspace: not for an admin of only some.
                team.check_manages_person(_agent(g.agent.id, session), agent, session=session)
            if ("active" in sent and body.active is False) or (
                "role" in sent and body.role != "admin"
            ):
                team.check_keeps_an_admin(agent, session=session)
            if "name" in sent:
                agent.name = body.name  # type: ignore[assignment]
            if "role" in sent:
                team.set_role(agent, body.role, session=session)  # type: ignore[arg-type]
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
                    and (other := person_by_email(agent.email, session=session)) is not None
                    and other.id != agent.id
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
        # A new token is the person's way into every workspace of theirs.
        team.check_manages_person(_agent(g.agent.id, session), agent, session=session)
        token = new_agent_token(agent, session=session)
        data = {**agent_summary(agent, _counts(session).get(agent.id, 0)), "token": token}
    return jsonify(dump(schemas.AgentWithToken, data))
