"""Fuzz every operation of /api/openapi.json with schemathesis: valid and invalid requests, as an
admin
and as an agent, against a seeded database. No request may end in a 5xx, and every 2xx JSON answer
must match the documented response schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import select

from store.agents import hash_token
from store.models import Agent
from store.tenancy import all_workspaces

EXAMPLES = 8


@pytest.fixture
def db_engine(sqlite_engine):  # type: ignore[no-untyped-def]
    return sqlite_engine


@pytest.fixture
def seeded(world):  # type: ignore[no-untyped-def]
    admin_id, admin = world.agent("Ada", role="admin")
    sarah_id, sarah = world.agent("Sarah", email="sarah@example.com")
    leads = []
    for i in range(4):
        lead_id = world.lead(
            f"Lead {i}",
            channel=("web", "whatsapp")[i % 2],
            phone=f"+1415555017{i}" if i % 2 else None,
            score=i * 30,
            agent_id=sarah_id if i == 1 else None,
        )
        message_id = world.customer_message(
            lead_id, f"hello {i}", channel=("web", "whatsapp")[i % 2]
        )
        world.score(
            lead_id,
            20 + i,
            [{"factor": "greeting", "points": 5, "evidence": "hello"}],
            message_id=message_id,
        )
        leads.append(lead_id)
    sarah.post(f"/api/leads/{leads[0]}/notes", json={"text": "a note"})
    tokens = {admin_id: (admin.token, "admin"), sarah_id: (sarah.token, "agent")}

    def restore() -> None:
        # The fuzzer may rotate, disable, demote or remove (from the workspace) the caller: undo
        # it so the next request is theirs.
        with world.session_factory.begin() as session:
            for agent_id, (token, role) in tokens.items():
                agent = session.scalars(
                    select(Agent).where(Agent.id == agent_id).execution_options(**all_workspaces())
                ).one()
                agent.token_hash, agent.active, agent.role = hash_token(token), True, role

    return {
        "admin": admin.token,
        "agent": sarah.token,
        "leads": leads,
        "agents": [admin_id, sarah_id],
        "restore": restore,
    }


def _strategy(operation: Any, mode: GenerationMode, seeded: dict[str, Any]) -> Any:
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = {p.name for p in operation.path_parameters}
    # Also aim at rows that exist, so the fuzzing reaches past the 404 for made-up ids.
    if names == {"lead_id"}:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters={"lead_id": lead_id})
            for lead_id in seeded["leads"]
        ]
    elif names == {"agent_id"}:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters={"agent_id": agent_id})
            for agent_id in seeded["agents"]
        ]
    return st.one_of(strategies)


def fuzz(
    operation: Any,
    strategy: Any,
    label: str,
    token: str,
    *,
    restore: Any,
    failures: list[str],
    statuses: list[int],
) -> None:
    """Send EXAMPLES generated requests to one operation, collecting every broken answer."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        response = case.call()
        statuses.append(response.status_code)
        if "/agents" in operation.path:
            restore()
        where = f"{case.method} {case.formatted_path} ({label})"
        if response.status_code >= 500:
            failures.append(f"{where} -> {response.status_code}: {response.text[:300]}")
        elif 200 <= response.status_code < 300:
            try:
                operation.validate_response(response)
            except Exception as exc:  # noqa: BLE001 - collect every mismatch with its request
                failures.append(f"{where} -> answer does not match the schema: {str(exc)[:400]}")
        elif response.headers.get("Content-Type", [""])[0].startswith("application/json"):
            error = response.json().get("error", {})
            if not (error.get("code") and error.get("message")):
                failures.append(f"{where} -> {response.status_code} without a JSON error body")

    run()


@pytest.mark.parametrize("role", ["admin", "agent"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_ends_in_a_server_error(app, seeded, role, mode):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # Deleting comes last so that the other operations still find the seeded leads.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: op.method.upper() == "DELETE",
    )
    assert len(operations) >= 25
    token = seeded[role]
    failures: list[str] = []
    statuses: list[int] = []

    for operation in operations:
        fuzz(
            operation,
            _strategy(operation, mode, seeded),
            f"{mode.value}, {role}",
            token,
            restore=seeded["restore"],
            failures=failures,
            statuses=statuses,
        )
    assert not failures, "\n".join(dict.fromkeys(failures))
    # The caller stayed signed in and most operations got past validation to do real work.
    assert statuses.count(401) == 0
    assert sum(200 <= s < 300 for s in statuses) > len(statuses) // 4


def test_the_document_describes_every_route_of_the_blueprint(app):  # type: ignore[no-untyped-def]
    document = app.test_client().get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("leads_api."):
            path = "/" + "/".join(
                "{" + part.split(":")[-1].strip("<>") + "}" if part.startswith("<") else part
                for part in rule.rule.strip("/").split("/")
            )
            served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] and operation["responses"], (method, path)
            # The document and the calendar feed (opened by its own token in the address, as
            # calendar apps need) take no agent token.
            if path not in ("/api/openapi.json", "/api/agents/me/calendar.ics"):
                assert "401" in operation["responses"], (method, path)
