"""Takeover: the window, pausing, stopping, resuming; the Policy built from the shipped files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot import load_prompts
from bot.config import PromptError
from bot.policy import build_policy
from store.domain.errors import LeadLocked, NotAllowed
from store.domain.policy import takeover_window
from store.domain.takeover import (
    check_may_reply,
    human_took_over,
    is_ai_paused,
    pause_by_agent,
    resume_by_agent,
    take_over,
)
from tests.bot.support import copy_prompts
from tests.domain.conftest import T0

REPO_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def test_each_human_message_renews_the_window_but_never_shortens_it(session, agent, lead) -> None:
    found = lead(agent("Sarah"))
    assert human_took_over(found, session=session, now=T0, minutes=30)
    assert found.ai_pause_reason == "human takeover" and is_ai_paused(found, T0)
    assert human_took_over(found, session=session, now=T0 + timedelta(minutes=10), minutes=30)
    assert found.ai_paused_until == T0 + timedelta(minutes=40)
    assert not human_took_over(found, session=session, now=T0, minutes=5)
    assert not is_ai_paused(found, T0 + timedelta(minutes=41))


def test_a_stopped_bot_stays_stopped_after_a_human_message(session, agent, lead) -> None:
    found = lead(agent("Sarah"), ai_stopped=True)
    assert not human_took_over(found, session=session, now=T0, minutes=30)
    assert found.ai_paused_until is None


def test_resume_lifts_every_pause_and_announces_the_assistant(session, agent, lead, room) -> None:
    sarah = agent("Sarah")
    found = lead(sarah)
    web = room(found, "web")
    web.ai_stopped = True
    pause_by_agent(found, sarah, session=session, now=T0, minutes=None)
    assert found.ai_stopped
    assert resume_by_agent(found, sarah, session=session)
    assert not found.ai_stopped and not web.ai_stopped and found.ai_resume_notice_due


def test_pausing_resuming_and_replying_respect_lock_and_ownership(session, agent, lead) -> None:
    sarah, mike = agent("Sarah"), agent("Mike")
    locked = lead(sarah, locked=True)
    with pytest.raises(LeadLocked):
        pause_by_agent(locked, sarah, session=session, now=T0, minutes=10)
    with pytest.raises(LeadLocked):
        resume_by_agent(locked, sarah, session=session)
    with pytest.raises(LeadLocked):
        check_may_reply(sarah, locked)
    with pytest.raises(NotAllowed):
        check_may_reply(mike, lead(sarah))


def test_taking_over_quiets_the_bot_for_the_window_and_takes_the_lead(
    session, policy, agent, lead
) -> None:
    sarah = agent("Sarah")
    found = lead()
    done = take_over(found, sarah, session=session, policy=policy, now=T0)
    assert done.assigned_to_agent and found.assigned_agent_id == sarah.id
    assert done.paused_until == T0 + timedelta(minutes=policy.takeover_minutes)
    again = take_over(found, sarah, session=session, policy=policy, now=T0)
    assert not again.assigned_to_agent


def test_the_takeover_window_falls_back_to_the_setting() -> None:
    assert takeover_window(None, 25) == 25
    assert takeover_window(10, 25) == 10


def test_the_policy_of_the_shipped_files_locks_on_converted_only() -> None:
    policy = build_policy(load_prompts(REPO_PROMPTS), takeover_fallback=17)
    assert policy.locking_statuses == ("Converted",)
    assert policy.takeover_minutes == 17
    assert "Not Interested" in policy.terminal_statuses
    follow_up = policy.require_status("follow up")
    assert policy.pause_minutes(follow_up) == 60


def test_locks_is_checked_like_every_other_status_key(tmp_path: Path) -> None:
    prompts = copy_prompts(tmp_path)
    path = prompts / "statuses.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    locks: true", "    locks: maybe"), encoding="utf-8")
    with pytest.raises(PromptError, match=r"statuses\.yaml:\d+: `locks` must be true or false"):
        load_prompts(prompts)
    path.write_text(text.replace("    locks: true", ""), encoding="utf-8")
    unlocked = build_policy(load_prompts(prompts), takeover_fallback=60)
    assert unlocked.locking_statuses == ()
