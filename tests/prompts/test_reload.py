"""Hot reload: a saved change that validates replaces the prompts in force; one that does not is
rejected as a whole (the last good version stays, the error is logged with file and line, and
GET /healthz names it). Unit tests drive `PromptStore.check()` by hand; the last test edits the
files under a running server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import PromptError
from bot.reload import PromptStore
from leaddesk.settings import load_settings
from tests.conftest import set_quiet_window
from tests.prompts.conftest import edit, line_of


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rename_business(directory: Path, name: str) -> None:
    path = directory / "business.yaml"
    text = path.read_text(encoding="utf-8")
    current = next(line for line in text.splitlines() if line.startswith("name: "))
    path.write_text(text.replace(current, f"name: {name}", 1), encoding="utf-8")


def _break_statuses(directory: Path) -> int:
    path = directory / "statuses.yaml"
    line = line_of(path, "action: auto_assign")
    edit(path, "action: auto_assign", "action: phone_the_boss")
    return line


def test_a_valid_change_replaces_the_configuration(prompts_dir):
    store = PromptStore(prompts_dir, poll_seconds=0)
    assert store.check() is False  # nothing changed yet
    _rename_business(prompts_dir, "Moonbeam Solar")
    assert store.check() is True
    assert store().business.name == "Moonbeam Solar"
    assert store.version == 2 and store.health()["status"] == "ok"


def test_an_invalid_change_is_rejected_as_a_whole_and_the_last_good_version_stays(
    prompts_dir, caplog
):
    store = PromptStore(prompts_dir, poll_seconds=0)
    good = store()
    # One valid and one invalid edit saved together: neither applies.
    _rename_business(prompts_dir, "Moonbeam Solar")
    line = _break_statuses(prompts_dir)
    with caplog.at_level(logging.ERROR, logger="bot.reload"):
        assert store.check() is False
    assert store() is good and store().business.name == "Sunpeak Solar"
    health = store.health()
    assert health["status"] == "rejected" and health["version"] == 1
    [problem] = health["rejected"]["problems"]
    assert problem["file"] == "statuses.yaml" and problem["line"] == line
    assert "phone_the_boss" in problem["message"]
    assert f"statuses.yaml:{line}:" in caplog.text and "stays in force" in caplog.text

    # Checking again without a new save neither reloads nor logs the same rejection twice.
    caplog.clear()
    assert store.check() is False and caplog.text == ""

    edit(prompts_dir / "statuses.yaml", "action: phone_the_boss", "action: auto_assign")
    assert store.check() is True
    assert store().business.name == "Moonbeam Solar"
    assert store.health()["status"] == "ok" and "rejected" not in store.health()


def test_without_a_watcher_a_read_after_the_poll_interval_checks_the_files(prompts_dir):
    ticker = Ticker()
    store = PromptStore(prompts_dir, poll_seconds=2.0, monotonic=ticker)
    _rename_business(prompts_dir, "Moonbeam Solar")
    ticker.now += 1.0
    assert store().business.name == "Sunpeak Solar"  # not yet time to look
    ticker.now += 1.5
    assert store().business.name == "Moonbeam Solar"


def test_eval_cases_and_editor_files_are_not_configuration(prompts_dir):
    store = PromptStore(prompts_dir, poll_seconds=0)
    (prompts_dir / "eval").mkdir()
    (prompts_dir / "eval" / "cases.jsonl").write_text("# cases\n", encoding="utf-8")
    (prompts_dir / ".business.yaml.swp").write_text("x", encoding="utf-8")
    (prompts_dir / "business.yaml~").write_text("x", encoding="utf-8")
    assert store.check() is False and store.version == 1


def test_a_new_knowledge_file_is_picked_up(prompts_dir):
    store = PromptStore(prompts_dir, poll_seconds=0)
    (prompts_dir / "knowledge" / "heat-pumps.md").write_text(
        "<!-- Heat pumps. -->\n# Heat pumps\n\n## Heat pump installation\n"
        "We install air-source heat pumps from $7,900.\n",
        encoding="utf-8",
    )
    assert store.check() is True
    assert any(s.title == "Heat pump installation" for s in store().knowledge)


def test_invalid_prompts_at_start_refuse_to_start(prompts_dir):
    _break_statuses(prompts_dir)
    with pytest.raises(PromptError):
        PromptStore(prompts_dir)


def test_the_copilots_live_view_follows_the_reload(prompts_dir):
    store = PromptStore(prompts_dir, poll_seconds=0)
    live = store.live()
    assert live.business.name == "Sunpeak Solar"
    _rename_business(prompts_dir, "Moonbeam Solar")
    store.check()
    assert live.business.name == "Moonbeam Solar"
    assert "Moonbeam Solar" in live.render_copilot_system(agent_name="Sam")
    with pytest.raises(AttributeError):
        live.business = None


# -- a running server ------------------------------------------------------------------------------


def _wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the server")


@pytest.fixture
def running(prompts_dir, tmp_path, offline_env) -> Iterator[Any]:
    from leaddesk.wiring import build_runtime

    set_quiet_window(prompts_dir, 0)  # each "Hi" answered at once
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        prompts_dir=prompts_dir,
        prompts_poll_seconds=0.05,
        openai_api_key=None,
        telegram_bot_token=None,
        broker_url=None,
        worker_threads=1,
    )
    runtime = build_runtime(settings)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def _greeting(client: Any) -> str:
    """Open a web chat, say hi, and return the bot's answer."""
    session = client.post("/api/chat/sessions", json={}).get_json()["session"]
    headers = {"Authorization": f"Bearer {session}"}
    client.post("/api/chat/messages", json={"text": "Hi"}, headers=headers)

    def answered() -> str:
        messages = client.get("/api/chat/messages?wait=1", headers=headers).get_json()["messages"]
        replies = [m["text"] for m in messages if m.get("author") != "customer"]
        return replies[-1] if replies else ""

    return _wait_for(answered)


