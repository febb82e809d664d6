"""A fake Meta Graph API send endpoint on 127.0.0.1: records every request, answers like Meta does,
and can be scripted to fail (HTTP errors, answers slower than the client's timeout, dropped
connections).

    graph = FakeGraph().start()
    graph.script(500, 503)           # the next two sends fail with 5xx, then the default answer
    settings = load_settings(meta_graph_url=graph.url, ...)
    ...
    graph.requests[0].json["to"]
    graph.stop()

It also answers the reads the bot makes (GET, never consuming the script): a customer's profile
(`graph.profiles[user_id] = {"first_name": ...}`) and WhatsApp media, whose id gives a URL on the
fake that serves the bytes (`graph.media[media_id] = (b"...", "audio/ogg")`); both want the
channel's token (`graph.tokens`, when set, lists the ones it accepts).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status with a body, a delay, or a dropped connection."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False


Scripted = int | Reply


@dataclass
class FakeGraph:
    requests: list[Recorded] = field(default_factory=list)
    # Called (in the server thread) for every request before it is answered, e.g. to check that the
    # client holds no database lock while it waits.
    on_request: Callable[[Recorded], None] | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v21.0"

    def script(self, *replies: Scripted) -> None:
        """Queue answers for the next requests (an int is an HTTP status with a Graph-style
        error)."""
        with self._lock:
            for reply in replies:
                self._script.append(reply if isinstance(reply, Reply) else Reply(status=reply))

    def start(self) -> FakeGraph:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the second waits for
            # the client's delayed ACK, 40 ms on every answer of a kept connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                recorded = Recorded("POST", self.path, dict(self.headers.items()), body)
                with fake._lock:
                    fake.requests.append(recorded)
                    reply = fake._script.popleft() if fake._script else Reply()
                if fake.on_request is not None:
                    fake.on_request(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = (
                    reply.body
                    if reply.body is not None
                    else fake._answer(self.path, body, reply.status)
                )
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                recorded = Recorded("GET", self.path, dict(self.headers.items()), None)
                with fake._lock:
                    fake.requests.append(recorded)
                status, content_type, data = fake._read(
                    self.path, self.headers.get("Authorization", "")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence request logs
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-graph", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _read(self, path: str, authorization: str) -> tuple[int, str, bytes]:
        """A GET: a media file's bytes, a media id's URL, or a profile; Graph errors otherwise."""
        from urllib.parse import urlsplit

        def error(status: int, message: str, code: int) -> tuple[int, str, bytes]:
            body = {"error": {"message": message, "type": "OAuthException", "code": code}}
            return status, "application/json", json.dumps(body).encode()

        token = authorization.removeprefix("Bearer ").strip()
        if not token or (self.tokens and token not in self.tokens):
            return error(401, "Invalid OAuth access token.", 190)
        parts = urlsplit(path).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "media-files" and parts[1] in self.media:
            data, content_type = self.media[parts[1]]
            return 200, content_type, data
        node = parts[-1] if parts else ""
        if node in self.media:
            _data, content_type = self.media[node]
            url = f"{self.url.rsplit('/', 1)[0]}/media-files/{node}"
            body = {"id": node, "url": url, "mime_type": content_type}
            return 200, "application/json", json.dumps(body).encode()
        if node in self.profiles:
            return 200, "application/json", json.dumps({"id": node, **self.profiles[node]}).encode()
        return error(400, "(#100) Object does not exist or missing permissions", 100)

    def _answer(self, path: str, body: Any, status: int) -> dict[str, Any]:
        if status >= 400:
            return {
                "error": {
                    "message": "Scripted failure" if status >= 500 else "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "code": 2 if status >= 500 else 100,
                    "fbtrace_id": "AbCdEf",
                }
            }
        number = next(self._ids)
        if path.rstrip("/").endswith("/me/messages"):
            recipient = (
                (body or {}).get("recipient", {}).get("id") if isinstance(body, dict) else None
            )
            return {"recipient_id": recipient, "message_id": f"m_fake{number}"}
        to = (body or {}).get("to") if isinstance(body, dict) else None
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.fake{number}"}],
        }
