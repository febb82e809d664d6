"""The admins' Settings page: the configuration in force from prompts/ (business, statuses, scoring,
knowledge base, files), when it was loaded, and a saved change that was rejected with its
`file:line` problems (the server keeps the last good version until the files validate)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from flask import render_template

from bot.reload import display_path
from webhooks.app import services
from webhooks.console import auth
from webhooks.console.views import blueprint


def prompts_state() -> dict[str, Any]:
    """The reload state: version, loaded at, watching, and a rejected change (or None)."""
    probe = services().prompts_health
    if probe is None:
        return {"status": "ok", "version": None, "loaded_at": None, "watching": False}
    report = dict(probe())
    if report.get("loaded_at"):
        report["loaded_at"] = datetime.fromisoformat(report["loaded_at"])
    rejected = report.get("rejected")
    if rejected and rejected.get("at"):
        rejected = {**rejected, "at": datetime.fromisoformat(rejected["at"])}
        report["rejected"] = rejected
    return report


@blueprint.get("/settings")
@auth.admin_required
def settings() -> Any:
    config = services().prompts()
    business = config.business
    directory = Path(config.directory)
    files = [
        {"path": display_path(str(path), directory), "bytes": path.stat().st_size}
        for path in config.files
        if path.exists()
    ]
    languages: dict[str, int] = {}
    for section in config.knowledge:
        languages[section.language] = languages.get(section.language, 0) + 1
    return render_template(
        "console_settings.html",
        state=prompts_state(),
        directory=str(directory),
        business=business,
        hours=business.hours.describe(),
        statuses=config.statuses,
        scoring=config.scoring,
        knowledge=languages,
        sections=len(config.knowledge),
        custom_fields=config.custom_fields,
        files=files,
    )
