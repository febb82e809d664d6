"""Hot reload of the admin's `prompts/` directory for a running server, one per workspace.

`PromptStore` holds the configuration in force of one directory; `WorkspacePrompts` holds one per
workspace and answers with the workspace in force's (`store.tenancy.current_workspace`). A
watcher thread (or, where none runs, the next read after the poll interval) hashes the prompt
files; when they changed it loads them again. A change that does not validate is rejected as a
whole: the last good version stays in force (of that workspace only), the problems are logged
with file and line, and `health()` (shown by `GET /healthz`) names them.
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
from store.tenancy import FIRST_WORKSPACE, current_workspace

log = logging.getLogger(__name__)

# Sub-directories of prompts/ that are not configuration (labelled eval cases).
IGNORED_DIRS = frozenset({"eval"})
# The sub-directories that are: beside them, the first workspace's directory holds the other
# workspaces' (`<slug>/`), which are not its configuration.
CONFIG_DIRS = frozenset({"knowledge", "templates", "copilot", "replies"})


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


def prompt_files(directory: Path, subdirs: frozenset[str] | None = None) -> Iterator[Path]:
    """Every file that can change the configuration: not hidden, no editor backups, no eval/
    (and with `subdirs`, only files at the top or in those sub-directories)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if relative.parts and relative.parts[0] in IGNORED_DIRS:
            continue
        if subdirs is not None and len(relative.parts) > 1 and relative.parts[0] not in subdirs:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.name.endswith(("~", ".swp", ".tmp")):
            continue
        if path.is_file():
            yield path


