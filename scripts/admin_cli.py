"""What the admin scripts share on the command line: every failure one line on stderr with an exit
code that means something (2 bad usage, a missing prerequisite or an unreachable database; 130
interrupted), never a traceback for what an admin can type, never a secret printed.

Imported by the scripts after they put the checkout on sys.path (scripts/ is not a package).
"""
from __future__ import annotations

import argparse
import math
import re
import sys

import psycopg
from psycopg import conninfo

from app.n8n.cloud import without_userinfo

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
DATABASE_URL_FORM = "postgresql://user:password@host:port/database"
# The SQLSTATE classes of a database the migrations have not (all) been applied to.
NOT_MIGRATED = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedColumn,
                psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedObject)


def interrupted(prog: str) -> int:
    """Ctrl-C: one line, exit 130."""
    print(f"{prog}: interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def printable(text: str, url: str | None = None) -> str:
    """One line with no URL's user:password@ and not the database password anywhere."""
    password = _password(url) if url else None
    text = without_userinfo(text)
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())


def _password(url: str) -> str | None:
    try:
        return conninfo.conninfo_to_dict(url).get("password") or None
    except psycopg.Error:
        match = re.search(r"://[^:/@\s]*:([^@\s]+)@", url)
        return match.group(1) if match else None


def database_url_problem(url: str) -> str | None:
    """Why a database URL cannot be used (one line, no password); None when libpq can read it."""
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.Error as error:
        return printable(f"the database URL is not one PostgreSQL reads ({_first_line(error)})", url) \
            + f"; give {DATABASE_URL_FORM}"
    return None


def database_failure(error: psycopg.Error, url: str) -> tuple[str, int]:
    """(one line, exit code) for a database error the script cannot go on after: not migrated
    and unreachable are 2 (set it up, then run again), anything else 1."""
    if isinstance(error, NOT_MIGRATED):
        return printable(f"the database is not migrated ({_first_line(error)}): run scripts/migrate.py "
                         "--database-url ... first", url), EXIT_USAGE
    if isinstance(error, psycopg.OperationalError):
        return printable(f"cannot reach the database: {_first_line(error)}", url), EXIT_USAGE
    if isinstance(error, psycopg.InterfaceError) or "connection info string" in str(error) \
            or "URI query parameter" in str(error):
        return printable(f"bad database URL: {_first_line(error)}", url) + f"; give {DATABASE_URL_FORM}", EXIT_USAGE
    return printable(f"the database answered: {type(error).__name__}: {_first_line(error)}", url), 1


def not_migrated(conn: psycopg.Connection, relations: tuple[str, ...]) -> str | None:
    """The hint for a database that lacks the migrations' tables (schema.table); None when all exist."""
    missing = [name for name in relations if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None]
    if missing:
        return f"the database is not migrated ({', '.join(missing)} missing): run scripts/migrate.py " \
               "--database-url ... first"
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def positive_int(text: str) -> int:
    """argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value
