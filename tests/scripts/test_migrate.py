"""scripts/migrate.py against fresh databases: apply, re-apply, seeds, failures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app import migrations

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate.py"), *args],
                          capture_output=True, text=True, timeout=120)


def fetch(url: str, query: str):
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_migrations_apply_on_a_fresh_database_and_a_second_run_applies_nothing(empty_database):
    first = run_cli("--database-url", empty_database, "--seed")
    assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in migrations.MIGRATIONS_DIR.glob("*.sql"))
    assert [line.removeprefix("applied ") for line in first.stdout.splitlines() if line.startswith("applied ")] == files

    second = run_cli("--database-url", empty_database, "--seed")
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout
    assert "done: 0 migration(s) applied" in second.stdout
    versions = [r[0] for r in fetch(empty_database, "select version from supabase_migrations.schema_migrations order by 1")]
    assert versions == [f.split("_")[0] for f in files]


def test_seeds_load_idempotently(empty_database):
    assert run_cli("--database-url", empty_database, "--seed", "--demo").returncode == 0
    count_query = """select (select count(*) from public.task_templates), (select count(*) from public.agents),
                            (select count(*) from public.business_holidays), (select count(*) from public.user_profiles),
                            (select count(*) from public.sla_definitions)"""
    before = fetch(empty_database, count_query)
    assert run_cli("--database-url", empty_database, "--seed", "--demo").returncode == 0
    assert fetch(empty_database, count_query) == before
    assert before[0][3] == 5  # the demo people


def test_the_bootstrap_is_safe_to_run_twice(empty_database):
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(migrations.BOOTSTRAP_FILE.read_text())
        conn.execute(migrations.BOOTSTRAP_FILE.read_text())
        roles = {r[0]: r[1] for r in conn.execute(
            "select rolname, rolbypassrls from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')")}
        assert roles == {"anon": False, "authenticated": False, "service_role": True, "authenticator": False}
        assert conn.execute("select count(*) from pg_publication where pubname = 'supabase_realtime'").fetchone()[0] == 1
        conn.execute("""select set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}', false)""")
        assert conn.execute("select auth.uid()::text, auth.role(), auth.jwt() ->> 'role'").fetchone() == (
            "00000000-0000-4000-8000-000000000001", "authenticated", "authenticated")


def test_a_failing_migration_rolls_back_whole_and_names_the_file(empty_database, tmp_path, monkeypatch, capsys):
    good = list(migrations.MIGRATIONS_DIR.glob("*.sql"))
    for path in good:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "29991231000000_broken.sql").write_text(
        "create table public.half_done (id uuid primary key);\nselect 1 / 0;\n")
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", tmp_path)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import migrate as cli
    finally:
        sys.path.pop(0)

    assert cli.main(["--database-url", empty_database]) == 1
    err = capsys.readouterr().err
    assert "29991231000000_broken.sql" in err and "division by zero" in err
    assert fetch(empty_database, "select to_regclass('public.half_done')") == [(None,)]
    versions = {r[0] for r in fetch(empty_database, "select version from supabase_migrations.schema_migrations")}
    assert "29991231000000" not in versions and len(versions) == len(good)


def test_without_the_bootstrap_a_plain_database_fails_on_the_first_file(empty_database):
    result = run_cli("--database-url", empty_database, "--no-bootstrap")
    assert result.returncode == 1
    assert "20261126000100_tenants_and_people.sql" in result.stderr
    assert "Traceback" not in result.stderr
    assert fetch(empty_database, "select count(*) from supabase_migrations.schema_migrations") == [(0,)]


@pytest.mark.parametrize("args, message", [
    (["--database-url", "postgresql://postgres@127.0.0.1:1/nowhere"], "cannot reach the database"),
])
def test_an_unreachable_database_exits_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_no_database_url_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate.py")], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr


def test_create_database_creates_a_missing_database_once():
    from tests.conftest import database_url_for, drop_database
    import uuid

    name = f"rexera_created_{uuid.uuid4().hex[:8]}"
    url = database_url_for(name)
    try:
        first = run_cli("--database-url", url, "--create-database")
        assert first.returncode == 0, first.stderr
        assert "created the database" in first.stdout
        second = run_cli("--database-url", url, "--create-database")
        assert second.returncode == 0 and "created the database" not in second.stdout
        assert fetch(url, "select count(*) from pg_tables where schemaname = 'public'")[0][0] >= 35
    finally:
        drop_database(name)
