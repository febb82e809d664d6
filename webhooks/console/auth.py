"""Console sign-in: an agent's API token or email + password, a server-side session behind a
signed cookie, a sign-in throttle, and CSRF tokens.

Every POST under /console must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), compared in constant time; the login form gets one before anyone is signed in.

The cookie only holds a random session key; the `console_sessions` row it names is checked on
every request, so signing out, "sign out everywhere", a new token or password and disabling the
agent end it at once, as do `LEADDESK_SESSION_HOURS` without a request and
`LEADDESK_SESSION_MAX_HOURS` in all.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlparse

from flask import Flask, abort, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash

from store.agents import TokenOnlyAgent, agent_by_password, agent_by_token
from store.console_sessions import (
    check_console_session,
    end_console_session,
    end_console_sessions,
    forget_expired_sessions,
    open_console_session,
    select_console_workspace,
    touch_console_session,
)
from store.db import read_session
from store.models import Agent, Workspace
from store.workspaces import agent_workspaces
from webhooks import ratelimit
from webhooks.api.base import now
from webhooks.app import enter_request_workspace, services

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

SESSION_KEY = "console_session"
SESSION_CSRF = "csrf"

# Failed sign-ins allowed per typed email and per client address before a cooling-off period
# (a moving window: the oldest failure must age out first). An office shares one address.
ACCOUNT_FAILURES = "10 per 15 minutes"
ADDRESS_FAILURES = "30 per 15 minutes"
COOLING_OFF_MINUTES = 15


class CookieInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (directly or as a
    trusted proxy says), and always when LEADDESK_SECURE_COOKIES is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def configure_cookies(app: Flask, settings: Any) -> None:
    """HttpOnly, SameSite=Lax, Secure on HTTPS; the cookie expires after the idle timeout (renewed
    whenever the server-side session records activity, see `current_agent`)."""
    app.session_interface = CookieInterface()
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(getattr(settings, "secure_cookies", False))
    app.config["PERMANENT_SESSION_LIFETIME"] = idle_timeout(settings)
    # Not on every request: the page's own background requests (live list and pane refreshes)
    # run beside a form's POST, and one that read the cookie before the POST set a flash message
    # would answer after it with the old cookie, and the message would be lost.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False


def idle_timeout(settings: Any) -> timedelta:
    return timedelta(hours=float(getattr(settings, "session_hours", 12.0)))


def absolute_timeout(settings: Any) -> timedelta:
    return timedelta(hours=float(getattr(settings, "session_max_hours", 24.0 * 7)))


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


@dataclass
class SignIn:
    """The outcome of a sign-in attempt: the agent, or the message to show."""

    agent: Agent | None
    message: str = ""


FAILED = (
    "Those credentials do not match an active agent. After repeated failures, sign-in pauses "
    f"for {COOLING_OFF_MINUTES} minutes."
)
NO_WORKSPACE = "This account is not a member of any active workspace; ask an admin to add you."
TOKEN_ONLY = "This account signs in with its token: paste the agent's API token instead."


def sign_in(token: str = "", email: str = "", password: str = "") -> SignIn:
    """Check the credentials under the sign-in throttle (per typed email and per address)."""
    address = request.remote_addr or "unknown"
    account = email.strip().lower()
    account_limit, address_limit = (
        ratelimit.limit(ACCOUNT_FAILURES),
        ratelimit.limit(ADDRESS_FAILURES),
    )
    if ratelimit.exceeded(address_limit, "signin-address", address) or (
        account and ratelimit.exceeded(account_limit, "signin-account", account)
    ):
        # Refused without looking at the password: the right one gets the same answer.
        return SignIn(None, FAILED)
    with services().session_factory() as db:
        agent = None
        message = FAILED
        try:
            if token.strip():
                agent = agent_by_token(token.strip(), session=db)
            elif account and password:
                agent = agent_by_password(email.strip(), password, session=db)
                if agent is None and email.strip() != account:
                    # People type their address with capitals they did not register it with.
                    agent = agent_by_password(account, password, session=db)
        except TokenOnlyAgent:
            message = TOKEN_ONLY
        if agent is not None and not agent_workspaces(agent.id, session=db):
            # The right credentials, but nowhere to work: said plainly, not counted as a failure.
            return SignIn(None, NO_WORKSPACE)
        if agent is not None:
            db.expunge(agent)
            return SignIn(agent)
    _count_failure(account, address)
    return SignIn(None, message)


def current_password_ok(agent: Agent, password: str) -> bool:
    """Check a signed-in agent's current password (e.g. to change it), under the sign-in throttle:
    a stolen session cannot be used to guess the password."""
    address = request.remote_addr or "unknown"
    account = (agent.email or f"agent-{agent.id}").lower()
    if ratelimit.exceeded(ratelimit.limit(ADDRESS_FAILURES), "signin-address", address) or (
        ratelimit.exceeded(ratelimit.limit(ACCOUNT_FAILURES), "signin-account", account)
    ):
        return False
    if agent.password_hash and check_password_hash(agent.password_hash, password):
        return True
    _count_failure(account, address)
    return False


def _count_failure(account: str, address: str) -> None:
    """Count a failed sign-in; the one that uses up a limit starts the pause and is logged."""
    counted = [("address", address, ratelimit.limit(ADDRESS_FAILURES))]
    if account:
        counted.append(("account", account[:320], ratelimit.limit(ACCOUNT_FAILURES)))
    for kind, key, item in counted:
        ratelimit.hit(item, f"signin-{kind}", key)
        if ratelimit.exceeded(item, f"signin-{kind}", key):
            log.warning(
                "console sign-in paused for %s minutes for %s %r after %s failed attempts",
                COOLING_OFF_MINUTES,
                kind,
                key,
                item.amount,
            )


def start_session(agent: Agent) -> None:
    """A fresh session (and CSRF token) at sign-in: nothing from before the login survives it."""
    settings = services().settings
    at = now()
    with services().session_factory.begin() as db:
        forget_expired_sessions(
            session=db, now=at, idle=idle_timeout(settings), lifetime=absolute_timeout(settings)
        )
        key = open_console_session(agent, session=db, now=at)
    session.clear()
    session[SESSION_KEY] = key
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    session.permanent = True


def end_session(everywhere: bool = False) -> None:
    """Sign this browser out (or, `everywhere`, every browser of the signed-in agent)."""
    key = session.get(SESSION_KEY)
    agent = current_agent()
    with services().session_factory.begin() as db:
        if everywhere and agent is not None:
            end_console_sessions(agent.id, session=db)
        elif isinstance(key, str):
            end_console_session(key, session=db)
    session.clear()
    g.console_agent = None


def current_agent() -> Agent | None:
    """The signed-in agent, checked against the server's session on every request; the request
    works in the session's workspace from then on (`agent.role` is their role there)."""
    if "console_agent_loaded" in g:
        return g.console_agent  # type: ignore[no-any-return]
    agent = None
    workspace_id: int | None = None
    key = session.get(SESSION_KEY)
    if isinstance(key, str):
        settings, at = services().settings, now()
        with read_session(services().session_factory) as db:
            check = check_console_session(
                key,
                session=db,
                now=at,
                idle=idle_timeout(settings),
                lifetime=absolute_timeout(settings),
            )
            agent, workspace_id = check.agent, check.workspace_id
            if agent is not None:
                db.expunge(agent)
        if check.expired or check.touch:
            with services().session_factory.begin() as db:
                if check.expired:
                    end_console_session(key, session=db)
                else:
                    touch_console_session(key, session=db, now=at)
                    session.modified = True  # the cookie's idle expiry moves with it
        if agent is None:
            session.pop(SESSION_KEY, None)
    if agent is not None and workspace_id is not None:
        enter_request_workspace(workspace_id)
    g.console_agent = agent
    g.console_agent_loaded = True
    return agent


def workspaces() -> list[tuple[Workspace, str]]:
    """The signed-in agent's workspaces with their role in each (for the switcher)."""
    agent = current_agent()
    if agent is None:
        return []
    if "console_workspaces" not in g:
        with read_session(services().session_factory) as db:
            found = agent_workspaces(agent.id, session=db)
            for workspace, _role in found:
                if workspace in db:
                    db.expunge(workspace)
        g.console_workspaces = found
    return g.console_workspaces  # type: ignore[no-any-return]


def switch_workspace(ref: str) -> Workspace | None:
    """Make this browser's session work in the signed-in agent's workspace `ref` (id or slug);
    None when it is not one of theirs."""
    key = session.get(SESSION_KEY)
    chosen = next(
        (w for w, _role in workspaces() if ref in (str(w.id), w.slug)),
        None,
    )
    if chosen is None or not isinstance(key, str):
        return None
    with services().session_factory.begin() as db:
        select_console_workspace(key, chosen.id, session=db)
    return chosen


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
