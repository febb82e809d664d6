"""The `leaddesk` command: one module per command group, each with `register(subparsers)`.

Exit codes: 0 ok, 1 a user error (one line on stderr, no traceback), 2 a usage error.
"""

from __future__ import annotations

import argparse
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
from leaddesk.cli.common import UserError
from leaddesk.logs import configure_logging
from leaddesk.settings import Settings, SettingsError, load_settings

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaddesk",
        description="Leaddesk: an AI lead desk for web chat, Messenger, Instagram and WhatsApp.",
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
        return int(args.func(args, settings) or 0)
    except (UserError, SettingsError) as exc:
        print(f"leaddesk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())
