"""Check a deployment before it takes traffic: its configuration, database, token verification,
n8n, the callback URL n8n calls and its secrets, one row each (ok, warn or fail) with a one-line
detail. No secret, nor any part of one, is ever printed.

    preflight.py [--env-file PATH] [--workflows-dir DIR] [--timeout SECONDS] [--json]

The environment is this process's, or with --env-file that file's alone: KEY=VALUE lines as a
shell reads them (an `export ` before the name, values quoted or not, # comments), such as the
.local/env of scripts/local.py or a deployment's env file.

  config           app.config.Settings.from_env parses; every problem is listed, and the checks
                   that need the settings are skipped
  database         DATABASE_URL answers, read-write
  migrations       every file of supabase/migrations is applied (the missing ones are named)
  seed             the reference data of supabase/seed.sql: a task plan for every workflow type,
                   every seeded agent active, the business calendar
  jwt              with SUPABASE_URL its JWKS URL answers with signing keys (issuer set); with
                   SUPABASE_JWT_SECRET a token minted with it verifies through the service's
                   verifier and one signed with another key does not (warn: legacy secret only)
  n8n              N8N_BASE_URL answers /healthz
  n8n-api-key      N8N_API_KEY is accepted by n8n's public API
  n8n-workflows    every export in --workflows-dir (default n8n_workflows/) is pushed, active as
                   it should be and in step: the comparison of scripts/sync_workflows.py diff
  n8n-credentials  the credentials the exports name exist in n8n
  public-url       GET PUBLIC_BASE_URL/api/health answers with the service's health (warn: plain
                   http to a host that is not this machine)
  secret:NAME      N8N_CALLBACK_SECRET, N8N_WEBHOOK_TOKEN, N8N_ERROR_WEBHOOK_TOKEN,
                   SUPABASE_JWT_SECRET, AGENT_API_KEYS and CRON_SECRET set and long enough; a
                   value published in this repository (README, docs, examples, local and test
                   defaults) or a placeholder fails unless PUBLIC_BASE_URL is this machine

A check that needs one that failed is skipped (status skip). Each check gives up after
--timeout seconds (default and most 5), so a dead dependency never hangs the run. --json prints
one JSON document instead of the table.

Exit codes: 0 every check ok (warnings allowed); 1 at least one check failed; 2 the script could
not run (bad arguments, a --workflows-dir that does not exist, is not a directory or holds no
export, an unreadable or malformed env file); 130 interrupted.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import ipaddress
import json
import os
import re
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, NoReturn
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from psycopg import conninfo  # noqa: E402

from app import migrations  # noqa: E402
from app.auth import TokenVerifier  # noqa: E402
from app.config import ConfigError, Settings  # noqa: E402
from app.errors import ApiError  # noqa: E402
from app.n8n.cloud import (MANAGED_TAG, AuthError, Instance, N8nApiError, N8nClient, PlanError,  # noqa: E402
                           RetryPolicy, Sync, api_base, exports_directory_problem, load_exports, without_userinfo)
from scripts.admin_cli import interrupted  # noqa: E402

EXPORTS_DIR = ROOT / "n8n_workflows"
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
MAX_TIMEOUT = 5.0
OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# Variables whose values are secrets, checked one row each.
CHECKED_SECRETS = ("N8N_CALLBACK_SECRET", "N8N_WEBHOOK_TOKEN", "N8N_ERROR_WEBHOOK_TOKEN", "SUPABASE_JWT_SECRET",
                   "AGENT_API_KEYS", "CRON_SECRET")
# Never printed either (kept out of every line, whatever a library's message says).
OTHER_SECRETS = ("N8N_API_KEY", "SUPABASE_SERVICE_ROLE_KEY", "OPERATOR_TOKEN", "CLIENT_TOKEN")
URLS_WITH_PASSWORDS = ("DATABASE_URL", "REALTIME_DATABASE_URL", "REDIS_URL", "N8N_BASE_URL", "SUPABASE_URL",
                       "PUBLIC_BASE_URL")
STRONG_LENGTH = 32
# Public, shipped outside this repository: the Supabase CLI's local JWT secret.
WELL_KNOWN = {"super-secret-jwt-token-with-at-least-32-characters-long": "the Supabase CLI's local default"}
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "replace-me", "replace_me", "placeholder", "your-",
                     "your_", "<", "xxxxxxxx", "example")
# Where this repository publishes values (documentation, examples, local and test defaults).
PUBLISHED_PATTERNS = ("README.md", "docs/**/*", "n8n_workflows/*.md", "supabase/*.toml", "scripts/*.py",
                      "tests/**/*.py", "tests/fixtures/*", "gunicorn.conf.py")
EXAMPLE_FILES = re.compile(r"(\.example|\.sample|\.env\.[a-z]+)$")  # anywhere in the checkout
NOT_PUBLISHED = {".venv", ".local", ".git", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis"}
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".pdf", ".gz", ".zip"}


# ---- the environment ---------------------------------------------------------------------------
class EnvFileError(Exception):
    """The env file cannot be read or a line is not KEY=VALUE; says where, never what."""


KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as a shell reads them: `export ` allowed before the name, the value bare,
    'single quoted' (literal) or "double quoted" (backslash escapes \\" \\\\ \\$ \\`), or several
    such pieces joined (shlex.quote's output); blank lines and # comments skipped. No expansion.
    Errors name the line number only: a line may hold a secret."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):  # lines as a shell splits them
        stripped = line.strip(" \t\r")
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export ") or stripped.startswith("export\t"):
            stripped = stripped[len("export"):].lstrip()
        name, sep, rest = stripped.partition("=")
        if not sep or not KEY.fullmatch(name):
            raise EnvFileError(f"line {number} is not KEY=VALUE")
        env[name] = _shell_value(rest, number)
    return env


def _shell_value(text: str, number: int) -> str:
    value, index = [], 0
    while index < len(text):
        char = text[index]
        if char in " \t":
            tail = text[index:].lstrip()
            if tail and not tail.startswith("#"):
                raise EnvFileError(f"line {number}: a value with spaces must be quoted")
            break
        if char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                raise EnvFileError(f"line {number}: a quote is not closed")
            value.append(text[index + 1:end])
            index = end + 1
        elif char == '"':
            index += 1
            while True:
                if index >= len(text):
                    raise EnvFileError(f"line {number}: a quote is not closed")
                if text[index] == '"':
                    index += 1
                    break
                if text[index] == "\\" and index + 1 < len(text) and text[index + 1] in '"\\$`':
                    index += 1
                value.append(text[index])
                index += 1
        elif char == "\\" and index + 1 < len(text):
            value.append(text[index + 1])
            index += 2
        else:
            value.append(char)
            index += 1
    return "".join(value)


def secret_values(env: dict[str, str]) -> list[str]:
    """Every secret the environment holds, for the last line of defence: no output line carries one."""
    found = [env.get(name, "") for name in CHECKED_SECRETS + OTHER_SECRETS]
    found += [key for _, key in agent_keys(env.get("AGENT_API_KEYS", ""))]
    raw = env.get("N8N_CALLBACK_SECRET", "")
    if raw.startswith("whsec_"):
        found.append(raw.removeprefix("whsec_"))
    for name in URLS_WITH_PASSWORDS:
        try:
            password = urlparse(env.get(name, "")).password
        except ValueError:
            password = None
        found.append(password or "")
    found += [value for name, value in env.items() if re.search(r"SECRET|TOKEN|PASSWORD|_KEY", name)]
    return sorted({value.strip() for value in found if len(value.strip()) >= 8}, key=len, reverse=True)


def agent_keys(text: str) -> list[tuple[str, str]]:
    """(agent, key) of AGENT_API_KEYS, as app.config reads it; an entry without "=" is all key
    (agent ""), so that no part of it is ever shown as a name."""
    pairs = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, key = entry.partition("=")
        pairs.append((name.strip().lower(), key.strip()) if sep else ("", entry))
    return pairs


# ---- checks and their results --------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    name: str
    status: str
    detail: str


class Context:
    """What the checks share: the environment, the settings once parsed, the limits."""

    def __init__(self, env: dict[str, str], workflows_dir: Path, timeout: float):
        self.env = env
        self.workflows_dir = workflows_dir
        self.timeout = timeout
        # Network waits inside a check stop a little before the check's own deadline, so the
        # reason (refused, timed out) is what gets reported.
        self.io_timeout = max(1.0, timeout - 1.0)
        self.settings: Settings | None = None

    def get(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def n8n_client(self) -> N8nClient:
        return N8nClient(self.settings.n8n_base_url, self.settings.n8n_api_key or "",
                         retry=RetryPolicy(attempts=1), timeout=self.io_timeout)


def is_local_host(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def network_reason(error: Exception) -> str:
    """A short why for a failed HTTP call."""
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".").lower()
    if "NameResolution" in text or "getaddrinfo" in text:
        return "the host name does not resolve"
    return type(error).__name__


# -- 1. configuration --
def check_config(ctx: Context) -> Result:
    try:
        ctx.settings = Settings.from_env(ctx.env)
    except ConfigError as error:
        return Result("config", FAIL, f"{len(error.problems)} problem(s): " + "; ".join(error.problems))
    mode = "JWKS" if ctx.settings.supabase_url else "HS256"
    return Result("config", OK, f"settings parse (tokens: {mode}; public URL {ctx.settings.public_base_url})")


# -- 2. database --
def _connect(ctx: Context) -> psycopg.Connection:
    return psycopg.connect(ctx.settings.database_url, connect_timeout=max(2, int(ctx.io_timeout)),
                           prepare_threshold=None, application_name="rexera-preflight")


def _read_only_transaction(conn: psycopg.Connection, ctx: Context):
    conn.execute("set transaction read only")
    conn.execute(f"set local statement_timeout = {int(ctx.io_timeout * 1000)}")


def _database_where(url: str) -> str:
    parts = conninfo.conninfo_to_dict(url)
    host = parts.get("host") or "local socket"
    return f"{parts.get('dbname') or '?'} at {host}:{parts.get('port') or 5432}"


def _database_error(error: psycopg.Error) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first[:300]


def check_database(ctx: Context) -> Result:
    where = _database_where(ctx.settings.database_url)
    try:
        with _connect(ctx) as conn:
            _read_only_transaction(conn, ctx)
            version, in_recovery = conn.execute(
                "select current_setting('server_version'), pg_is_in_recovery()").fetchone()
    except psycopg.Error as error:
        return Result("database", FAIL, f"cannot reach {where}: {_database_error(error)}")
    if in_recovery:
        return Result("database", FAIL, f"{where} is read-only (a standby?): the service writes")
    return Result("database", OK, f"{where} answers (PostgreSQL {version.split()[0]})")


def check_migrations(ctx: Context) -> Result:
    files = migrations.migration_files()
    wanted = {migrations.split_version(path)[0]: path.name for path in files}
    try:
        with _connect(ctx) as conn:
            _read_only_transaction(conn, ctx)
            exists = conn.execute(
                "select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
            applied = {row[0] for row in conn.execute(
                "select version from supabase_migrations.schema_migrations")} if exists else set()
    except psycopg.Error as error:
        return Result("migrations", FAIL, f"cannot read what is applied: {_database_error(error)}")
    if not exists:
        return Result("migrations", FAIL, f"no migration applied (supabase_migrations.schema_migrations is missing); "
                                          f"{len(files)} to apply with scripts/migrate.py")
    missing = [name for version, name in sorted(wanted.items()) if version not in applied]
    if missing:
        return Result("migrations", FAIL, f"{len(missing)} of {len(files)} not applied: {', '.join(missing)}")
    unknown = sorted(applied - set(wanted))
    if unknown:
        return Result("migrations", WARN, f"all {len(files)} applied; the database also has {len(unknown)} this "
                                          f"checkout lacks (older code?): {', '.join(unknown)}")
    return Result("migrations", OK, f"all {len(files)} applied (newest {max(wanted)})")


def seeded_agents() -> list[str]:
    """The agents supabase/seed.sql inserts."""
    text = migrations.SEED_FILE.read_text()
    block = text.split("insert into public.agents", 1)[-1].split("on conflict", 1)[0]
    return re.findall(r"^\s*\('([a-z][a-z0-9_]*)',", block, re.M)


def check_seed(ctx: Context) -> Result:
    agents = seeded_agents()
    try:
        with _connect(ctx) as conn:
            _read_only_transaction(conn, ctx)
            plans = conn.execute(
                """select t.workflow_type::text, count(tt.id)
                     from unnest(enum_range(null::public.workflow_type)) as t (workflow_type)
                     left join public.workflow_templates wt on wt.workflow_type = t.workflow_type
                     left join public.task_templates tt on tt.workflow_template_id = wt.id
                    group by 1 order by 1""").fetchall()
            active = {row[0] for row in conn.execute(
                "select name from public.agents where name = any(%s) and is_active", (agents,))}
            unknown_agents = [row[0] for row in conn.execute(
                """select distinct tt.agent_name from public.task_templates tt
                     left join public.agents a on a.name = tt.agent_name and a.is_active
                    where tt.agent_name is not null and a.name is null order by 1""")]
            opening_days = conn.execute("select count(*) from public.business_hours_config").fetchone()[0]
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as error:
        return Result("seed", FAIL, f"the tables the seed fills are missing ({_database_error(error)}): "
                                    "apply the migrations first")
    except psycopg.Error as error:
        return Result("seed", FAIL, f"cannot read the reference data: {_database_error(error)}")
    problems = []
    without_plan = [workflow_type for workflow_type, steps in plans if not steps]
    if without_plan:
        problems.append(f"no task plan for {', '.join(without_plan)}")
    missing_agents = [name for name in agents if name not in active]
    if missing_agents:
        problems.append(f"agents missing or inactive: {', '.join(missing_agents)}")
    if unknown_agents:
        problems.append(f"task plans name agents that are missing or inactive: {', '.join(unknown_agents)}")
    if not opening_days:
        problems.append("no business hours (business_hours_config is empty)")
    if problems:
        return Result("seed", FAIL, "; ".join(problems) + " (load supabase/seed.sql: scripts/migrate.py --seed)")
    steps = sum(count for _, count in plans)
    return Result("seed", OK, f"{len(plans)} task plans ({steps} steps), {len(agents)} agents active, "
                              f"business hours on {opening_days} day(s)")


# -- 3. tokens --
def check_jwt(ctx: Context) -> Result:
    settings = ctx.settings
    verifier = TokenVerifier(settings)
    parts = []
    if settings.supabase_url:
        try:
            keys = verifier.jwks.get_signing_keys()
        except jwt.PyJWTError as error:  # unreachable, not a key set, or no signing key in it
            return Result("jwt", FAIL, f"the JWKS at {settings.jwks_url} gave no signing key: "
                                       f"{str(error).splitlines()[0][:200]}")
        if not settings.jwt_issuer:
            return Result("jwt", FAIL, "no issuer to check tokens against (SUPABASE_JWT_ISSUER)")
        algorithms = sorted({getattr(key, "algorithm_name", None) or "?" for key in keys})
        parts.append(f"JWKS answers with {len(keys)} signing key(s) ({', '.join(algorithms)}), "
                     f"issuer {settings.jwt_issuer}")
    if settings.supabase_jwt_secret:
        now = int(time.time())
        claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "iat": now,
                  "exp": now + 60}
        if settings.jwt_issuer:
            claims["iss"] = settings.jwt_issuer
        try:
            verified = verifier.verify(jwt.encode(claims, settings.supabase_jwt_secret, algorithm="HS256"))
        except ApiError as error:
            return Result("jwt", FAIL, f"a token minted with SUPABASE_JWT_SECRET does not verify: {error.message}")
        if verified.get("sub") != claims["sub"]:
            return Result("jwt", FAIL, "a token minted with SUPABASE_JWT_SECRET verified with other claims")
        try:
            verifier.verify(jwt.encode(claims, secrets.token_urlsafe(48), algorithm="HS256"))
        except ApiError:
            pass
        else:
            return Result("jwt", FAIL, "a token signed with another key verifies too")
        parts.append("HS256 round trip: a token minted with SUPABASE_JWT_SECRET verifies, one signed with "
                     "another key is refused")
    if not settings.supabase_url:
        return Result("jwt", WARN, "; ".join(parts) + "; only the legacy HS256 secret is used: set SUPABASE_URL "
                                                      "(asymmetric keys from the project's JWKS)")
    return Result("jwt", OK, "; ".join(parts))


# -- 4. n8n --
def check_n8n(ctx: Context) -> Result:
    base = ctx.settings.n8n_base_url
    if not base:
        return Result("n8n", FAIL, "N8N_BASE_URL is not set: no workflow can start")
    try:
        response = requests.get(f"{base}/healthz", timeout=ctx.io_timeout)
    except requests.RequestException as error:
        return Result("n8n", FAIL, f"{base} is unreachable: {network_reason(error)}")
    if response.status_code != 200:
        return Result("n8n", FAIL, f"{base}/healthz answered {response.status_code}")
    return Result("n8n", OK, f"{base}/healthz answers 200")


def check_n8n_api_key(ctx: Context) -> Result:
    if not ctx.settings.n8n_api_key:
        return Result("n8n-api-key", FAIL, "N8N_API_KEY is not set: executions cannot be stopped, nor the "
                                           "workflows checked")
    try:
        ctx.n8n_client().request("GET", "/workflows", params={"limit": 1})
    except AuthError as error:
        return Result("n8n-api-key", FAIL, f"n8n refused N8N_API_KEY ({error.status}): check the key (and its "
                                           "scopes) for this instance")
    except N8nApiError as error:
        return Result("n8n-api-key", FAIL, str(error))
    return Result("n8n-api-key", OK, f"accepted by the public API at {api_base(ctx.settings.n8n_base_url)}")


def check_n8n_workflows(ctx: Context) -> Result:
    try:
        rows = Sync(ctx.n8n_client(), ctx.workflows_dir, say=lambda line: None).drift()
    except (N8nApiError, PlanError, OSError) as error:
        return Result("n8n-workflows", FAIL, f"cannot compare: {error}")
    failures, warnings = [], []
    for row in rows:
        name, plan = row["name"], row.get("plan")
        if plan is None:  # only in the repository, only in n8n, or a name used twice there
            (warnings if row["file"] is None else failures).append(f"{name}: {'; '.join(row['drift'])}")
            continue
        problems = list(plan.changes)
        if plan.activation is True:
            problems.append("not active")
        elif plan.activation is False:
            problems.append("active but should not be")
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}")
        elif plan.notes or plan.tag:
            what = plan.notes + ([f"not tagged {MANAGED_TAG!r} (push tags it)"] if plan.tag else [])
            warnings.append(f"{name}: {'; '.join(what)}")
    exports = sum(1 for row in rows if row["file"])
    if failures:
        return Result("n8n-workflows", FAIL, f"{len(failures)} of {exports} export(s) not in step "
                                             "(scripts/sync_workflows.py push): " + " | ".join(failures + warnings))
    if warnings:
        return Result("n8n-workflows", WARN, f"{exports} export(s) pushed, active as they should be and in step; "
                                             + " | ".join(warnings))
    return Result("n8n-workflows", OK, f"all {exports} export(s) pushed, active as they should be and in step")


def check_n8n_credentials(ctx: Context) -> Result:
    try:
        exports = load_exports(ctx.workflows_dir)
    except (PlanError, OSError) as error:
        return Result("n8n-credentials", FAIL, f"cannot read the exports: {error}")
    needed = sorted({(kind, ref.get("name")) for _, export in exports.values() for node in export.get("nodes") or []
                     for kind, ref in (node.get("credentials") or {}).items()})
    if not needed:
        return Result("n8n-credentials", OK, "the exports name no credential")
    client = ctx.n8n_client()
    try:
        listed: dict[tuple[str, str], int] = {}
        for credential in client.paginate("/credentials"):
            key = (credential.get("type"), credential.get("name"))
            listed[key] = listed.get(key, 0) + 1
        how = "listed by n8n"
    except N8nApiError as error:
        if error.status not in (403, 405):  # 1.x cannot list them; a key may lack the scope
            return Result("n8n-credentials", FAIL, f"cannot list the credentials: {error}")
        try:  # what the pushed workflows resolved by name (n8n stores the credential's id)
            listed = dict.fromkeys(Instance(client).credential_ids(), 1)
        except N8nApiError as inner:
            return Result("n8n-credentials", FAIL, f"cannot read the workflows: {inner}")
        how = "resolved in the pushed workflows (this n8n does not list credentials)"
    label = [f"{name!r} ({kind})" for kind, name in needed]
    missing = [text for (kind, name), text in zip(needed, label) if (kind, name) not in listed]
    several = [text for (kind, name), text in zip(needed, label) if listed.get((kind, name), 0) > 1]
    if missing or several:
        parts = [f"missing: {', '.join(missing)}"] if missing else []
        parts += [f"not unique by name: {', '.join(several)}"] if several else []
        return Result("n8n-credentials", FAIL, "; ".join(parts) + f" ({how}; see n8n_workflows/README.md)")
    return Result("n8n-credentials", OK, f"all {len(needed)} the exports name, {how}: {', '.join(label)}")


# -- 5. the callback URL --
def check_public_url(ctx: Context) -> Result:
    base = ctx.settings.public_base_url
    url = f"{base}/api/health"
    notes = []
    status = OK
    if not ctx.get("PUBLIC_BASE_URL"):
        notes.append("PUBLIC_BASE_URL is not set (the default is used)")
        status = WARN
    n8n = ctx.settings.n8n_base_url
    if is_local_host(base) and n8n and not is_local_host(n8n):
        return Result("public-url", FAIL, f"{base} is this machine, but n8n at {n8n} is not: it cannot call back "
                                          "(set PUBLIC_BASE_URL to the service's public address)")
    if urlparse(base).scheme != "https" and not is_local_host(base):
        notes.append("plain http to a host that is not this machine: use https")
        status = WARN
    try:
        response = requests.get(url, timeout=ctx.io_timeout, headers={"Accept": "application/json"})
    except requests.RequestException as error:
        return Result("public-url", FAIL, "; ".join([f"{url} is unreachable: {network_reason(error)}", *notes]))
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in ("ok", "degraded", "down") \
            or not isinstance(body.get("checks"), dict):
        return Result("public-url", FAIL, f"{url} answered {response.status_code} but not with this service's "
                                          "health (is PUBLIC_BASE_URL this service?)")
    if body["status"] == "down":
        return Result("public-url", FAIL, f"{url} answers: down ({_not_ok(body)})")
    detail = f"{url} answers: {body['status']}"
    if body["status"] != "ok":
        detail += f" ({_not_ok(body)})"
        status = WARN
    schema = ((body.get("details") or {}).get("database") or {}).get("schemaVersion")
    newest = max((migrations.split_version(path)[0] for path in migrations.migration_files()), default=None)
    if schema and newest and schema != newest:
        notes.append(f"its database is at migration {schema}, this checkout's newest is {newest}")
        status = WARN
    return Result("public-url", status, "; ".join([detail, *notes]))


def _not_ok(body: dict) -> str:
    return ", ".join(f"{name} {state}" for name, state in sorted(body["checks"].items()) if state != "ok") or "-"


# -- 6. secrets --
_published_cache: list[tuple[str, str]] | None = None


def published_texts() -> list[tuple[str, str]]:
    """(file, text) of the repository's documentation, examples and local and test defaults."""
    global _published_cache
    if _published_cache is None:
        examples = []
        for directory, subdirectories, files in os.walk(ROOT):
            subdirectories[:] = sorted(d for d in subdirectories if d not in NOT_PUBLISHED)
            examples += [Path(directory) / file for file in sorted(files) if EXAMPLE_FILES.search(file)]
        seen, found = set(), []
        for path in [path for pattern in PUBLISHED_PATTERNS for path in sorted(ROOT.glob(pattern))] + examples:
            if path in seen or not path.is_file() or path.suffix.lower() in BINARY_SUFFIXES \
                    or NOT_PUBLISHED & set(path.relative_to(ROOT).parts) or path.stat().st_size > 2_000_000:
                continue
            seen.add(path)
            try:
                found.append((str(path.relative_to(ROOT)), path.read_text(errors="replace")))
            except OSError:
                continue
        _published_cache = found
    return _published_cache


