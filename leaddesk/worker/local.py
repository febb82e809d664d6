"""The bot's own process under `leaddesk serve` without a broker: the web process only verifies,
parses, stores and answers; a supervised child process (`leaddesk serve --bot-fd FD`) drains the
inbox and runs the bot, so neither waits for the other's Python.

The two talk over one Unix socket pair, a line per message:
- web → bot: `s <conversation id>` (the dispatcher's submit: a webhook stored, a chat message;
  for the inbox's webhooks at most one line every `INBOX_WAKE_SECONDS`, see `InboxWakeUps`);
- bot → web: `r 0` (started: it picked up what was pending), `e <events as JSON>` (the live
  console's events, published on the web process's bus), `n <conversation id>` (a reply
  recorded: wakes the web chat's long polls) and `h <JSON>` (its workers' health, every
  HEALTH_SECONDS, for /healthz).

While webhooks keep arriving (`s` for the inbox), the bot process holds back its drain and bot
runs (`Lull`; `leaddesk serve` does so on PostgreSQL) so that the two cores go to acknowledging
them first: until a lull of `HOLD_LULL` seconds, at most `HOLD_MAX` seconds in one go, then it
works at least `HOLD_RUN` seconds before it holds back again, so a steady stream is still
answered within a second or so.

`BotProcess` is the web side: a `Dispatcher` that starts the child, restarts it when it dies and
stops it with the server. Nothing is lost while the child is down: webhooks are acknowledged once
stored, and a starting child picks up every stored but unprocessed message and inbox event.
`serve_bot_process` is the child's side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from leaddesk.worker.dispatcher import ThreadDispatcher
from store.events import EventBus, StoreEvent
from store.inbox import INBOX_KEY
from webhooks.notify import ReplyNotifier

log = logging.getLogger(__name__)

# A child that dies this soon after its start counts as a quick exit; after MAX_QUICK_EXITS of them
# within a minute it is restarted only every QUICK_EXIT_BACKOFF seconds.
QUICK_EXIT_SECONDS = 10.0
MAX_QUICK_EXITS = 5
QUICK_EXIT_BACKOFF = 30.0
CHECK_SECONDS = 0.25
HEALTH_SECONDS = 0.5
# How long `leaddesk serve` waits for its bot process before listening anyway.
READY_TIMEOUT = 60.0
# The bot process's "acknowledge first" (see `Lull`).
HOLD_LULL = 0.05
HOLD_MAX = 0.5
HOLD_RUN = 0.25
# "The inbox has work" goes to the bot process at most this often (well within HOLD_LULL).
INBOX_WAKE_SECONDS = 0.005


def _line(kind: str, body: str) -> bytes:
    return f"{kind} {body}\n".encode()


class _Channel:
    """One end of the socket pair: whole lines out (any thread), lines in (one reader)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._open = True

    def send(self, data: bytes) -> bool:
        with self._lock:
            if not self._open:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self._open = False
                return False

    def lines(self) -> Any:
        """Yield (kind, body) for every line until the other end closes."""
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                kind, _, body = raw.decode("utf-8", "replace").partition(" ")
                yield kind, body

    def close(self) -> None:
        with self._lock:
            self._open = False
        with contextlib.suppress(OSError):
            self.sock.close()


class InboxWakeUps:
    """Tells the bot process that the inbox has work, from one thread, at most every `every`
    seconds: under a stream of webhooks one line stands for every webhook stored since the line
    before.

    A line per webhook cost a sixth of the web process's CPU under load (a system call, and the
    interpreter lock handed to another thread and back, in every request). Here a request only
    raises a flag; the thread lowers it, then sends, then pauses, so each webhook is followed by a
    line sent after its commit (at most `every` seconds after), and the bot process's `Lull` still
    sees the stream as unbroken.
    """

    def __init__(self, send: Callable[[], None], every: float = INBOX_WAKE_SECONDS) -> None:
        self._send = send
        self._every = every
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wanted.set()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="leaddesk-inbox-wake-ups", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wanted.set()
            thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            try:
                self._send()
            except Exception:  # the thread goes on: the next webhook wakes it again
                log.exception("could not tell the bot process that the inbox has work")
            time.sleep(self._every)


