"""The one rule for converted (locked) leads that the API, console and copilot all apply."""

from __future__ import annotations

import pytest

from store.domain.errors import LeadLocked
from store.domain.permissions import check_unlocked
from store.models import Lead

CLOSED = ("reply", "pause", "resume", "edit", "status", "assign")


@pytest.mark.parametrize("action", CLOSED)
@pytest.mark.parametrize("admin", [False, True])
def test_customer_facing_actions_and_changes_wait_for_a_reopen(action, admin):  # type: ignore[no-untyped-def]
    with pytest.raises(LeadLocked, match="read-only"):
        check_unlocked(Lead(id=7, locked=True), action, admin=admin)


def test_notes_stay_open_and_admins_may_archive():  # type: ignore[no-untyped-def]
    locked = Lead(id=7, locked=True)
    check_unlocked(locked, "note", admin=False)
    check_unlocked(locked, "archive", admin=True)
    with pytest.raises(LeadLocked):
        check_unlocked(locked, "archive", admin=False)


@pytest.mark.parametrize("action", [*CLOSED, "note", "archive"])
def test_an_open_lead_allows_everything(action):  # type: ignore[no-untyped-def]
    check_unlocked(Lead(id=7, locked=False), action, admin=False)
