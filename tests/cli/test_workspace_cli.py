"""`leaddesk --workspace SLUG ...` (or LEADDESK_WORKSPACE) runs a command in that workspace, with
its prompts; without it, the first workspace's, as before workspaces."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.config import DEFAULT_PROMPTS_DIR
from store import make_session_factory
from store.models import Lead, Workspace
from store.tenancy import in_workspace

PHONE = "+15125550199"  # the same customer is a lead of both businesses


@pytest.fixture
def two_desks(db_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace "acme" (id 2) beside the first; each has leads, one of them the same person.
    Acme's prompts define a custom field of their own."""
    session_factory = make_session_factory(db_engine)
    with session_factory.begin() as session:
        session.add(Workspace(id=2, slug="acme", name="Acme", active=True))
    with session_factory.begin() as session:
        session.add(Lead(name="Dana Sunpeak", phone=PHONE, custom_fields={"roof_type": "metal"}))
    with in_workspace(2), session_factory.begin() as session:
        session.add(Lead(name="Dana Acme", phone=PHONE, custom_fields={"gutter_colour": "red"}))
        session.add(Lead(name="Eve Acme", email="eve@example.com"))
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    (prompts / "acme").mkdir()
    (prompts / "acme" / "custom_fields.yaml").write_text(
        "fields:\n  - name: gutter_colour\n    label: Gutter colour\n    type: text\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LEADDESK_PROMPTS_DIR", str(prompts))
    monkeypatch.delenv("LEADDESK_WORKSPACE", raising=False)


def exported(out: str) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(out)))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_export_with_a_workspace_exports_only_its_leads_with_its_fields(cli, two_desks) -> None:  # type: ignore[no-untyped-def]
    acme = cli("--workspace", "acme", "leads", "export")
    assert acme.code == 0, acme.err
    rows = exported(acme.out)
    assert sorted(r["name"] for r in rows) == ["Dana Acme", "Eve Acme"]
    dana = next(r for r in rows if r["name"] == "Dana Acme")
    assert dana["gutter_colour"] == "red" and "roof_type" not in dana

    first = cli("leads", "export")
    assert first.code == 0, first.err
    (row,) = exported(first.out)
    assert row["name"] == "Dana Sunpeak" and row["roof_type"] == "metal"
    assert "gutter_colour" not in row


def test_the_workspace_can_come_from_the_environment(cli, two_desks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADDESK_WORKSPACE", "acme")
    result = cli("leads", "export")
    assert result.code == 0, result.err
    assert sorted(r["name"] for r in exported(result.out)) == ["Dana Acme", "Eve Acme"]
    # The command line wins over the environment.
    first = cli("--workspace", "default", "leads", "export")
    assert [r["name"] for r in exported(first.out)] == ["Dana Sunpeak"]


def test_an_unknown_workspace_is_a_one_line_error(cli, two_desks) -> None:  # type: ignore[no-untyped-def]
    result = cli("--workspace", "nowhere", "leads", "export")
    assert result.code == 1
    assert result.err.strip() == "leaddesk: error: there is no workspace 'nowhere'"
    assert result.out == ""
    serve = cli("--workspace", "acme", "serve")
    assert serve.code == 1 and "--workspace does not apply" in serve.err


def test_prompts_check_reports_each_workspace_directory(bare_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts, ignore=shutil.ignore_patterns("eval"))
    (prompts / "acme").mkdir()
    (prompts / "acme" / "business.yaml").write_text(
        (DEFAULT_PROMPTS_DIR / "business.yaml")
        .read_text(encoding="utf-8")
        .replace("timezone: America/Chicago", "timezone: Mars/Olympus_Mons"),
        encoding="utf-8",
    )
    (prompts / "zeta" / "knowledge").mkdir(parents=True)
    (prompts / "zeta" / "knowledge" / "faq.md").write_text(
        "# FAQ\n\n## Opening {#opening}\nkeywords: open\nWe open at nine.\n", encoding="utf-8"
    )
    result = bare_cli("prompts", "check", str(prompts))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{prompts}: ok - 7 statuses")
    # Acme's own file is wrong (its other files are the shipped ones, which are fine).
    (problem,) = [line for line in lines if "acme" in line]
    assert "business.yaml" in problem and "Mars/Olympus_Mons" in problem
    assert any(line.startswith(f"workspace {prompts / 'zeta'}: ok") for line in lines)
    assert f"1 problem(s) in {prompts / 'acme'}" in result.err
