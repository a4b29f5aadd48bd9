"""Apply the database migrations (and optionally the seeds) to a PostgreSQL database.

Exit codes: 0 up to date, 1 a migration or seed failed (rolled back), 2 bad usage, a malformed
database URL or unreachable database, 130 interrupted (Ctrl-C; the migration in progress rolls
back). Every failure is one line on stderr, without the database password.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from app.migrations import MigrationError, apply_migrations, create_database_if_missing  # noqa: E402
from scripts.admin_cli import database_failure, database_url_problem, interrupted, printable  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--create-database", action="store_true",
                        help="create the database first when it does not exist")
    parser.add_argument("--seed", action="store_true", help="load supabase/seed.sql (reference data)")
    parser.add_argument("--demo", action="store_true", help="load supabase/demo.sql (demo tenants, local only)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bootstrap", dest="bootstrap", action="store_const", const=True,
                       help="always apply the local bootstrap")
    group.add_argument("--no-bootstrap", "--hosted", dest="bootstrap", action="store_const", const=False,
                       help="never apply the local bootstrap (hosted Supabase)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("no database: pass --database-url or set DATABASE_URL")
    problem = database_url_problem(args.database_url)
    if problem:
        print(f"migrate.py: {problem}", file=sys.stderr)
        return 2

    try:
        if args.create_database and create_database_if_missing(args.database_url):
            print("created the database")
        report = apply_migrations(args.database_url, bootstrap=args.bootstrap, seed=args.seed,
                                  demo=args.demo, log=print)
    except MigrationError as error:
        print(printable(f"migration failed, rolled back: {error}", args.database_url), file=sys.stderr)
        return 1
    except psycopg.Error as error:
        message, code = database_failure(error, args.database_url)
        print(message, file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return interrupted("migrate.py")
    print(f"done: {len(report.applied)} migration(s) applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
