"""A fake OpenAI-compatible server on 127.0.0.1 for tests: `POST /v1/chat/completions` answers with
scripted replies (text, tool calls, HTTP errors, slow answers that time the client out, malformed
bodies), streams when asked to, and records every request.

    with FakeOpenAI() as llm:                 # or the `fake_openai` fixture below
        llm.script(text('{"reply": "hi"}'), error(500), timeout(5))
        llm.respond_with(lambda body: text("default answer"))   # when the script is empty
        model = llm.chat_model()              # a real ChatOpenAI pointed at the fake
        ...
        llm.calls, llm.requests[0].body["messages"][0]["content"], llm.system_prompt(0)

`POST /v1/audio/transcriptions` (multipart, as the OpenAI client sends it) answers
`{"text": llm.transcript}` and keeps what it got in `llm.transcriptions` (model, file name, bytes).

Other suites use the fixture with `from tests.fakes.fake_openai import fake_openai  # noqa: F401`
in their conftest.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class FakeReply:
    """One scripted answer."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name", "arguments" (dict or str), "id"?}]
    status: int = 200
    raw_body: bytes | None = None  # sent verbatim (malformed answers)
    error: dict[str, Any] | None = None  # OpenAI-style {"message", "type", "code"}
    delay: float = 0.0
    finish_reason: str | None = None


Scripted = FakeReply | str | dict[str, Any]


def text(content: str, *, delay: float = 0.0) -> FakeReply:
    return FakeReply(content=content, delay=delay)


def as_json(data: Any, *, delay: float = 0.0) -> FakeReply:
    return FakeReply(content=json.dumps(data, ensure_ascii=False), delay=delay)


def tool_call(
    name: str,
    arguments: dict[str, Any] | str,
    *,
    call_id: str | None = None,
    content: str | None = None,
) -> FakeReply:
    return FakeReply(
        content=content, tool_calls=[{"name": name, "arguments": arguments, "id": call_id}]
    )


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> FakeReply:
    return FakeReply(tool_calls=[{"name": name, "arguments": args} for name, args in calls])


def error(
    status: int = 500,
    message: str = "the fake server failed on purpose",
    *,
    kind: str = "server_error",
) -> FakeReply:
    return FakeReply(status=status, error={"message": message, "type": kind, "code": None})


def timeout(seconds: float = 5.0) -> FakeReply:
    """An answer that comes after `seconds`: longer than the client's timeout, it times out."""
    return FakeReply(content="too late", delay=seconds)


def malformed(body: bytes = b'{"choices": [ this is not json') -> FakeReply:
    return FakeReply(raw_body=body)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    def content_of(self, role: str) -> str:
        """All text of the messages with this role, joined."""
        parts = []
        for message in self.messages:
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return "\n".join(parts)


