"""Who runs the sweep: the service's background runner (SLA_SWEEP_INTERVAL_SECONDS), the
script, and pg_cron through a migration that does nothing without the extension."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from app import create_app
from app.config import ConfigError, Settings
from app.migrations import apply_migrations
from tests.app.test_config import GOOD
from tests.service_fixtures import make_settings

ROOT = Path(__file__).resolve().parents[2]


def alert_count(url, task_id) -> int:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("select count(*) as n from public.sla_alerts where task_id = %s", (task_id,)).fetchone()["n"]


# ============================================================================================
# Settings
# ============================================================================================
def test_the_service_sweeps_every_minute_unless_told_otherwise():
    assert Settings.from_env(GOOD).sla_sweep_interval_seconds == 60
    assert Settings.from_env({**GOOD, "SLA_SWEEP_INTERVAL_SECONDS": "0"}).sla_sweep_interval_seconds == 0
    assert Settings.from_env({**GOOD, "SLA_SWEEP_INTERVAL_SECONDS": "15"}).sla_sweep_interval_seconds == 15


@pytest.mark.parametrize("value, problem", [
    ("-1", "SLA_SWEEP_INTERVAL_SECONDS must be between 0 and 86400"),
    ("often", "SLA_SWEEP_INTERVAL_SECONDS must be an integer"),
])
def test_a_bad_sweep_interval_is_named(value, problem):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**GOOD, "SLA_SWEEP_INTERVAL_SECONDS": value})
    assert problem in error.value.problems


# ============================================================================================
# The service's runner
# ============================================================================================
def test_an_app_built_without_an_interval_starts_no_runner(own_database):
    app = create_app(make_settings(own_database))
    try:
        assert "sla_sweeper" not in app.extensions
    finally:
        app.extensions["database"].close()


def test_the_service_runner_sweeps_in_the_background_until_stopped(own_database, late_task):
    app = create_app(make_settings(own_database, sla_sweep_interval_seconds=1))
    stop, thread = app.extensions["sla_sweeper"]
    try:
        deadline = time.monotonic() + 30  # waits for the outcome; not a timing assertion
        while alert_count(own_database, late_task["id"]) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
        app.extensions["database"].close()
    assert not thread.is_alive()
    assert alert_count(own_database, late_task["id"]) == 4


def rounds_taken(url: str, duty: str = "sla_sweep") -> int:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute("select rounds from private.duty_rounds where duty = %s", (duty,)).fetchone()
    return row["rounds"] if row else 0


def test_the_first_runner_to_ask_takes_the_round_and_the_others_skip_it(own_database):
    with psycopg.connect(own_database, autocommit=True, row_factory=dict_row) as conn:
        def claim() -> bool:
            return conn.execute("select coalesce(private.claim_duty_round('a duty', interval '60 seconds'), false)"
                                " as mine").fetchone()["mine"]

        assert claim() is True
        assert claim() is False and claim() is False  # the same round
        # Nine tenths of the round later (a runner's timer drifts), the next round is free.
        conn.execute("update private.duty_rounds set started_at = started_at - interval '54 seconds'"
                     " where duty = 'a duty'")
        assert claim() is True and claim() is False
    assert rounds_taken(own_database, "a duty") == 2


def test_several_instances_sweep_once_a_round_between_them(own_database, late_task):
    """Three services, each with its runner every second, out of step: one sweep a round."""
    apps = [create_app(make_settings(own_database, sla_sweep_interval_seconds=1)) for _ in range(3)]
    started = time.monotonic()
    try:
        time.sleep(6)  # waits for rounds to pass; the assertion below is a count, with a margin each way
    finally:
        for app in apps:
            stop, thread = app.extensions["sla_sweeper"]
            stop.set()
            thread.join(10)
            app.extensions["database"].close()
    elapsed = time.monotonic() - started
    # Three runners every second try about 18 times; a round is at least 0.9 s.
    assert 3 <= rounds_taken(own_database) <= elapsed / 0.9 + 1, (rounds_taken(own_database), elapsed)
    assert alert_count(own_database, late_task["id"]) == 4  # and the sweeps did their work


# ============================================================================================
# The script
# ============================================================================================
def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "sla_sweep.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_script_sweeps_once_and_prints_a_json_summary(own_database, late_task):
    first = run_script("--database-url", own_database)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["levelsRaised"] >= 1 and summary["alertsCreated"] >= 4
    assert alert_count(own_database, late_task["id"]) == 4

    again = json.loads(run_script("--database-url", own_database).stdout)
    assert (again["levelsRaised"], again["alertsCreated"], again["notificationsCreated"]) == (0, 0, 0)


def test_the_script_sweeps_as_of_a_given_instant(own_database, late_task):
    result = run_script("--database-url", own_database, "--now", "2020-01-01T00:00:00+00:00")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sweptAt"].startswith("2020-01-01")
    assert alert_count(own_database, late_task["id"]) == 0  # nothing was due yet in 2020


@pytest.mark.parametrize("args, code, message", [
    (["--database-url", "postgresql://postgres@127.0.0.1:1/nowhere"], 2, "sla_sweep failed: cannot reach the database"),
    (["--database-url", "postgresql://x", "--now", "2026-11-30T14:00"], 2, "give a time zone"),
])
def test_the_script_fails_with_a_meaningful_exit_code(args, code, message):
    result = run_script(*args)
    assert result.returncode == code
    assert message in result.stderr and result.stdout == ""


# ============================================================================================
# pg_cron
# ============================================================================================
def test_the_pg_cron_migration_applies_cleanly_where_pg_cron_is_absent(empty_database):
    with psycopg.connect(empty_database) as conn:
        available = conn.execute("select 1 from pg_available_extensions where name = 'pg_cron'").fetchone()
    if available:
        pytest.skip("pg_cron is available on this server")
    report = apply_migrations(empty_database, seed=True)
    assert "20261126002500_sla_cron.sql" in report.applied
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("select 1 from pg_namespace where nspname = 'cron'").fetchone() is None
        assert conn.execute("select 1 from pg_extension where extname = 'pg_cron'").fetchone() is None