def weakness(value: str) -> str | None:
    """Why the value is known or guessable, without quoting it; None when it is not."""
    if value in WELL_KNOWN:
        return f"it is {WELL_KNOWN[value]}"
    lowered = value.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS):
        return "it looks like a placeholder"
    if len(set(value)) < 8:
        return "it has fewer than 8 different characters"
    if len(value) >= 8:
        for file, text in published_texts():
            if value in text:
                return f"it is published in this repository ({file})"
    return None


class SecretRules:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.public = ctx.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000"
        self.local = is_local_host(self.public)

    def weak(self, name: str, why: str) -> Result:
        if self.local:
            return Result(f"secret:{name}", WARN, f"weak: {why}; accepted only while PUBLIC_BASE_URL is this machine")
        return Result(f"secret:{name}", FAIL, f"weak: {why}; replace it before {self.public} takes traffic")

    def length_rule(self, name: str, value: str, *, unset: tuple[str, str], minimum: int = STRONG_LENGTH,
                    short_status: str = FAIL) -> Result:
        row = f"secret:{name}"
        if not value:
            return Result(row, unset[0], f"not set: {unset[1]}")
        if len(value) < minimum:
            return Result(row, short_status, f"{len(value)} characters; at least {minimum} are needed")
        why = weakness(value)
        if why:
            return self.weak(name, why)
        return Result(row, OK, f"set, {len(value)} characters")

    def callback_secret(self) -> Result:
        row, raw = "secret:N8N_CALLBACK_SECRET", self.ctx.get("N8N_CALLBACK_SECRET")
        if not raw:
            return Result(row, FAIL, "not set: n8n callbacks cannot be signed or verified")
        if not raw.startswith("whsec_"):
            return Result(row, FAIL, "not in the whsec_<base64> form")
        try:
            decoded = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            return Result(row, FAIL, "not valid base64 after its prefix")
        if len(decoded) < 24:
            return Result(row, FAIL, f"decodes to {len(decoded)} bytes; at least 24 are needed")
        why = weakness(raw) or weakness(raw.removeprefix("whsec_"))
        if why is None and len(set(decoded)) < 8:
            why = "its bytes take fewer than 8 different values"
        if why:
            return self.weak("N8N_CALLBACK_SECRET", why)
        if len(decoded) < 32:
            return Result(row, WARN, f"decodes to {len(decoded)} bytes; 32 or more are recommended")
        return Result(row, OK, f"set, decodes to {len(decoded)} bytes")

    def jwt_secret(self) -> Result:
        value = self.ctx.get("SUPABASE_JWT_SECRET")
        if not value and self.ctx.get("SUPABASE_URL"):
            return Result("secret:SUPABASE_JWT_SECRET", OK, "not set: tokens are verified with the JWKS")
        return self.length_rule("SUPABASE_JWT_SECRET", value,
                                unset=(FAIL, "no way to verify tokens (nor SUPABASE_URL)"))

    def agent_keys(self) -> Result:
        row, text = "secret:AGENT_API_KEYS", self.ctx.get("AGENT_API_KEYS")
        pairs = agent_keys(text)
        if not pairs:
            return Result(row, WARN, "not set: no agent can call the API")
        failures, warnings = [], []
        for agent, key in pairs:
            if not agent:
                failures.append("an entry is not agent=key (nothing of it is shown)")
                continue
            if len(key) < 16:
                failures.append(f"{agent}: {len(key)} characters, at least 16 are needed")
                continue
            why = weakness(key)
            if why:
                (warnings if self.local else failures).append(f"{agent}: weak: {why}")
            elif len(key) < STRONG_LENGTH:
                warnings.append(f"{agent}: {len(key)} characters, {STRONG_LENGTH} or more are recommended")
        if failures:
            return Result(row, FAIL, "; ".join(failures + warnings))
        if warnings:
            return Result(row, WARN, "; ".join(warnings) + ("; a weak key is accepted only while PUBLIC_BASE_URL "
                                                            "is this machine" if self.local else ""))
        return Result(row, OK, f"{len(pairs)} key(s), each of {STRONG_LENGTH} characters or more")

    def rows(self) -> list[Result]:
        return [
            self.callback_secret(),
            self.length_rule("N8N_WEBHOOK_TOKEN", self.ctx.get("N8N_WEBHOOK_TOKEN"),
                             unset=(FAIL, "n8n cannot tell the service's triggers from anyone's")),
            self.length_rule("N8N_ERROR_WEBHOOK_TOKEN", self.ctx.get("N8N_ERROR_WEBHOOK_TOKEN"),
                             unset=(WARN, "n8n's error reports are refused (503)"), short_status=WARN),
            self.jwt_secret(),
            self.agent_keys(),
            self.length_rule("CRON_SECRET", self.ctx.get("CRON_SECRET"),
                             unset=(FAIL, "the cron tick (POST /api/internal/tick) cannot be authenticated")),
        ]


