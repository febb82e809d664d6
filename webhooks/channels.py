"""Which workspace a channel account belongs to, and the credentials each workspace answers with.

`ChannelDirectory` asks the store (`store.workspaces.route` and the channel connections, whose
credentials it opens with LEADDESK_SECRET_KEY) and remembers the answers for a few seconds, so a
busy webhook does not query for every request; a change made elsewhere (the CLI, another process)
is seen within `ttl` seconds. The first workspace falls back to the environment (META_APP_SECRET,
WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID, ...) for a channel it has no connection on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.db import read_session
from store.sealed import SealError, unseal
from store.tenancy import FIRST_WORKSPACE
from store.workspaces import (
    connection_for,
    get_workspace,
    route,
    sealed_credentials,
    workspace_connection,
)

log = logging.getLogger(__name__)

# The environment's names for the first workspace's account and token on each Meta channel.
ENV_ACCOUNT = {
    "whatsapp": "whatsapp_phone_number_id",
    "messenger": "messenger_page_id",
    "instagram": "instagram_account_id",
}
ENV_TOKEN = {
    "whatsapp": ("whatsapp_access_token", "WHATSAPP_ACCESS_TOKEN"),
    "messenger": ("messenger_page_access_token", "MESSENGER_PAGE_ACCESS_TOKEN"),
    "instagram": ("instagram_access_token", "INSTAGRAM_ACCESS_TOKEN"),
}


def _secret(value: Any) -> str:
    return value.get_secret_value().strip() if value is not None else ""


@dataclass(frozen=True)
class Credentials:
    """How a workspace answers on a channel: its account (e.g. the WhatsApp phone number id) and
    access token; `source` names where they come from, for messages about what is missing."""

    account_id: str
    access_token: str
    source: str  # "environment" or "connection"


@dataclass(frozen=True)
class WidgetRoute:
    """What a web widget key opens: its workspace (or why it opens none) and the secret its site
    signs visitors' identities with (None: identities are only claimed)."""

    workspace_id: int | None
    problem: str | None = None  # "unknown" or "disabled"
    identity_secret: str | None = None


class ChannelDirectory:
    """Routing and credentials per workspace, cached for `ttl` seconds (thread-safe)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Any,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def refresh(self) -> None:
        """Forget every remembered answer (the next question asks the store)."""
        with self._lock:
            self._cache.clear()

    def _remember(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            found = self._cache.get(key)
            if found is not None and now - found[0] < self._ttl:
                return found[1]
        value = compute()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value

    # -- inbound ----------------------------------------------------------------------------------

    def route(self, channel: str, account_id: str | None) -> int | None:
        """The workspace an event for this account belongs to (None: nobody's, drop it)."""

        def ask() -> int | None:
            env_account = getattr(self._settings, ENV_ACCOUNT.get(channel, ""), None)
            with read_session(self._session_factory) as session:
                return route(channel, account_id, session=session, env_account=env_account)

        return self._remember(("route", channel, account_id), ask)  # type: ignore[no-any-return]

    def app_secret(self, channel: str, account_id: str | None) -> str:
        """The secret a webhook for this account is signed with: the connection's own Meta app
        secret, else META_APP_SECRET ("" when neither is set: nothing to check)."""
        own = self._connection_secrets(channel, account_id).get("app_secret", "")
        return own or _secret(self._settings.meta_app_secret)

    def app_id(self, channel: str, account_id: str | None) -> str | None:
        """The Meta app whose echoes are our own replies: the connection's, else META_APP_ID."""
        own = self._connection_secrets(channel, account_id).get("app_id", "")
        return own or self._settings.meta_app_id

    def verify_tokens(self, channel: str) -> list[str]:
        """The tokens a Meta subscription of this channel may be verified with: META_VERIFY_TOKEN
        and every connection's own `verify_token`."""

        def ask() -> list[str]:
            with read_session(self._session_factory) as session:
                sealed = sealed_credentials(channel, session=session)
            own = [self._open(s, f"{channel} account").get("verify_token", "") for s in sealed]
            default = _secret(self._settings.meta_verify_token)
            return [token for token in (default, *own) if token]

        return self._remember(("verify", channel), ask)  # type: ignore[no-any-return]

    def _connection_secrets(self, channel: str, account_id: str | None) -> dict[str, str]:
        if not account_id:
            return {}

        def ask() -> dict[str, str]:
            with read_session(self._session_factory) as session:
                found = connection_for(channel, account_id, session=session)
                sealed = found.secrets if found is not None else None
            return self._open(sealed, f"{channel} account")

        return self._remember(("secrets", channel, account_id), ask)  # type: ignore[no-any-return]

    def _open(self, sealed: str | None, what: str) -> dict[str, str]:
        try:
            return unseal(sealed, self._settings.secret)
        except SealError as exc:
            log.error("the credentials of a %s cannot be read: %s", what, exc)
            return {}

    def widget(self, key: str | None) -> WidgetRoute:
        """The workspace a web widget's key opens (no key: the first workspace)."""
        key = (key or "").strip()
        default_secret = _secret(self._settings.webchat_secret) or None
        if not key:
            return WidgetRoute(FIRST_WORKSPACE, identity_secret=default_secret)

        def ask() -> WidgetRoute:
            with read_session(self._session_factory) as session:
                found = connection_for("web", key, session=session)
                if found is None:
                    return WidgetRoute(None, "unknown")
                workspace = get_workspace(found.workspace_id, session=session)
                if workspace is None or not workspace.active:
                    return WidgetRoute(None, "disabled")
                workspace_id, sealed = found.workspace_id, found.secrets
            # LEADDESK_WEBCHAT_SECRET is the first workspace's; another signs with its own.
            own = self._open(sealed, "web widget").get("identity_secret") or None
            if own is None and workspace_id == FIRST_WORKSPACE:
                own = default_secret
            return WidgetRoute(workspace_id, identity_secret=own)

        return self._remember(("widget", key), ask)  # type: ignore[no-any-return]

    # -- outbound ---------------------------------------------------------------------------------

    def credentials(self, workspace_id: int, channel: str) -> Credentials | None:
        """How the workspace sends on a Meta channel: its connection there, or for the first
        workspace without one, the environment; None: it has neither."""

        def ask() -> Credentials | None:
            with read_session(self._session_factory) as session:
                found = workspace_connection(workspace_id, channel, session=session)
                if found is not None:
                    account, sealed = found.account_id, found.secrets
            if found is not None:
                values = self._open(sealed, f"{channel} account")
                return Credentials(account, values.get("access_token", ""), "connection")
            if workspace_id != FIRST_WORKSPACE or channel not in ENV_TOKEN:
                return None
            settings = self._settings
            return Credentials(
                str(getattr(settings, ENV_ACCOUNT[channel], None) or "").strip(),
                _secret(getattr(settings, ENV_TOKEN[channel][0], None)),
                "environment",
            )

        return self._remember(("credentials", workspace_id, channel), ask)  # type: ignore[no-any-return]

    def missing(self, workspace_id: int, channel: str) -> str | None:
        """What stops the workspace from sending on a Meta channel (None: nothing)."""
        found = self.credentials(workspace_id, channel)
        if found is None:
            return f"this workspace has no {channel} connection"
        if found.source == "environment":
            if not found.access_token:
                return ENV_TOKEN[channel][1]
            if channel == "whatsapp" and not found.account_id:
                return "WHATSAPP_PHONE_NUMBER_ID"
            return None
        if not found.access_token:
            return f"the {channel} connection's access token"
        return None
