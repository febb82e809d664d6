"""The inbox's insert (`store.inbox.enqueue`), which runs on the driver's cursor: what it writes
reads back through SQLAlchemy as the ORM would have written it, a redelivery is new once, and a
driver's error or an event that is not JSON is raised as SQLAlchemy raises it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from store.inbox import InboxEvent, enqueue
from store.models import Inbox
from store.tenancy import FIRST_WORKSPACE

NOW = datetime(2026, 3, 1, 9, 30, 15, 250_000, tzinfo=UTC)


def _event(
    key: str | None, text_: str = "Hola, ¿cuánto cuesta? ☀️", **changes: object
) -> InboxEvent:
    fields: dict[str, object] = {
        "channel": "whatsapp",
        "kind": "message",
        "dedupe_key": key,
        "event": {"text": text_, "payload": {"n": [1, 2.5, None, True]}, "sent": {"$dt": "x"}},
    }
    fields.update(changes)
    return InboxEvent(**fields)  # type: ignore[arg-type]


def test_rows_read_back_as_written_and_a_redelivery_is_new_once(db_engine: Engine) -> None:
    earlier = NOW - timedelta(minutes=5)
    events = [
        _event("wamid.1"),
        _event("wamid.2", received_at=earlier),
        _event("wamid.1"),  # twice in one batch: new once
        _event(None, kind="status"),  # no key: always stored, not returned
    ]
    with db_engine.begin() as connection:
        new = enqueue(events, connection=connection, now=NOW)
    assert new == [("whatsapp", "wamid.1"), ("whatsapp", "wamid.2")]
    with db_engine.begin() as connection:
        again = enqueue([_event("wamid.2"), _event("wamid.3")], connection=connection, now=NOW)
    assert again == [("whatsapp", "wamid.3")]
    with db_engine.connect() as connection:
        rows = connection.execute(select(Inbox).order_by(Inbox.id)).all()
    assert [(r.dedupe_key, r.kind, r.attempts, r.processed_at) for r in rows] == [
        ("wamid.1", "message", 0, None),
        ("wamid.2", "message", 0, None),
        (None, "status", 0, None),
        ("wamid.3", "message", 0, None),
    ]
    assert [r.received_at for r in rows] == [NOW, earlier, NOW, NOW]
    assert all(r.event == events[0].event for r in rows)
    assert {r.workspace_id for r in rows} == {FIRST_WORKSPACE}


def test_a_batch_is_one_statement_in_the_callers_transaction(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        with connection.begin() as transaction:
            enqueue([_event("wamid.9"), _event("wamid.10")], connection=connection, now=NOW)
            transaction.rollback()
        assert connection.scalar(text("SELECT COUNT(*) FROM inbox")) == 0


def test_a_driver_error_is_sqlalchemys_and_an_event_not_json_a_statement_error(
    db_engine: Engine,
) -> None:
    secret = "call me on +16505550123"
    with pytest.raises(IntegrityError) as raised, db_engine.begin() as connection:
        # A row without a channel: NOT NULL refuses it.
        enqueue([_event("wamid.1", secret, channel=None)], connection=connection, now=NOW)
    # The statement's parameters are not in the message (PostgreSQL's own detail may quote the
    # row, as it would for any statement).
    assert "[parameters:" not in str(raised.value)
    assert raised.value.statement is not None and "INSERT INTO inbox" in raised.value.statement
    with pytest.raises(StatementError), db_engine.begin() as connection:
        enqueue([_event("wamid.2", event={"odd": object()})], connection=connection, now=NOW)
    with db_engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM inbox")) == 0
