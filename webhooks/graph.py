"""Reading from Meta's Graph API what a webhook does not carry: a customer's profile name
(Messenger, Instagram) and the bytes of a media file (a voice note to transcribe).

Every call uses the token of the workspace in force on the channel; a channel without one, a
missing permission or a failed call gives None (the caller carries on without), and nothing is
retried here: the next message asks again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx

from store.tenancy import FIRST_WORKSPACE, current_workspace
from webhooks.channels import ChannelDirectory

log = logging.getLogger(__name__)

# Voice notes are short; a bigger file is not read into memory.
MAX_MEDIA_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class MediaFile:
    data: bytes
    mime_type: str
    filename: str


def _secret(value: Any) -> str:
    return value.get_secret_value().strip() if value is not None else ""


class MetaGraph:
    """A small Graph API reader; thread-safe, one HTTP client for the process."""

    def __init__(
        self,
        settings: Any,
        *,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
        channels: ChannelDirectory | None = None,
    ) -> None:
        self._settings = settings
        # Each workspace's tokens; None: the environment's (the first workspace's) only.
        self._channels = channels
        self._timeout = timeout
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self._lock = threading.Lock()
        # Profiles asked for recently (found or not): one lookup per customer, not per message.
        self._asked: OrderedDict[tuple[int, str, str], str | None] = OrderedDict()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def token(self, channel: str) -> str:
        """The access token of the workspace in force on the channel ("" when it has none)."""
        if self._channels is not None:
            found = self._channels.credentials(current_workspace(), channel)
            return found.access_token if found is not None else ""
        if current_workspace() != FIRST_WORKSPACE:
            return ""
        settings = self._settings
        return {
            "whatsapp": _secret(settings.whatsapp_access_token),
            "messenger": _secret(settings.messenger_page_access_token),
            "instagram": _secret(settings.instagram_access_token),
        }.get(channel, "")

    def _get(self, url: str, token: str, **params: str) -> httpx.Response:
        return self._http.get(
            url,
            params=params or None,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self._timeout,
            follow_redirects=True,
        )

    # -- profiles ------------------------------------------------------------------------------

    def profile_name(self, channel: str, user_id: str) -> str | None:
        """The name on a Messenger or Instagram customer's profile, when the token may read it."""
        key = (current_workspace(), channel, user_id)
        with self._lock:
            if key in self._asked:
                return self._asked[key]
        name = self._fetch_profile(channel, user_id)
        with self._lock:
            self._asked[key] = name
            while len(self._asked) > 10000:
                self._asked.popitem(last=False)
        return name

    def _fetch_profile(self, channel: str, user_id: str) -> str | None:
        token = self.token(channel)
        if channel not in ("messenger", "instagram") or not token:
            return None
        fields = "first_name,last_name,name" if channel == "messenger" else "name,username"
        url = f"{self._settings.meta_graph_url.rstrip('/')}/{user_id}"
        try:
            response = self._get(url, token, fields=fields)
        except httpx.HTTPError as exc:
            log.warning("reading a %s profile failed (%s)", channel, type(exc).__name__)
            return None
        if response.status_code >= 400:
            log.info("the %s token may not read profiles (HTTP %d)", channel, response.status_code)
            return None
        try:
            data = response.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        parts = [data.get("first_name"), data.get("last_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        if not name:
            for key in ("name", "username"):
                if isinstance(data.get(key), str) and data[key].strip():
                    name = data[key].strip()
                    break
        return name[:200] or None

    # -- media ---------------------------------------------------------------------------------

    def media(self, channel: str, payload: dict[str, Any]) -> MediaFile | None:
        """The bytes of the audio in a stored message payload: on WhatsApp the media id gives a
        short-lived URL (both read with the channel token); Messenger and Instagram put the URL in
        the attachment."""
        token = self.token(channel)
        if not token:
            log.info("no %s token: the voice note cannot be fetched", channel)
            return None
        mime_type = "audio/ogg"
        if channel == "whatsapp":
            audio = payload.get("audio")
            audio = audio if isinstance(audio, dict) else {}
            media_id = str(audio.get("id") or "").strip()
            if not media_id:
                return None
            meta = self._get(f"{self._settings.meta_graph_url.rstrip('/')}/{media_id}", token)
            meta.raise_for_status()
            info = meta.json()
            url = str(info.get("url") or "")
            mime_type = str(info.get("mime_type") or audio.get("mime_type") or mime_type)
        else:
            url = _attachment_url(payload)
        if not url:
            return None
        response = self._get(url, token)
        response.raise_for_status()
        data = response.content
        if len(data) > MAX_MEDIA_BYTES:
            log.warning("a voice note of %d bytes is too big to transcribe", len(data))
            return None
        mime_type = response.headers.get("content-type", mime_type).split(";")[0].strip()
        extension = {
            "audio/ogg": "ogg",
            "audio/mpeg": "mp3",
            "audio/mp4": "m4a",
            "audio/aac": "aac",
            "audio/amr": "amr",
            "audio/wav": "wav",
            "audio/webm": "webm",
        }.get(mime_type, "ogg")
        return MediaFile(data=data, mime_type=mime_type, filename=f"voice.{extension}")


def _attachment_url(payload: dict[str, Any]) -> str:
    message = payload.get("message")
    message = message if isinstance(message, dict) else {}
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("type") == "audio":
            inner = attachment.get("payload")
            inner = inner if isinstance(inner, dict) else {}
            return str(inner.get("url") or "")
    return ""