# ---- running them ------------------------------------------------------------------------------
@dataclasses.dataclass
class Check:
    name: str
    run: Callable[[Context], Result]
    needs: tuple[str, ...] = ()


CHECKS = [
    Check("config", check_config),
    Check("database", check_database, ("config",)),
    Check("migrations", check_migrations, ("database",)),
    Check("seed", check_seed, ("database",)),
    Check("jwt", check_jwt, ("config",)),
    Check("n8n", check_n8n, ("config",)),
    Check("n8n-api-key", check_n8n_api_key, ("n8n",)),
    Check("n8n-workflows", check_n8n_workflows, ("n8n-api-key",)),
    Check("n8n-credentials", check_n8n_credentials, ("n8n-api-key",)),
    Check("public-url", check_public_url, ("config",)),
]


def with_deadline(check: Check, ctx: Context) -> Result:
    """The check in a thread of its own, given up after ctx.timeout seconds."""
    outcome: list[Result] = []

    def target():
        try:
            outcome.append(check.run(ctx))
        except Exception as error:  # a check's own failure is its result, not the end of the run
            outcome.append(Result(check.name, FAIL, f"the check failed: {type(error).__name__}: {error}"))

    thread = threading.Thread(target=target, name=f"preflight-{check.name}", daemon=True)
    thread.start()
    thread.join(ctx.timeout)
    if not outcome:
        return Result(check.name, FAIL, f"no answer within {ctx.timeout:g} s")
    return outcome[0]