class BotProcess:
    """The web process's dispatcher when the bot runs in a child process it supervises."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        events: EventBus,
        notifier: ReplyNotifier,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._command = list(command)
        self._events = events
        self._notifier = notifier
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._channel: _Channel | None = None
        self._started_at = 0.0
        self._quick_exits: list[float] = []
        self._restarts = 0
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._ready = threading.Event()
        self._health: dict[str, Any] = {}
        self._inbox_wake_ups = InboxWakeUps(lambda: self._send_submit(INBOX_KEY))

    # -- the Dispatcher interface ---------------------------------------------------------------

    def submit(self, conversation_id: int) -> None:
        if conversation_id == INBOX_KEY:
            self._inbox_wake_ups.wake()  # sent by its thread, one line for many webhooks
        else:
            self._send_submit(conversation_id)

    def _send_submit(self, conversation_id: int) -> None:
        channel = self._channel
        # A child that is down or starting loses nothing: the message is stored, and a starting
        # child picks up everything pending.
        if channel is not None:
            channel.send(_line("s", str(int(conversation_id))))

    def resubmit(self, conversation_id: int) -> None:
        self.submit(conversation_id)

    def started(self, conversation_id: int) -> None:
        """Nothing to clear: the child's own dispatcher looks at its queue."""

    def backlog(self) -> int | None:
        return None  # the child's queue; nobody here can tell

    def start(self, ready_timeout: float = READY_TIMEOUT) -> None:
        """Start the child and wait (up to `ready_timeout` seconds) until it runs: the server
        then listens with its bot up, as a single process did."""
        with self._lock:
            if self._watcher is not None:
                return
            self._stopping.clear()
            self._spawn()
            self._watcher = threading.Thread(
                target=self._watch, name="leaddesk-bot-process", daemon=True
            )
            self._watcher.start()
            self._inbox_wake_ups.start()
        if not self._ready.wait(ready_timeout):
            log.warning(
                "the bot process is not up after %.0fs; webhooks are stored meanwhile",
                ready_timeout,
            )

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the current child has started (for tests and restarts)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._inbox_wake_ups.stop()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=2.0)
        with self._lock:
            child, channel = self._child, self._channel
            self._child = self._channel = None
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the bot process %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait(5)
        if channel is not None:
            channel.close()

    def health(self) -> dict[str, Any]:
        """The bot process's workers as it last reported them, and the process itself."""
        with self._lock:
            child = self._child
            alive = child is not None and child.poll() is None
            ready = alive and self._ready.is_set()
            report = dict(self._health) if ready else {}
            if self._stopping.is_set():
                report["status"] = "stopped"
            elif not ready:
                report["status"] = "degraded"  # down or starting: webhooks are stored meanwhile
            report.setdefault("status", "degraded")
            report["process"] = {
                "pid": child.pid if child is not None else None,
                "alive": alive,
                "ready": ready,
                "restarts": self._restarts,
            }
            return report

    # -- supervision ----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None else None

    def _spawn(self) -> None:
        """Start a child on a fresh socket pair (under `_lock`)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs.set_inheritable(True)
        try:
            child = subprocess.Popen(
                [*self._command, "--bot-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # Its own process group: Ctrl+C reaches the server, which stops the child in order.
                start_new_session=True,
            )
        finally:
            theirs.close()
        old = self._channel
        self._ready.clear()
        self._health = {}
        self._channel = _Channel(mine)
        self._child = child
        self._started_at = self._monotonic()
        if old is not None:
            old.close()
        threading.Thread(
            target=self._relay, args=(self._channel,), name="leaddesk-bot-relay", daemon=True
        ).start()
        log.info("bot process %d started", child.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_SECONDS):
            with self._lock:
                child = self._child
                if child is None or self._stopping.is_set():
                    return
                code = child.poll()
                if code is None:
                    continue
                now = self._monotonic()
                if now - self._started_at < QUICK_EXIT_SECONDS:
                    self._quick_exits = [t for t in self._quick_exits if now - t < 60.0] + [now]
                log.warning(
                    "the bot process %d exited with code %s; starting another", child.pid, code
                )
            if len(self._quick_exits) >= MAX_QUICK_EXITS:
                log.error(
                    "the bot process keeps exiting right after its start (see its log above); "
                    "trying again in %.0fs, webhooks are still stored",
                    QUICK_EXIT_BACKOFF,
                )
                if self._stopping.wait(QUICK_EXIT_BACKOFF):
                    return
                self._quick_exits.clear()
            with self._lock:
                if self._stopping.is_set():
                    return
                self._restarts += 1
                self._spawn()

    def _relay(self, channel: _Channel) -> None:
        """Publish what the child reports, until its socket closes."""
        for kind, body in channel.lines():
            try:
                if kind == "r":
                    if channel is self._channel:
                        self._ready.set()
                        log.info("bot process %s is up", self.pid)
                elif kind == "e":
                    events = [StoreEvent.from_json(item) for item in json.loads(body)]
                    self._events.publish(events)
                elif kind == "h" and channel is self._channel:
                    self._health = dict(json.loads(body))
                elif kind == "n":
                    self._notifier.notify(int(body))
            except (ValueError, KeyError, TypeError):
                log.warning("the bot process sent a line that is not understood (%s)", kind)


# -- the child's side ------------------------------------------------------------------------


class RelayBus:
    """The child's event bus: every event goes to the web process, whose bus consoles read."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def publish(self, events: Sequence[StoreEvent]) -> None:
        if events:
            body = json.dumps([e.as_json() for e in events], separators=(",", ":"), default=str)
            self._channel.send(_line("e", body))

    def read(self, after: str | None, *, timeout: float) -> list[StoreEvent]:
        raise RuntimeError("the bot process has no console to read events for")

    def last_id(self) -> str:
        return ""


