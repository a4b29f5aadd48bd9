"""Run one SLA sweep (alert levels, escalations) and the daily rollup, then print a JSON summary.

For cron jobs and operators where neither the service's sweep runner nor pg_cron runs it. Safe
next to them: it waits its turn on the sweep lock, and every write is once only.
Exit codes: 0 swept, 1 the sweep failed (an error in the sweep), 2 bad arguments, a malformed
database URL, an unreachable or unmigrated database, 130 interrupted (Ctrl-C, while waiting for
the sweep lock too; nothing is written). Every failure is one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from app.sla.sweeper import sweep  # noqa: E402
from scripts.admin_cli import database_failure, database_url_problem, interrupted  # noqa: E402


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-11-30T14:00:00+00:00")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--now", type=instant, help="sweep as of this ISO 8601 instant (default: the database's now)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as error:  # argparse exits 2 on bad arguments, 0 on --help
        return int(error.code or 0)
    if not args.database_url:
        print("sla_sweep: --database-url or DATABASE_URL is required", file=sys.stderr)
        return 2
    problem = database_url_problem(args.database_url)
    if problem:
        print(f"sla_sweep: {problem}", file=sys.stderr)
        return 2

    try:
        # A direct connection without a request role is the service path; committed on exit.
        with psycopg.connect(args.database_url, row_factory=dict_row, connect_timeout=10) as conn:
            summary = sweep(conn, args.now, wait=True)
    except psycopg.Error as error:  # one line, no traceback, for the operator
        message, code = database_failure(error, args.database_url)
        print(f"sla_sweep failed: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return interrupted("sla_sweep")
    print(json.dumps(summary, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
