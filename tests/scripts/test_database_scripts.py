"""Every script that takes a database URL, as an operator runs it: a malformed URL, an unreachable
or unmigrated database and a bad number are one line (or a few) on stderr with exit 2, never a
traceback nor the password; Ctrl-C is "interrupted", exit 130, where the script documents it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from app.sla.sweeper import SWEEP_LOCK_KEY
from tests.support import JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-database-password"
# script -> (its arguments, its environment) for a database URL.
SCRIPTS = {
    "migrate.py": lambda url: (["--database-url", url], {}),
    "mint_token.py": lambda url: (["--database-url", url, "--email", "operator@rexera.example"],
                                  {"SUPABASE_JWT_SECRET": JWT_SECRET}),
    "sla_sweep.py": lambda url: (["--database-url", url], {}),
    "provision.py client": lambda url: (["--database-url", url, "client", "create", "--name", "Acme"], {}),
    "provision.py user": lambda url: (["--database-url", url, "user", "create", "--email", "ops@example.com",
                                       "--role", "hil_operator"], {}),
    "dispatch.py": lambda url: ([], {"DATABASE_URL": as_url(url), "SUPABASE_JWT_SECRET": JWT_SECRET}),
}
MALFORMED = ["notaurl", f"http://admin:{PASSWORD}@example.com/x", "postgresql://127.0.0.1/x?bogusparam=1",
             f"postgresql://admin:{PASSWORD}@127.0.0.1/x?bogusparam=1"]


def as_url(url: str) -> str:
    """The tests' key=value connection strings as the postgresql:// URL the service's settings want."""
    if "://" in url or "=" not in url:
        return url
    parts = conninfo.conninfo_to_dict(url)
    return f"postgresql://{parts.get('user', 'postgres')}@{parts['host']}:{parts.get('port', 5432)}/{parts['dbname']}"


def start(script: str, url: str, *extra: str) -> subprocess.Popen:
    args, env = SCRIPTS[script](url)
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / script.split()[0]), *args, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})


def run(script: str, url: str, *extra: str) -> tuple[int, str, str]:
    process = start(script, url, *extra)
    out, err = process.communicate(timeout=90)
    return process.returncode, out, err


def assert_one_clean_failure(code: int, out: str, err: str, expected: str) -> None:
    assert code == 2, out + err
    assert "Traceback" not in err and PASSWORD not in out + err
    assert 1 <= len(err.strip().splitlines()) <= 2, err
    assert expected in err.lower().replace("_", " "), err


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_malformed_database_url_is_one_line_and_exit_2(script, url):
    code, out, err = run(script, url)
    assert_one_clean_failure(code, out, err, "database url")


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unreachable_database_is_one_line_and_exit_2(script):
    code, out, err = run(script, f"postgresql://admin:{PASSWORD}@127.0.0.1:{closed_port()}/rexera")
    assert_one_clean_failure(code, out, err, "cannot reach the database")


@pytest.mark.parametrize("script", [name for name in SCRIPTS if name != "migrate.py"])
def test_an_unmigrated_database_says_to_run_migrate(script, empty_database):
    code, out, err = run(script, empty_database)
    assert_one_clean_failure(code, out, err, "run scripts/migrate.py")
    assert "not migrated" in err


@pytest.mark.parametrize("script, argument, value", [
    ("mint_token.py", "--expires-in", "-100"), ("mint_token.py", "--expires-in", "0"),
    ("dispatch.py", "--limit", "-5"), ("dispatch.py", "--limit", "0"), ("dispatch.py", "--limit", "many"),
    ("dispatch.py", "--interval", "0"), ("dispatch.py", "--interval", "-1"), ("dispatch.py", "--interval", "nan"),
    ("dispatch.py", "--interval", "inf")])
def test_a_number_out_of_range_is_refused_before_anything_runs(script, argument, value, database_url):
    extra = ["--loop"] if argument == "--interval" else []
    code, out, err = run(script, database_url, *extra, argument, value)
    assert code == 2 and out == ""
    assert f"argument {argument}: " in err.splitlines()[-1] and "Traceback" not in err


# ---- Ctrl-C ---------------------------------------------------------------------------------------
def interrupt(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


@pytest.mark.parametrize("script", ["migrate.py", "sla_sweep.py", "provision.py user", "preflight.py"])
def test_ctrl_c_while_the_database_does_not_answer_is_interrupted_exit_130(script):
    with socket.socket() as silent:  # accepts, never answers: the script waits
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        silent.settimeout(30)
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/rexera"
        if script == "preflight.py":
            process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "preflight.py")], cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": url,
                                            "SUPABASE_JWT_SECRET": JWT_SECRET})
        else:
            process = start(script, url)
        connection, _ = silent.accept()
        with connection:
            time.sleep(0.5)
            code, err = interrupt(process)
    assert code == 130, err
    assert err.strip().splitlines()[-1].endswith("interrupted") and "Traceback" not in err


def test_ctrl_c_while_sla_sweep_waits_for_the_lock_is_interrupted_exit_130(database_url):
    with psycopg.connect(database_url) as holder:
        holder.execute("select pg_advisory_xact_lock(%s)", (SWEEP_LOCK_KEY,))
        process = start("sla_sweep.py", database_url)
        deadline = time.monotonic() + 30
        while not holder.execute("select exists (select from pg_locks where locktype = 'advisory' and not granted)"
                                 ).fetchone()[0]:
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.1)
        code, err = interrupt(process)
    assert code == 130, err
    assert err == "sla_sweep: interrupted\n"
