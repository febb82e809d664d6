"""`leaddesk agents ... --workspace SLUG`: the team of one workspace."""

from __future__ import annotations

import json

from store import make_session_factory
from store.workspaces import memberships
from tests.workspace_support import second_workspace


def test_agents_are_added_to_and_listed_from_the_workspace_named(cli, db_engine):
    session_factory = make_session_factory(db_engine)
    with session_factory.begin() as session:
        beta = second_workspace(session)
    made = cli("agents", "add", "--name", "Bea", "--role", "admin", "--workspace", "beta", "--json")
    assert made.code == 0, made.err
    bea = json.loads(made.out)
    assert bea["role"] == "admin"
    assert cli("agents", "add", "--name", "Ann", "--json").code == 0
    with session_factory() as session:
        assert [(m.workspace_id, m.role) for m in memberships(bea["id"], session=session)] == [
            (beta, "admin")
        ]
    in_beta = json.loads(cli("agents", "list", "--workspace", "beta", "--json").out)
    assert [a["name"] for a in in_beta] == ["Bea"]
    in_first = json.loads(cli("agents", "list", "--json").out)
    assert [a["name"] for a in in_first] == ["Ann"]
    # Bea is not an agent of the first workspace: it cannot disable her.
    assert cli("agents", "disable", "Bea").code == 1
    assert cli("agents", "disable", "Bea", "--workspace", str(beta)).code == 0
    refused = cli("agents", "list", "--workspace", "nowhere")
    assert refused.code == 1 and "no workspace 'nowhere'" in refused.err
