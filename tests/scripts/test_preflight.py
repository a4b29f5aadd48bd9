"""scripts/preflight.py: the env file, exit codes, secrets never printed, the weak-secret rules,
and each check failing on purpose with a clear detail, against a real PostgreSQL, the real
service on a real socket and closed or silent ports; `responses` stands in for n8n Cloud only
(tests/scripts/n8n_public_api.py). The last test runs the script against the running system with
a real n8n (e2e)."""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import random
import re
import secrets
import shlex
import shutil
import socket
import string
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import jwt
import psycopg
import pytest
import responses
from hypothesis import given, settings as hypothesis_settings, strategies as st
from psycopg import conninfo

from app import migrations
from app.config import Settings
from app.n8n import cloud
from tests.conftest import create_database, database_url_for, drop_database
from tests.e2e import harness
from tests.scripts import n8n_public_api
from tests.scripts.n8n_public_api import API_KEY, FakeN8n
from tests.service_fixtures import AGENT_KEY
from tests.support import JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "preflight.py"
EXPORTS = ROOT / "n8n_workflows"
# The n8n Cloud stand-in answers here: a name of this machine, as the service's callback URL in
# these tests is (n8n elsewhere could not call a service on 127.0.0.1 back; that is a check).
LOCAL_N8N = "http://n8n.localhost:5678"
CREDENTIALS = [("httpHeaderAuth", "Rexera trigger token"), ("httpHeaderAuth", "Rexera error token"),
               ("n8nApi", "Rexera n8n API")]
PAYOFF, HOA, MUNI = "Rexera - Payoff request", "Rexera - HOA acquisition", "Rexera - Municipal lien search"
SETTINGS_CHECKS = ["config", "database", "migrations", "seed", "jwt", "n8n", "n8n-api-key", "n8n-workflows",
                   "n8n-credentials", "public-url"]
SECRET_ROWS = ["secret:N8N_CALLBACK_SECRET", "secret:N8N_WEBHOOK_TOKEN", "secret:N8N_ERROR_WEBHOOK_TOKEN",
               "secret:SUPABASE_JWT_SECRET", "secret:AGENT_API_KEYS", "secret:CRON_SECRET"]


