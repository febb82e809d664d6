"""A lost status needs its reason: the one rule every front end calls (`change_status`), the bulk
change, and the bot, which may never set it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.domain.errors import Invalid
from store.domain.policy import Policy, StatusPolicy
from store.domain.status import bulk_change_status, change_status, change_status_by_bot
from store.models import Agent, AuditEvent, Lead
from tests.domain.conftest import T0, make_policy

REASONS = ("Price too high", "Chose a competitor", "No budget")


@pytest.fixture
def lost_policy() -> Policy:
    base = make_policy()
    return make_policy(
        statuses=(
            *base.statuses,
            StatusPolicy("Closed Lost", terminal=True, asks_reason=True),
        ),
        lost_reasons=REASONS,
    )


def test_a_lost_status_without_a_reason_is_refused_and_nothing_changes(
    session: Session,
    agent: Callable[..., Agent],
    lead: Callable[..., Lead],
    lost_policy: Policy,
) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    for reason in (None, "", "   "):
        with pytest.raises(Invalid) as refused:
            change_status(
                found,
                "Closed Lost",
                by=sarah,
                session=session,
                policy=lost_policy,
                now=T0,
                reason=reason,
            )
        assert refused.value.field == "lost_reason"
        assert refused.value.code == "lost_reason_required"
        assert "Price too high; Chose a competitor; No budget" in refused.value.message
    with pytest.raises(Invalid, match="unknown lost reason 'the weather'"):
        change_status(
            found,
            "closed lost",
            by=sarah,
            session=session,
            policy=lost_policy,
            now=T0,
            reason="the weather",
        )
    assert found.status == "New" and found.lost_reason is None


def test_the_reason_and_note_are_kept_on_the_lead_and_audited_then_cleared(
    session: Session,
    agent: Callable[..., Agent],
    lead: Callable[..., Lead],
    lost_policy: Policy,
) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    change = change_status(
        found,
        "Closed Lost",
        by=sarah,
        session=session,
        policy=lost_policy,
        now=T0,
        reason="  chose A  competitor ",
        reason_note="  Went with SunCo,   cheaper install ",
    )
    assert change.new_status == "Closed Lost"
    assert (found.lost_reason, found.lost_note) == (
        "Chose a competitor",
        "Went with SunCo, cheaper install",
    )
    audited = {
        e.field: e.new_value
        for e in session.scalars(select(AuditEvent).where(AuditEvent.lead_id == found.id))
    }
    assert audited["lost_reason"] == "Chose a competitor"
    assert audited["lost_note"] == "Went with SunCo, cheaper install"
    # A new reason on the same status is a change too.
    again = change_status(
        found,
        "Closed Lost",
        by=sarah,
        session=session,
        policy=lost_policy,
        now=T0,
        reason="No budget",
    )
    assert not again.unchanged and found.lost_reason == "No budget" and found.lost_note is None
    # Reopened: the reason goes (the audit keeps it).
    change_status(found, "Interested", by=sarah, session=session, policy=lost_policy, now=T0)
    assert found.lost_reason is None and found.status == "Interested"


def test_other_statuses_ignore_a_reason(
    session: Session,
    agent: Callable[..., Agent],
    lead: Callable[..., Lead],
    lost_policy: Policy,
) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    change_status(
        found, "Lost", by=sarah, session=session, policy=lost_policy, now=T0, reason="No budget"
    )
    assert found.status == "Lost" and found.lost_reason is None


def test_bulk_refuses_before_touching_any_lead(
    session: Session,
    agent: Callable[..., Agent],
    lead: Callable[..., Lead],
    lost_policy: Policy,
) -> None:
    sarah = agent("Sarah")
    leads = [lead(sarah), lead(sarah)]
    with pytest.raises(Invalid):
        bulk_change_status(
            leads, "Closed Lost", by=sarah, session=session, policy=lost_policy, now=T0
        )
    assert [x.status for x in leads] == ["New", "New"]
    outcome = bulk_change_status(
        leads,
        "Closed Lost",
        by=sarah,
        session=session,
        policy=lost_policy,
        now=T0,
        reason="Price too high",
    )
    assert outcome.changed == 2
    assert {x.lost_reason for x in leads} == {"Price too high"}


def test_the_bot_never_sets_a_status_that_asks_for_a_reason(
    session: Session, lead: Callable[..., Lead], lost_policy: Policy
) -> None:
    found = lead()
    change = change_status_by_bot(found, "Closed Lost", session=session, policy=lost_policy, now=T0)
    assert change.unchanged and found.status == "New" and found.lost_reason is None