def fingerprint(directories: tuple[Path, ...], subdirs: frozenset[str] | None = None) -> str:
    """A hash of the names and contents of the prompt files (contents, not mtimes: a copy that
    keeps the old modification time is still a change)."""
    digest = hashlib.sha256()
    for directory in directories:
        digest.update(str(directory).encode() + b"\0")
        for path in prompt_files(directory, subdirs):
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
        must_exist: bool = True,
        subdirs: frozenset[str] | None = None,
    ):
        self.directory = Path(directory)
        self.defaults = Path(defaults) if defaults is not None else None
        self.poll_seconds = poll_seconds
        # A workspace's own directory may be missing (all its files are the defaults'); only
        # files at the top and in `subdirs` count when given (see CONFIG_DIRS).
        self._must_exist = must_exist
        self._subdirs = subdirs
        self._monotonic = monotonic
        self._clock = clock
        self._watched = tuple(
            dict.fromkeys(d.resolve() for d in (self.directory, self.defaults) if d is not None)
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = self._fingerprint()
        self._config = self._load()
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
            seen = self._fingerprint()
            if seen == self._seen:
                return False
            try:
                config = self._load()
            except PromptError as exc:
                if self._fingerprint() != seen:
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

    def _fingerprint(self) -> str:
        return fingerprint(self._watched, self._subdirs)

    def _load(self) -> PromptConfig:
        return load_prompts(self.directory, defaults=self.defaults, must_exist=self._must_exist)

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


class WorkspacePrompts:
    """The prompts of every workspace, each reloaded like a `PromptStore`; calling it (or
    `current()`) answers with the configuration of the workspace in force.

    The first workspace's prompts are `directory` itself, exactly as without workspaces (loaded,
    and refused when invalid, at construction). Workspace `slug`'s are `directory/<slug>/`, file by
    file over the shipped `defaults` (a directory it lacks, such as knowledge/ or replies/, is the
    defaults' too; a workspace without a directory runs on the defaults alone). Those load the
    first time the workspace needs them and are watched from then on: a rejected change keeps that
    workspace's last good version and touches no other. A workspace whose prompts do not validate
    at their first load has no configuration: reading it raises the `PromptError` (tried again
    after the poll interval).

    `slug_of(workspace_id)` names the workspace's directory (None: no such workspace).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        slug_of: Callable[[int], str | None] | None = None,
        defaults: Path | str | None = DEFAULT_PROMPTS_DIR,
        poll_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
        workspace: Callable[[], int] = current_workspace,
    ):
        self.directory = Path(directory)
        self.defaults = Path(defaults) if defaults is not None else None
        self.poll_seconds = poll_seconds
        self.slug_of = slug_of
        self._monotonic = monotonic
        self._clock = clock
        self._workspace = workspace
        self.first = PromptStore(
            self.directory,
            defaults=self.defaults,
            poll_seconds=poll_seconds,
            monotonic=monotonic,
            clock=clock,
            subdirs=CONFIG_DIRS,
        )
        self._stores: dict[int, PromptStore] = {FIRST_WORKSPACE: self.first}
        self._slugs: dict[int, str] = {}
        self._failed: dict[int, tuple[float, PromptError]] = {}
        self._lock = threading.Lock()
        self._started = False

    # Reading

    def __call__(self) -> PromptConfig:
        return self.current()

    def current(self) -> PromptConfig:
        """The configuration of the workspace in force."""
        return self.store(self._workspace()).current()

    def live(self) -> LivePrompts:
        return LivePrompts(self.current)

    def store(self, workspace_id: int) -> PromptStore:
        """Workspace `workspace_id`'s store, loaded on first use. Raises PromptError when its
        prompts do not validate and LookupError for a workspace that does not exist."""
        found = self._stores.get(workspace_id)
        if found is not None:
            return found
        with self._lock:
            found = self._stores.get(workspace_id)
            if found is not None:
                return found
            failed = self._failed.get(workspace_id)
            if failed is not None and self._monotonic() - failed[0] < self.poll_seconds:
                raise failed[1]
            slug = self.slug_of(workspace_id) if self.slug_of is not None else None
            if slug is None:
                raise LookupError(f"there is no workspace {workspace_id}")
            try:
                store = PromptStore(
                    self.workspace_directory(slug),
                    defaults=self.defaults,
                    poll_seconds=self.poll_seconds,
                    monotonic=self._monotonic,
                    clock=self._clock,
                    must_exist=False,
                )
            except PromptError as exc:
                self._failed[workspace_id] = (self._monotonic(), exc)
                log.error(
                    "the prompts of workspace %r (%s) do not validate; it has no configuration "
                    "until they do. Problems:\n%s",
                    slug,
                    self.workspace_directory(slug),
                    "\n".join(f"  {p}" for p in exc.problems),
                )
                raise
            self._failed.pop(workspace_id, None)
            self._slugs[workspace_id] = slug
            if self._started:
                store.start()
            self._stores[workspace_id] = store
            return store

    def workspace_directory(self, slug: str) -> Path:
        """Where workspace `slug` keeps its prompts (not used for the first workspace)."""
        return self.directory / slug

    # Reloading

    def check(self) -> bool:
        """Look at every loaded workspace's files; True when any took a new version."""
        changed = False
        for store in list(self._stores.values()):
            changed = store.check() or changed
        return changed

    def start(self) -> None:
        """Watch each workspace's files (the ones loaded now and the ones loaded later)."""
        with self._lock:
            self._started = True
            stores = list(self._stores.values())
        for store in stores:
            store.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._started = False
            stores = list(self._stores.values())
        for store in stores:
            store.stop(timeout)

    # Reporting

    def health(self) -> dict[str, Any]:
        """The section of GET /healthz: the first workspace's report as without workspaces, and
        under "workspaces" each other loaded (or failed) workspace's by slug."""
        report = self.first.health()
        others: dict[str, Any] = {}
        for workspace_id, store in sorted(self._stores.items()):
            if workspace_id != FIRST_WORKSPACE:
                others[self._slugs[workspace_id]] = store.health()
        for workspace_id, (_, error) in sorted(self._failed.items()):
            slug = self.slug_of(workspace_id) if self.slug_of is not None else None
            directory = self.workspace_directory(slug or str(workspace_id))
            others[slug or str(workspace_id)] = {
                "status": "invalid",
                "directory": str(directory),
                "problems": [
                    {"file": display_path(p.file, directory), "line": p.line, "message": p.message}
                    for p in error.problems
                ],
            }
        if others:
            report["workspaces"] = others
        return report

    def current_health(self) -> dict[str, Any]:
        """The report of the workspace in force's prompts (the admins' Settings page)."""
        return self.store(self._workspace()).health()


class LivePrompts:
    """Stands in for a PromptConfig and always reads the version in force (for collaborators such
    as the copilot that keep the configuration they were built with)."""

    def __init__(self, source: Callable[[], PromptConfig]):
        object.__setattr__(self, "_source", source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the prompts configuration is read-only")
