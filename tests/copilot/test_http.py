"""POST /api/copilot: bearer token, same graph and permissions, confirmations on the same thread."""

from __future__ import annotations

import pytest

from leaddesk.settings import load_settings
from tests.app_support import build_app


@pytest.fixture
def client(sf, copilot):  # type: ignore[no-untyped-def]
    app = build_app(load_settings(database_url="sqlite://"), sf, copilot=copilot)
    return app.test_client()


def post(client, token, body, **kwargs):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/copilot", json=body, headers=headers, **kwargs)


def test_an_agent_asks_and_gets_a_reply(world, client) -> None:
    sarah, token = world.agent_with_token("Sarah")
    lead = world.lead("Dana Smith", agent=sarah, score=88)
    response = post(client, token, {"message": f"is lead {lead} hot?"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["reply"].startswith(f"Yes, #{lead} Dana Smith is hot.")
    assert body["pending_confirmation"] is None


def test_confirmations_are_answered_on_the_same_thread(world, client) -> None:
    sarah, token = world.agent_with_token("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    asked = post(
        client, token, {"message": f"mark {lead} as Converted", "thread": "deal-room"}
    ).get_json()
    pending = asked["pending_confirmation"]
    assert pending["kind"] == "set_status" and pending["lead_ids"] == [lead]
    assert [o["value"] for o in pending["options"]] == ["yes", "no"] and pending["id"]
    assert asked["reply"].endswith("Converted is a final status.")
    # Another thread of the same agent knows nothing about it.
    other = post(client, token, {"message": "yes", "thread": "elsewhere"}).get_json()
    assert other["reply"] == "There is nothing waiting for a yes or no right now."
    assert world.get(lead).status == "New"
    done = post(client, token, {"message": "yes", "thread": "deal-room"}).get_json()
    assert done == {
        "reply": f"#{lead} Dana Smith: status New → Converted."
        " The lead is now read-only (an admin can reopen it).",
        "pending_confirmation": None,
    }
    assert world.get(lead).status == "Converted"


def test_threads_are_per_agent(world, client) -> None:
    sarah, sarah_token = world.agent_with_token("Sarah")
    _admin, admin_token = world.agent_with_token("Ada", role="admin")
    lead = world.lead("Dana Smith", agent=sarah)
    post(client, sarah_token, {"message": f"archive {lead}"})
    hijack = post(client, admin_token, {"message": "yes"}).get_json()
    assert hijack["reply"] == "There is nothing waiting for a yes or no right now."
    assert not world.get(lead).archived


def test_permissions_are_the_same_as_in_telegram(world, client) -> None:
    _sarah, token = world.agent_with_token("Sarah")
    mike = world.agent("Mike")
    lead = world.lead("Dana Smith", agent=mike)
    body = post(client, token, {"message": f"/note {lead} hello"}).get_json()
    assert "assigned to another agent" in body["reply"]
    assert world.notes(lead) == []


@pytest.mark.parametrize(
    ("token", "body", "status", "code"),
    [
        (None, {"message": "hi"}, 401, "unauthorized"),
        ("ld_not-a-token", {"message": "hi"}, 401, "unauthorized"),
        ("GOOD", {}, 400, "invalid_message"),
        ("GOOD", {"message": "   "}, 400, "invalid_message"),
        ("GOOD", {"message": 42}, 400, "invalid_message"),
        ("GOOD", {"message": "x" * 8001}, 400, "invalid_message"),
        ("GOOD", {"message": "hi", "thread": "has spaces"}, 400, "invalid_thread"),
        ("GOOD", {"message": "hi", "thread": 7}, 400, "invalid_thread"),
        ("GOOD", {"message": "hi", "thread": "x" * 101}, 400, "invalid_thread"),
        ("GOOD", ["not", "an", "object"], 400, "invalid_json"),
    ],
)
def test_bad_requests_get_clear_json_errors(world, client, token, body, status, code) -> None:  # type: ignore[no-untyped-def]
    _agent, good = world.agent_with_token("Sarah")
    response = post(client, good if token == "GOOD" else token, body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_a_disabled_agents_token_is_refused(world, client, sf) -> None:
    from store.models import Agent

    sarah, token = world.agent_with_token("Sarah")
    with sf.begin() as session:
        session.get(Agent, sarah).active = False
    assert post(client, token, {"message": "/hot"}).status_code == 401


def test_without_a_copilot_the_endpoint_says_so(world, sf) -> None:
    _agent, token = world.agent_with_token("Sarah")
    app = build_app(load_settings(database_url="sqlite://"), sf)
    response = post(app.test_client(), token, {"message": "hi"})
    assert (
        response.status_code == 503
        and response.get_json()["error"]["code"] == "copilot_unavailable"
    )
