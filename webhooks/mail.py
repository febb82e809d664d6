"""The email channel: mail to leads over SMTP (`LEADDESK_SMTP_URL`), and reading a raw message back.

Sending: `EmailChannel.send` hands one message to the SMTP server with the standard library's
smtplib, retrying with backoff while the failure is transient (connection refused, timeouts, SMTP
4xx answers) and never when it is permanent (5xx, a refused address, failed authentication). A
connection lost after the message's content went out is neither: the server may have accepted it,
so it is reported `uncertain` and not retried (the outbox records it "unknown"; an agent may send
again on purpose). `smtp://` upgrades to TLS with STARTTLS when the server offers it; `smtps://`
speaks TLS from the start.

Receiving is not wired yet. An inbound adapter (an IMAP poller or a provider's inbound webhook)
turns each raw message into `InboundEmail` with `parse_message` and matches it to the lead by its
`in_reply_to` (the Message-ID stored on the sent message's `channel_message_id`) or by the sender's
address, the way the other channels' adapters turn their payloads into one small dataclass.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import unquote, urlsplit

from webhooks.retry import Transient, with_backoff

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server, from `LEADDESK_SMTP_URL`."""

    scheme: str  # "smtp" (STARTTLS when offered) or "smtps" (TLS from the start)
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:port` or `smtps://...`; `ValueError` saying what is wrong."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid SMTP URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("use smtp://user:pass@host:port or smtps://user:pass@host:port")
    if not parts.hostname:
        raise ValueError("the SMTP URL names no host (smtp://user:pass@host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the SMTP URL takes no path or query (smtp://user:pass@host:port)")
    if parts.password is not None and not parts.username:
        raise ValueError("the SMTP URL has a password but no user name")
    return SmtpConfig(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def valid_address(value: str | None) -> str | None:
    """The bare address in `value` if it is one plausible address (local@domain.tld), else None."""
    name, address = parseaddr((value or "").strip())
    del name
    if not address or any(c.isspace() for c in address) or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    if not local or "." not in domain.strip(".") or domain.startswith(".") or ".." in domain:
        return None
    return address


def new_message_id(sender: str) -> str:
    """A unique Message-ID on the sender's domain, e.g. `<1732...@example.com>`."""
    address = valid_address(sender) or ""
    domain = address.rpartition("@")[2] or "leaddesk.invalid"
    return make_msgid(domain=domain)


def build_message(
    *, sender: str, recipient: str, subject: str, body: str, message_id: str, to_name: str = ""
) -> EmailMessage:
    """The plain-text email as it goes out."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((to_name, recipient)) if to_name else recipient
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = formatdate(usegmt=True)
    message.set_content(body)
    return message


@dataclass(frozen=True)
class InboundEmail:
    """One received email, as an inbound adapter hands it on."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    in_reply_to: str
    text: str


def parse_message(raw: bytes) -> InboundEmail:
    """Read a raw RFC 5322 message: its addresses, subject, ids and plain-text body."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    body = (
        message.get_body(preferencelist=("plain",)) if isinstance(message, EmailMessage) else None
    )
    text = body.get_content() if body is not None else ""
    recipients = tuple(
        address
        for _, address in (parseaddr(part) for part in str(message.get("To", "")).split(","))
        if address
    )
    return InboundEmail(
        sender=parseaddr(str(message.get("From", "")))[1],
        recipients=recipients,
        subject=str(message.get("Subject", "")),
        message_id=str(message.get("Message-ID", "")).strip(),
        in_reply_to=str(message.get("In-Reply-To", "")).strip(),
        text=str(text).replace("\r\n", "\n").strip(),
    )


@dataclass
class MailResult:
    """How one send ended: `ok`; else `error`, and `uncertain` when the server may have the
    message anyway (the connection broke after its content went out)."""

    ok: bool
    error: str | None = None
    uncertain: bool = False
    attempts: int = 0


class _Attempt(Exception):
    """One attempt's failure: `transient` ones are tried again, `uncertain` ones never."""

    def __init__(self, message: str, *, transient: bool, uncertain: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.uncertain = uncertain


class EmailChannel:
    """Sends plain-text email through one SMTP server, from `sender`."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        sender: str,
        timeout: float = 20.0,
        retry_delays: Sequence[float] = (1.0, 2.0, 4.0),
        sleep: Callable[[float], None] = time.sleep,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.sender = sender
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._sleep = sleep
        self._tls = tls_context

    def send(self, message: EmailMessage) -> MailResult:
        """Hand `message` to the server, trying again with backoff while failures are transient."""

        def attempt() -> MailResult | Transient:
            try:
                self._send_once(message)
            except _Attempt as failure:
                if failure.transient and not failure.uncertain:
                    return Transient(str(failure))
                return MailResult(ok=False, error=str(failure), uncertain=failure.uncertain)
            return MailResult(ok=True)

        outcome, attempts = with_backoff(
            attempt, delays=self._retry_delays, sleep=self._sleep, what="email"
        )
        if isinstance(outcome, Transient):
            return MailResult(
                ok=False,
                error=f"{outcome.error} (gave up after {attempts} attempts)",
                attempts=attempts,
            )
        outcome.attempts = attempts
        return outcome

    def _context(self) -> ssl.SSLContext:
        return self._tls or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.scheme == "smtps":
            return smtplib.SMTP_SSL(
                config.host, config.port, timeout=self._timeout, context=self._context()
            )
        return smtplib.SMTP(config.host, config.port, timeout=self._timeout)

    def _send_once(self, message: EmailMessage) -> None:
        recipient = parseaddr(str(message["To"]))[1]
        sender = parseaddr(str(message["From"]))[1]
        try:
            smtp = self._connect()
        except TimeoutError as exc:
            raise _Attempt(
                f"timed out connecting to the SMTP server ({exc})", transient=True
            ) from None
        except ssl.SSLError as exc:
            raise _Attempt(f"TLS with the SMTP server failed: {exc}", transient=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _Attempt(
                f"could not connect to the SMTP server: {_describe(exc)}", transient=True
            ) from None
        try:
            with smtp:
                self._handshake(smtp)
                self._envelope(smtp, sender, recipient)
                try:
                    code, reply = smtp.data(message.as_bytes(policy=policy.SMTP))
                except smtplib.SMTPDataError as exc:
                    # The server refused DATA itself: nothing of the message went out.
                    raise _refused(exc.smtp_code, exc.smtp_error, "DATA") from None
                except (OSError, smtplib.SMTPException) as exc:
                    raise _Attempt(
                        "the connection to the SMTP server broke while the message was sent "
                        f"({_describe(exc)}); it may or may not have been delivered",
                        transient=False,
                        uncertain=True,
                    ) from None
                if code != 250:
                    raise _refused(code, reply, "the message")
        except _Attempt:
            raise
        except ssl.SSLError as exc:
            raise _Attempt(f"TLS with the SMTP server failed: {exc}", transient=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _Attempt(
                f"the SMTP server refused the user name or password ({exc.smtp_code})",
                transient=False,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _refused(exc.smtp_code, exc.smtp_error, "the session") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _Attempt(f"SMTP session failed: {_describe(exc)}", transient=True) from None

    def _handshake(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if self.config.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=self._context())
            smtp.ehlo()
        if self.config.username:
            smtp.login(self.config.username, self.config.password)

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str) -> None:
        code, reply = smtp.mail(sender)
        if code != 250:
            raise _refused(code, reply, "the sender")
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            raise _refused(code, reply, "the recipient")


def _refused(code: int, reply: bytes | str, what: str) -> _Attempt:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    message = f"the SMTP server refused {what}: {code} {text.strip()}"[:500]
    return _Attempt(message, transient=400 <= code < 500)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def make_email_channel(settings: Any, **options: Any) -> EmailChannel | None:
    """The email channel the settings describe, or None when LEADDESK_SMTP_URL or
    LEADDESK_EMAIL_FROM is not set (sending email is then off)."""
    url = settings.smtp_url.get_secret_value() if settings.smtp_url is not None else ""
    if not url.strip() or not settings.email_from:
        return None
    return EmailChannel(parse_smtp_url(url), sender=settings.email_from, **options)
