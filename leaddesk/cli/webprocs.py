"""`leaddesk serve --workers N`: N web processes accepting on one shared listening socket.

The supervisor checks the prompts, migrates the database once, opens the socket and starts N
`leaddesk serve --listen-fd FD` children that inherit it (the kernel hands each connection to one
of them). A child that dies is started again; SIGTERM or Ctrl+C stops them all gracefully.
Several web processes need a broker: the bot then runs in `leaddesk worker` processes, never in
the web processes, so a conversation is never worked on by two of them at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy.exc import OperationalError

import leaddesk
from bot import PromptError, load_prompts
from copilot.memory import MemoryUnavailable
from leaddesk.cli.common import UserError
from leaddesk.settings import Settings
from leaddesk.worker.setup import prepare_shared_database
from store import make_engine

log = logging.getLogger("leaddesk.serve")

# A child that keeps dying this soon after its start is not restarted forever.
QUICK_EXIT_SECONDS = 10.0
MAX_QUICK_EXITS = 5


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket the supervisor passed down as file descriptor `fd`."""
    return socket.socket(fileno=fd)


def exit_with_supervisor(interval: float = 1.0) -> None:
    """Stop this web process gracefully (SIGTERM to itself) when its supervisor goes away."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="leaddesk-supervisor-watch", daemon=True).start()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.set_inheritable(True)
    return sock


def run_web_processes(
    args: argparse.Namespace, settings: Settings, *, summary: Callable[..., None]
) -> int:
    if not settings.broker_url:
        raise UserError(
            "--workers above 1 needs LEADDESK_BROKER_URL (e.g. redis://127.0.0.1:6379/0): the bot "
            "then runs in `leaddesk worker` processes (see README, Scaling out)"
        )
    try:
        load_prompts(settings.prompts_dir)
    except PromptError as exc:
        raise UserError(f"the prompt files are invalid: {exc}") from None
    try:
        prepare_shared_database(settings)  # once, here: N children migrating at once would race
    except OperationalError as exc:
        raise UserError(
            f"cannot open the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from None
    except MemoryUnavailable as exc:
        raise UserError(str(exc)) from None
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None

    summary(settings, SimpleNamespace(engine=make_engine(settings.database_url)), args.threads)
    command = [
        *child_python(),
        "serve",
        "--listen-fd",
        str(sock.fileno()),
        "--threads",
        str(args.threads),
    ]
    if args.trusted_proxy:
        command += ["--trusted-proxy", args.trusted_proxy]
    supervisor = _Supervisor(command, sock.fileno(), args.workers)

    stopping = threading.Event()

    def _terminate(signum: int, _frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.start_all()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "listening on http://%s:%s with %d web processes (demo chat at /, health at /healthz); "
            "Ctrl+C stops",
            shown,
            port,
            args.workers,
        )
        while not stopping.wait(0.5):
            if not supervisor.check():
                log.error(
                    "web processes keep exiting right after their start; stopping (see their log "
                    "above)"
                )
                return 1
        return 0
    finally:
        log.info("shutting down the web processes")
        supervisor.stop_all()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")


def child_python() -> list[str]:
    """The command that runs `leaddesk` in a child process with the very package this process runs.

    `python -c` would put the current directory first on the child's import path, so a folder
    named `leaddesk` there (a checkout, a backup) would be imported instead; `-P` leaves it out.
    When this process found the package only through the current directory (run from a source
    folder without installing), the child is given that folder explicitly.
    """
    root = os.path.realpath(Path(leaddesk.__file__).resolve().parents[1])
    cwd = os.path.realpath(os.getcwd())
    listed = {os.path.realpath(p) for p in sys.path if p and os.path.realpath(p) != cwd}
    prelude = "" if root in listed else f"import sys; sys.path.insert(0, {root!r}); "
    return [sys.executable, "-P", "-c", prelude + "from leaddesk.cli import run; run()"]


class _Supervisor:
    def __init__(self, command: list[str], fd: int, count: int) -> None:
        self._command = command
        self._fd = fd
        self._count = count
        self._children: list[tuple[subprocess.Popen[bytes], float]] = []
        self._quick_exits: list[float] = []

    def _spawn(self, index: int) -> tuple[subprocess.Popen[bytes], float]:
        # Own process group: a Ctrl+C in the terminal reaches the supervisor, which stops the
        # children in order instead of all of them dying at once.
        child = subprocess.Popen(
            [*self._command, "--web-index", str(index + 1)],
            pass_fds=(self._fd,),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return child, time.monotonic()

    def start_all(self) -> None:
        self._children = [self._spawn(index) for index in range(self._count)]

    def check(self) -> bool:
        """Restart children that died; False when they keep dying right away."""
        now = time.monotonic()
        for index, (child, started) in enumerate(self._children):
            code = child.poll()
            if code is None:
                continue
            log.warning("web process %d exited with code %s; starting another", child.pid, code)
            if now - started < QUICK_EXIT_SECONDS:
                self._quick_exits = [t for t in self._quick_exits if now - t < 60.0] + [now]
                if len(self._quick_exits) >= MAX_QUICK_EXITS:
                    return False
                time.sleep(1.0)
            self._children[index] = self._spawn(index)
        return True

    def stop_all(self, timeout: float = 30.0) -> None:
        for child, _ in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child, _ in self._children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("web process %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait(5)