class RelayNotifier(ReplyNotifier):
    """The child's reply notifier: the web chat's long polls wait in the web process."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self._channel = channel

    def notify(self, conversation_id: int) -> None:
        self._channel.send(_line("n", str(int(conversation_id))))


class Lull:
    """Acknowledge first, across processes: `busy()` on every inbox wake-up the web process sends
    (one every `INBOX_WAKE_SECONDS` at most while webhooks come);
    `wait()` (in a worker, before each run) blocks while webhooks keep coming, until `lull`
    seconds pass without one or the hold has lasted `hold_max` seconds; after such a capped hold
    the workers run for `run` seconds before a webhook holds them back again."""

    def __init__(
        self,
        *,
        lull: float = HOLD_LULL,
        hold_max: float = HOLD_MAX,
        run: float = HOLD_RUN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lull = lull
        self._hold_max = hold_max
        self._run = run
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._last = float("-inf")  # the last webhook
        self._since: float | None = None  # when the current hold began
        self._free_until = float("-inf")  # no hold before this (after a capped one)
        self.holds = 0  # holds begun (for tests and benchmarks)

    def busy(self) -> None:
        with self._cond:
            now = self._monotonic()
            if self._since is not None and now - self._last >= self._lull:
                self._since = None  # a lull went by unseen: this webhook begins a new hold
            self._last = now
            if self._since is None and now >= self._free_until:
                self._since = now
                self.holds += 1

    def holding(self) -> float:
        """Seconds a run should still wait now (0: go)."""
        with self._cond:
            now = self._monotonic()
            if self._since is None:
                return 0.0
            if now - self._last >= self._lull:
                self._since = None
                return 0.0
            if now - self._since >= self._hold_max:
                self._since = None
                self._free_until = now + self._run
                return 0.0
            return min(self._last + self._lull, self._since + self._hold_max) - now

    def wait(self) -> None:
        while (seconds := self.holding()) > 0:
            with self._cond:
                # Bounded by `hold_max`; an injected (test) clock is looked at again soon.
                self._cond.wait(min(seconds, 0.05))


def serve_bot_process(
    fd: int,
    build: Callable[[RelayBus, RelayNotifier], Any],
    *,
    acknowledge_first: bool = True,
) -> int:
    """Run the bot on the socket `fd` its web process passed down until that process goes away
    or SIGTERM comes. `build(bus, notifier)` returns the started-to-be runtime (`Runtime`);
    `acknowledge_first`: its runs wait for a lull in the webhooks (`Lull`)."""
    channel = _Channel(socket.socket(fileno=fd))
    runtime = build(RelayBus(channel), RelayNotifier(channel))
    lull = Lull()
    if acknowledge_first and isinstance(runtime.dispatcher, ThreadDispatcher):
        runtime.dispatcher.hold_with(lull.wait)
    stopping = threading.Event()

    def _terminate(_signum: int, _frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    parent = os.getppid()

    def read() -> None:
        for kind, body in channel.lines():
            if kind == "s":
                try:
                    key = int(body)
                except ValueError:
                    continue
                if key == INBOX_KEY:
                    lull.busy()
                runtime.dispatcher.submit(key)
        stopping.set()  # the web process closed its end: it is gone

    try:
        runtime.start()
        threading.Thread(target=read, name="leaddesk-bot-submits", daemon=True).start()
        channel.send(_line("h", json.dumps(runtime.dispatcher.health(), default=str)))
        channel.send(_line("r", "0"))
        while not stopping.wait(HEALTH_SECONDS):
            if os.getppid() != parent:
                break
            channel.send(_line("h", json.dumps(runtime.dispatcher.health(), default=str)))
    finally:
        runtime.stop()
        channel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
