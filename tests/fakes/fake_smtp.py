"""A real SMTP server on 127.0.0.1 (aiosmtpd) whose answers a test scripts: it keeps every message
it accepted, and can refuse a message (4xx/5xx), drop the connection after the content, or run a
hook at the moment the content arrived."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from webhooks.mail import InboundEmail, parse_message


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def parsed(self) -> InboundEmail:
        return parse_message(self.raw)


@dataclass
class ScriptedHandler:
    """aiosmtpd handler: answers DATA from `data_replies` in order ("250 ..." accepts and keeps
    the message; "drop" closes the connection without answering), then "250 OK" for good."""

    data_replies: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    data_commands: int = 0
    on_data: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        refusal = self.rcpt_replies.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.data_commands += 1
            reply = self.data_replies.pop(0) if self.data_replies else "250 OK"
        if self.on_data is not None:
            self.on_data()
        if reply == "drop":
            server.transport.abort()
            return "250 OK"  # never reaches the client
        if reply.startswith("250"):
            raw = envelope.original_content or envelope.content
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw)))
        return reply


@dataclass
class FakeSmtp:
    handler: ScriptedHandler
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


@contextmanager
def running_smtp(
    tls_context: ssl.SSLContext | None = None, *, require_starttls: bool = False
) -> Iterator[FakeSmtp]:
    """Start the server on a free loopback port (offering STARTTLS with `tls_context`, and then
    refusing mail before it when `require_starttls`); stop it afterwards."""
    handler = ScriptedHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        decode_data=False,
        tls_context=tls_context,
        require_starttls=require_starttls,
    )
    controller.start()
    try:
        yield FakeSmtp(handler, "127.0.0.1", port)
    finally:
        controller.stop()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