def _status_names(client: Any, headers: dict[str, str]) -> list[str]:
    statuses = client.get("/api/statuses", headers=headers).get_json()["statuses"]
    return [s["name"] for s in statuses]


def test_a_running_server_applies_a_good_change_and_rejects_a_bad_one(running, prompts_dir):
    from store.agents import create_agent

    client = running.app.test_client()
    with running.session_factory.begin() as session:
        _agent, token = create_agent("Sam", session=session)
    agent = {"Authorization": f"Bearer {token}"}
    health = client.get("/healthz").get_json()
    assert health["prompts"]["status"] == "ok" and health["prompts"]["watching"] is True
    assert "Sunpeak Solar" in _greeting(client)

    # A good change: a new business name and a new status, live within moments.
    _rename_business(prompts_dir, "Moonbeam Solar")
    statuses = prompts_dir / "statuses.yaml"
    statuses.write_text(
        statuses.read_text(encoding="utf-8") + '\n  - name: Nurture\n    colour: "#795548"\n'
        "    description: Interested later; the team checks in every few months.\n"
        "    ai_can_set: false\n",
        encoding="utf-8",
    )
    # The watcher may take the two saves as one version or as two: wait for the last.
    _wait_for(lambda: _status_names(client, agent)[-1] == "Nurture")
    good = client.get("/healthz").get_json()["prompts"]["version"]
    assert good in (2, 3)
    assert "Moonbeam Solar" in _greeting(client)
    assert running.copilot is not None

    # A bad change: rejected, reported on /healthz, and the last good version keeps answering.
    line = _break_statuses(prompts_dir)
    _rename_business(prompts_dir, "Broken Solar")
    response = _wait_for(
        lambda: (r := client.get("/healthz")).get_json()["prompts"]["status"] == "rejected" and r
    )
    assert response.status_code == 200
    report = response.get_json()
    assert report["status"] == "degraded" and report["prompts"]["version"] == good
    assert {"file": "statuses.yaml", "line": line} == {
        k: report["prompts"]["rejected"]["problems"][0][k] for k in ("file", "line")
    }
    greeting = _greeting(client)
    assert "Moonbeam Solar" in greeting and "Broken" not in greeting
    assert _status_names(client, agent)[-1] == "Nurture"
