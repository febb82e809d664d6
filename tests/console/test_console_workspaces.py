"""The console in workspaces: a session works in its selected workspace (the agent's first until
they switch), with their role there; the switcher shows only to someone in several workspaces;
the live events of one workspace never reach a console on another; admins manage their own
workspace's team."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from store.models import Agent, Lead
from store.tenancy import in_workspace
from store.work import notify
from store.workspaces import find_workspace, set_active
from tests.console.conftest import Console
from tests.console.test_console_inbox import _next_events, _stream
from tests.workspace_support import MARK, TwoWorkspaces, two_workspaces


@pytest.fixture
def two(world, session_factory) -> TwoWorkspaces:  # type: ignore[no-untyped-def]
    return two_workspaces(world, session_factory)


def signed_in(app: Any, token: str) -> Console:
    console = Console(app.test_client())
    assert console.login(token=token).status_code == 302
    return console


def switch(console: Console, workspace: str) -> Any:
    return console.post("/console/workspace", {"workspace": workspace})


def test_the_switcher_changes_what_the_console_shows_and_the_role(app, two) -> None:  # type: ignore[no-untyped-def]
    ada = signed_in(app, two.ada.token)
    page = ada.get("/console/leads").text
    assert 'action="/console/workspace"' in page and 'value="beta"' in page
    assert "Alpha One" in page and "Alpha Two" in page and MARK not in page.lower()
    assert 'href="/console/agents"' in page  # an admin here
    assert ada.get("/console/agents").status_code == 200

    moved = switch(ada, "beta")
    assert moved.status_code == 302 and moved.headers["Location"].endswith("/console/leads")
    page = ada.get("/console/leads").text
    # An agent in B: the unassigned lead, not Bob's; nothing of A.
    assert f"{MARK.title()} One" in page and f"{MARK.title()} Two" not in page
    assert "Alpha" not in page
    assert 'href="/console/agents"' not in page
    assert ada.get("/console/agents").status_code == 403
    assert ada.get("/console/settings").status_code == 403
    inbox = ada.get("/console/inbox?tab=unassigned").text
    assert f"{MARK.title()} One" in inbox and "Alpha" not in inbox
    dashboard = ada.get("/console/dashboard").text
    assert "1 leads (yours and unassigned)" in dashboard and "Alpha" not in dashboard
    # A's lead is not found from B, and B's from A.
    assert ada.get(f"/console/leads/{two.a_leads[0]}").status_code == 404
    assert switch(ada, "default").status_code == 302
    assert ada.get(f"/console/leads/{two.b_leads[0]}").status_code == 404
    assert "Alpha One" in ada.get("/console/leads").text
    assert "2 leads, archived ones aside" in ada.get("/console/dashboard").text


def test_the_choice_is_the_sessions_own(app, two) -> None:  # type: ignore[no-untyped-def]
    here = signed_in(app, two.ada.token)
    there = signed_in(app, two.ada.token)
    switch(there, "beta")
    assert "Alpha One" in here.get("/console/leads").text
    assert f"{MARK.title()} One" in there.get("/console/leads").text


def test_only_your_own_workspaces_can_be_switched_to(app, two) -> None:  # type: ignore[no-untyped-def]
    carl = signed_in(app, two.carl.token)
    page = carl.get("/console/leads").text
    assert 'action="/console/workspace"' not in page  # one workspace: no switcher
    for named in ("beta", "2", "nowhere"):
        assert switch(carl, named).status_code == 404
    assert MARK not in carl.get("/console/leads").text.lower()
    # The switcher is a form like the others: no CSRF token, no switch.
    ada = signed_in(app, two.ada.token)
    refused = ada.client.post("/console/workspace", data={"workspace": "beta"})
    assert refused.status_code == 400
    assert "Alpha One" in ada.get("/console/leads").text


def test_live_events_of_another_workspace_do_not_reach_a_console(  # type: ignore[no-untyped-def]
    app, two, world, session_factory
) -> None:
    ada = signed_in(app, two.ada.token)  # on A, an admin
    start = ada.get("/console/events/poll").get_json()["last_id"]

    def later() -> None:
        with in_workspace(two.b):
            world.customer_message(two.b_leads[0], f"{MARK} again", channel="whatsapp")
        world.customer_message(two.a_leads[0], "alpha again", channel="whatsapp")

    threading.Timer(0.2, later).start()
    seen: list[dict[str, Any]] = []
    after = start
    for _ in range(10):
        polled = ada.get(f"/console/events/poll?after={after}&wait=2").get_json()
        seen += polled["events"]
        after = polled["last_id"]
        if any(e["lead_id"] == two.a_leads[0] for e in seen):
            break
    assert [(e["kind"], e["lead_id"]) for e in seen] == [("message", two.a_leads[0])]

    # On B she hears B's, not A's.
    switch(ada, "beta")
    start = ada.get("/console/events/poll").get_json()["last_id"]
    world.customer_message(two.a_leads[0], "alpha once more", channel="whatsapp")
    # A notification addressed to her, but in A: not for a console on B.
    with session_factory.begin() as session:
        lead = session.get(Lead, two.a_leads[0])
        notify(session.get(Agent, two.ada_id), lead, "alpha needs you", session=session)
    with in_workspace(two.b):
        world.customer_message(two.b_leads[0], f"{MARK} once more", channel="whatsapp")
    polled = ada.get(f"/console/events/poll?after={start}&wait=1").get_json()
    assert [(e["kind"], e["lead_id"]) for e in polled["events"]] == [("message", two.b_leads[0])]


def test_an_admin_manages_the_team_of_their_own_workspace(app, two) -> None:  # type: ignore[no-untyped-def]
    bob = signed_in(app, two.bob.token)
    team = bob.get("/console/agents").text
    # The team table lists each member's email.
    assert "ada@example.com" in team and "bob@example.com" in team
    assert "carl@example.com" not in team and "alan@example.com" not in team
    added = bob.post("/console/agents/members", {"email": "carl@example.com", "role": "agent"})
    assert added.status_code == 302
    assert "carl@example.com" in bob.get("/console/agents").text
    # Carl also works in A: his account is not Bob's to disable or re-key.
    bob.post(f"/console/agents/{two.carl_id}/disable")
    page = bob.get("/console/agents").text
    assert "also works in other workspaces" in page
    assert two.carl.get("/api/me").status_code == 400  # still active: asked for a workspace
    assert bob.post(f"/console/agents/{two.carl_id}/role", {"role": "admin"}).status_code == 302
    assert two.carl.get("/api/me", headers=two.header("beta")).get_json()["role"] == "admin"
    assert bob.post(f"/console/agents/{two.carl_id}/remove").status_code == 302
    assert "carl@example.com" not in bob.get("/console/agents").text
    assert two.carl.get("/api/me").get_json()["role"] == "agent"  # still in A
    # Bob is B's last admin: he stays one.
    bob.post(f"/console/agents/{two.bob_id}/role", {"role": "agent"})
    assert "last active admin" in bob.get("/console/agents").text
    assert two.bob.get("/api/me").get_json()["role"] == "admin"
    # Alan (an admin of A only) does not see or change B's people.
    alan = signed_in(app, two.alan.token)
    assert "bob@example.com" not in alan.get("/console/agents").text
    assert alan.post(f"/console/agents/{two.bob_id}/disable").status_code == 404
    assert alan.post(f"/console/agents/{two.bob_id}/remove").status_code == 404
    assert two.bob.get("/api/me").status_code == 200


def test_the_event_stream_follows_the_sessions_workspace(app, two, world) -> None:  # type: ignore[no-untyped-def]
    ada = signed_in(app, two.ada.token)
    switch(ada, "beta")
    stream = _stream(ada.client)

    def later() -> None:
        world.customer_message(two.a_leads[0], "alpha first", channel="whatsapp")
        with in_workspace(two.b):
            world.customer_message(two.b_leads[0], f"{MARK} second", channel="whatsapp")

    threading.Timer(0.2, later).start()
    events = _next_events(stream, 1)
    stream.close()
    assert [(kind, data["lead_id"]) for _id, kind, data in events] == [("message", two.b_leads[0])]


def test_someone_whose_only_workspace_is_disabled_is_told_at_sign_in(
    app, two, session_factory
) -> None:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        beta = find_workspace("beta", session=session)
        assert beta is not None
        set_active(beta, False, session=session)
    bob = Console(app.test_client())
    refused = bob.login(token=two.bob.token)
    assert refused.status_code == 401
    assert "not a member of any active workspace" in refused.text
    # Ada still works in the first workspace.
    assert signed_in(app, two.ada.token).get("/console/leads").status_code == 200