def run_checks(ctx: Context) -> list[Result]:
    results: dict[str, Result] = {}
    for check in CHECKS:
        blocked = [need for need in check.needs if results[need].status in (FAIL, SKIP)]
        if blocked:
            results[check.name] = Result(check.name, SKIP, f"needs {blocked[0]}, which did not pass")
        elif check.name == "config":
            results[check.name] = check.run(ctx)  # no I/O
        else:
            results[check.name] = with_deadline(check, ctx)
    return list(results.values()) + SecretRules(ctx).rows()


def scrub(text: str, hidden: list[str]) -> str:
    """The last line of defence: a secret that reached a message anyway is cut out, and so is the
    user:password@ of every URL."""
    text = without_userinfo(text)
    for value in hidden:
        text = text.replace(value, "[secret]")
    return " ".join(text.split())


def exit_code(results: list[Result]) -> int:
    return EXIT_FAILED if any(result.status in (FAIL, SKIP) for result in results) else EXIT_OK


def table(results: list[Result]) -> str:
    width = max(len("CHECK"), *(len(result.name) for result in results))
    lines = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
    lines += [f"{result.name.ljust(width)}  {result.status.ljust(6)}  {result.detail}" for result in results]
    counts = {status: sum(1 for result in results if result.status == status) for status in (OK, WARN, FAIL, SKIP)}
    lines.append(", ".join(f"{count} {status}" for status, count in counts.items()))
    return "\n".join(lines) + "\n"


