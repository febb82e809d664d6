"""Every API operation, with one workspace's admin token and the other workspace's ids: generated
requests (every method and path of the API's endpoint registry, bodies and queries aimed at the
other's leads, notes, tasks, conversations, messages and agents) never answer a 2xx with the
other's data, and the other's data is unchanged afterwards. Both ways: the first workspace's admin
against "beta", and beta's admin against the first workspace."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.workspace_support import MARK, PHONE, TwoWorkspaces, snapshot, two_workspaces
from webhooks.api.base import ENDPOINTS, Endpoint

OPERATIONS = [ep for ep in ENDPOINTS if ep.auth]
_PARAM = re.compile(r"<(?:int:)?(\w+)>")


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@dataclass
class Target:
    """Who asks (an admin of one workspace only, and how their workspace is named) and what of the
    other workspace they aim at (its ids, and the word all its readable data carries)."""

    client: Any
    slug: str
    workspace: int
    mark: str
    leads: list[int]
    notes: list[int]
    tasks: list[int]
    conversations: list[int]
    messages: list[int]
    agents: list[int]
    email: str


@pytest.fixture(params=["first-against-beta", "beta-against-first"])
def two(request, world, session_factory) -> Target:  # type: ignore[no-untyped-def]
    made: TwoWorkspaces = two_workspaces(world, session_factory)
    if request.param == "first-against-beta":
        return Target(
            made.alan,
            "default",
            made.b,
            MARK,
            made.b_leads,
            made.b_notes,
            made.b_tasks,
            made.b_conversations,
            made.b_messages,
            [made.bob_id],
            "bob@example.com",
        )
    return Target(
        made.bob,
        "beta",
        made.a,
        "alpha",
        made.a_leads,
        made.a_notes,
        made.a_tasks,
        made.a_conversations,
        made.a_messages,
        [made.alan_id, made.carl_id],
        "carl@example.com",
    )


def _ids(two: Target, name: str) -> list[int]:
    """The other workspace's ids a parameter or field of this name could take."""
    if name in ("agent_id",):
        return two.agents
    if name in ("task_id",):
        return two.tasks
    if name in ("conversation_id",):
        return two.conversations
    if name in ("message_id",):
        return two.messages
    if name in ("suggestion_id", "note_id"):
        return two.notes
    return two.leads


def _value(two: Target, name: str, annotation: Any) -> st.SearchStrategy[Any]:
    """A value for one field: B's ids for id fields, the field's own choices otherwise."""
    text = str(annotation)
    if name.endswith("_id"):
        return st.one_of(st.sampled_from(_ids(two, name)), st.none())
    if name == "ids":
        return st.lists(st.sampled_from(two.leads + two.notes), max_size=3)
    if name == "email":
        return st.sampled_from([two.email, "someone@example.com", None])
    for arg in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(arg) is typing.Literal:
            return st.sampled_from(typing.get_args(arg))
    if "bool" in text:
        return st.booleans()
    if "int" in text:
        return st.integers(min_value=0, max_value=120)
    if "dict" in text:
        return st.just({})
    if "list" in text:
        return st.lists(st.sampled_from(["New", "whatsapp", "vip"]), max_size=2)
    if "str" in text:
        return st.sampled_from(["hello", "New", "Interested", "One", PHONE, "a-long-password"])
    return st.none()


def _fields(two: Target, model: type[BaseModel] | None) -> st.SearchStrategy[dict[str, Any]]:
    if model is None:
        return st.just({})
    return st.fixed_dictionaries(
        {},
        optional={
            name: _value(two, name, info.annotation) for name, info in model.model_fields.items()
        },
    )


@st.composite
def requests(draw: Any, two: Target, operation: Endpoint) -> dict[str, Any]:
    path = _PARAM.sub(
        lambda match: str(draw(st.sampled_from(_ids(two, match.group(1))))), operation.rule
    )
    # Without a header (the asker's only workspace), naming it, or naming it in the path.
    how = draw(st.sampled_from(["none", "header", "path"]))
    request: dict[str, Any] = {
        "method": operation.method,
        "path": f"/api/w/{two.slug}{path}" if how == "path" else "/api" + path,
        "headers": {"X-Leaddesk-Workspace": two.slug} if how == "header" else {},
    }
    if operation.query is not None:
        query = draw(_fields(two, operation.query))
        request["query_string"] = {k: v for k, v in query.items() if v not in (None, [])}
    if operation.body is not None:
        request["json"] = draw(_fields(two, operation.body))
    return request


def _send(two: Target, request: dict[str, Any]) -> Any:
    client = two.client
    method = getattr(client.client, request["method"].lower())
    headers = {"Authorization": f"Bearer {client.token}", **request["headers"]}
    kwargs = {k: request[k] for k in ("json", "query_string") if k in request}
    return method(request["path"], headers=headers, **kwargs)


def _check(two: Target, request: dict[str, Any], response: Any) -> None:
    assert response.status_code < 500, (request, response.get_data(as_text=True)[:500])
    if 200 <= response.status_code < 300:
        body = response.get_data(as_text=True).lower()
        assert two.mark not in body, (request, body[:1000])


def test_every_operation_once_with_another_workspaces_ids(two, session_factory) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(session_factory, two.workspace)
    for operation in OPERATIONS:
        path = _PARAM.sub(lambda match: str(_ids(two, match.group(1))[0]), operation.rule)
        request: dict[str, Any] = {"method": operation.method, "path": "/api" + path, "headers": {}}
        if operation.body is not None:
            request["json"] = {
                name: _ids(two, name)[0] if name.endswith("_id") else None
                for name in operation.body.model_fields
                if name.endswith("_id")
            }
        _check(two, request, _send(two, request))
        assert snapshot(session_factory, two.workspace) == before, request
    # Reading the other's leads by id is a 404, never their lead.
    for lead_id in two.leads:
        read = _send(two, {"method": "GET", "path": f"/api/leads/{lead_id}", "headers": {}})
        assert read.status_code == 404


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_requests_never_reach_another_workspace(two, session_factory, data) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(session_factory, two.workspace)
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    request = data.draw(requests(two, operation), label="request")
    _check(two, request, _send(two, request))
    assert snapshot(session_factory, two.workspace) == before, request
