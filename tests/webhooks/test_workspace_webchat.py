"""Web widget keys: each key opens its workspace's chat (no key: the first workspace's), a chat
session works only with its own workspace's key, and an unknown or disabled key is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Identity, Lead, Message
from store.sealed import new_secret_key
from store.tenancy import FIRST_WORKSPACE, in_workspace
from store.workspaces import create_workspace, find_workspace, set_active, set_connection
from tests.webhooks.support import make_settings
from webhooks.webchat import WIDGET_KEY_HEADER, identity_hash

KEY = new_secret_key()
PHONE = "(415) 555-0132"  # the same visitor on both businesses' sites
ACME_IDENTITY_SECRET = "acme-signs-its-visitors"


@dataclass
class Widgets:
    client: FlaskClient
    session_factory: sessionmaker[Session]
    acme: int
    beta: int
    acme_key: str
    beta_key: str

    def start(self, key: str | None, **known: Any) -> Any:
        headers = {WIDGET_KEY_HEADER: key} if key else {}
        return self.client.post("/api/chat/sessions", json=known, headers=headers)

    def session(self, key: str | None, **known: Any) -> str:
        response = self.start(key, **known)
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["session"])

    def say(self, key: str | None, token: str, text: str) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers[WIDGET_KEY_HEADER] = key
        return self.client.post("/api/chat/messages", json={"text": text}, headers=headers)

    def leads(self, workspace_id: int) -> list[tuple[str | None, str | None]]:
        with in_workspace(workspace_id), self.session_factory() as session:
            return [(lead.phone, lead.name) for lead in session.scalars(select(Lead))]

    def texts(self, workspace_id: int) -> list[str]:
        with in_workspace(workspace_id), self.session_factory() as session:
            return list(session.scalars(select(Message.text).order_by(Message.id)))


@pytest.fixture
def widgets(session_factory: sessionmaker[Session], make_app: Callable[..., Flask]) -> Widgets:
    with session_factory.begin() as session:
        acme = create_workspace("acme", "Acme Plumbing", session=session)
        beta = create_workspace("beta", "Beta Dental", session=session)
        acme_key = set_connection(
            acme,
            "web",
            None,
            {"identity_secret": ACME_IDENTITY_SECRET},
            session=session,
            key=KEY,
        ).account_id
        beta_key = set_connection(beta, "web", "beta-site-widget", session=session, key=KEY)
        ids = acme.id, beta.id
    app = make_app(make_settings(secret_key=KEY, webchat_secret="the-installs-own-secret"))
    return Widgets(app.test_client(), session_factory, *ids, acme_key, beta_key.account_id)


def test_each_widget_key_opens_its_own_workspaces_chat(widgets: Widgets) -> None:
    acme = widgets.session(widgets.acme_key, name="Dana Fox", phone=PHONE)
    beta = widgets.session(widgets.beta_key, name="Dana Fox", phone=PHONE)
    own = widgets.session(None, name="Dana Fox", phone=PHONE)
    assert widgets.say(widgets.acme_key, acme, "a leaking tap").status_code == 201
    assert widgets.say(widgets.beta_key, beta, "a toothache").status_code == 201
    assert widgets.say(None, own, "just browsing").status_code == 201
    # The same visitor is a lead of each business, each seeing only what was said to it.
    for workspace_id in (widgets.acme, widgets.beta, FIRST_WORKSPACE):
        assert widgets.leads(workspace_id) == [("+14155550132", "Dana Fox")]
    assert widgets.texts(widgets.acme) == ["a leaking tap"]
    assert widgets.texts(widgets.beta) == ["a toothache"]
    assert widgets.texts(FIRST_WORKSPACE) == ["just browsing"]


def test_a_session_of_one_workspace_does_not_work_with_another_key(widgets: Widgets) -> None:
    acme = widgets.session(widgets.acme_key)
    assert widgets.say(widgets.acme_key, acme, "hello").status_code == 201
    for other in (widgets.beta_key, None):
        answer = widgets.say(other, acme, "let me in")
        assert answer.status_code == 401
        headers = {"Authorization": f"Bearer {acme}"}
        if other:
            headers[WIDGET_KEY_HEADER] = other
        assert widgets.client.get("/api/chat/messages", headers=headers).status_code == 401
    assert widgets.texts(widgets.beta) == [] and widgets.texts(FIRST_WORKSPACE) == []
    headers = {"Authorization": f"Bearer {acme}", WIDGET_KEY_HEADER: widgets.acme_key}
    seen = widgets.client.get("/api/chat/messages", headers=headers).get_json()["messages"]
    assert [m["text"] for m in seen] == ["hello"]


def test_an_unknown_or_disabled_key_is_refused_with_a_clear_error(
    widgets: Widgets, session_factory: sessionmaker[Session]
) -> None:
    answer = widgets.start("wk_no-such-widget")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "unknown_widget_key"
    # The refusal still carries the CORS headers, so the widget on the site can read it.
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert WIDGET_KEY_HEADER in answer.headers["Access-Control-Allow-Headers"]
    with session_factory.begin() as session:
        found = find_workspace("beta", session=session)
        assert found is not None
        set_active(found, False, session=session)
    widgets.client.application.extensions["leaddesk_channels"].refresh()
    for path in ("/api/chat/config", "/api/chat/sessions"):
        method = widgets.client.get if path.endswith("config") else widgets.client.post
        answer = method(path, headers={WIDGET_KEY_HEADER: widgets.beta_key})
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == "widget_disabled"
    assert widgets.start(widgets.acme_key).status_code == 201


def test_a_workspace_signs_its_visitors_identities_with_its_own_secret(
    widgets: Widgets,
) -> None:
    identity = "customer-77@acme.example"
    signed = {"identity": identity, "identity_hash": identity_hash(identity, ACME_IDENTITY_SECRET)}
    assert widgets.start(widgets.acme_key, **signed).status_code == 201
    # The install's own secret signs for the first workspace only.
    theirs = identity_hash(identity, "the-installs-own-secret")
    refused = widgets.start(widgets.acme_key, identity=identity, identity_hash=theirs)
    assert refused.status_code == 400
    assert widgets.start(None, identity=identity, identity_hash=theirs).status_code == 201
    # A workspace without a secret of its own takes identities as claimed, never verified.
    assert (
        widgets.start(widgets.beta_key, identity=identity, identity_hash=theirs).status_code == 201
    )
    verified = {}
    for workspace_id in (widgets.acme, widgets.beta, FIRST_WORKSPACE):
        with in_workspace(workspace_id), widgets.session_factory() as session:
            verified[workspace_id] = session.scalars(
                select(Identity.external_id).where(Identity.external_id.startswith("signed:"))
            ).all()
    assert verified == {
        widgets.acme: [f"signed:{identity}"],
        widgets.beta: [],
        FIRST_WORKSPACE: [f"signed:{identity}"],
    }
