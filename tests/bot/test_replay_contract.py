"""`leaddesk replay`'s contract for bursts and media: `at` drives the clock and the quiet window,
lines may carry `kind` and `caption`, and every JSON reply says which line it answers, its
language, its source and the knowledge it used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leaddesk.cli import main
from tests.bot.support import copy_prompts
from tests.conftest import set_quiet_window


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LEADDESK_MODEL",
        "DATABASE_URL",
        "LEADDESK_PROMPTS_DIR",
        "LEADDESK_DEFAULT_REGION",
        "LEADDESK_TRANSCRIBE",
    ):
        monkeypatch.delenv(name, raising=False)


def _replay(tmp_path: Path, capsys: Any, lines: list[dict[str, Any]], *extra: str) -> Any:
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    code = main(["replay", str(path), "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _at(seconds: float) -> str:
    whole, fraction = divmod(seconds, 1)
    return f"2025-03-04T15:{int(whole) // 60:02d}:{int(whole) % 60:02d}.{int(fraction * 1000):03d}Z"


def test_lines_half_a_second_apart_are_one_burst_with_one_reply(tmp_path, capsys) -> None:
    lines = [
        {"channel": "web", "sender": "v1", "text": "hi", "at": _at(0)},
        {"channel": "web", "sender": "v1", "text": "how much is the Home 6.5 kW?", "at": _at(0.5)},
        {"channel": "web", "sender": "v1", "text": "installed", "at": _at(1.0)},
        # Ten seconds later: the customer had stopped; this is a new burst.
        {"channel": "web", "sender": "v1", "text": "thanks!", "at": _at(11)},
    ]
    code, out, _err = _replay(tmp_path, capsys, lines)
    assert code == 0
    first, second = out["replies"]
    assert first["in_reply_to"] == 2 and second["in_reply_to"] == 3
    assert "12,400" in first["text"]
    for reply in out["replies"]:
        assert set(reply) >= {
            "channel",
            "sender",
            "text",
            "in_reply_to",
            "language",
            "source",
            "knowledge",
        }
        assert reply["language"] == "en" and reply["source"] == "offline"
        assert isinstance(reply["knowledge"], list)


def test_two_customers_typing_at_once_each_get_their_own_reply(tmp_path, capsys) -> None:
    lines = [
        {"channel": "web", "sender": "a", "text": "hello", "at": _at(0)},
        {"channel": "whatsapp", "sender": "15125550111", "text": "hola", "at": _at(0.2)},
        {"channel": "web", "sender": "a", "text": "do you install batteries?", "at": _at(0.4)},
        {"channel": "whatsapp", "sender": "15125550111", "text": "¿precio?", "at": _at(0.6)},
    ]
    code, out, _err = _replay(tmp_path, capsys, lines)
    assert code == 0
    by_sender = {r["sender"]: r for r in out["replies"]}
    assert len(out["replies"]) == 2
    assert by_sender["a"]["in_reply_to"] == 2
    assert by_sender["15125550111"]["in_reply_to"] == 3


def test_a_quiet_window_of_zero_answers_every_line(tmp_path, capsys) -> None:
    prompts = copy_prompts(tmp_path)
    set_quiet_window(prompts, 0)
    lines = [
        {"channel": "web", "sender": "v1", "text": "hi", "at": _at(0)},
        {"channel": "web", "sender": "v1", "text": "what does it cost?", "at": _at(0.02)},
    ]
    code, out, _err = _replay(tmp_path, capsys, lines, "--prompts", str(prompts))
    assert code == 0
    assert [r["in_reply_to"] for r in out["replies"]] == [0, 1]


def test_lines_without_a_time_are_each_their_own_burst(tmp_path, capsys) -> None:
    lines = [
        {"channel": "web", "sender": "v1", "text": "hi"},
        {"channel": "web", "sender": "v1", "text": "what does it cost?"},
    ]
    code, out, _err = _replay(tmp_path, capsys, lines)
    assert code == 0
    assert [r["in_reply_to"] for r in out["replies"]] == [0, 1]


def test_media_lines_need_no_text_and_bad_kinds_are_reported(tmp_path, capsys) -> None:
    lines: list[Any] = [
        {"channel": "whatsapp", "sender": "15125550111", "kind": "image", "at": _at(0)},
        {"channel": "whatsapp", "sender": "15125550111", "kind": "gif", "at": _at(10)},
        {"channel": "web", "sender": "v1", "kind": "sticker", "caption": "x", "at": _at(20)},
        {"channel": "web", "sender": "v1", "kind": "text", "at": _at(30)},
        {"channel": "web", "sender": "v1", "kind": "image", "caption": 3, "at": _at(40)},
    ]
    code, out, err = _replay(tmp_path, capsys, lines)
    assert code == 1
    assert "line 2: unknown kind 'gif'" in err
    assert "line 3: a sticker line takes no caption" in err
    assert "line 4: missing text" in err
    assert "line 5: caption must be a string" in err
    assert [r["in_reply_to"] for r in out["replies"]] == [0]


def test_a_model_reply_says_so(tmp_path, capsys, monkeypatch, fake_openai) -> None:
    from tests.bot.test_bot_llm import answer

    fake_openai.respond_with(lambda body: json.dumps(answer()))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    lines = [
        {"channel": "web", "sender": "v1", "text": "hello", "at": _at(0)},
        {"channel": "web", "sender": "v1", "text": "How much is the Home package?", "at": _at(1)},
    ]
    code, out, _err = _replay(tmp_path, capsys, lines)
    assert code == 0
    [reply] = out["replies"]
    assert reply["text"].startswith(answer()["reply"])  # (then the rules' phone ask)
    assert reply["source"] == "model" and reply["language"] == "en" and reply["in_reply_to"] == 1
    assert fake_openai.calls == 1  # one model call for the whole burst
