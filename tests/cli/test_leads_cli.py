"""`leaddesk leads list|show|export|import` on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime, timedelta

import pytest

from store import make_session_factory
from store.csvio import EXPORT_HEADER
from store.leads import resolve
from store.models import Agent, Lead, utcnow
from store.work import add_note, record_score

NOW = utcnow()


@pytest.fixture
def desk(db_engine):
    """Three leads, one agent; returns their ids by name."""
    factory = make_session_factory(db_engine)
    with factory.begin() as s:
        ana = Agent(
            name="Ana Agent",
            email="ana@desk.example",
            role="agent",
            active=True,
            capacity=10,
            token_hash="x",
            created_at=NOW,
        )
        s.add(ana)
        s.flush()
        dana = resolve(
            "web", "w1", name="Dana", phone="(415) 555-2671", email="dana@example.com", session=s
        )
        dana.company, dana.status, dana.assigned_agent_id = "Acme", "Interested", ana.id
        dana.created_at, dana.last_contacted_at = NOW - timedelta(days=3), NOW - timedelta(days=20)
        dana.custom_fields = {"roof_type": "metal"}
        record_score(
            dana,
            82,
            [{"factor": "asked for a quote", "points": 40, "evidence": "how much?"}],
            session=s,
        )
        add_note(dana, "Call after 5pm", session=s, category="Follow-up", author="Ana")
        sara = resolve("whatsapp", "966501234567", name="Sara", phone="966501234567", session=s)
        sara.created_at, sara.last_contacted_at = NOW - timedelta(days=1), NOW - timedelta(hours=2)
        old = resolve("messenger", "psid", name="Old Lead", session=s)
        old.archived, old.created_at = True, NOW - timedelta(days=400)
        return {"dana": dana.id, "sara": sara.id, "old": old.id, "ana": ana.id}


def names(result) -> list[str]:
    assert result.code == 0, result.err
    return [lead["name"] for lead in result.json()]


def test_list_prints_a_table_with_paging_hint(cli, desk):
    result = cli("leads", "list", "--limit", "1")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "PHONE"]
    assert "Sara" in lines[1] and "+966501234567" in lines[1] and "whatsapp" in lines[1]
    assert lines[-1] == "1-1 of 2; next page: --offset 1"


def test_list_json_has_the_fields_of_the_model(cli, desk):
    leads = cli("leads", "list", "--json", "--search", "dana").json()
    assert len(leads) == 1
    lead = leads[0]
    for column in Lead.__table__.columns:
        assert column.key in lead
    assert (lead["phone"], lead["score"], lead["hot"]) == ("+14155552671", 82, True)
    assert lead["channels"] == ["web"] and lead["assigned_agent"] == "Ana Agent"
    assert lead["score_factors"][0]["evidence"] == "how much?"
    datetime.fromisoformat(lead["created_at"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["Sara", "Dana"]),
        (["--status", "interested"], ["Dana"]),  # statuses match case-insensitively
        (["--status", "New,Interested"], ["Sara", "Dana"]),
        (["--hot"], ["Dana"]),
        (["--min-score", "10", "--max-score", "81"], []),
        (["--agent", "ana agent"], ["Dana"]),
        (["--agent", "ana@desk.example"], ["Dana"]),
        (["--unassigned"], ["Sara"]),
        (["--channel", "whatsapp"], ["Sara"]),
        (["--channel", "whatsapp", "--channel", "web"], ["Sara", "Dana"]),
        (["--created-from", (NOW - timedelta(days=2)).date().isoformat()], ["Sara"]),
        # a date-only upper bound includes that whole day
        (["--created-to", (NOW - timedelta(days=3)).date().isoformat()], ["Dana"]),
        (["--contacted-from", (NOW - timedelta(days=1)).isoformat()], ["Sara"]),
        (["--stale", "14"], ["Dana"]),
        (["--archived"], ["Old Lead"]),
        (["--include-archived", "--sort", "created_at"], ["Old Lead", "Dana", "Sara"]),
        (["--search", "415 555 2671"], ["Dana"]),
        (["--search", "0501234567"], ["Sara"]),
        (["--sort=-score"], ["Dana", "Sara"]),
        (["--sort", "score", "--desc"], ["Dana", "Sara"]),
        (["--sort", "name", "--offset", "1"], ["Sara"]),
    ],
)
def test_list_filters(cli, desk, argv, expected):
    assert names(cli("leads", "list", "--json", *argv)) == expected


def test_list_refuses_an_unknown_agent_and_an_inverted_score_range(cli, desk):
    result = cli("leads", "list", "--agent", "Zed")
    assert result.code == 1 and "no agent matches 'Zed'" in result.err
    result = cli("leads", "list", "--min-score", "80", "--max-score", "20")
    assert result.code == 1 and "--min-score 80 is above --max-score 20" in result.err
    assert cli("leads", "list", "--search", "nobody-like-this").out.strip() == "no leads match"


def test_show_a_lead_with_identities_notes_and_history(cli, desk):
    result = cli("leads", "show", str(desk["dana"]))
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith(f"Lead {desk['dana']}: Dana")
    for expected in (
        "Status:       Interested",
        "Score:        82 (hot)",
        "Phone:        +14155552671 (verified)",
        "roof_type:    metal",
        "+40 asked for a quote",
        "web: w1 (claimed)",
        "Follow-up by Ana: Call after 5pm",
        "0 -> 82",
        "History (newest first):",
    ):
        assert expected in out, expected


def test_show_json_and_merged_ids(cli, desk, db_engine):
    with make_session_factory(db_engine).begin() as s:
        resolve(
            "instagram", "ig-1", phone="+1 415 555 2671", session=s
        )  # same person: merges into Dana
        dup = resolve("instagram", "ig-2", session=s)
        dup_id = dup.id
        from store.leads import merge_leads

        merge_leads(s.get(Lead, desk["dana"]), dup, session=s)
    data = cli("leads", "show", str(dup_id), "--json").json()
    assert data["id"] == desk["dana"] and data["requested_id"] == dup_id
    assert {i["channel"] for i in data["identities"]} == {"web", "instagram"}
    assert {i["trust"] for i in data["identities"]} == {"claimed", "verified"}
    assert data["phone_trust"] == "verified"
    assert data["notes"][0]["category"] == "Follow-up"
    assert data["score_history"][0]["score"] == 82
    assert any(a["action"] == "merge" for a in data["audit"])
    text = cli("leads", "show", str(dup_id)).out
    assert text.startswith(f"(lead {dup_id} was merged into lead {desk['dana']})")


def test_show_an_unknown_lead_is_exit_1(cli, desk):
    result = cli("leads", "show", "9999")
    assert result.code == 1 and result.err.strip() == "leaddesk: error: no lead with id 9999"


def test_export_to_stdout_with_filters(cli, desk):
    result = cli("leads", "export", "--hot")
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(result.out)))
    # the fixed header, then the defined custom fields (prompts/custom_fields.yaml) in order
    assert tuple(rows[0][: len(EXPORT_HEADER)]) == EXPORT_HEADER
    assert rows[0][len(EXPORT_HEADER)] == "monthly_bill" and "roof_type" in rows[0]
    assert len(rows) == 2
    record = dict(zip(rows[0], rows[1], strict=True))
    assert (record["name"], record["assigned_agent"], record["roof_type"]) == (
        "Dana",
        "Ana Agent",
        "metal",
    )


def test_export_to_a_file_and_import_it_back(cli, desk, tmp_path):
    target = tmp_path / "out" / "leads.csv"
    target.parent.mkdir()
    result = cli("leads", "export", "--include-archived", "--output", str(target))
    assert result.code == 0 and result.err.strip() == f"exported 3 leads to {target}"
    assert not (tmp_path / "out" / "leads.csv.partial").exists()
    report = cli("leads", "import", str(target), "--json").json()
    # Dana and Sara are recognised by phone or email; "Old Lead" had neither, so it is new again
    assert (report["rows"], report["created"], report["merged"], report["rejected"]) == (
        3,
        1,
        2,
        [],
    )
    assert report["ignored_columns"] == [
        "id",
        "score",
        "assigned_agent",
        "channels",
        "created_at",
        "last_contacted_at",
    ]


def test_export_to_an_unwritable_place_is_exit_1(cli, desk, tmp_path):
    result = cli("leads", "export", "--output", str(tmp_path / "missing" / "leads.csv"))
    assert result.code == 1 and "cannot write" in result.err


def test_import_reports_created_merged_and_rejected_rows(cli, desk, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "name,email,phone,status,roof_type,favourite colour\n"
        "Dana D,dana@example.com,,,flat,blue\n"
        "Omar,omar@example.com,020 7946 0958,Scouting,metal,\n"
        "Bad,,123,,,\n"
        "Worse,,,Hot lead,,\n",
        encoding="utf-8",
    )
    result = cli("leads", "import", str(path), "--region", "gb")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0] == f"{path}: 4 rows: 1 created, 1 merged, 2 rejected"
    assert lines[1] == "  line 4: phone '123': not a valid phone number for region GB"
    assert lines[2].startswith("  line 5: unknown status 'Hot lead'; use one of: New, Interested")
    assert "unknown columns (skipped): favourite colour" in result.out
    assert "importing [" not in result.err  # no progress bar when stderr is not a terminal
    omar = list(cli("leads", "list", "--json", "--search", "omar").json())
    assert omar[0]["phone"] == "+442079460958" and omar[0]["status"] == "Scouting"
    assert omar[0]["custom_fields"] == {"roof_type": "metal"}
    dana = cli("leads", "show", str(desk["dana"]), "--json").json()
    assert (
        dana["name"] == "Dana" and dana["custom_fields"]["roof_type"] == "metal"
    )  # kept, not overwritten


def test_import_shows_a_progress_bar_on_a_terminal(cli, desk, tmp_path, monkeypatch):
    path = tmp_path / "in.csv"
    path.write_text("name\n" + "".join(f"Person {i}\n" for i in range(30)), encoding="utf-8")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    result = cli("leads", "import", str(path))
    assert result.code == 0, result.err
    assert "importing [" in result.err and "100% 30 rows" in result.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"", "the file is empty"),
        (b"foo,bar\n1,2\n", "no recognised column"),
        ("name\nJos\u00e9\n".encode("cp1252"), "not UTF-8"),
    ],
)
def test_import_of_an_unusable_file_is_exit_1(cli, desk, tmp_path, content, message):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    result = cli("leads", "import", str(path))
    assert result.code == 1 and message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_import_refuses_when_the_admin_files_do_not_validate(cli, desk, tmp_path, monkeypatch):
    broken = tmp_path / "prompts"
    broken.mkdir()
    (broken / "statuses.yaml").write_text("statuses: [\n", encoding="utf-8")
    monkeypatch.setenv("LEADDESK_PROMPTS_DIR", str(broken))
    path = tmp_path / "in.csv"
    path.write_text("name\nA\n", encoding="utf-8")
    result = cli("leads", "import", str(path))
    assert result.code == 1 and "do not validate" in result.err
    # an export still works: it warns and uses the custom fields in use
    result = cli("leads", "export")
    assert result.code == 0 and "warning: prompts not loaded" in result.err
    assert result.out.splitlines()[0] == ",".join(EXPORT_HEADER) + ",roof_type"


def test_dates_accept_times_and_zones(cli, desk):
    since = (datetime.now(UTC) - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(cli("leads", "list", "--json", "--created-from", since)) == ["Sara"]


def test_import_refuses_a_lost_status_without_its_reason(cli, desk, tmp_path):
    path = tmp_path / "lost.csv"
    path.write_text("name,email,status\nGone,gone@example.com,lost\n", encoding="utf-8")
    result = cli("leads", "import", str(path))
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0] == f"{path}: 1 rows: 0 created, 0 merged, 1 rejected"
    assert lines[1] == (
        "  line 2: status 'Lost' needs a reason: import the lead, then set it in the console, "
        "the API or the copilot with its reason"
    )
