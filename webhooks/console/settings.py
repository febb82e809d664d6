"""The admins' Settings page: the configuration in force from prompts/ (business, statuses, scoring,
knowledge base, files), when it was loaded, and a saved change that was rejected with its
`file:line` problems (the server keeps the last good version until the files validate)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bot.reload import display_path
from store.db import read_session
from store.sealed import SealError
from store.tenancy import FIRST_WORKSPACE, current_workspace
from store.workspaces import (
    ACCOUNT_NAMES,
    CHANNELS,
    WorkspaceError,
    get_workspace,
    list_connections,
    remove_connection,
    set_connection,
)
from webhooks.app import channel_directory, services
from webhooks.console import auth
from webhooks.console.views import blueprint

# The credentials a connection may hold, as the form names them (blank: keep what is stored).
CREDENTIALS = ("access_token", "app_secret", "app_id", "verify_token", "identity_secret")


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
        connections=_connections(),
        channels=CHANNELS,
        account_names=ACCOUNT_NAMES,
        first_workspace=current_workspace() == FIRST_WORKSPACE,
        can_seal=bool(services().settings.secret),
    )


def _connections() -> list[Any]:
    with read_session(services().session_factory) as db:
        return list_connections(current_workspace(), session=db, key=services().settings.secret)


@blueprint.post("/settings/channels")
@auth.admin_required
def settings_channel_set() -> Any:
    """Connect this workspace to an account on a channel, or change its credentials (a field
    left blank keeps the stored one)."""
    form = request.form
    channel = form.get("channel", "")
    credentials = {name: form.get(name, "") for name in CREDENTIALS}
    try:
        with services().session_factory.begin() as db:
            workspace = get_workspace(current_workspace(), session=db)
            assert workspace is not None  # the request's workspace exists
            connection = set_connection(
                workspace,
                channel,
                form.get("account_id", "")[:300],
                credentials,
                session=db,
                key=services().settings.secret,
                keep_unset=True,
            )
            account = connection.account_id
    except (WorkspaceError, SealError) as exc:
        flash(str(exc), "error")
    else:
        channel_directory().refresh()
        flash(f"{channel} {account} is connected to this workspace.", "info")
    return redirect(url_for("console.settings") + "#channels")


@blueprint.post("/settings/channels/remove")
@auth.admin_required
def settings_channel_remove() -> Any:
    channel, account = request.form.get("channel", ""), request.form.get("account_id", "")
    try:
        with services().session_factory.begin() as db:
            workspace = get_workspace(current_workspace(), session=db)
            assert workspace is not None
            removed = remove_connection(workspace, channel, account, session=db)
    except WorkspaceError as exc:  # an unknown channel
        flash(str(exc), "error")
        return redirect(url_for("console.settings") + "#channels")
    if removed:
        channel_directory().refresh()
        flash(f"{channel} {account} is no longer connected to this workspace.", "info")
    else:
        flash("This workspace has no such connection.", "error")
    return redirect(url_for("console.settings") + "#channels")
