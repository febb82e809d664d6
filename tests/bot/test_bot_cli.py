"""`leaddesk replay` and `leaddesk chat`: stable JSON shape, bad lines, regions, engine line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from leaddesk.cli import main
from tests.bot.test_bot_llm import answer

LEAD_KEYS = {
    "id",
    "name",
    "company",
    "email",
    "phone",
    "status",
    "score",
    "channels",
    "ai_paused",
    "assigned_agent",
    "tags",
    "summary",
    "score_factors",
}


@pytest.fixture(autouse=True)
def offline_env(monkeypatch):
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LEADDESK_MODEL",
        "DATABASE_URL",
        "LEADDESK_PROMPTS_DIR",
        "LEADDESK_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADDESK_LOG_LEVEL", "WARNING")


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "conversation.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_replay_json_has_the_stable_shape_and_merges_across_channels(tmp_path, capsys):
    path = _write(
        tmp_path,
        {"channel": "web", "sender": "v-1", "text": "Hi", "at": "2025-03-04T15:00:00Z"},
        {
            "channel": "web",
            "sender": "v-1",
            "text": "How much is the Home package?",
            "at": "2025-03-04T15:01:00Z",
        },
        {
            "channel": "web",
            "sender": "v-1",
            "text": "Great. My number is +1 512 555 0199",
            "at": "2025-03-04T15:02:00Z",
        },
        {
            "channel": "whatsapp",
            "sender": "15125550199",
            "name": "Dana",
            "text": "Hi, it's Dana",
            "at": "2025-03-04T15:05:00Z",
        },
        {"channel": "messenger", "sender": "psid-9", "text": "Not interested, stop messaging me"},
    )
    assert main(["replay", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    output = json.loads(captured.out)
    assert "engine: offline engine" in captured.err
    assert set(output) == {"leads", "replies"}
    assert [set(lead) for lead in output["leads"]] == [LEAD_KEYS, LEAD_KEYS]
    dana, other = output["leads"]
    assert dana["phone"] == "+15125550199" and dana["name"] == "Dana"
    assert dana["channels"] == ["web", "whatsapp"] and dana["status"] == "Scouting"
    assert dana["ai_paused"] is False and dana["assigned_agent"] is None
    assert all(set(f) == {"factor", "points", "evidence"} for f in dana["score_factors"])
    assert sum(f["points"] for f in dana["score_factors"]) == dana["score"]
    assert (
        other["status"] == "Not Interested"
        and other["ai_paused"] is True
        and other["phone"] is None
    )
    assert [(r["channel"], r["sender"]) for r in output["replies"]] == [
        ("web", "v-1"),
        ("web", "v-1"),
        ("web", "v-1"),
        ("whatsapp", "15125550199"),
        ("messenger", "psid-9"),
    ]
    assert all(
        set(r) == {"channel", "sender", "text", "in_reply_to", "language", "source", "knowledge"}
        for r in output["replies"]
    )
    assert [r["in_reply_to"] for r in output["replies"]] == [0, 1, 2, 3, 4]
    assert "$12,400" in output["replies"][1]["text"]


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path, capsys):
    path = _write(
        tmp_path,
        {"channel": "web", "sender": "v-1", "text": "Hi"},
        "{this is not json",
        {"channel": "fax", "sender": "v-2", "text": "Hi"},
        {"channel": "web", "text": "no sender"},
        "",
        {"channel": "web", "sender": "v-1", "text": "when", "at": "yesterday"},
        {"channel": "instagram", "sender": "ig-1", "text": "Hello"},
    )
    assert main(["replay", str(path), "--json"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("line ")]
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4", "line 6"]
    assert "invalid JSON" in errors[0] and "unknown channel 'fax'" in errors[1]
    assert "missing sender" in errors[2] and "ISO-8601" in errors[3]
    output = json.loads(captured.out)
    assert len(output["leads"]) == 2 and len(output["replies"]) == 2


def test_region_reads_national_numbers(tmp_path, capsys):
    path = _write(tmp_path, {"channel": "web", "sender": "uk", "text": "Ring me on 07911 123456"})
    assert main(["replay", str(path), "--json", "--region", "GB"]) == 0
    assert json.loads(capsys.readouterr().out)["leads"][0]["phone"] == "+447911123456"
    assert main(["replay", str(path), "--json", "--region", "XX"]) == 1
    assert "not an ISO country code" in capsys.readouterr().err


def test_replay_into_a_database_file_keeps_the_leads(tmp_path, capsys):
    path = _write(
        tmp_path, {"channel": "web", "sender": "v-1", "text": "How much is the Home package?"}
    )
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    assert main(["replay", str(path), "--json", "--database", url]) == 0
    capsys.readouterr()
    assert main(["replay", str(path), "--json", "--database", url]) == 0
    # The second replay sees the lead the first one created (one lead, two messages).
    assert len(json.loads(capsys.readouterr().out)["leads"]) == 1
    from store import make_engine, make_session_factory
    from store.models import Message

    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        assert session.query(Message).filter(Message.direction == "in").count() == 2
    engine.dispose()


def test_replay_without_json_prints_a_table(tmp_path, capsys):
    path = _write(
        tmp_path, {"channel": "web", "sender": "v-1", "text": "How much is the Home package?"}
    )
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("engine: offline engine")
    assert "Leads (1)" in out and "Scouting" in out and "Replies (1)" in out and "-> web:v-1" in out


def test_missing_file_and_broken_prompts_are_clear_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().err
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "statuses.yaml").write_text(
        "statuses:\n  - name: New\n    action: shout\n", encoding="utf-8"
    )
    path = _write(tmp_path, {"channel": "web", "sender": "v", "text": "hi"})
    assert main(["replay", str(path), "--prompts", str(prompts)]) == 1
    err = capsys.readouterr().err
    assert f"{prompts / 'statuses.yaml'}:3:" in err and "do not validate" in err


def test_replay_uses_the_model_when_a_key_is_set(tmp_path, capsys, monkeypatch, fake_openai):
    fake_openai.respond_with(lambda body: answer())
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    path = _write(
        tmp_path,
        {"channel": "whatsapp", "sender": "15125550199", "text": "How much is the Home package?"},
    )
    # Tuesday 09:00 in the demo business's time zone: open, so the model's reply stands alone.
    assert main(["replay", str(path), "--json", "--now", "2026-03-03T15:00:00Z"]) == 0
    captured = capsys.readouterr()
    assert f"engine: LLM (gpt-4o-mini at {fake_openai.base_url})" in captured.err
    assert json.loads(captured.out)["replies"][0]["text"] == answer()["reply"]
    assert fake_openai.calls == 1


def test_replay_now_pins_the_clock_for_lines_without_a_time(tmp_path, capsys):
    path = _write(
        tmp_path,
        {"channel": "whatsapp", "sender": "15125550199", "text": "Please call me, I want to buy"},
        {"channel": "whatsapp", "sender": "15125550199", "text": "My address is 1 Main St"},
    )
    # Saturday 14:00 in Chicago, after the Saturday hours: the hand-over names Monday's opening.
    assert main(["replay", str(path), "--json", "--now", "2026-03-07T20:00:00Z"]) == 0
    first = json.loads(capsys.readouterr().out)["replies"][0]["text"]
    assert "Our team is offline right now" in first and "Monday at 08:00" in first
    # Tuesday 10:00 in Chicago: open, no out-of-hours note.
    assert main(["replay", str(path), "--json", "--now", "2026-03-03T16:00:00"]) == 0
    replies = json.loads(capsys.readouterr().out)["replies"]
    assert replies and not any("offline right now" in reply["text"] for reply in replies)


def test_replay_rejects_a_bad_now(tmp_path, capsys):
    path = _write(tmp_path, {"channel": "web", "sender": "v", "text": "hi"})
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(path), "--now", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday' is not an ISO-8601 time" in capsys.readouterr().err


def test_chat_answers_and_explains_the_score_when_verbose(monkeypatch, capsys):
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("Hi\nHow much is the Home package?\n/quit\nnever read\n")
    )
    assert main(["chat", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("engine: offline engine")
    assert "bot> Hi! Thanks for contacting Sunpeak Solar" in out
    assert "$12,400" in out
    assert "status Scouting" in out and "intent: pricing" in out
    assert "never read" not in out


def test_chat_says_when_the_bot_is_quiet(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Please call me, I want to buy\nhello?\n"))
    assert main(["chat", "--channel", "whatsapp", "--sender", "15125550100"]) == 0
    out = capsys.readouterr().out
    assert "advisor will contact you" in out
    assert "the bot is quiet for this lead" in out
