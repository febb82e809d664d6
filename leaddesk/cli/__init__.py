"""The `leaddesk` command: one module per command group, each with `register(subparsers)`.

Exit codes: 0 ok, 1 a user error (one line on stderr, no traceback), 2 a usage error.

`--workspace SLUG` (or LEADDESK_WORKSPACE) runs a command in that workspace, with its prompts
(`LEADDESK_PROMPTS_DIR/<slug>/` over the shipped defaults); the default is the first workspace.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from leaddesk import __version__
from leaddesk.cli import (
    agents,
    bot,
    copilot,
    db,
    leads,
    prompts,
    serve,
    tasks,
    worker,
    workspaces,
)
from leaddesk.cli import eval as eval_command
from leaddesk.cli.common import UserError, find_cli_workspace
from leaddesk.logs import configure_logging
from leaddesk.settings import Settings, SettingsError, load_settings
from store.tenancy import in_workspace

__all__ = ["build_parser", "main", "run"]

# Each module defines `register(subparsers)`; the parsers it adds set `func(args, settings) -> int`.
COMMAND_MODULES = (
    db,
    bot,
    agents,
    workspaces,
    leads,
    tasks,
    copilot,
    serve,
    worker,
    prompts,
    eval_command,
)
# Commands for the whole install: they serve (or migrate, or manage) every workspace at once.
INSTALL_COMMANDS = frozenset({"serve", "worker", "db", "workspaces"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaddesk",
        description="Leaddesk: an AI lead desk for web chat, Messenger, Instagram and WhatsApp.",
    )
    parser.add_argument(
        "--workspace",
        metavar="SLUG",
        help="run the command in this workspace, with its prompts "
        "(default: LEADDESK_WORKSPACE, else the first workspace)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    version = subparsers.add_parser(
        "version", help="print the version", description="Print the version."
    )
    version.set_defaults(
        func=lambda args, settings: print(f"leaddesk {__version__}") or 0, needs_settings=False
    )
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        if getattr(args, "needs_settings", True):
            settings = load_settings()
            configure_logging(settings)
        ref = _workspace_ref(args)
        if ref is None or settings is None:
            return int(args.func(args, settings) or 0)
        workspace = find_cli_workspace(settings, ref)
        with in_workspace(workspace.id):
            return int(args.func(args, workspace.settings(settings)) or 0)
    except (UserError, SettingsError) as exc:
        print(f"leaddesk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _workspace_ref(args: argparse.Namespace) -> str | None:
    """The workspace the command should run in, None: the first (as without workspaces)."""
    if args.command in INSTALL_COMMANDS:
        if args.workspace:
            raise UserError(
                f"leaddesk {args.command} works for every workspace; --workspace does not apply"
            )
        return None  # a LEADDESK_WORKSPACE set for the other commands does not concern these
    ref = args.workspace or os.environ.get("LEADDESK_WORKSPACE", "")
    return ref.strip() or None


def run() -> None:
    sys.exit(main())
