"""A fake Telegram Bot API on 127.0.0.1: real HTTP, so python-telegram-bot talks to it unchanged.

`getUpdates` hands out queued updates (long-polling briefly when there are none); `sendMessage`,
`editMessageReplyMarkup`, `answerCallbackQuery` and friends are recorded and answered like Telegram.

    telegram = FakeTelegram().start()
    settings = load_settings(telegram_bot_token="123:abc", telegram_api_url=telegram.url)
    telegram.push_text(user_id=42, text="/start K7P2Q-X9MRT")
    sent = telegram.wait_for_sent(lambda m: m["chat_id"] == 42)
    telegram.stop()
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER = {
    "id": 777000111,
    "is_bot": True,
    "first_name": "Leaddesk",
    "username": "leaddesk_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeTelegram:
    calls: list[Call] = field(default_factory=list)
    max_wait: float = 0.5  # the longest a getUpdates waits for something to arrive

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.fail_sends: int = 0  # the next N sendMessage calls answer 502
        self.reject_token = False  # answer every call 401 Unauthorized, as for a revoked token

    # --- server ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the second waits for
            # the client's delayed ACK, 40 ms on every answer of a kept connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                self._handle()

            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)
                method = path[0].rstrip("/").rsplit("/", 1)[-1]
                params = _parse(raw, self.headers.get("Content-Type", ""))
                if len(path) > 1:
                    params.update(_parse(path[1].encode(), "application/x-www-form-urlencoded"))
                status, body = fake._answer(method, params, dict(self.headers))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-telegram", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- updates in ------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            update = {**update, "update_id": next(self._update_ids)}
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def push_text(
        self,
        *,
        user_id: int,
        text: str,
        chat_type: str = "private",
        chat_id: int | None = None,
        first_name: str = "Agent",
    ) -> dict[str, Any]:
        """A text message from a user (a bot command when it starts with '/')."""
        chat = {"id": chat_id if chat_id is not None else user_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = "Team chat"
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "text": text,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        }
        if text.startswith("/"):
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return self.push_update({"message": message})

    def push_callback(
        self, *, user_id: int, data: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A press on an inline button of `message` (one the bot sent; the last one by default)."""
        original = message or self.sent()[-1]
        return self.push_update(
            {
                "callback_query": {
                    "id": str(next(self._message_ids)),
                    "chat_instance": "1",
                    "data": data,
                    "from": {"id": user_id, "is_bot": False, "first_name": "Agent"},
                    "message": {
                        "message_id": original["message_id"],
                        "date": int(time.time()),
                        "chat": {
                            "id": original["chat_id"],
                            "type": "private",
                            "first_name": "Agent",
                        },
                        "from": BOT_USER,
                        "text": original.get("text", ""),
                    },
                }
            }
        )

    # --- calls out -------------------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Every sendMessage so far (optionally to one chat), as the parameters plus message_id."""
        out = []
        for call in list(self.calls):
            if call.method == "sendMessage" and (
                chat_id is None or int(call.params["chat_id"]) == chat_id
            ):
                out.append(call.params)
        return out

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in list(self.calls) if call.method == method]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError("the fake Telegram did not see the expected call in time")

    def wait_for_sent(
        self,
        match: Callable[[dict[str, Any]], bool] = lambda m: True,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait until `count` sent messages match, and return them."""
        return self.wait_for(
            lambda: (lambda found: found if len(found) >= count else None)(
                [m for m in self.sent() if match(m)]
            ),
            timeout,
        )

    # --- answers ---------------------------------------------------------------------------

    def _answer(
        self, method: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if self.reject_token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(params)}
        self.calls.append(Call(method, params, headers))
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method == "sendMessage":
            if self.fail_sends > 0:
                self.fail_sends -= 1
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            message_id = next(self._message_ids)
            params["message_id"] = message_id
            chat_id = int(params["chat_id"])
            result = {
                "message_id": message_id,
                "date": int(time.time()),
                "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private", "first_name": "Agent"},
                "text": str(params.get("text", "")),
            }
            return 200, {"ok": True, "result": result}
        if method in ("editMessageText", "editMessageReplyMarkup"):
            chat_id = int(params.get("chat_id") or 0)
            return 200, {
                "ok": True,
                "result": {
                    "message_id": int(params.get("message_id") or 0),
                    "date": int(time.time()),
                    "from": BOT_USER,
                    "chat": {"id": chat_id, "type": "private", "first_name": "Agent"},
                    "text": "edited",
                },
            }
        if method in (
            "answerCallbackQuery",
            "setMyCommands",
            "deleteWebhook",
            "setWebhook",
            "sendChatAction",
            "deleteMessage",
            "close",
            "logOut",
        ):
            return 200, {"ok": True, "result": True}
        if method == "getWebhookInfo":
            return 200, {
                "ok": True,
                "result": {"url": "", "has_custom_certificate": False, "pending_update_count": 0},
            }
        return 404, {
            "ok": False,
            "error_code": 404,
            "description": f"Not Found: method {method} is not faked",
        }

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), self.max_wait)
        deadline = time.monotonic() + wait
        with self._cond:
            # Telegram forgets the updates a client confirmed by asking for a later offset.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return list(self._updates[:100])


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    """python-telegram-bot posts form fields, JSON-encoded when they are not plain strings."""
    if not raw:
        return {}
    if "application/json" in content_type:
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}
    if "multipart/form-data" in content_type:
        return _parse_multipart(raw, content_type)
    return {
        key: _value(key, value) for key, value in parse_qsl(raw.decode(), keep_blank_values=True)
    }


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    out: dict[str, Any] = {}
    for part in raw.split(b"--" + boundary):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="' not in head:
            continue
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        out[name] = _value(name, body.rstrip(b"\r\n").decode(errors="replace"))
    return out


def _value(key: str, value: str) -> Any:
    if key in ("text", "caption", "secret_token", "url", "callback_query_id"):
        return value
    if value[:1] in "{[" or value in ("true", "false", "null") or value.lstrip("-").isdigit():
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
