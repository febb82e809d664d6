"""The API in workspaces: a token is a person's, a request names its workspace
(`X-Leaddesk-Workspace` or `/api/w/<slug>/...`, else the person's only one), works there with the
person's role there, and sees nothing of another workspace. Each workspace's admins manage its
team."""

from __future__ import annotations

import pytest

from store.tenancy import in_workspace
from store.workspaces import find_workspace, set_active
from tests.workspace_support import MARK, PHONE, TwoWorkspaces, snapshot, two_workspaces


@pytest.fixture
def two(world, session_factory) -> TwoWorkspaces:  # type: ignore[no-untyped-def]
    return two_workspaces(world, session_factory)


def names(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_json()
    return sorted(lead["name"] for lead in response.get_json()["leads"])


def test_a_person_in_several_workspaces_must_name_one(two) -> None:  # type: ignore[no-untyped-def]
    response = two.ada.get("/api/leads")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "workspace_required"
    assert "X-Leaddesk-Workspace" in error["message"] and "beta" not in error["message"]
    # Their list of workspaces needs no workspace, and gives the role in each.
    listed = two.ada.get("/api/workspaces").get_json()["workspaces"]
    assert [(w["slug"], w["role"]) for w in listed] == [("default", "admin"), ("beta", "agent")]
    # Someone with one workspace needs no header.
    assert names(two.carl.get("/api/leads")) == ["Alpha One", "Alpha Two"]
    assert [w["slug"] for w in two.bob.get("/api/workspaces").get_json()["workspaces"]] == ["beta"]


def test_the_header_chooses_the_workspace_and_the_role_there(two) -> None:  # type: ignore[no-untyped-def]
    in_a, in_b = two.header("default"), two.header("beta")
    assert names(two.ada.get("/api/leads", headers=in_a)) == ["Alpha One", "Alpha Two"]
    # In B she is an agent: the unassigned lead, not Bob's.
    assert names(two.ada.get("/api/leads", headers=in_b)) == [f"{MARK.title()} One"]
    assert two.ada.get("/api/me", headers=in_a).get_json()["role"] == "admin"
    assert two.ada.get("/api/me", headers=in_b).get_json()["role"] == "agent"
    # By id too, and by the path.
    assert names(two.ada.get("/api/leads", headers=two.header(two.b))) == [f"{MARK.title()} One"]
    assert names(two.ada.get("/api/w/beta/leads")) == [f"{MARK.title()} One"]
    assert names(two.ada.get("/api/w/default/leads")) == ["Alpha One", "Alpha Two"]
    # Admin powers in A only.
    made = two.ada.post("/api/agents", json={"name": "Dora"}, headers=in_a)
    assert made.status_code == 201
    refused = two.ada.post("/api/agents", json={"name": "Eve"}, headers=in_b)
    assert refused.status_code == 403
    # The new agent is A's: B's team does not list her.
    team_b = [a["name"] for a in two.bob.get("/api/agents").get_json()["agents"]]
    assert sorted(team_b) == ["Ada", "Bob"]
    # The export streams after the view returned: still the request's workspace.
    exported = two.ada.get("/api/leads/export.csv", headers=in_b).get_data(as_text=True)
    assert f"{MARK.title()} One" in exported and "Alpha" not in exported
    exported = two.ada.get("/api/w/default/leads/export.csv").get_data(as_text=True)
    assert "Alpha One" in exported and MARK not in exported.lower()
    # The same customer phone is two leads, one in each.
    found_a = two.ada.get("/api/leads", query_string={"q": PHONE}, headers=in_a)
    found_b = two.ada.get("/api/leads", query_string={"q": PHONE}, headers=in_b)
    assert names(found_a) == ["Alpha One"]
    assert names(found_b) == [f"{MARK.title()} One"]


def test_another_workspaces_rows_are_not_found(two, session_factory) -> None:  # type: ignore[no-untyped-def]
    in_a = two.header("default")
    before = snapshot(session_factory, two.b)
    for lead_id in two.b_leads:
        assert two.ada.get(f"/api/leads/{lead_id}", headers=in_a).status_code == 404
        assert two.alan.get(f"/api/leads/{lead_id}/notes").status_code == 404
        assert two.alan.patch(f"/api/leads/{lead_id}", json={"name": "Taken"}).status_code == 404
        assert (
            two.alan.post(f"/api/leads/{lead_id}/notes", json={"text": "mine"}).status_code == 404
        )
    assert two.alan.get(f"/api/tasks/{two.b_tasks[0]}").status_code == 404
    assert two.alan.patch(f"/api/agents/{two.bob_id}", json={"name": "X"}).status_code == 404
    assert two.alan.post(f"/api/agents/{two.bob_id}/token").status_code == 404
    assert two.alan.delete(f"/api/agents/{two.bob_id}").status_code == 404
    leads = two.alan.get("/api/leads").get_json()["leads"]
    assert MARK not in str(leads).lower()
    assert snapshot(session_factory, two.b) == before


@pytest.mark.parametrize("named", ["beta", "2", "nowhere", "999", "-"])
def test_naming_a_workspace_that_is_not_yours_is_refused_alike(two, named) -> None:  # type: ignore[no-untyped-def]
    response = two.carl.get("/api/leads", headers=two.header(named))
    assert response.status_code == 403
    assert response.get_json()["error"] == {
        "code": "workspace_forbidden",
        "message": "you are not a member of that workspace",
    }
    assert two.carl.get(f"/api/w/{named}/leads").status_code == 403


def test_a_disabled_workspace_is_refused_like_an_unknown_one(two, session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        workspace = find_workspace("beta", session=session)
        assert workspace is not None
        set_active(workspace, False, session=session)
    assert two.ada.get("/api/leads", headers=two.header("beta")).status_code == 403
    # Her only workspace left is A: no header needed any more.
    assert names(two.ada.get("/api/leads")) == ["Alpha One", "Alpha Two"]
    assert two.bob.get("/api/leads").status_code == 403


def test_an_admin_adds_an_existing_person_changes_their_role_and_removes_them(two, world) -> None:  # type: ignore[no-untyped-def]
    added = two.bob.post("/api/agents/members", json={"email": "Carl@example.com"})
    assert added.status_code == 201
    assert added.get_json()["role"] == "agent" and added.get_json()["id"] == two.carl_id
    assert (
        two.bob.post("/api/agents/members", json={"email": "carl@example.com"}).status_code == 409
    )
    assert (
        two.bob.post("/api/agents/members", json={"email": "nobody@example.com"}).status_code == 404
    )
    # Carl now works in both: his requests name one.
    assert two.carl.get("/api/leads").status_code == 400
    # Bob gives him the unassigned lead of B, then makes him an admin there.
    lead = two.b_leads[0]
    assert (
        two.bob.post(f"/api/leads/{lead}/assign", json={"agent_id": two.carl_id}).status_code == 200
    )
    assert (
        two.bob.patch(f"/api/agents/{two.carl_id}", json={"role": "admin"}).get_json()["role"]
        == "admin"
    )
    in_b = two.header("beta")
    assert two.carl.get("/api/me", headers=in_b).get_json()["role"] == "admin"
    assert two.carl.get("/api/me", headers=two.header("default")).get_json()["role"] == "agent"
    # What is Carl's everywhere is not Bob's to change: Carl also works in A.
    for change in ({"name": "Charles"}, {"active": False}, {"password": "a-new-password"}):
        refused = two.bob.patch(f"/api/agents/{two.carl_id}", json=change)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == (
            "other_workspaces"
        )
    assert two.bob.post(f"/api/agents/{two.carl_id}/token").status_code == 403
    # Removed from B: his lead there is unassigned, he still works in A.
    removed = two.bob.delete(f"/api/agents/{two.carl_id}")
    assert removed.status_code == 200
    assert removed.get_json() == {"id": two.carl_id, "unassigned_leads": [lead]}
    assert two.bob.get(f"/api/leads/{lead}").get_json()["assigned_agent"] is None
    assert two.carl.get("/api/leads", headers=in_b).status_code == 403
    assert names(two.carl.get("/api/leads")) == ["Alpha One", "Alpha Two"]
    assert sorted(a["name"] for a in two.bob.get("/api/agents").get_json()["agents"]) == [
        "Ada",
        "Bob",
    ]


def test_the_last_admin_is_counted_per_workspace(two) -> None:  # type: ignore[no-untyped-def]
    # Ada is an admin in A, but B's only admin is Bob.
    demoted = two.bob.patch(f"/api/agents/{two.bob_id}", json={"role": "agent"})
    assert demoted.status_code == 409 and demoted.get_json()["error"]["code"] == "last_admin"
    assert two.bob.delete(f"/api/agents/{two.bob_id}").status_code == 409
    # Made an admin of B, Ada lets Bob step down there; A still has its admins.
    in_b = two.header("beta")
    assert two.bob.patch(f"/api/agents/{two.ada_id}", json={"role": "admin"}).status_code == 200
    assert two.ada.get("/api/me", headers=in_b).get_json()["role"] == "admin"
    assert two.bob.patch(f"/api/agents/{two.bob_id}", json={"role": "agent"}).status_code == 200
    assert two.bob.post("/api/agents", json={"name": "Eve"}).status_code == 403


def test_a_new_agent_belongs_to_the_workspace_of_the_request(two, session_factory) -> None:  # type: ignore[no-untyped-def]
    made = two.bob.post("/api/agents", json={"name": "Bea", "email": "bea@example.com"})
    assert made.status_code == 201
    bea = made.get_json()
    assert bea["role"] == "agent"
    listed = two.bob.get("/api/workspaces", headers={"Authorization": f"Bearer {bea['token']}"})
    assert [w["slug"] for w in listed.get_json()["workspaces"]] == ["beta"]
    assert "Bea" not in str(two.alan.get("/api/agents").get_json())
    # An email already used by someone anywhere is taken: add the person instead.
    taken = two.bob.post("/api/agents", json={"name": "Other", "email": "carl@example.com"})
    assert taken.status_code == 409
    with in_workspace(two.b), session_factory() as session:
        from store.agents import list_agents

        assert sorted(a.name for a in list_agents(session=session)) == ["Ada", "Bea", "Bob"]
