"""Channel routing across workspaces: each business number, Page or web widget key lands its
events in its own workspace, replies go out with that workspace's account and token, and an
account of nobody here (or of a disabled workspace) is acknowledged and dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from store.messages import record_outbound
from store.models import Conversation, Identity, Inbox, Lead, Message
from store.sealed import SealError, new_secret_key, seal, unseal
from store.tenancy import FIRST_WORKSPACE, all_workspaces, in_workspace
from store.workspaces import (
    WorkspaceError,
    create_workspace,
    find_workspace,
    list_connections,
    route,
    set_active,
    set_connection,
)
from tests.fakes.fake_graph import FakeGraph
from tests.webhooks.meta_payloads import (
    PAGE_ID,
    dumps,
    fb_body,
    fb_text,
    wa_body,
    wa_change,
    wa_contact,
    wa_message,
)
from tests.webhooks.support import APP_SECRET, VERIFY_TOKEN, make_settings, signed_post
from webhooks.channels import ChannelDirectory
from webhooks.graph import MetaGraph
from webhooks.outbound import ChannelOutbox

KEY = new_secret_key()
CUSTOMER = "16505551234"  # the same person writes to both businesses
ACME_NUMBER, BETA_NUMBER = "111000111", "222000222"
BETA_APP_SECRET = "beta-own-app-secret"


@dataclass
class Desk:
    app: Flask
    session_factory: sessionmaker[Session]
    acme: int
    beta: int
    settings: Any

    def whatsapp(self, number: str, body: str, *, secret: str = APP_SECRET, **kw: Any) -> Any:
        payload = wa_body(_wa_change(number, body, **kw))
        return signed_post(self.app.test_client(), "/webhooks/whatsapp", dumps(payload), secret)

    def leads(self, workspace_id: int) -> list[Lead]:
        with in_workspace(workspace_id), self.session_factory() as session:
            return list(session.scalars(select(Lead).order_by(Lead.id)))

    def texts(self, workspace_id: int) -> list[str]:
        with in_workspace(workspace_id), self.session_factory() as session:
            return list(session.scalars(select(Message.text).order_by(Message.id)))


def _wa_change(
    number: str, body: str, *, wa_id: str = CUSTOMER, name: str = "Sam Rivera"
) -> dict[str, Any]:
    change = wa_change(
        contacts=[wa_contact(wa_id, name)],
        messages=[wa_message("text", wa_id=wa_id, body=body)],
    )
    change["value"]["metadata"]["phone_number_id"] = number
    return change


@pytest.fixture
def make_desk(
    session_factory: sessionmaker[Session], make_app: Callable[..., Flask], graph: FakeGraph
) -> Callable[..., Desk]:
    def build(**settings: Any) -> Desk:
        settings.setdefault("secret_key", KEY)
        settings.setdefault("meta_graph_url", graph.url)
        config = make_settings(**settings)
        with session_factory.begin() as session:
            acme = create_workspace("acme", "Acme Plumbing", session=session)
            beta = create_workspace("beta", "Beta Dental", session=session)
            set_connection(
                acme,
                "whatsapp",
                ACME_NUMBER,
                {"access_token": "tok-acme"},
                session=session,
                key=KEY,
            )
            set_connection(
                beta,
                "whatsapp",
                BETA_NUMBER,
                {"access_token": "tok-beta", "app_secret": BETA_APP_SECRET},
                session=session,
                key=KEY,
            )
            ids = acme.id, beta.id
        return Desk(make_app(config), session_factory, *ids, config)

    return build


@pytest.fixture
def desk(make_desk: Callable[..., Desk]) -> Desk:
    return make_desk()


def test_the_same_customer_writing_to_two_businesses_is_two_leads_answered_by_each(
    desk: Desk, graph: FakeGraph
) -> None:
    assert desk.whatsapp(ACME_NUMBER, "Is a plumber free today?").get_json()["stored"] == 1
    # Beta signs its webhooks with its own Meta app's secret.
    answer = desk.whatsapp(BETA_NUMBER, "Can I book a cleaning?", secret=BETA_APP_SECRET)
    assert answer.status_code == 200 and answer.get_json()["stored"] == 1

    (acme_lead,) = desk.leads(desk.acme)
    (beta_lead,) = desk.leads(desk.beta)
    assert acme_lead.phone == beta_lead.phone == f"+{CUSTOMER}"
    assert (acme_lead.workspace_id, beta_lead.workspace_id) == (desk.acme, desk.beta)
    assert acme_lead.id != beta_lead.id
    assert desk.texts(desk.acme) == ["Is a plumber free today?"]
    assert desk.texts(desk.beta) == ["Can I book a cleaning?"]
    assert desk.leads(FIRST_WORKSPACE) == []

    # Each business answers from its own number with its own token, whoever hands the reply over.
    replies = {}
    for workspace_id, words in ((desk.acme, "A plumber at 3pm"), (desk.beta, "Tuesday at 10?")):
        with in_workspace(workspace_id), desk.session_factory.begin() as session:
            conversation = session.scalars(select(Conversation)).one()
            replies[workspace_id] = record_outbound(
                conversation, words, session=session, external_id=CUSTOMER
            ).id
    outbox = ChannelOutbox(
        session_factory=desk.session_factory, settings=desk.settings, sleep=lambda s: None
    )
    outbox.deliver([replies[desk.acme], replies[desk.beta]])
    sent = [(r.path, r.headers["Authorization"], r.json["text"]["body"]) for r in graph.requests]
    assert sent == [
        (f"/v21.0/{ACME_NUMBER}/messages", "Bearer tok-acme", "A plumber at 3pm"),
        (f"/v21.0/{BETA_NUMBER}/messages", "Bearer tok-beta", "Tuesday at 10?"),
    ]
    for workspace_id, reply_id in replies.items():
        with in_workspace(workspace_id), desk.session_factory() as session:
            message = session.get(Message, reply_id)
            assert message is not None and message.delivery_status == "sent"


def test_status_updates_reach_only_the_workspace_of_their_number(
    desk: Desk, graph: FakeGraph
) -> None:
    desk.whatsapp(ACME_NUMBER, "hello acme")
    desk.whatsapp(BETA_NUMBER, "hello beta", secret=BETA_APP_SECRET)
    ids = {}
    for workspace_id in (desk.acme, desk.beta):
        with in_workspace(workspace_id), desk.session_factory.begin() as session:
            conversation = session.scalars(select(Conversation)).one()
            reply = record_outbound(conversation, "hi", session=session, external_id=CUSTOMER)
            reply.delivery_status = "sent"
            reply.channel_message_id = "wamid.SAME"  # ids are unique per workspace only
            session.flush()
            ids[workspace_id] = reply.id
    change = wa_change(statuses=[{"id": "wamid.SAME", "status": "read", "recipient_id": CUSTOMER}])
    change["value"]["metadata"]["phone_number_id"] = BETA_NUMBER
    response = signed_post(
        desk.app.test_client(), "/webhooks/whatsapp", dumps(wa_body(change)), BETA_APP_SECRET
    )
    assert response.get_json()["statuses"] == 1
    states = {}
    for workspace_id, reply_id in ids.items():
        with in_workspace(workspace_id), desk.session_factory() as session:
            states[workspace_id] = session.get(Message, reply_id).delivery_status  # type: ignore[union-attr]
    assert states == {desk.acme: "sent", desk.beta: "read"}


def test_a_batch_for_two_numbers_lands_each_entry_in_its_own_workspace(desk: Desk) -> None:
    payload = wa_body(
        _wa_change(ACME_NUMBER, "to acme", wa_id="16505550001"),
        _wa_change(BETA_NUMBER, "to beta", wa_id="16505550002"),
        entries=2,
    )
    # Acme has no app secret of its own: META_APP_SECRET signs for it; Beta's events need Beta's.
    client = desk.app.test_client()
    response = signed_post(client, "/webhooks/whatsapp", dumps(payload), APP_SECRET)
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1
    assert desk.texts(desk.acme) == ["to acme"] and desk.texts(desk.beta) == []

    # A batch whose apps share one secret: both land, each in its own workspace.
    with desk.session_factory.begin() as session:
        beta = find_workspace("beta", session=session)
        assert beta is not None
        set_connection(
            beta, "whatsapp", BETA_NUMBER, {"access_token": "tok-beta"}, session=session, key=KEY
        )
    desk.app.extensions["leaddesk_channels"].refresh()
    payload = wa_body(
        _wa_change(ACME_NUMBER, "again acme", wa_id="16505550001"),
        _wa_change(BETA_NUMBER, "again beta", wa_id="16505550002"),
        entries=2,
    )
    response = signed_post(client, "/webhooks/whatsapp", dumps(payload), APP_SECRET)
    assert response.get_json()["stored"] == 2
    assert desk.texts(desk.acme) == ["to acme", "again acme"]
    assert desk.texts(desk.beta) == ["again beta"]
    assert [lead.phone for lead in desk.leads(desk.beta)] == ["+16505550002"]


def test_a_wrong_signature_is_refused_whichever_secret_applies(desk: Desk) -> None:
    assert desk.whatsapp(BETA_NUMBER, "forged", secret="not-the-secret").status_code == 403
    # Beta's events are not accepted under the install's secret when Beta has its own.
    answer = desk.whatsapp(BETA_NUMBER, "forged too", secret=APP_SECRET)
    assert answer.status_code == 403
    assert desk.whatsapp(ACME_NUMBER, "forged", secret=BETA_APP_SECRET).status_code == 403
    assert desk.texts(desk.acme) == [] and desk.texts(desk.beta) == []


def test_an_unknown_number_is_acknowledged_and_stored_nowhere(
    make_desk: Callable[..., Desk], caplog: pytest.LogCaptureFixture
) -> None:
    # The install's own number is named (WHATSAPP_PHONE_NUMBER_ID): any other is nobody's here.
    desk = make_desk(whatsapp_phone_number_id="333000333")
    with caplog.at_level(logging.WARNING, logger="webhooks.meta"):
        answer = desk.whatsapp("999000999", "who am I writing to?")
    assert answer.status_code == 200
    assert answer.get_json()["stored"] == 0 and answer.get_json()["ignored"] == 1
    with desk.session_factory() as session:
        stored = select(func.count()).select_from(Inbox).execution_options(**all_workspaces())
        assert session.scalar(stored) == 0
    for workspace_id in (FIRST_WORKSPACE, desk.acme, desk.beta):
        assert desk.leads(workspace_id) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not ours" in logged and CUSTOMER not in logged and "who am I" not in logged


def test_a_disabled_workspaces_events_are_dropped(desk: Desk) -> None:
    with desk.session_factory.begin() as session:
        acme = find_workspace("acme", session=session)
        assert acme is not None
        set_active(acme, False, session=session)
    answer = desk.whatsapp(ACME_NUMBER, "anyone there?")
    assert answer.status_code == 200 and answer.get_json()["stored"] == 0
    assert desk.leads(desk.acme) == [] and desk.leads(FIRST_WORKSPACE) == []


def test_the_first_workspace_keeps_the_environments_number_and_page(
    make_desk: Callable[..., Desk],
) -> None:
    desk = make_desk(whatsapp_phone_number_id="333000333", messenger_page_id=PAGE_ID)
    assert desk.whatsapp("333000333", "for the install's own number").get_json()["stored"] == 1
    assert desk.whatsapp(ACME_NUMBER, "for acme").get_json()["stored"] == 1
    assert desk.whatsapp("444000444", "for nobody").get_json()["stored"] == 0
    response = signed_post(
        desk.app.test_client(), "/webhooks/messenger", dumps(fb_body(fb_text("page message")))
    )
    assert response.get_json()["stored"] == 1
    assert desk.texts(FIRST_WORKSPACE) == ["for the install's own number", "page message"]
    assert desk.texts(desk.acme) == ["for acme"]


def test_routing_rules(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        acme = create_workspace("acme", "Acme", session=session)
        # Nothing connected, nothing in the environment: everything is the first workspace's.
        assert route("whatsapp", "1", session=session, env_account=None) == FIRST_WORKSPACE
        assert route("whatsapp", None, session=session, env_account=None) == FIRST_WORKSPACE
        set_connection(acme, "whatsapp", "1", session=session, key=None)
        assert route("whatsapp", "1", session=session, env_account=None) == acme.id
        # Another account is still the first workspace's while it names none.
        assert route("whatsapp", "2", session=session, env_account=None) == FIRST_WORKSPACE
        assert route("whatsapp", "2", session=session, env_account="3") is None
        assert route("whatsapp", "3", session=session, env_account="3") == FIRST_WORKSPACE
        first = find_workspace(FIRST_WORKSPACE, session=session)
        assert first is not None
        set_connection(first, "whatsapp", "4", session=session, key=None)
        assert route("whatsapp", "2", session=session, env_account=None) is None
        assert route("messenger", "1", session=session, env_account=None) == FIRST_WORKSPACE
        set_active(acme, False, session=session)
        assert route("whatsapp", "1", session=session, env_account=None) is None
        with pytest.raises(WorkspaceError, match="another workspace"):
            set_connection(first, "whatsapp", "1", session=session, key=None)


def test_credentials_are_stored_encrypted_and_listed_by_name_only(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        acme = create_workspace("acme", "Acme", session=session)
        with pytest.raises(SealError, match="LEADDESK_SECRET_KEY is not set"):
            set_connection(acme, "whatsapp", "1", {"access_token": "t"}, session=session, key=None)
        set_connection(
            acme,
            "whatsapp",
            "1",
            {"access_token": "EAAG-secret-token-123", "app_secret": "s3cr3t-app"},
            session=session,
            key=KEY,
        )
        widget = set_connection(acme, "web", None, session=session, key=None)
        assert widget.account_id.startswith("wk_") and len(widget.account_id) > 20
        listed = list_connections(acme.id, session=session, key=KEY)
        sealed_listing = list_connections(acme.id, session=session)
    with session_factory() as session:
        raw = session.execute(text("SELECT secrets FROM channel_connections")).scalars().all()
    assert not any("EAAG-secret-token-123" in (value or "") for value in raw)
    assert not any("s3cr3t-app" in (value or "") for value in raw)
    (sealed,) = [value for value in raw if value]
    assert unseal(sealed, KEY) == {
        "access_token": "EAAG-secret-token-123",
        "app_secret": "s3cr3t-app",
    }
    with pytest.raises(SealError, match="do not open"):
        unseal(sealed, new_secret_key())
    assert [(c.channel, c.credentials) for c in listed] == [
        ("web", ()),
        ("whatsapp", ("access_token", "app_secret")),
    ]
    assert [c.credentials for c in sealed_listing] == [(), ("sealed",)]
    # Any long enough secret works (an install's existing LEADDESK_SECRET_KEY), a short one not.
    assert unseal(seal({"a": "b"}, "an existing flask secret"), "an existing flask secret") == {
        "a": "b"
    }
    with pytest.raises(SealError, match="at least 16"):
        seal({"a": "b"}, "short")


def test_a_workspaces_own_verify_token_verifies_its_subscription(
    desk: Desk, session_factory: sessionmaker[Session], make_app: Callable[..., Flask]
) -> None:
    with session_factory.begin() as session:
        beta = find_workspace("beta", session=session)
        assert beta is not None
        set_connection(
            beta,
            "messenger",
            "beta-page",
            {"access_token": "t", "verify_token": "beta-verify"},
            session=session,
            key=KEY,
        )
    client = make_app(desk.settings).test_client()
    for token, status in ((VERIFY_TOKEN, 200), ("beta-verify", 200), ("guess", 403)):
        query = f"hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42"
        assert client.get(f"/webhooks/messenger?{query}").status_code == status
    # The Page's events are Beta's.
    payload = fb_body(fb_text("hello beta page"))
    payload["entry"][0]["id"] = "beta-page"
    assert signed_post(client, "/webhooks/messenger", dumps(payload)).get_json()["stored"] == 1
    assert desk.texts(desk.beta) == ["hello beta page"]


def test_pending_replies_of_every_active_workspace_are_resent_in_their_own(
    desk: Desk, graph: FakeGraph
) -> None:
    desk.whatsapp(ACME_NUMBER, "hello acme")
    desk.whatsapp(BETA_NUMBER, "hello beta", secret=BETA_APP_SECRET)
    for workspace_id in (desk.acme, desk.beta):
        with in_workspace(workspace_id), desk.session_factory.begin() as session:
            conversation = session.scalars(select(Conversation)).one()
            record_outbound(
                conversation,
                f"left by a crash {workspace_id}",
                session=session,
                external_id=CUSTOMER,
            )
    with desk.session_factory.begin() as session:
        beta = find_workspace("beta", session=session)
        assert beta is not None
        set_active(beta, False, session=session)
    outbox = ChannelOutbox(
        session_factory=desk.session_factory, settings=desk.settings, sleep=lambda s: None
    )
    assert outbox.resend_pending() == 1
    assert [(r.path, r.headers["Authorization"]) for r in graph.requests] == [
        (f"/v21.0/{ACME_NUMBER}/messages", "Bearer tok-acme")
    ]


def test_inbox_rows_carry_the_workspace_the_number_routed_to(desk: Desk) -> None:
    # The drain runs inside the request in tests; the inbox row keeps where it was routed.
    desk.whatsapp(BETA_NUMBER, "hi", secret=BETA_APP_SECRET)
    with desk.session_factory() as session:
        rows = session.execute(
            select(Inbox.workspace_id, Inbox.channel).execution_options(**all_workspaces())
        ).all()
        identities = session.execute(
            select(Identity.workspace_id).execution_options(**all_workspaces())
        ).all()
    assert [tuple(r) for r in rows] == [(desk.beta, "whatsapp")]
    assert [tuple(r) for r in identities] == [(desk.beta,)]


def test_graph_reads_use_the_workspaces_own_token(desk: Desk, graph: FakeGraph) -> None:
    graph.profiles["psid-9"] = {"first_name": "Kim", "last_name": "Lee"}
    graph.tokens = {"tok-acme-page"}
    with desk.session_factory.begin() as session:
        acme = find_workspace("acme", session=session)
        assert acme is not None
        page_token = {"access_token": "tok-acme-page"}
        set_connection(acme, "messenger", "acme-page", page_token, session=session, key=KEY)
    reader = MetaGraph(
        desk.settings, channels=ChannelDirectory(desk.session_factory, desk.settings)
    )
    try:
        with in_workspace(desk.acme):
            assert reader.profile_name("messenger", "psid-9") == "Kim Lee"
        # Beta has no Page: nothing is read for it, and Acme's answer is not handed to it.
        with in_workspace(desk.beta):
            assert reader.profile_name("messenger", "psid-9") is None
    finally:
        reader.close()
    assert [r.headers["Authorization"] for r in graph.requests] == ["Bearer tok-acme-page"]