@dataclass
class FakeOpenAI:
    host: str = "127.0.0.1"
    requests: list[RecordedRequest] = field(default_factory=list)
    transcript: str = "Hello, how much is the Home package?"
    transcriptions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[FakeReply] = deque()
        self._responder: Callable[[dict[str, Any]], Scripted] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the second waits for
            # the client's delayed ACK, 40 ms on every answer of a kept connection.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
                return

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
                    )
                else:
                    self._send(
                        404, {"error": {"message": "not found", "type": "invalid_request_error"}}
                    )

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.path.rstrip("/").endswith("/audio/transcriptions"):
                    self._transcribe(raw)
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(
                        400,
                        {
                            "error": {
                                "message": "invalid JSON body",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(
                        404,
                        {
                            "error": {
                                "message": f"no route {self.path}",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                recorded = RecordedRequest(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                reply = fake._next(recorded)
                if reply.delay and fake._closing.wait(reply.delay):
                    return
                try:
                    if reply.raw_body is not None:
                        self._send_bytes(reply.status, reply.raw_body, "application/json")
                    elif reply.error is not None or reply.status >= 400:
                        self._send(
                            reply.status,
                            {"error": reply.error or {"message": "error", "type": "server_error"}},
                        )
                    elif body.get("stream"):
                        self._stream(body, reply)
                    else:
                        self._send(200, fake._completion(body, reply))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timed out) first

            def _transcribe(self, raw: bytes) -> None:
                from email.parser import BytesParser
                from email.policy import HTTP

                content_type = self.headers.get("Content-Type", "")
                if not content_type.startswith("multipart/form-data"):
                    self._send(
                        400,
                        {
                            "error": {
                                "message": "expected multipart/form-data",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {content_type}\r\n\r\n".encode() + raw
                )
                fields: dict[str, Any] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    data = part.get_payload(decode=True) or b""
                    if part.get_filename():
                        fields["filename"] = part.get_filename()
                        fields["file"] = data
                    else:
                        fields[str(name)] = data.decode("utf-8", "replace")
                with fake._lock:
                    fake.transcriptions.append(fields)
                if not fields.get("file") or not fields.get("model"):
                    self._send(
                        400,
                        {
                            "error": {
                                "message": "file and model are required",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                self._send(200, {"text": fake.transcript})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), "application/json")

            def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], reply: FakeReply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in fake._chunks(body, reply):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # Scripting
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def script(self, *replies: Scripted) -> FakeOpenAI:
        """Queue answers, used in order; after them the responder (if any) answers."""
        with self._lock:
            self._script.extend(_coerce(r) for r in replies)
        return self

    def respond_with(self, responder: Callable[[dict[str, Any]], Scripted] | None) -> FakeOpenAI:
        """Answer every unscripted request with `responder(request_body)`."""
        self._responder = responder
        return self

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def system_prompt(self, index: int = -1) -> str:
        return self.requests[index].content_of("system")

    def user_prompt(self, index: int = -1) -> str:
        return self.requests[index].content_of("user")

    def prompt_chars(self, index: int = -1) -> int:
        """Characters of every message of a request (what the prompt costs)."""
        return sum(len(str(m.get("content") or "")) for m in self.requests[index].messages)

    def chat_model(self, **kwargs: Any) -> Any:
        """A real `ChatOpenAI` client pointed at this fake (no retries, short timeout)."""
        from langchain_openai import ChatOpenAI

        options: dict[str, Any] = {
            "model": "fake-model",
            "api_key": "test-key",
            "base_url": self.base_url,
            "max_retries": 0,
            "timeout": 5.0,
        }
        options.update(kwargs)
        return ChatOpenAI(**options)

    # Internals
    def _next(self, recorded: RecordedRequest) -> FakeReply:
        with self._lock:
            self.requests.append(recorded)
            if self._script:
                return self._script.popleft()
        if self._responder is not None:
            return _coerce(self._responder(recorded.body))
        return error(500, "fake OpenAI server: nothing scripted for this request")

    def _completion(self, body: dict[str, Any], reply: FakeReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        calls = self._tool_calls(reply)
        if calls:
            message["tool_calls"] = calls
        prompt_tokens = (
            sum(len(str(m.get("content") or "")) for m in body.get("messages") or []) // 4
        )
        completion_tokens = len(reply.content or "") // 4 + 1
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _tool_calls(self, reply: FakeReply) -> list[dict[str, Any]]:
        calls = []
        for call in reply.tool_calls or []:
            arguments = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id") or f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
        return calls

    def _chunks(self, body: dict[str, Any], reply: FakeReply) -> Iterator[dict[str, Any]]:
        ident = f"chatcmpl-fake-{next(self._ids)}"
        base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
        }
        yield {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
        content = reply.content or ""
        for start in range(0, len(content), 20):
            yield {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": content[start : start + 20]},
                        "finish_reason": None,
                    }
                ],
            }
        for index, call in enumerate(self._tool_calls(reply)):
            yield {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": None,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": call["function"],
                                }
                            ]
                        },
                    }
                ],
            }
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }


def _coerce(reply: Scripted) -> FakeReply:
    if isinstance(reply, FakeReply):
        return reply
    if isinstance(reply, str):
        return text(reply)
    if isinstance(reply, dict):
        return as_json(reply)
    raise TypeError(f"cannot script {reply!r}")


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running fake OpenAI-compatible server, fresh per test."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.close()
