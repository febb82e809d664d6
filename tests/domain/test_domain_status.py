"""Status changes by a person and by the bot: lock, AI behaviour, action, visibility."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.domain.errors import Conflict, Invalid, LeadLocked, NotAllowed
from store.domain.status import (
    bulk_change_status,
    change_status,
    change_status_by_bot,
    convert,
    quiet_for_status,
    reopen,
)
from store.models import AuditEvent, WorkspaceMember
from store.tenancy import in_workspace
from tests.domain.conftest import T0, Hours, make_policy, notes_for


def test_setting_the_status_a_lead_has_changes_nothing(session, policy, agent, lead) -> None:
    sarah = agent("Sarah")
    found = lead(sarah, status="Interested")
    change = change_status(found, "interested", by=sarah, session=session, policy=policy, now=T0)
    assert change.unchanged and change.new_status == "Interested"


def test_an_unknown_status_is_invalid_and_lists_the_choices(session, policy, agent, lead) -> None:
    sarah = agent("Sarah")
    with pytest.raises(Invalid, match="use one of: New, Interested") as caught:
        change_status(lead(sarah), "Gone", by=sarah, session=session, policy=policy, now=T0)
    assert (caught.value.code, caught.value.field) == ("unknown_status", "status")


def test_a_locking_status_makes_the_lead_read_only_until_an_admin_reopens_it(
    session, policy, agent, lead
) -> None:
    sarah, boss = agent("Sarah"), agent("Boss", role="admin")
    found = lead(sarah)
    change = change_status(found, "Won", by=sarah, session=session, policy=policy, now=T0)
    assert change.locked and found.locked and found.converted_at == T0
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.lead_id == found.id))
    assert "convert" in list(actions)
    with pytest.raises(LeadLocked, match="read-only"):
        change_status(found, "New", by=sarah, session=session, policy=policy, now=T0)
    with pytest.raises(NotAllowed, match="only an admin"):
        reopen(found, by=sarah, session=session)
    reopen(found, by=boss, session=session)
    assert not found.locked
    with pytest.raises(Conflict, match="not locked") as caught:
        reopen(found, by=boss, session=session)
    assert caught.value.code == "not_locked"
    # Setting the locking status again on a reopened lead locks it again.
    assert change_status(found, "Won", by=boss, session=session, policy=policy, now=T0).locked
    assert found.locked


def test_the_lock_comes_from_the_configuration_not_the_name(session, agent, lead) -> None:
    sarah = agent("Sarah")
    policy = make_policy()
    found = lead(sarah)
    change = change_status(found, "Lost", by=sarah, session=session, policy=policy, now=T0)
    assert not change.locked and not found.locked
    converted = convert(
        lead(sarah), by=sarah, session=session, policy=policy, now=T0, note="signed"
    )
    assert converted.new_status == "Won" and converted.locked
    without = make_policy(statuses=policy.statuses[:-1])
    with pytest.raises(Conflict, match="locks: true"):
        convert(lead(sarah), by=sarah, session=session, policy=without, now=T0)


def test_a_pause_status_without_its_own_minutes_pauses_for_the_default(
    session, policy, agent, lead
) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    change = change_status(found, "Callback", by=sarah, session=session, policy=policy, now=T0)
    assert change.paused_minutes == 90 and found.ai_paused_until == T0 + timedelta(minutes=90)
    assert found.ai_pause_reason == "status: Callback"
    other = lead(sarah)
    change = change_status(other, "Follow Up", by=sarah, session=session, policy=policy, now=T0)
    assert change.paused_minutes == 45


def test_a_stop_status_stops_the_bot_and_a_pause_never_shortens_it(
    session, policy, agent, lead
) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    assert change_status(found, "Lost", by=sarah, session=session, policy=policy, now=T0).stopped
    assert found.ai_stopped
    boss = agent("Boss", role="admin")
    change = change_status(found, "Callback", by=boss, session=session, policy=policy, now=T0)
    assert change.paused_minutes is None and found.ai_stopped and found.ai_paused_until is None


def test_auto_assign_gives_the_lead_to_the_agent_who_sets_it(session, policy, agent, lead) -> None:
    sarah = agent("Sarah")
    found = lead()
    change = change_status(found, "Follow Up", by=sarah, session=session, policy=policy, now=T0)
    assert change.assigned_to is sarah and found.assigned_agent_id == sarah.id
    assert notes_for(session, sarah) == []


def test_auto_assign_by_an_admin_goes_to_the_next_available_agent(
    session, policy, agent, lead
) -> None:
    boss, mike = agent("Boss", role="admin"), agent("Mike")
    lead(boss)  # the admin holds more open leads than Mike
    found = lead()
    change = change_status(found, "Follow Up", by=boss, session=session, policy=policy, now=T0)
    assert change.assigned_to is mike and change.notified == (mike.id,)
    [note] = notes_for(session, mike)
    assert note.text == f"Boss assigned {found.name} to you" and note.kind == "assigned"


def test_an_inactive_agent_setting_auto_assign_does_not_take_the_lead(
    session, policy, agent, lead
) -> None:
    gone, mike = agent("Gone", active=False), agent("Mike")
    found = lead()
    change = change_status(found, "Follow Up", by=gone, session=session, policy=policy, now=T0)
    assert change.assigned_to is mike


def test_notify_tells_the_owner_of_someone_elses_change(session, policy, agent, lead) -> None:
    sarah, boss = agent("Sarah"), agent("Boss", role="admin")
    found = lead(sarah)
    change_status(found, "Interested", by=boss, session=session, policy=policy, now=T0)
    [note] = notes_for(session, sarah)
    assert note.text == f"Boss set {found.name} to Interested" and note.kind == "status"
    other = lead(sarah)
    change_status(other, "Interested", by=sarah, session=session, policy=policy, now=T0)
    change_status(other, "Lost", by=boss, session=session, policy=policy, now=T0)  # terminal
    assert len(notes_for(session, sarah)) == 1


def test_an_agent_may_not_change_another_agents_lead(session, policy, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    with pytest.raises(NotAllowed, match="assigned to another agent"):
        change_status(lead(mike), "Interested", by=sarah, session=session, policy=policy, now=T0)


def test_bulk_status_skips_locked_leads(session, policy, agent, lead) -> None:
    sarah = agent("Sarah")
    leads = [lead(sarah), lead(sarah, status="Interested"), lead(sarah, locked=True)]
    outcome = bulk_change_status(
        leads, "Interested", by=sarah, session=session, policy=policy, now=T0
    )
    assert outcome.as_dict() == {
        "matched": 3,
        "changed": 1,
        "unchanged": 1,
        "skipped": [{"id": leads[2].id, "reason": "converted (read-only)"}],
    }


# ---- the bot --------------------------------------------------------------------------------


def test_the_bots_notify_tells_the_owner_or_else_every_active_admin(
    session, policy, agent, lead
) -> None:
    sarah, boss = agent("Sarah"), agent("Boss", role="admin")
    agent("Retired", role="admin", active=False)
    owned = lead(sarah, next_best_action="Call back.")
    change = change_status_by_bot(owned, "Interested", session=session, policy=policy, now=T0)
    assert change.notified == (sarah.id,)
    assert notes_for(session, sarah)[0].text == (
        f"{owned.name} is now Interested (score 50). Call back."
    )
    loose = lead()
    assert change_status_by_bot(
        loose, "Interested", session=session, policy=policy, now=T0
    ).notified == (boss.id,)


def test_the_bots_notifications_wait_for_opening_hours(session, agent, lead) -> None:
    sarah = agent("Sarah")
    policy = make_policy(hours=Hours(14, 18))
    change_status_by_bot(lead(sarah), "Interested", session=session, policy=policy, now=T0)
    [note] = notes_for(session, sarah)
    assert note.deliver_after is not None and note.deliver_after.hour == 14


def test_the_bots_auto_assign_keeps_an_active_owner(session, policy, agent, lead) -> None:
    sarah = agent("Sarah")
    agent("Mike")
    found = lead(sarah)
    change = change_status_by_bot(found, "Follow Up", session=session, policy=policy, now=T0)
    assert change.assigned_to is sarah and found.assigned_agent_id == sarah.id
    assert "was assigned to you: Follow Up" in notes_for(session, sarah)[0].text
    assert change.paused_minutes == 45


def test_the_bots_auto_assign_tells_the_admins_when_nobody_is_free(
    session, policy, agent, lead
) -> None:
    boss = agent("Boss", role="admin", capacity=0)
    found = lead()
    change = change_status_by_bot(found, "Follow Up", session=session, policy=policy, now=T0)
    assert change.no_agent_available and found.assigned_agent_id is None
    [note] = notes_for(session, boss)
    assert note.kind == "unassigned" and note.text.endswith("No agent is available to take it.")


def test_the_bot_quiets_one_conversation_of_several(session, policy, agent, lead, room) -> None:
    found = lead(agent("Sarah"))
    web, _whatsapp = room(found, "web"), room(found, "whatsapp")
    change = change_status_by_bot(
        found, "Lost", session=session, policy=policy, now=T0, conversation=web
    )
    assert change.stopped and change.conversation_id == web.id
    assert web.ai_stopped and not found.ai_stopped
    quiet = quiet_for_status(
        found, "Follow Up", session=session, policy=policy, now=T0, conversation=web
    )
    assert quiet.paused_minutes == 45 and web.ai_paused_until == T0 + timedelta(minutes=45)
    assert found.status == "Lost"


def test_the_bot_leaves_a_locked_lead_alone(session, policy, agent, lead) -> None:
    found = lead(agent("Sarah"), status="Won", locked=True)
    change = change_status_by_bot(found, "Interested", session=session, policy=policy, now=T0)
    assert change.unchanged and found.status == "Won"


def test_the_bot_tells_the_admins_of_the_workspace_in_force(session, policy, agent, lead) -> None:
    # Boss is an admin of the first workspace and an agent of the second, with no room for leads.
    boss = agent("Boss", role="admin", capacity=0)
    session.add(WorkspaceMember(workspace_id=2, agent_id=boss.id, role="agent"))
    session.flush()

    def bot_sets(status: str) -> tuple[int, ...]:
        return change_status_by_bot(lead(), status, session=session, policy=policy, now=T0).notified

    # "Interested" notifies (the admins, the lead having no owner); "Follow Up" auto-assigns
    # (and, nobody being free, tells the admins of the team it read). Each is asked in the first
    # workspace, then the second, then the first again: what one workspace found is not another's.
    for status in ("Interested", "Follow Up"):
        assert bot_sets(status) == (boss.id,)
        with in_workspace(2):
            assert bot_sets(status) == ()
        assert bot_sets(status) == (boss.id,)
