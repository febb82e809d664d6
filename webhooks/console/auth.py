"""Console sign-in: an agent's API token or email + password, a signed session cookie, and CSRF
tokens.

Every POST under /console must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), compared in constant time; the login form gets one before anyone is signed in.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlparse

from flask import abort, g, redirect, request, session, url_for

from store.agents import agent_by_password, agent_by_token
from store.db import read_session
from store.models import Agent
from webhooks.app import services

F = TypeVar("F", bound=Callable[..., Any])

SESSION_AGENT = "console_agent"
SESSION_CSRF = "csrf"


def csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return str(token)


def check_csrf() -> None:
    """Refuse a state-changing request that does not carry this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(SESSION_CSRF)
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(str(expected), str(sent)):
        abort(
            400,
            description="The form expired or did not come from this site. "
            "Go back, reload the page and try again.",
        )


def sign_in(token: str = "", email: str = "", password: str = "") -> Agent | None:
    """The active agent these credentials belong to, or None."""
    with read_session(services().session_factory) as db:
        agent = None
        if token.strip():
            agent = agent_by_token(token.strip(), session=db)
        elif email.strip() and password:
            agent = agent_by_password(email.strip(), password, session=db)
            if agent is None and email.strip() != email.strip().lower():
                # People type their address with capitals they did not register it with.
                agent = agent_by_password(email.strip().lower(), password, session=db)
        if agent is not None:
            db.expunge(agent)
    return agent


def start_session(agent: Agent) -> None:
    # A fresh session (and CSRF token) at sign-in: nothing from before the login survives it.
    session.clear()
    session[SESSION_AGENT] = agent.id
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    session.permanent = True


def end_session() -> None:
    session.clear()


def current_agent() -> Agent | None:
    """The signed-in agent, re-read on every request so that disabling an agent signs them out."""
    if "console_agent_loaded" in g:
        return g.console_agent  # type: ignore[no-any-return]
    agent = None
    agent_id = session.get(SESSION_AGENT)
    if isinstance(agent_id, int):
        with read_session(services().session_factory) as db:
            agent = db.get(Agent, agent_id)
            if agent is not None and agent.active:
                db.expunge(agent)
            else:
                agent = None
        if agent is None:
            session.pop(SESSION_AGENT, None)
    g.console_agent = agent
    g.console_agent_loaded = True
    return agent


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_agent() is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        agent = current_agent()
        if agent is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        if agent.role != "admin":
            abort(403, description="This page is for admins.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Only a path inside the console is a place to go after sign-in (no open redirects)."""
    default = url_for("console.leads")
    if not target:
        return default
    parsed = urlparse(target)
    if (
        parsed.scheme
        or parsed.netloc
        or not target.startswith("/console")
        or target.startswith("//")
    ):
        return default
    return target
