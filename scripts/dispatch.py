"""Deliver the n8n outbox (workflow triggers, stops, resumes) once or in a loop.

Several copies may run at once: rows are claimed with skip locked. Settings from the environment
(DATABASE_URL, N8N_BASE_URL... as the service reads them). Exit codes: 0 done (or stopped), 1 a
pass failed (--once), 2 bad usage or configuration, a malformed DATABASE_URL, an unreachable or
unmigrated database; one line on stderr.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import psycopg
from psycopg_pool import PoolTimeout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import ConfigError, Settings  # noqa: E402
from app.db import Database  # noqa: E402
from app.n8n.dispatcher import Dispatcher  # noqa: E402
from app.observability import configure_logging  # noqa: E402
from scripts.admin_cli import database_failure, database_url_problem, positive_int, positive_seconds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (default)")
    mode.add_argument("--loop", action="store_true", help="keep delivering until interrupted")
    parser.add_argument("--interval", type=positive_seconds, default=1.0,
                        help="seconds between idle passes, more than 0 (default 1)")
    parser.add_argument("--limit", type=positive_int, default=10, help="rows claimed per pass, 1 or more (default 10)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    problem = database_url_problem(settings.database_url) or database_problem(settings.database_url)
    if problem:
        print(f"dispatch: {problem}", file=sys.stderr)
        return 2
    configure_logging()
    database = Database(settings.database_url, min_size=1, max_size=2)
    try:
        database.open(wait=True)
    except PoolTimeout:  # gone since database_problem() asked
        database.close()
        print("dispatch: cannot reach the database: no connection within 10 s", file=sys.stderr)
        return 2
    dispatcher = Dispatcher(database, settings)
    try:
        if not args.loop:
            report = dispatcher.dispatch_due(args.limit)
            print(f"claimed {report.claimed}, delivered {report.delivered}, retried {report.retried}, dead {report.dead}")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        dispatcher.run_forever(stop, args.interval)
        return 0
    except Exception as error:  # one line, no traceback, for the operator
        print(f"dispatch failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        database.close()


def database_problem(url: str) -> str | None:
    """Why the outbox cannot be read (unreachable, not migrated), asked once on a connection of
    its own before the pool opens (which would only time out, logging each attempt)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("select 'public.claim_n8n_dispatches'::regproc")
    except psycopg.Error as error:
        return database_failure(error, url)[0]
    return None


if __name__ == "__main__":
    sys.exit(main())
