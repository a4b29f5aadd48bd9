"""Settings from the environment: each missing or malformed variable named at start."""
from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings

SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()
GOOD = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/rexera", "SUPABASE_JWT_SECRET": "s" * 40,
        "N8N_CALLBACK_SECRET": SECRET, "AGENT_API_KEYS": "nina=abcdefghijklmnop,*=qrstuvwxyz012345"}


def test_good_settings_load():
    settings = Settings.from_env(GOOD)
    assert settings.n8n_callback_secret == b"x" * 32
    assert settings.agent_api_keys == {"nina": "abcdefghijklmnop", "*": "qrstuvwxyz012345"}
    assert settings.jwks_url is None


def test_prepared_statements_are_off_unless_asked_for():
    assert Settings.from_env(GOOD).db_prepare_threshold is None
    assert Settings.from_env({**GOOD, "DB_PREPARE_THRESHOLD": "2"}).db_prepare_threshold == 2
    with pytest.raises(ConfigError, match="DB_PREPARE_THRESHOLD"):
        Settings.from_env({**GOOD, "DB_PREPARE_THRESHOLD": "often"})


def test_supabase_url_gives_the_jwks_and_issuer():
    settings = Settings.from_env({**GOOD, "SUPABASE_URL": "https://abc.supabase.co/"})
    assert settings.jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
    assert settings.jwt_issuer == "https://abc.supabase.co/auth/v1"


@pytest.mark.parametrize("changes, named", [
    ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be"),
    ({"SUPABASE_JWT_SECRET": ""}, "SUPABASE_URL"),
    ({"SUPABASE_JWT_SECRET": "short"}, "at least 32"),
    ({"N8N_CALLBACK_SECRET": "plain"}, "whsec_"),
    ({"N8N_CALLBACK_SECRET": "whsec_!!!"}, "base64"),
    ({"AGENT_API_KEYS": "nina"}, "AGENT_API_KEYS"),
    ({"REDIS_URL": "http://redis"}, "REDIS_URL"),
    ({"DB_POOL_MAX": "lots"}, "DB_POOL_MAX"),
])
def test_each_problem_is_named(changes, named):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**GOOD, **changes})
    assert named in str(caught.value)


def test_all_problems_are_listed_together():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"N8N_CALLBACK_SECRET": "plain"})
    assert len(caught.value.problems) == 3


def test_wsgi_refuses_to_start_with_a_clear_message():
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 4  # gunicorn's "app failed to load": its master stops, no worker respawns
    assert "DATABASE_URL is required" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("platform_env, platform", [({}, "server"), ({"VERCEL": "1"}, "vercel"),
                                                    ({"AWS_LAMBDA_FUNCTION_NAME": "rexera"}, "lambda"),
                                                    ({"VERCEL": "1", "SERVICE_PLATFORM": "server"}, "server")])
def test_the_platform_decides_where_duties_run(platform_env, platform):
    settings = Settings.from_env({**GOOD, **platform_env})
    assert settings.platform == platform
    assert settings.background_duties is (platform == "server")
    assert settings.sla_sweep_interval_seconds == (60 if platform == "server" else 0)
    assert settings.deliver_inline is True and settings.inline_delivery_timeout_seconds == 3.0


@pytest.mark.parametrize("variable", ["DISPATCHER_ENABLED=on", "SLA_SWEEP_INTERVAL_SECONDS=30"])
@pytest.mark.parametrize("where", [{"VERCEL": "1"}, {"BACKGROUND_DUTIES": "off"}])
def test_a_background_thread_where_none_can_live_is_refused_by_name(variable, where):
    name, _, value = variable.partition("=")
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**GOOD, **where, name: value})
    assert name in str(error.value) and "tick" in str(error.value)


@pytest.mark.parametrize("env, message", [
    ({"CRON_SECRET": "short"}, "CRON_SECRET must be at least 16 characters"),
    ({"BACKGROUND_DUTIES": "sometimes"}, "BACKGROUND_DUTIES must be auto, on or off"),
    ({"SERVICE_PLATFORM": "mainframe"}, "SERVICE_PLATFORM must be one of"),
    ({"INLINE_DELIVERY": "maybe"}, "INLINE_DELIVERY must be on or off"),
    ({"INLINE_DELIVERY_TIMEOUT_SECONDS": "120"}, "INLINE_DELIVERY_TIMEOUT_SECONDS must be between 1 and 30"),
])
def test_duty_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**GOOD, **env})


def test_background_duties_can_be_forced_either_way():
    assert Settings.from_env({**GOOD, "VERCEL": "1", "BACKGROUND_DUTIES": "on"}).background_duties is True
    off = Settings.from_env({**GOOD, "BACKGROUND_DUTIES": "off", "INLINE_DELIVERY": "off", "CRON_SECRET": "c" * 32})
    assert (off.background_duties, off.deliver_inline, off.cron_secret) == (False, False, "c" * 32)


def test_listen_through_the_transaction_pooler_is_refused_where_threads_listen():
    pooled = {**GOOD, "DATABASE_URL": "postgresql://postgres.ref:pw@aws-0.pooler.supabase.com:6543/postgres"}
    with pytest.raises(ConfigError, match="REALTIME_DATABASE_URL"):
        Settings.from_env(pooled)
    direct = "postgresql://postgres:pw@db.ref.supabase.co:5432/postgres"
    assert Settings.from_env({**pooled, "REALTIME_DATABASE_URL": direct}).realtime_database_url == direct
    assert Settings.from_env({**pooled, "VERCEL": "1"}).background_duties is False  # nothing listens there


def test_every_variable_the_service_reads_is_documented():
    import re

    root = Path(__file__).resolve().parents[2]
    read = set(re.findall(r'(?:get|url|integer)\("([A-Z][A-Z0-9_]+)"', (root / "app" / "config.py").read_text()))
    documented = (root / "docs" / "api.md").read_text()
    assert read and {name for name in read if f"`{name}" not in documented and f" {name}" not in documented} == set()


def test_gunicorns_master_imports_nothing_that_must_be_imported_after_gevent():
    """gunicorn.conf.py checks the settings in the master, before workers fork and gevent patches
    the standard library: what it imports must not pull psycopg in (psycopg decides at import
    whether to wait cooperatively; imported unpatched, every database call in a gevent worker
    would block all of its connections)."""
    code = ("import sys, runpy; runpy.run_path('gunicorn.conf.py'); import app.config; "
            "print(sorted(m for m in ('psycopg', 'flask_limiter', 'app.errors', 'app.db') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
