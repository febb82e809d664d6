"""Hot reload of the admin's `prompts/` directory for a running server.

`PromptStore` holds the configuration in force. A watcher thread (or, where none runs, the next
read after the poll interval) hashes the prompt files; when they changed it loads them again. A
change that does not validate is rejected as a whole: the last good version stays in force, the
problems are logged with file and line, and `health()` (shown by `GET /healthz`) names them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.config import DEFAULT_PROMPTS_DIR, Problem, PromptConfig, PromptError, load_prompts
from store.models import utcnow

log = logging.getLogger(__name__)

# Sub-directories of prompts/ that are not configuration (labelled eval cases).
IGNORED_DIRS = frozenset({"eval"})


@dataclass(frozen=True)
class Rejection:
    """A saved change that did not validate, kept until a valid version replaces it."""

    at: datetime
    problems: tuple[Problem, ...]


def display_path(file: str, base: Path) -> str:
    """`file` relative to `base` when it lies inside it (e.g. "templates/en.yaml")."""
    try:
        return Path(file).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return file


def prompt_files(directory: Path) -> Iterator[Path]:
    """Every file that can change the configuration: not hidden, no editor backups, no eval/."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if relative.parts and relative.parts[0] in IGNORED_DIRS:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.name.endswith(("~", ".swp", ".tmp")):
            continue
        if path.is_file():
            yield path


def fingerprint(directories: tuple[Path, ...]) -> str:
    """A hash of the names and contents of the prompt files (contents, not mtimes: a copy that
    keeps the old modification time is still a change)."""
    digest = hashlib.sha256()
    for directory in directories:
        digest.update(str(directory).encode() + b"\0")
        for path in prompt_files(directory):
            try:
                data = path.read_bytes()
            except OSError:
                data = b"\0unreadable"
            digest.update(str(path.relative_to(directory)).encode() + b"\0")
            digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


class PromptStore:
    """The prompts in force, reloaded when a saved change validates.

    Call it (or `current()`) for the configuration; hand `live()` to collaborators that keep a
    reference. Raises PromptError at construction when the directory does not validate: a server
    must not start on broken prompts, but once running it never drops a good version for a bad one.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        defaults: Path | str | None = DEFAULT_PROMPTS_DIR,
        poll_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.directory = Path(directory)
        self.defaults = Path(defaults) if defaults is not None else None
        self.poll_seconds = poll_seconds
        self._monotonic = monotonic
        self._clock = clock
        self._watched = tuple(
            dict.fromkeys(d.resolve() for d in (self.directory, self.defaults) if d is not None)
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = fingerprint(self._watched)
        self._config = load_prompts(self.directory, defaults=self.defaults)
        self._rejection: Rejection | None = None
        self._checked = monotonic()
        self.version = 1
        self.loaded_at = clock()

    # Reading

    def __call__(self) -> PromptConfig:
        return self.current()

    def current(self) -> PromptConfig:
        """The configuration in force. Without a watcher thread (e.g. in a `leaddesk worker`
        process) a read after the poll interval checks the files itself."""
        if (
            self._thread is None
            and self.poll_seconds > 0
            and self._monotonic() - self._checked >= self.poll_seconds
        ):
            self.check(wait=False)
        return self._config

    def live(self) -> LivePrompts:
        return LivePrompts(self.current)

    @property
    def rejection(self) -> Rejection | None:
        return self._rejection

    # Reloading

    def check(self, *, wait: bool = True) -> bool:
        """Reload if the files changed since the last look; True when a new version took over."""
        if not self._lock.acquire(blocking=wait):
            return False  # another thread is checking right now
        try:
            self._checked = self._monotonic()
            seen = fingerprint(self._watched)
            if seen == self._seen:
                return False
            try:
                config = load_prompts(self.directory, defaults=self.defaults)
            except PromptError as exc:
                if fingerprint(self._watched) != seen:
                    # Still being written (an editor saving several files): look again next time.
                    return False
                self._seen = seen
                self._rejection = Rejection(self._clock(), tuple(exc.problems))
                log.error(
                    "the change to the prompts in %s was rejected; the version loaded at %s stays "
                    "in force. Problems:\n%s",
                    self.directory,
                    self.loaded_at.isoformat(timespec="seconds"),
                    "\n".join(f"  {p}" for p in exc.problems),
                )
                return False
            self._seen = seen
            self._config = config
            self._rejection = None
            self.version += 1
            self.loaded_at = self._clock()
            log.info("prompts reloaded from %s (version %d)", self.directory, self.version)
            return True
        finally:
            self._lock.release()

    def start(self) -> None:
        """Watch the files in a background thread (no-op when the poll interval is 0)."""
        if self._thread is not None or self.poll_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="leaddesk-prompts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise
                log.exception("checking the prompts in %s for changes failed", self.directory)

    # Reporting

    def health(self) -> dict[str, Any]:
        """The section of GET /healthz: the version in force and, if any, the rejected change."""
        report: dict[str, Any] = {
            "status": "ok",
            "directory": str(self.directory),
            "version": self.version,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "watching": self._thread is not None,
        }
        rejection = self._rejection
        if rejection is not None:
            report["status"] = "rejected"
            report["rejected"] = {
                "at": rejection.at.isoformat(timespec="seconds"),
                "problems": [
                    {
                        "file": display_path(p.file, self.directory),
                        "line": p.line,
                        "message": p.message,
                    }
                    for p in rejection.problems
                ],
            }
        return report


class LivePrompts:
    """Stands in for a PromptConfig and always reads the version in force (for collaborators such
    as the copilot that keep the configuration they were built with)."""

    def __init__(self, source: Callable[[], PromptConfig]):
        object.__setattr__(self, "_source", source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the prompts configuration is read-only")
