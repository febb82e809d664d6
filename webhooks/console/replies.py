"""Canned replies: `prompts/replies/*.md`, one reply per file (the name is the shortcut an agent
types after `/` in a reply box, a first `# Title` line its title), filled in for the lead."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import jsonify, request

from store.db import read_session
from store.domain.errors import NotAllowed
from store.domain.permissions import check_visible
from store.models import Lead
from webhooks.app import services
from webhooks.console import auth
from webhooks.console.views import blueprint

log = logging.getLogger(__name__)

PLACEHOLDERS = (
    "first_name",
    "customer_name",
    "phone",
    "email",
    "company",
    "agent_name",
    "business_name",
)
MAX_REPLIES = 200
MAX_CHARS = 4096
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


@dataclass(frozen=True)
class CannedReply:
    shortcut: str
    title: str
    text: str


def load_replies(directory: Path) -> list[CannedReply]:
    """The replies in `directory` (a missing directory has none), by shortcut; files that cannot
    be used are skipped with a warning naming them."""
    if not directory.is_dir():
        return []
    replies: list[CannedReply] = []
    for path in sorted(directory.glob("*.md"))[:MAX_REPLIES]:
        shortcut = path.stem.lower()
        if path.name.lower() == "readme.md":
            continue
        if not _SHORTCUT.fullmatch(shortcut):
            log.warning("canned reply %s skipped: name it like call-back.md", path)
            continue
        try:
            lines = path.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError):
            log.warning("canned reply %s skipped: not readable UTF-8 text", path)
            continue
        # A leading HTML comment is for the admin who edits the file, not part of the reply.
        text_start = "\n".join(lines).lstrip()
        while text_start.startswith("<!--") and "-->" in text_start:
            text_start = text_start.split("-->", 1)[1].lstrip()
        lines = text_start.splitlines()
        title = shortcut.replace("-", " ").replace("_", " ").capitalize()
        if lines and lines[0].startswith("#"):
            title, lines = lines[0].lstrip("#").strip() or title, lines[1:]
        text = "\n".join(lines).strip()[:MAX_CHARS]
        if text:
            replies.append(CannedReply(shortcut, title, text))
    return replies


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(text: str, values: dict[str, str | None]) -> str:
    """The reply with the lead's values in; a placeholder without a value is left out (with the
    space before it), an unknown one is kept as written."""
    known = _Blank({k: v or "" for k, v in values.items() if k in PLACEHOLDERS})
    try:
        filled = text.format_map(known)
    except (ValueError, IndexError, AttributeError):  # a brace that is not a placeholder
        return text
    return re.sub(r" +([,.!?])", r"\1", re.sub(r"[ \t]{2,}", " ", filled)).strip()


@blueprint.get("/replies")
@auth.login_required
def canned_replies() -> Any:
    """The canned replies filled in for `lead_id` (which the agent must be allowed to see)."""
    agent = auth.current_agent()
    assert agent is not None
    lead_id = request.args.get("lead_id", "")
    values: dict[str, str | None] = {
        "agent_name": agent.name,
        "business_name": services().prompts().business.name,
    }
    if lead_id.isdigit():
        with read_session(services().session_factory) as session:
            lead = session.get(Lead, int(lead_id))
            if lead is None:
                return jsonify({"error": {"code": "not_found", "message": "no such lead"}}), 404
            try:
                check_visible(agent, lead)
            except NotAllowed as exc:
                return jsonify({"error": {"code": "forbidden", "message": str(exc)}}), 403
            name = (lead.name or "").strip()
            values.update(
                first_name=name.split()[0] if name else None,
                customer_name=name or None,
                phone=lead.phone,
                email=lead.email,
                company=lead.company,
            )
    directory = services().prompts().replies_directory
    return jsonify(
        {
            "replies": [
                {"shortcut": r.shortcut, "title": r.title, "text": fill(r.text, values)}
                for r in load_replies(directory)
            ]
        }
    )
