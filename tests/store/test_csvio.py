"""CSV export (streamed, one snapshot) and import (create or merge, per-row savepoints, report)."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from sqlalchemy import delete, func, select

from store.csvio import EXPORT_HEADER, CsvImportError, export_leads, import_leads, iter_export
from store.leads import get_lead, resolve
from store.models import AuditEvent, Base, Lead, Note
from store.query import LeadQuery


def _export(session_factory, **filters) -> list[dict[str, str]]:
    out = io.StringIO()
    report = export_leads(out, LeadQuery(**filters), session_factory=session_factory)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert report.rows == len(rows)
    return rows


def _import(session_factory, text: str, **kwargs):
    return import_leads(io.StringIO(text), session_factory=session_factory, **kwargs)


def _live(session_factory) -> list[Lead]:
    with session_factory() as s:
        return list(s.scalars(select(Lead).where(Lead.merged_into_id.is_(None)).order_by(Lead.id)))


def _wipe(session_factory) -> None:
    with session_factory.begin() as s:
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(delete(table))


# --------------------------------------------------------------------------- export


def test_export_header_is_exact_then_one_column_per_custom_field(session_factory):
    with session_factory.begin() as s:
        a = resolve("web", "a", name="Ana", phone="+14155552671", session=s)
        a.custom_fields = {"tier": "gold", "budget": 1000}
        b = resolve("whatsapp", "447911123456", phone="447911123456", session=s)
        resolve("web", "b", email="b@example.com", session=s)
        b.custom_fields = {"tier": "silver", "tags2": ["x", "y"]}
    out = io.StringIO()
    report = export_leads(out, LeadQuery(sort="id"), session_factory=session_factory)
    header = out.getvalue().splitlines()[0]
    assert header == ",".join(EXPORT_HEADER) + ",budget,tags2,tier"
    assert report.columns == [*EXPORT_HEADER, "budget", "tags2", "tier"] and report.rows == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["phone"] for r in rows] == ["+14155552671", "+447911123456", ""]
    assert (rows[0]["tier"], rows[0]["budget"], rows[0]["tags2"]) == ("gold", "1000", "")
    assert rows[1]["tags2"] == '["x", "y"]'
    assert rows[0]["channels"] == "web" and rows[0]["score"] == "0" and rows[0]["status"] == "New"
    assert rows[0]["created_at"].endswith("+00:00") and rows[0]["last_contacted_at"] == ""


def test_defined_custom_fields_come_first_even_when_unused(session_factory):
    with session_factory.begin() as s:
        resolve("web", "a", session=s).custom_fields = {"zeta": "1"}
    out = io.StringIO()
    export_leads(
        out, LeadQuery(), session_factory=session_factory, custom_fields=["industry", "zeta"]
    )
    assert out.getvalue().splitlines()[0].endswith(",industry,zeta")


def test_export_applies_filters_and_sort_and_leaves_out_merged_leads(
    session_factory, make_agent, session
):
    agent = make_agent(name="Ana")
    for i, score in enumerate([10, 90, 80, 40]):
        lead = resolve("web", f"v{i}", name=f"L{i}", session=session)
        lead.score = score
        if score > 50:
            lead.assigned_agent_id = agent.id
    merged = resolve("web", "v1", phone="+14155552671", session=session)
    resolve("messenger", "m", phone="+14155552671", session=session)  # merges into L1, no new row
    session.commit()
    assert [r["name"] for r in _export(session_factory, sort="-score")] == ["L1", "L2", "L3", "L0"]
    hot = _export(session_factory, hot=True, sort="score")
    assert [r["name"] for r in hot] == ["L2", "L1"]
    assert {r["assigned_agent"] for r in hot} == {"Ana"}
    assert [r["channels"] for r in hot if r["id"] == str(merged.id)] == ["messenger;web"]
    assert _export(session_factory, status=["Converted"]) == []


def test_cells_a_spreadsheet_would_run_as_formulas_are_defused(session_factory):
    with session_factory.begin() as s:
        lead = resolve(
            "web", "evil", name='=HYPERLINK("http://x","y")', phone="+14155552671", session=s
        )
        lead.company = "@SUM(A1)"
        lead.custom_fields = {"note": "-2+3"}
    row = _export(session_factory)[0]
    assert row["name"].startswith("'=") and row["company"] == "'@SUM(A1)" and row["note"] == "'-2+3"
    assert row["phone"] == "+14155552671"  # validated E.164 keeps its plus


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def test_a_semicolon_locale_sees_no_formula_inside_a_cell_and_import_undoes_the_defusing(
    session_factory,
):
    name = "Ann;=cmd|' /C calc'!A0;"
    company = "Acme, @SUM(A1); -1"
    with session_factory.begin() as s:
        lead = resolve("web", "evil", name=name, session=s)
        lead.company = company
    out = io.StringIO()
    export_leads(out, LeadQuery(), session_factory=session_factory)
    data_line = out.getvalue().splitlines()[1]
    # Excel with a semicolon list separator reads the same bytes split at ";" instead of ",".
    for delimiter in (";", ","):
        for cell in next(csv.reader(io.StringIO(data_line), delimiter=delimiter)):
            assert not cell.startswith(FORMULA_START), (delimiter, cell)
            for piece in cell.replace(",", ";").split(";"):
                assert not piece.lstrip(" ").startswith(FORMULA_START), (delimiter, cell)
    assert data_line.startswith("1,\"Ann;'=cmd|' /C calc'!A0;\",")
    row = _export(session_factory)[0]
    assert row["channels"] == "web"

    _wipe(session_factory)
    report = _import(session_factory, out.getvalue())
    assert report.created == 1
    [lead] = _live(session_factory)
    assert (lead.name, lead.company) == (name, company)


def test_export_streams_in_batches_from_one_snapshot_without_blocking_writers(session_factory):
    with session_factory.begin() as s:
        for i in range(25):
            resolve("web", f"v{i}", session=s)
    chunks = iter_export(LeadQuery(sort="id"), session_factory=session_factory, batch_size=10)
    first = next(chunks)
    assert first.count("\r\n") == 11  # header + the first batch only

    # While the export is paused mid-way, a writer gets through at once (no write lock held)...
    done = threading.Event()

    def write() -> None:
        with session_factory.begin() as s:
            resolve("web", "late", session=s)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(10)
    assert done.is_set(), "the export blocked a writer"
    # ...and the export still shows the snapshot it started from.
    rest = "".join(chunks)
    assert (first + rest).count("\r\n") == 26
    assert len(_live(session_factory)) == 26


# --------------------------------------------------------------------------- import


def test_import_creates_merges_and_rejects_with_line_numbers(session_factory):
    with session_factory.begin() as s:
        existing = resolve(
            "whatsapp", "447911123456", phone="447911123456", name="Wanda", session=s
        )
    text = (
        "Name,Email,Phone,Company,Status,Source,Note,Shoe size\n"
        "Dana,dana@example.com,(415) 555-2671,Acme,Interested,fair,Met at the fair,42\n"
        "Bad phone,,12345,,,,,\n"
        "\n"
        "Wanda W,wanda@example.co.uk,+44 7911 123456,Wanda Ltd,,,,\n"
        '"Multi\nline",,,,,,,\n'
        "Bad email,not-an-email,,,,,,\n"
        ",,,,,,,\n"
        "Nobody,,,,,,,,extra\n"
        "Dana,,415.555.2671,,,,Met at the fair,\n"
    )
    report = _import(session_factory, text)
    assert (report.rows, report.created, report.merged) == (7, 2, 2)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "phone '12345': not a valid phone number for region US"),
        (8, "email 'not-an-email': not a valid email address"),
        (10, "9 values but the header has 8 columns"),
    ]
    assert report.unknown_columns == ["Shoe size"]
    with session_factory() as s:
        wanda = get_lead(existing.id, session=s)
        # merged: empty fields filled, the existing name kept, no manual identity added
        assert (wanda.name, wanda.email, wanda.company, wanda.channels) == (
            "Wanda",
            "wanda@example.co.uk",
            "Wanda Ltd",
            ["whatsapp"],
        )
        dana = s.scalars(select(Lead).where(Lead.phone == "+14155552671")).one()
        assert (dana.name, dana.email, dana.company, dana.status, dana.source) == (
            "Dana",
            "dana@example.com",
            "Acme",
            "Interested",
            "fair",
        )
        assert dana.channels == ["manual"]
        assert [n.text for n in dana.notes] == ["Met at the fair"]  # the repeat is not added twice
        assert s.scalar(select(func.count()).select_from(Lead)) == 3  # Wanda, Dana, "Multi\nline"
        actors = {
            e.actor for e in s.scalars(select(AuditEvent).where(AuditEvent.lead_id == dana.id))
        }
        assert actors == {"import"}


def test_a_rejected_row_leaves_no_trace_even_after_it_merged_two_leads(session_factory):
    with session_factory.begin() as s:
        converted = resolve("web", "a", phone="+14155552671", session=s)
        converted.locked = True
        converted.status = "Converted"
        other = resolve("messenger", "b", email="dana@example.com", session=s)
        audit_before = s.scalar(select(func.count()).select_from(AuditEvent))
    report = _import(session_factory, "phone,email,name\n+14155552671,dana@example.com,Dana\n")
    assert report.created == report.merged == 0
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, f"matches lead {converted.id}, which is converted and read-only")
    ]
    with session_factory() as s:
        assert s.get(Lead, other.id).merged_into_id is None  # the merge was undone with the row
        assert s.get(Lead, other.id).email == "dana@example.com"
        assert s.get(Lead, converted.id).name is None
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == audit_before


def test_status_goes_to_new_leads_and_leads_still_new_and_can_be_validated(session_factory):
    with session_factory.begin() as s:
        resolve("web", "a", email="a@example.com", session=s).status = "Interested"
        resolve("web", "b", email="b@example.com", session=s)
    text = (
        "email,status\na@example.com,Scouting\nb@example.com,follow up\n"
        "c@example.com,Scouting\nd@example.com,Hot\n"
    )
    report = _import(session_factory, text, statuses=["New", "Interested", "Follow Up", "Scouting"])
    assert (report.created, report.merged) == (1, 2)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (5, "unknown status 'Hot'; use one of: New, Interested, Follow Up, Scouting")
    ]
    with session_factory() as s:
        status = dict(s.execute(select(Lead.email, Lead.status)).all())
    assert status == {
        "a@example.com": "Interested",
        "b@example.com": "Follow Up",
        "c@example.com": "Scouting",
    }


def test_semicolons_tabs_bom_and_case_insensitive_headers_are_understood(session_factory):
    assert (
        _import(session_factory, "\ufeffNAME;E-mail;PHONE\nAna;x;+14155552671\n").delimiter == ";"
    )
    report = _import(session_factory, "name\tphone\nBo\t+14155552672\n")
    assert (report.delimiter, report.created) == ("\t", 1)
    names = {lead.name for lead in _live(session_factory)}
    assert names == {"Ana", "Bo"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("foo,bar\n1,2\n", "no recognised column"),
        ("name,email,Name\na,b,c\n", "column 'Name' appears twice"),
    ],
)
def test_unusable_files_are_refused_whole(session_factory, text, message):
    with pytest.raises(CsvImportError, match=message):
        _import(session_factory, text)
    assert _live(session_factory) == []


def test_a_file_that_is_not_utf8_is_refused_with_advice(session_factory):
    raw = "name,company\nJos\u00e9,Caf\u00e9\n".encode("cp1252")
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    with pytest.raises(CsvImportError, match="not UTF-8"):
        import_leads(stream, session_factory=session_factory)


def test_rows_need_something_to_know_the_person_by_and_fields_have_limits(session_factory):
    report = _import(
        session_factory, f"name,company,source,note\n,,web,hello\nA,,,\n{'x' * 201},,,\n,Acme,,\n"
    )
    assert report.created == 2
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "the row needs a name, an email, a phone or a company"),
        (4, "name is longer than 200 characters"),
    ]


def test_custom_fields_known_by_definition_by_use_or_by_export_shape(session_factory):
    with session_factory.begin() as s:
        resolve("web", "a", session=s).custom_fields = {"tier": "gold"}
    report = _import(
        session_factory, "name,tier,industry,other\nB,silver,retail,?\n", custom_fields=["industry"]
    )
    assert report.custom_columns == ["tier", "industry"] and report.unknown_columns == ["other"]
    with session_factory() as s:
        b = s.scalars(select(Lead).where(Lead.name == "B")).one()
        assert b.custom_fields == {"tier": "silver", "industry": "retail"}


def test_region_reads_national_numbers_and_progress_is_reported(session_factory):
    seen: list[int] = []
    text = "name,phone\n" + "".join(f"P{i},020 7946 09{i:02d}\n" for i in range(25))
    report = _import(session_factory, text, region="GB", batch_size=10, progress=seen.append)
    assert report.created == 25 and not report.rejected
    assert seen == list(range(1, 26))
    assert {lead.phone for lead in _live(session_factory)} == {
        f"+4420794609{i:02d}" for i in range(25)
    }


# --------------------------------------------------------------------------- round trip


def test_export_then_import_recreates_the_same_leads(session_factory):
    with session_factory.begin() as s:
        a = resolve(
            "web", "a", name="=Ana", phone="+14155552671", email="ana@example.com", session=s
        )
        a.company, a.status, a.custom_fields = (
            "Acme, Inc.",
            "Interested",
            {"tier": "gold", "sizes": [1, 2]},
        )
        b = resolve(
            "whatsapp", "966501234567", phone="966501234567", name='Sara "S" Ali', session=s
        )
        b.custom_fields = {"tier": "silver"}
        resolve("web", "c", name="Only A Name", session=s)
    out = io.StringIO()
    export_leads(out, LeadQuery(sort="id"), session_factory=session_factory)
    exported = out.getvalue()
    before = [
        (x.name, x.email, x.phone, x.company, x.status, x.custom_fields)
        for x in _live(session_factory)
    ]

    # Into the same store: everyone with a phone or email is recognised and nothing changes...
    report = _import(session_factory, exported)
    assert (report.created, report.merged, report.rejected) == (1, 2, [])
    assert report.ignored_columns == [EXPORT_HEADER[i] for i in (0, 6, 7, 8, 9, 10)]
    assert report.custom_columns == ["sizes", "tier"]
    # ...but the name-only lead has nothing to be recognised by: it comes back as a new lead.
    assert len(_live(session_factory)) == 3 + 1
    assert [
        (x.name, x.email, x.phone, x.company, x.status, x.custom_fields)
        for x in _live(session_factory)
    ][:3] == before

    # Into an empty store: the same people come back.
    _wipe(session_factory)
    report = _import(session_factory, exported)
    assert (report.created, report.merged, report.rejected) == (3, 0, [])
    after = [
        (x.name, x.email, x.phone, x.company, x.status, x.custom_fields)
        for x in _live(session_factory)
    ]
    assert after == before
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Note)) == 0


def test_import_matches_emails_whatever_their_case_and_merges_across_owners_naming_the_file(
    session_factory,
):
    from store.models import Agent, Notification
    from store.work import add_note

    with session_factory.begin() as s:
        owners = [
            Agent(name=n, role="agent", token_hash=n, capacity=50, active=True) for n in ("A", "B")
        ]
        s.add_all(owners)
        s.flush()
        first = resolve("web", "w-1", phone="+14155552671", name="Jo", session=s)
        second = resolve("messenger", "psid-1", email="jo.smith@example.com", session=s)
        first.assigned_agent_id, second.assigned_agent_id = owners[0].id, owners[1].id
        add_note(second, "B's note", session=s, agent=owners[1])
        ids = (first.id, second.id, owners[1].id)
    report = _import(
        session_factory,
        "name,email,phone\nJo,Jo.Smith@Example.COM,(415) 555-2671\n",
        file_name="fair-2026.csv",
    )
    assert (report.created, report.merged) == (0, 1)
    live = _live(session_factory)
    assert [lead.id for lead in live] == [ids[0]]
    with session_factory() as s:
        reasons = s.scalars(
            select(AuditEvent.new_value).where(
                AuditEvent.lead_id == ids[0], AuditEvent.field == "reason"
            )
        ).all()
        assert reasons == ["import of fair-2026.csv"]
        told = s.scalars(
            select(Notification).where(
                Notification.agent_id == ids[2], Notification.kind == "merged"
            )
        ).all()
        assert len(told) == 1
        assert get_lead(ids[1], session=s).assigned_agent_id == live[0].assigned_agent_id


def test_import_cleans_nul_and_decomposed_accents_in_cells(session_factory):
    text = "name,company,note\r\nJose\u0301\x00 Smith,Caf\u0065\u0301,called\x00 twice\r\n"
    report = _import(session_factory, text)
    assert report.created == 1 and not report.rejected
    [lead] = _live(session_factory)
    assert (lead.name, lead.company) == ("Jos\u00e9 Smith", "Caf\u00e9")
    with session_factory() as s:
        assert list(s.scalars(select(Note.text))) == ["called twice"]
