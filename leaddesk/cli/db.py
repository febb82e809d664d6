"""`leaddesk db upgrade`: apply the schema migrations."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import OperationalError

from leaddesk.cli.common import UserError
from leaddesk.settings import Settings
from store import upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser(
        "db", help="manage the database schema", description="Manage the database schema."
    )
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    up = db_sub.add_parser(
        "upgrade",
        help="apply all pending migrations",
        description="Apply all pending migrations to DATABASE_URL.",
    )
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    try:
        upgrade(settings.database_url, args.revision)
    except OperationalError as exc:
        raise UserError(f"cannot reach the database: {exc.orig}") from None
    print(f"database is at revision {args.revision}")
    return 0