# ---- command line ------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see --help)\n")


def timeout_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="preflight.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, metavar="PATH",
                        help="read the environment from this file only (KEY=VALUE lines), not from the process")
    parser.add_argument("--workflows-dir", type=Path, default=EXPORTS_DIR, metavar="DIR",
                        help="the n8n exports to compare (default: n8n_workflows/)")
    parser.add_argument("--timeout", type=timeout_value, default=MAX_TIMEOUT, metavar="SECONDS",
                        help=f"seconds each check may take (default and most {MAX_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    return parser


def load_env(path: Path | None, environ: dict[str, str]) -> dict[str, str]:
    if path is None:
        return dict(environ)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise EnvFileError(f"cannot read {path}: {reason}") from None
    try:
        return parse_env_file(text)
    except EnvFileError as error:
        raise EnvFileError(f"{path}: {error}") from None


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = exports_directory_problem(args.workflows_dir)
    if problem:
        print(f"preflight.py: --workflows-dir: {problem}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return run(args, environ)
    except KeyboardInterrupt:
        return interrupted("preflight.py")


def run(args: argparse.Namespace, environ: dict[str, str] | None) -> int:
    try:
        env = load_env(args.env_file, dict(os.environ) if environ is None else environ)
    except EnvFileError as error:
        print(f"preflight.py: {error}", file=sys.stderr)
        return EXIT_ERROR
    ctx = Context(env, args.workflows_dir, args.timeout)
    hidden = secret_values(env)
    results = [Result(r.name, r.status, scrub(r.detail, hidden)) for r in run_checks(ctx)]
    code = exit_code(results)
    if args.json:
        counts = {status: sum(1 for result in results if result.status == status) for status in (OK, WARN, FAIL, SKIP)}
        print(json.dumps({"ok": code == EXIT_OK, "exitCode": code, "counts": counts,
                          "checks": [dataclasses.asdict(result) for result in results]}, indent=2))
    else:
        sys.stdout.write(table(results))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
