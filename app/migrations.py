"""Apply the Supabase migrations to any PostgreSQL 15: local bootstrap, pending files, seeds.

Applied files are recorded in supabase_migrations.schema_migrations, the table the Supabase
CLI uses, so `supabase db push` and this runner agree on what a database already has.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import psycopg
from psycopg import conninfo, errors, sql

ROOT = Path(__file__).resolve().parent.parent
SUPABASE_DIR = ROOT / "supabase"
MIGRATIONS_DIR = SUPABASE_DIR / "migrations"
BOOTSTRAP_FILE = SUPABASE_DIR / "local" / "bootstrap.sql"
SEED_FILE = SUPABASE_DIR / "seed.sql"
DEMO_FILE = SUPABASE_DIR / "demo.sql"

# Any fixed number: held while migrating so two runners never interleave.
MIGRATION_LOCK_KEY = 7_302_115_001

TRACKING_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);
"""


class MigrationError(Exception):
    """A file failed to apply; it was rolled back whole."""

    def __init__(self, path: Path, error: psycopg.Error):
        self.path = path
        self.error = error
        diag = error.diag
        detail = diag.message_primary or str(error).strip()
        if diag.context:
            detail += f" ({diag.context.strip().splitlines()[0]})"
        super().__init__(f"{path.name}: {detail} [SQLSTATE {error.sqlstate}]")


@dataclasses.dataclass
class MigrationReport:
    bootstrapped: bool = False
    applied: list[str] = dataclasses.field(default_factory=list)
    seeded: list[str] = dataclasses.field(default_factory=list)


def migration_files() -> list[Path]:
    """Every migration in version order (the timestamp prefix of the file name)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def split_version(path: Path) -> tuple[str, str]:
    version, _, name = path.stem.partition("_")
    return version, name


def is_hosted_supabase(conn: psycopg.Connection) -> bool:
    """Hosted Supabase has its own admin role; our bootstrap must not run there."""
    row = conn.execute("select exists (select 1 from pg_roles where rolname = 'supabase_admin')").fetchone()
    return bool(row[0])


def applied_versions(conn: psycopg.Connection) -> set[str]:
    conn.execute(TRACKING_DDL)
    return {row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")}


def _run_file(conn: psycopg.Connection, path: Path) -> None:
    try:
        with conn.transaction():
            conn.execute(path.read_text())
    except psycopg.Error as error:
        raise MigrationError(path, error) from error


def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in `database_url` (through the server's `postgres` database)
    when it does not exist yet. True when it was created."""
    name = conninfo.conninfo_to_dict(database_url).get("dbname")
    if not name:
        raise ValueError("the database URL names no database")
    admin_url = conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        if admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return False
        try:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:  # created by someone else meanwhile
            return False
    return True


def apply_migrations(
    database_url: str,
    *,
    bootstrap: bool | None = None,
    seed: bool = False,
    demo: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> MigrationReport:
    """Bring the database at `database_url` up to date.

    bootstrap: True or False forces the local bootstrap on or off; None detects (skipped on
    hosted Supabase). Each migration runs in its own transaction; the first failure stops the
    run and raises MigrationError, leaving the files before it applied.
    """
    report = MigrationReport()
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            if bootstrap is None:
                bootstrap = not is_hosted_supabase(conn)
            if bootstrap:
                _run_file(conn, BOOTSTRAP_FILE)
                report.bootstrapped = True
                log(f"bootstrap: ensured {BOOTSTRAP_FILE.relative_to(ROOT)}")
            done = applied_versions(conn)
            for path in migration_files():
                version, name = split_version(path)
                if version in done:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(path.read_text())
                        conn.execute(
                            "insert into supabase_migrations.schema_migrations (version, statements, name)"
                            " values (%s, %s, %s)",
                            (version, [path.read_text()], name),
                        )
                except psycopg.Error as error:
                    raise MigrationError(path, error) from error
                report.applied.append(path.name)
                log(f"applied {path.name}")
            if not report.applied:
                log("migrations: nothing to apply, the database is up to date")
            for wanted, path in ((seed, SEED_FILE), (demo, DEMO_FILE)):
                if wanted:
                    _run_file(conn, path)
                    report.seeded.append(path.name)
                    log(f"seeded {path.relative_to(ROOT)}")
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return report