def load_script():
    if "preflight_script" in sys.modules:
        return sys.modules["preflight_script"]
    spec = importlib.util.spec_from_file_location("preflight_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["preflight_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


preflight = load_script()


# ---- helpers -------------------------------------------------------------------------------------
def strong(length: int = 40) -> str:
    return secrets.token_urlsafe(length)[:length]


def callback_secret(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_env(path: Path, env: dict[str, str]) -> Path:
    path.write_text("# written by the test\n" + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    return path


def run(tmp_path: Path, env: dict[str, str], *args: str, capsys) -> tuple[int, dict[str, tuple[str, str]]]:
    """preflight.main in this process (so `responses` can stand in for n8n), --json; rows by name."""
    code = preflight.main(["--env-file", str(write_env(tmp_path / "env", env)), "--json", *args])
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["exitCode"] == code and document["ok"] == (code == 0)
    rows = {row["name"]: (row["status"], row["detail"]) for row in document["checks"]}
    assert list(rows) == SETTINGS_CHECKS + SECRET_ROWS, list(rows)
    return code, rows


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The script as an operator runs it, in a clean environment (plus `env`)."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})})


def statuses(rows: dict) -> dict[str, str]:
    return {name: status for name, (status, _) in rows.items()}


def as_url(database_url: str, password: str | None = None) -> str:
    """The test database's connection string as the postgresql:// URL DATABASE_URL must be."""
    parts = conninfo.conninfo_to_dict(database_url)
    password = password if password is not None else parts.get("password")
    login = parts.get("user") or "postgres"
    if password:
        login += f":{password}"
    return f"postgresql://{login}@{parts.get('host') or '127.0.0.1'}:{parts.get('port') or 5432}/{parts['dbname']}"


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(database_url):
    """The real service on a free port over the session database, its n8n the stand-in."""
    settings = Settings(database_url=database_url, supabase_jwt_secret=strong(), n8n_base_url=LOCAL_N8N,
                        rate_limits_enabled=False, db_pool_min=1, db_pool_max=4)
    running = harness.Service(settings, harness.n8n_local.free_port()).start()
    try:
        yield running
    finally:
        running.stop()


def make_n8n(monkeypatch, version: str = "1.123.50", healthz: int = 200):
    monkeypatch.setattr(n8n_public_api, "BASE_URL", LOCAL_N8N)
    fake = FakeN8n(version=version)
    for kind, name in CREDENTIALS:
        fake.add_credential(kind, name)
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.add_passthru(re.compile(r"http://127\.0\.0\.1:\d+/"))  # the service, and closed ports, are real
    mock.add(responses.GET, f"{LOCAL_N8N}/healthz", json={"status": "ok"}, status=healthz)
    fake.install(mock)
    return fake, mock


@pytest.fixture
def n8n(monkeypatch):
    """n8n 1.x's public API (credentials cannot be listed), every export pushed with sync_workflows' push."""
    fake, mock = make_n8n(monkeypatch)
    with mock:
        push(fake)
        yield fake


def push(fake: FakeN8n) -> None:
    report = cloud.Sync(cloud.N8nClient(LOCAL_N8N, API_KEY, retry=cloud.RetryPolicy(attempts=1)), EXPORTS,
                        say=lambda line: None).push()
    assert report.ok and len(report.applied) == 4, report.summary()


@pytest.fixture
def deployment(database_url, service) -> dict[str, str]:
    """A sound deployment's environment: every secret strong, the callback URL the real service."""
    return {"DATABASE_URL": as_url(database_url), "SUPABASE_JWT_SECRET": strong(), "N8N_BASE_URL": LOCAL_N8N,
            "N8N_API_KEY": API_KEY, "N8N_CALLBACK_SECRET": callback_secret(), "N8N_WEBHOOK_TOKEN": strong(),
            "N8N_ERROR_WEBHOOK_TOKEN": strong(), "AGENT_API_KEYS": f"*={strong()}", "CRON_SECRET": strong(),
            "PUBLIC_BASE_URL": service.base_url}


# ---- a sound deployment --------------------------------------------------------------------------
def test_a_sound_deployment_passes_every_check_and_exits_0(tmp_path, n8n, deployment, capsys):
    code, rows = run(tmp_path, deployment, capsys=capsys)
    expected = dict.fromkeys(SETTINGS_CHECKS + SECRET_ROWS, "ok")
    expected["jwt"] = "warn"  # HS256 only: the legacy secret
    assert statuses(rows) == expected, rows
    assert code == 0
    assert "only the legacy HS256 secret is used" in rows["jwt"][1]
    assert "verifies, one signed with another key is refused" in rows["jwt"][1]
    assert rows["migrations"][1] == f"all {len(migrations.migration_files())} applied " \
                                    f"(newest {migrations.split_version(migrations.migration_files()[-1])[0]})"
    assert rows["n8n-workflows"][1] == "all 4 export(s) pushed, active as they should be and in step"
    assert "resolved in the pushed workflows" in rows["n8n-credentials"][1]  # 1.x lists none
    assert rows["public-url"][1] == f"{deployment['PUBLIC_BASE_URL']}/api/health answers: ok"


def test_the_table_shows_one_row_per_check_and_the_counts(tmp_path, n8n, deployment, capsys):
    code = preflight.main(["--env-file", str(write_env(tmp_path / "env", deployment))])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert [line.split()[:2] for line in out[1:-1]] == [[name, "warn" if name == "jwt" else "ok"]
                                                        for name in SETTINGS_CHECKS + SECRET_ROWS]
    assert out[-1] == "15 ok, 1 warn, 0 fail, 0 skip"


def test_n8n_2_lists_the_credentials_and_a_missing_one_fails(tmp_path, monkeypatch, deployment, capsys):
    fake, mock = make_n8n(monkeypatch, version="2.41.1")
    with mock:
        push(fake)
        code, rows = run(tmp_path, deployment, capsys=capsys)
        assert code == 0 and rows["n8n-credentials"][0] == "ok", rows["n8n-credentials"]
        assert "listed by n8n" in rows["n8n-credentials"][1]
        del fake.credentials[("n8nApi", "Rexera n8n API")]
        code, rows = run(tmp_path, deployment, capsys=capsys)
    assert code == 1
    assert rows["n8n-credentials"][0] == "fail"
    assert rows["n8n-credentials"][1].startswith("missing: 'Rexera n8n API' (n8nApi) (listed by n8n")


# ---- each check failing on purpose ----------------------------------------------------------------
def test_an_unreachable_database_fails_and_its_dependants_are_skipped(tmp_path, capsys):
    port = closed_port()
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/rexera", "SUPABASE_JWT_SECRET": strong()}
    code, rows = run(tmp_path, env, capsys=capsys)
    assert code == 1
    status, detail = rows["database"]
    assert status == "fail" and detail.startswith(f"cannot reach rexera at 127.0.0.1:{port}: ")
    assert "refused" in detail.lower(), detail
    assert rows["migrations"] == ("skip", "needs database, which did not pass")
    assert rows["seed"] == ("skip", "needs database, which did not pass")
    assert rows["jwt"][0] == "warn"  # needs the configuration only


def test_missing_migrations_then_a_missing_seed_are_named(tmp_path, monkeypatch, capsys):
    files = migrations.migration_files()
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in files[:-2]:
        shutil.copy(path, partial / path.name)
    name = create_database("rexera_preflight")
    url = database_url_for(name)
    env = {"DATABASE_URL": as_url(url), "SUPABASE_JWT_SECRET": strong()}
    try:
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "MIGRATIONS_DIR", partial)
            migrations.apply_migrations(url)
        code, rows = run(tmp_path, env, capsys=capsys)
        assert code == 1 and rows["database"][0] == "ok"
        assert rows["migrations"] == ("fail", f"2 of {len(files)} not applied: {files[-2].name}, {files[-1].name}")
        assert rows["seed"][0] == "fail"

        migrations.apply_migrations(url)  # every migration, still no seed
        code, rows = run(tmp_path, env, capsys=capsys)
        assert rows["migrations"][0] == "ok"
        status, detail = rows["seed"]
        assert status == "fail"
        assert detail.startswith("no task plan for HOA_ACQUISITION, MUNI_LIEN_SEARCH, PAYOFF_REQUEST; "
                                 "agents missing or inactive: nina, mia, florian, rex, iris, ria, kosha, cassy, max, "
                                 "corey; no business hours"), detail

        migrations.apply_migrations(url, seed=True)
        code, rows = run(tmp_path, env, capsys=capsys)
        assert rows["seed"] == ("ok", "3 task plans (23 steps), 10 agents active, business hours on 5 day(s)")

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("update public.agents set is_active = false where name = 'rex'")
        code, rows = run(tmp_path, env, capsys=capsys)
        assert rows["seed"][0] == "fail"
        assert rows["seed"][1].startswith("agents missing or inactive: rex; task plans name agents that are "
                                          "missing or inactive: rex")
    finally:
        drop_database(name)


def test_an_unreachable_n8n_fails_and_the_api_checks_are_skipped(tmp_path, capsys):
    base = f"http://127.0.0.1:{closed_port()}"
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/x", "SUPABASE_JWT_SECRET": strong(),
           "N8N_BASE_URL": base, "N8N_API_KEY": strong()}
    code, rows = run(tmp_path, env, capsys=capsys)
    assert code == 1
    assert rows["n8n"] == ("fail", f"{base} is unreachable: connection refused")
    for name in ("n8n-api-key", "n8n-workflows", "n8n-credentials"):
        assert rows[name][0] == "skip"


def test_n8n_unset_fails(tmp_path, capsys):
    code, rows = run(tmp_path, {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "SUPABASE_JWT_SECRET": strong()},
                     capsys=capsys)
    assert rows["n8n"] == ("fail", "N8N_BASE_URL is not set: no workflow can start")


def test_a_wrong_api_key_fails_without_being_printed(tmp_path, n8n, deployment, capsys):
    wrong = "n8n_api_" + strong(30)
    code, rows = run(tmp_path, {**deployment, "N8N_API_KEY": wrong}, capsys=capsys)
    assert code == 1
    assert rows["n8n"][0] == "ok"
    assert rows["n8n-api-key"] == ("fail", "n8n refused N8N_API_KEY (401): check the key (and its scopes) for "
                                           "this instance")
    assert rows["n8n-workflows"][0] == rows["n8n-credentials"][0] == "skip"
    assert not any(wrong[:6] in detail or wrong[-6:] in detail for _, detail in rows.values())


def test_exports_not_in_step_are_named_with_what_differs(tmp_path, n8n, deployment, capsys):
    changed = tmp_path / "exports"
    shutil.copytree(EXPORTS, changed)
    export = json.loads((changed / "payoff_request.json").read_text())
    node = next(node for node in export["nodes"] if node["type"] == "n8n-nodes-base.httpRequest")
    node["parameters"] = {**node["parameters"], "timeout": 1234}
    (changed / "payoff_request.json").write_text(json.dumps(export, indent=2))
    n8n.by_name(HOA)["active"] = False
    del n8n.workflows[n8n.by_name(MUNI)["id"]]

    code, rows = run(tmp_path, deployment, "--workflows-dir", str(changed), capsys=capsys)
    assert code == 1
    status, detail = rows["n8n-workflows"]
    assert status == "fail"
    assert detail.startswith("3 of 4 export(s) not in step (scripts/sync_workflows.py push): ")
    assert f"{HOA}: not active" in detail
    assert f"{MUNI}: only in the repository" in detail
    assert f"{PAYOFF}: node changed: {node['name']} (parameters)" in detail
    assert "Rexera - Error handler" not in detail

    # The same instance against the repository's own exports: only what changed in n8n.
    code, rows = run(tmp_path, deployment, capsys=capsys)
    assert rows["n8n-workflows"][1].startswith("2 of 4 export(s) not in step")


def test_an_untagged_or_extra_workflow_is_a_warning(tmp_path, n8n, deployment, capsys):
    n8n.by_name(PAYOFF)["tags"] = []
    n8n.seed({"name": "Rexera - Retired", "nodes": [], "connections": {}, "settings": {}},
             tags=[cloud.MANAGED_TAG])
    code, rows = run(tmp_path, deployment, capsys=capsys)
    assert code == 0
    status, detail = rows["n8n-workflows"]
    assert status == "warn"
    assert f"{PAYOFF}: not tagged 'managed-by-rexera-repo' (push tags it)" in detail
    assert "Rexera - Retired: only in n8n (tagged as managed by this repository)" in detail


def test_a_public_url_that_is_down_or_not_the_service_fails(tmp_path, n8n, deployment, capsys):
    down = f"http://127.0.0.1:{closed_port()}"
    code, rows = run(tmp_path, {**deployment, "PUBLIC_BASE_URL": down}, capsys=capsys)
    assert code == 1
    assert rows["public-url"] == ("fail", f"{down}/api/health is unreachable: connection refused")

    with http_server({"/api/health": (404, "<html>not here</html>")}) as other:
        code, rows = run(tmp_path, {**deployment, "PUBLIC_BASE_URL": other}, capsys=capsys)
    assert rows["public-url"] == ("fail", f"{other}/api/health answered 404 but not with this service's health "
                                          "(is PUBLIC_BASE_URL this service?)")


def test_a_degraded_service_is_a_warning_naming_what_is_not_ok(tmp_path, monkeypatch, deployment, capsys):
    fake, mock = make_n8n(monkeypatch, healthz=503)
    with mock:
        push(fake)
        code, rows = run(tmp_path, deployment, capsys=capsys)
    assert rows["n8n"] == ("fail", f"{LOCAL_N8N}/healthz answered 503")
    assert rows["public-url"] == ("warn", f"{deployment['PUBLIC_BASE_URL']}/api/health answers: degraded "
                                          "(workflows down)")


def test_a_callback_url_on_this_machine_with_n8n_elsewhere_fails(tmp_path, deployment, capsys):
    env = {**deployment, "N8N_BASE_URL": "https://rexera.app.n8n.cloud", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    env.pop("N8N_API_KEY")
    code, rows = run(tmp_path, env, "--timeout", "2", capsys=capsys)
    assert rows["public-url"] == ("fail", "http://127.0.0.1:8000 is this machine, but n8n at "
                                          "https://rexera.app.n8n.cloud is not: it cannot call back (set "
                                          "PUBLIC_BASE_URL to the service's public address)")


def test_plain_http_to_another_host_is_noted(tmp_path, capsys):
    env = {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "SUPABASE_JWT_SECRET": strong(),
           "PUBLIC_BASE_URL": "http://192.0.2.1"}  # TEST-NET-1: never answers
    code, rows = run(tmp_path, env, "--timeout", "2", capsys=capsys)
    status, detail = rows["public-url"]
    assert status == "fail" and detail.startswith("http://192.0.2.1/api/health is unreachable: ")
    assert detail.endswith("; plain http to a host that is not this machine: use https")


def test_a_silent_dependency_is_given_up_after_the_timeout(tmp_path, capsys):
    """A socket that accepts and never answers, as n8n and as the callback URL: each check ends
    within --timeout, the run in a few seconds."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/x", "SUPABASE_JWT_SECRET": strong(),
               "N8N_BASE_URL": base, "N8N_API_KEY": strong(), "PUBLIC_BASE_URL": base}
        started = time.monotonic()
        code, rows = run(tmp_path, env, "--timeout", "2", capsys=capsys)
        elapsed = time.monotonic() - started
    assert code == 1
    assert rows["n8n"] == ("fail", f"{base} is unreachable: no answer in time")
    assert rows["public-url"] == ("fail", f"{base}/api/health is unreachable: no answer in time")
    assert elapsed < 8, elapsed


def test_a_check_that_overruns_its_deadline_is_a_failure(tmp_path, monkeypatch, capsys):
    def slow(ctx):
        time.sleep(3)
        return preflight.Result("jwt", "ok", "too late")

    monkeypatch.setattr(next(check for check in preflight.CHECKS if check.name == "jwt"), "run", slow)
    started = time.monotonic()
    code, rows = run(tmp_path, {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "SUPABASE_JWT_SECRET": strong()},
                     "--timeout", "1", capsys=capsys)
    assert rows["jwt"] == ("fail", "no answer within 1 s")
    assert code == 1 and time.monotonic() - started < 3


def test_configuration_problems_are_all_listed_and_the_checks_needing_it_skipped(tmp_path, capsys):
    env = {"DATABASE_URL": "mysql://db.example/rexera", "DB_POOL_MIN": "lots", "N8N_WEBHOOK_TOKEN": strong()}
    code, rows = run(tmp_path, env, capsys=capsys)
    assert code == 1
    status, detail = rows["config"]
    assert status == "fail" and detail.startswith("3 problem(s): ")
    assert "DATABASE_URL must be a postgres or postgresql URL" in detail
    assert "DB_POOL_MIN must be an integer" in detail
    assert "set SUPABASE_URL" in detail
    assert all(rows[name][0] == "skip" for name in SETTINGS_CHECKS[1:])
    assert rows["secret:N8N_WEBHOOK_TOKEN"][0] == "ok"  # the secrets are checked all the same


# ---- JWKS ----------------------------------------------------------------------------------------
class http_server:
    """A real HTTP server on a free port answering fixed (status, body) per path."""

    def __init__(self, routes: dict[str, tuple[int, str]]):
        self.routes = routes

    def __enter__(self) -> str:
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, body = routes.get(self.path, (404, "{}"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body.startswith("{") else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


JWKS_PATH = "/auth/v1/.well-known/jwks.json"


def test_jwks_with_a_signing_key_passes_and_an_empty_or_dead_one_fails(tmp_path, capsys):
    from cryptography.hazmat.primitives.asymmetric import ec

    public = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    keys = json.dumps({"keys": [{**public, "kid": "key-1", "alg": "ES256", "use": "sig"}]})
    base_env = {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    with http_server({JWKS_PATH: (200, keys)}) as project:
        code, rows = run(tmp_path, {**base_env, "SUPABASE_URL": project}, capsys=capsys)
        assert rows["jwt"] == ("ok", f"JWKS answers with 1 signing key(s) (ES256), issuer {project}/auth/v1")
        assert rows["secret:SUPABASE_JWT_SECRET"] == ("ok", "not set: tokens are verified with the JWKS")

        secret = strong()
        code, rows = run(tmp_path, {**base_env, "SUPABASE_URL": project, "SUPABASE_JWT_SECRET": secret},
                         capsys=capsys)
        assert rows["jwt"][0] == "ok" and "HS256 round trip" in rows["jwt"][1]
    with http_server({JWKS_PATH: (200, '{"keys": []}')}) as project:
        code, rows = run(tmp_path, {**base_env, "SUPABASE_URL": project}, capsys=capsys)
        assert rows["jwt"][0] == "fail"
        assert rows["jwt"][1].startswith(f"the JWKS at {project}{JWKS_PATH} gave no signing key: ")
    dead = f"http://127.0.0.1:{closed_port()}"
    code, rows = run(tmp_path, {**base_env, "SUPABASE_URL": dead}, capsys=capsys)
    assert rows["jwt"][0] == "fail" and rows["jwt"][1].startswith(f"the JWKS at {dead}{JWKS_PATH} gave no signing key")


def test_an_issuer_the_tokens_do_not_carry_fails_the_round_trip(tmp_path, monkeypatch, capsys):
    """The round trip goes through the service's own verifier: a verifier that refuses the
    minted token makes the check fail with its reason."""
    from app.errors import ApiError

    def refuse(self, token):
        raise ApiError(401, "the token is not valid: Invalid issuer", "invalid_token")

    monkeypatch.setattr(preflight.TokenVerifier, "verify", refuse)
    code, rows = run(tmp_path, {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "SUPABASE_JWT_SECRET": strong()},
                     capsys=capsys)
    assert rows["jwt"] == ("fail", "a token minted with SUPABASE_JWT_SECRET does not verify: the token is not "
                                   "valid: Invalid issuer")


# ---- secrets -------------------------------------------------------------------------------------
PUBLIC, LOCAL = "https://api.rexera.example", "http://127.0.0.1:8000"
README_SECRET = re.search(r"SUPABASE_JWT_SECRET=(\S+)", (ROOT / "README.md").read_text()).group(1)


def secret_rows(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    ctx = preflight.Context(env, EXPORTS, 5)
    return {row.name: (row.status, row.detail) for row in preflight.SecretRules(ctx).rows()}


@pytest.mark.parametrize("variable, value, status, detail", [
    ("CRON_SECRET", None, "fail", "not set: the cron tick (POST /api/internal/tick) cannot be authenticated"),
    ("CRON_SECRET", "s" + strong(30), "fail", "31 characters; at least 32 are needed"),
    ("CRON_SECRET", "changeme-" + strong(30), "fail", "weak: it looks like a placeholder; replace it before "
                                                        f"{PUBLIC} takes traffic"),
    ("CRON_SECRET", "ab" * 20, "fail", "weak: it has fewer than 8 different characters; replace it before "
                                       f"{PUBLIC} takes traffic"),
    ("N8N_WEBHOOK_TOKEN", None, "fail", "not set: n8n cannot tell the service's triggers from anyone's"),
    ("N8N_WEBHOOK_TOKEN", strong(24), "fail", "24 characters; at least 32 are needed"),
    ("N8N_ERROR_WEBHOOK_TOKEN", None, "warn", "not set: n8n's error reports are refused (503)"),
    ("N8N_ERROR_WEBHOOK_TOKEN", strong(20), "warn", "20 characters; at least 32 are needed"),
    ("SUPABASE_JWT_SECRET", README_SECRET, "fail", "weak: it is published in this repository (README.md); "
                                                   f"replace it before {PUBLIC} takes traffic"),
    ("SUPABASE_JWT_SECRET", JWT_SECRET, "fail", "weak: it is published in this repository ("),
    ("SUPABASE_JWT_SECRET", "super-secret-jwt-token-with-at-least-32-characters-long", "fail",
     f"weak: it is the Supabase CLI's local default; replace it before {PUBLIC} takes traffic"),
    ("N8N_CALLBACK_SECRET", None, "fail", "not set: n8n callbacks cannot be signed or verified"),
    ("N8N_CALLBACK_SECRET", strong(), "fail", "not in the whsec_<base64> form"),
    ("N8N_CALLBACK_SECRET", "whsec_" + strong(30) + "!", "fail", "not valid base64 after its prefix"),
    ("N8N_CALLBACK_SECRET", callback_secret(20), "fail", "decodes to 20 bytes; at least 24 are needed"),
    ("N8N_CALLBACK_SECRET", callback_secret(28), "warn", "decodes to 28 bytes; 32 or more are recommended"),
    ("N8N_CALLBACK_SECRET", "whsec_" + base64.b64encode(b"\x01\x02" * 16).decode(), "fail",
     f"weak: its bytes take fewer than 8 different values; replace it before {PUBLIC} takes traffic"),
    ("AGENT_API_KEYS", None, "warn", "not set: no agent can call the API"),
    ("AGENT_API_KEYS", f"rex={strong(20)},nina={strong()}", "warn", "rex: 20 characters, 32 or more are recommended"),
    ("AGENT_API_KEYS", f"rex={strong(10)}", "fail", "rex: 10 characters, at least 16 are needed"),
    ("AGENT_API_KEYS", f"*={AGENT_KEY}", "fail", "*: weak: it is published in this repository "
                                                 "(tests/service_fixtures.py)"),
])
def test_weak_or_missing_secrets_are_flagged(variable, value, status, detail):
    env = {name: strong() for name in ("N8N_WEBHOOK_TOKEN", "N8N_ERROR_WEBHOOK_TOKEN", "SUPABASE_JWT_SECRET",
                                       "CRON_SECRET")}
    env.update(N8N_CALLBACK_SECRET=callback_secret(), AGENT_API_KEYS=f"*={strong()}", PUBLIC_BASE_URL=PUBLIC)
    assert {status for status, _ in secret_rows(env).values()} == {"ok"}
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    rows = secret_rows(env)
    assert rows[f"secret:{variable}"][0] == status
    assert rows[f"secret:{variable}"][1].startswith(detail), rows[f"secret:{variable}"][1]
    assert {s for name, (s, _) in rows.items() if name != f"secret:{variable}"} == {"ok"}


@pytest.mark.parametrize("public", [LOCAL, "http://localhost:8000", "http://[::1]:8000", "http://api.localhost"])
def test_a_published_value_is_only_a_warning_while_the_service_is_on_this_machine(public):
    env = {"SUPABASE_JWT_SECRET": README_SECRET, "CRON_SECRET": "changeme-" + strong(30), "PUBLIC_BASE_URL": public,
           "AGENT_API_KEYS": f"*={AGENT_KEY}"}
    rows = secret_rows(env)
    for name in ("secret:SUPABASE_JWT_SECRET", "secret:CRON_SECRET", "secret:AGENT_API_KEYS"):
        assert rows[name][0] == "warn", rows[name]
        assert "accepted only while PUBLIC_BASE_URL is this machine" in rows[name][1]


def test_strong_secrets_pass_on_a_public_url():
    env = {"SUPABASE_JWT_SECRET": strong(), "CRON_SECRET": strong(), "N8N_WEBHOOK_TOKEN": strong(32),
           "N8N_ERROR_WEBHOOK_TOKEN": strong(), "N8N_CALLBACK_SECRET": callback_secret(),
           "AGENT_API_KEYS": f"rex={strong()},nina={strong()}", "PUBLIC_BASE_URL": PUBLIC}
    rows = secret_rows(env)
    assert rows == {"secret:N8N_CALLBACK_SECRET": ("ok", "set, decodes to 32 bytes"),
                    "secret:N8N_WEBHOOK_TOKEN": ("ok", "set, 32 characters"),
                    "secret:N8N_ERROR_WEBHOOK_TOKEN": ("ok", "set, 40 characters"),
                    "secret:SUPABASE_JWT_SECRET": ("ok", "set, 40 characters"),
                    "secret:AGENT_API_KEYS": ("ok", "2 key(s), each of 32 characters or more"),
                    "secret:CRON_SECRET": ("ok", "set, 40 characters")}


# ---- secrets are never printed -------------------------------------------------------------------
def distinctive(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def leaks(output: str, value: str) -> list[str]:
    """The value, or any 6 characters of it in a row, found in the output."""
    return sorted({value[i:i + 6] for i in range(len(value) - 5) if value[i:i + 6] in output})


def secret_environments(database_url: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(case, environment, the secrets in it by variable): well-formed secrets, and malformed or
    short ones (so that every error message is exercised too)."""
    rng = random.Random(20261203)
    cases = []
    for case in ("well-formed", "malformed"):
        good = case == "well-formed"
        agent_key, other_key = distinctive(rng, 40 if good else 10), distinctive(rng, 20)
        values = {
            "SUPABASE_JWT_SECRET": distinctive(rng, 48 if good else 20),
            "N8N_API_KEY": distinctive(rng, 40),
            "N8N_CALLBACK_SECRET": ("whsec_" + base64.b64encode(rng.randbytes(32)).decode()) if good
            else distinctive(rng, 30),
            "N8N_WEBHOOK_TOKEN": distinctive(rng, 40 if good else 12),
            "N8N_ERROR_WEBHOOK_TOKEN": distinctive(rng, 40 if good else 12),
            "CRON_SECRET": distinctive(rng, 40 if good else 20),
            "SUPABASE_SERVICE_ROLE_KEY": distinctive(rng, 60),
            "DATABASE_URL password": distinctive(rng, 24),
            "AGENT_API_KEYS rex": agent_key,
            "AGENT_API_KEYS nina": other_key,
        }
        env = {name: value for name, value in values.items() if " " not in name}
        env["DATABASE_URL"] = as_url(database_url, values["DATABASE_URL password"])
        env["AGENT_API_KEYS"] = f"rex={agent_key},nina={other_key}"
        env["N8N_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
        cases.append((case, env, values))
    # Secrets no variable's name gives away: a password in every URL, an agent key without its
    # "agent=" (mixed case: it was once printed lower-cased, as if it were a name).
    env, values = dict(cases[0][1]), {}
    for name in ("N8N_BASE_URL", "PUBLIC_BASE_URL", "SUPABASE_URL"):
        values[f"{name} password"] = distinctive(rng, 24)
        env[name] = f"http://admin:{values[f'{name} password']}@127.0.0.1:{closed_port()}"
    values["AGENT_API_KEYS bare"] = "MiXeD" + distinctive(rng, 35)
    env["AGENT_API_KEYS"] = f"rex={distinctive(rng, 40)},{values['AGENT_API_KEYS bare']}"
    cases.append(("in URLs and bare", env, values))
    return cases


@pytest.mark.parametrize("case", ["well-formed", "malformed", "in URLs and bare"])
@pytest.mark.parametrize("mode", ["table", "json", "process environment"])
def test_no_secret_nor_any_part_of_one_is_printed(database_url, tmp_path, case, mode):
    _, env, values = next(found for found in secret_environments(database_url) if found[0] == case)
    if mode == "process environment":
        done = cli(env=env)
    else:
        done = cli("--env-file", str(write_env(tmp_path / "env", env)), *(["--json"] if mode == "json" else []))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "secret:CRON_SECRET" in output and "database" in output  # the checks did run
    for variable, value in values.items():
        assert value not in output, variable
        assert not leaks(output, value), (variable, leaks(output, value))
        assert not leaks(output.lower(), value.lower()), (variable, leaks(output.lower(), value.lower()))


def test_a_secret_in_a_libraries_message_is_cut_out_all_the_same(tmp_path, monkeypatch, capsys):
    """The last line of defence: whatever a check's message holds, no secret reaches the output."""
    password, api_key = strong(24), strong(40)

    def leaky(ctx):
        raise RuntimeError(f"connecting with {ctx.settings.database_url} and key {ctx.settings.n8n_api_key}")

    monkeypatch.setattr(next(check for check in preflight.CHECKS if check.name == "n8n"), "run", leaky)
    env = {"DATABASE_URL": f"postgresql://postgres:{password}@127.0.0.1:{closed_port()}/x",
           "SUPABASE_JWT_SECRET": strong(), "N8N_BASE_URL": "http://127.0.0.1:1", "N8N_API_KEY": api_key}
    code, rows = run(tmp_path, env, capsys=capsys)
    assert rows["n8n"][0] == "fail"
    assert rows["n8n"][1] == ("the check failed: RuntimeError: connecting with postgresql://"
                              f"127.0.0.1:{urlparse(env['DATABASE_URL']).port}/x and key [secret]")


def test_a_value_from_an_example_file_anywhere_in_the_checkout_is_published(tmp_path, monkeypatch):
    value = strong()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / ".env.example").write_text(f"CRON_SECRET={value}\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.example").write_text(f"ignored={value[::-1]}\n")
    monkeypatch.setattr(preflight, "ROOT", tmp_path)
    monkeypatch.setattr(preflight, "_published_cache", None)
    assert preflight.weakness(value) == "it is published in this repository (deploy/.env.example)"
    assert preflight.weakness(value[::-1]) is None  # what lies in the virtual environment is not ours
    assert preflight.weakness(strong()) is None


def test_a_malformed_env_file_names_the_line_and_not_what_it_holds(tmp_path):
    hidden = distinctive(random.Random(7), 40)
    env_file = tmp_path / "env"
    env_file.write_text(f"DATABASE_URL=postgresql://x@127.0.0.1:1/x\n\nCRON_SECRET {hidden}\n")
    done = cli("--env-file", str(env_file))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"preflight.py: {env_file}: line 3 is not KEY=VALUE\n"
    env_file.write_text(f"CRON_SECRET='{hidden}\n")
    done = cli("--env-file", str(env_file))
    assert done.returncode == 2 and "line 1: a quote is not closed" in done.stderr
    assert not leaks(done.stdout + done.stderr, hidden)


# ---- the env file and the exit codes --------------------------------------------------------------
def test_the_env_file_reads_as_a_shell_reads_it(tmp_path):
    text = "\n".join([
        "# a comment",
        "",
        "export PLAIN=abc123",
        "QUOTED='it''s # not a comment'",
        'DOUBLE="say \\"hi\\" to $HOME\\\\"',
        "MIXED=pre'fix 'post\"fix\"",
        "EMPTY=",
        "TRAILING=value   # a comment after it",
        "  export   INDENTED='x y'  ",
        f"QUOTE_IN_VALUE={shlex.quote(chr(39) + 'a' + chr(39))}",
        "export OVERRIDDEN=first",
        "OVERRIDDEN=second",
    ]) + "\n"
    (tmp_path / "env").write_text(text)
    parsed = preflight.parse_env_file(text)
    dump = "for n in " + " ".join(parsed) + "; do printf '%s\\0%s\\0' \"$n\" \"${!n}\"; done"
    done = subprocess.run(["bash", "-c", f"set -a; source {tmp_path / 'env'}; {dump}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/home/test"})
    assert done.returncode == 0, done.stderr
    fields = done.stdout.split("\0")[:-1]
    from_bash = dict(zip(fields[::2], fields[1::2]))
    # bash expands $HOME inside double quotes; the parser does no expansion, on purpose.
    from_bash["DOUBLE"] = from_bash["DOUBLE"].replace("/home/test", "$HOME")
    assert parsed == from_bash
    assert parsed["QUOTED"] == "its # not a comment" and parsed["TRAILING"] == "value"
    assert parsed["INDENTED"] == "x y" and parsed["OVERRIDDEN"] == "second" and parsed["EMPTY"] == ""


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00")))
def test_any_value_written_as_local_py_writes_it_reads_back_unchanged(value):
    assert preflight.parse_env_file(f"export SOME_SECRET={shlex.quote(value)}\n") == {"SOME_SECRET": value}


@pytest.mark.parametrize("line", ["JUST_A_NAME", "=value", "1ABC=x", "A B=c", "KEY=two words", 'KEY="open'])
def test_lines_that_are_not_key_value_are_refused(line):
    with pytest.raises(preflight.EnvFileError, match=r"^line 1"):
        preflight.parse_env_file(line + "\n")


def test_usage_errors_exit_2(tmp_path):
    assert cli("--no-such-option").returncode == 2
    assert cli("--timeout", "9").returncode == 2
    assert "at most 5 seconds" in cli("--timeout", "9").stderr
    assert cli("--timeout", "soon").returncode == 2
    missing = cli("--env-file", str(tmp_path / "missing"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"preflight.py: cannot read {tmp_path / 'missing'}: No such file or directory\n"
    assert cli("--env-file", str(tmp_path)).returncode == 2  # a directory


@pytest.mark.parametrize("kind, problem", [("missing", "does not exist"), ("empty", "holds no export (*.json)"),
                                           ("file", "is not a directory")])
def test_a_workflows_dir_without_exports_is_refused(tmp_path, kind, problem):
    directory = tmp_path / "exports"
    if kind == "empty":
        directory.mkdir()
    elif kind == "file":
        directory.write_text("{}")
    done = cli("--workflows-dir", str(directory), env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"preflight.py: --workflows-dir: {directory} {problem}\n"


def test_an_agent_key_without_its_name_fails_without_any_part_of_it_shown():
    key = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    rows = secret_rows({"AGENT_API_KEYS": f"rex={strong()},{key}", "PUBLIC_BASE_URL": "https://rexera.example"})
    assert rows["secret:AGENT_API_KEYS"] == ("fail", "an entry is not agent=key (nothing of it is shown)")


def test_a_failed_check_exits_1_and_the_process_environment_is_read(tmp_path):
    done = cli(env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/x",
                    "SUPABASE_JWT_SECRET": strong()})
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^config +ok ", done.stdout, re.M), done.stdout
    assert re.search(r"^database +fail +cannot reach x at 127\.0\.0\.1", done.stdout, re.M), done.stdout
    # --env-file replaces the process's environment, it does not add to it.
    env_file = write_env(tmp_path / "env", {"SUPABASE_JWT_SECRET": strong()})
    done = cli("--env-file", str(env_file), env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert "DATABASE_URL is required" in done.stdout
