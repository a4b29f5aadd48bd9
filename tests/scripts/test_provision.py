"""scripts/provision.py: clients and people, local and hosted, and every refusal writing nothing.

Most cases call main(argv) in-process against the session database (the script commits through
its own connection, so results are read back with a fresh connection); a few run the script as
a subprocess end to end. Hosted mode talks to FakeAuth, an httpx.MockTransport handed to
main(http_client=...) and on through supabase's ClientOptions.httpx_client (supabase-auth uses
httpx, which `responses` cannot intercept; this needs no extra dependency such as respx).
FakeAuth plays Supabase Auth on the same database: it writes and deletes auth.users rows.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "provision.py"
SUPABASE_URL = "https://project-ref.supabase.test"
COUNTED = ("auth.users", "public.user_profiles", "public.clients", "public.audit_events")


def load_script():
    spec = importlib.util.spec_from_file_location("provision_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


provision = load_script()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_email(prefix: str = "person") -> str:
    return f"{unique(prefix)}@provision.test"


def query(database_url: str, statement: str, params=()) -> list[dict]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(statement, params).fetchall()


def counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in COUNTED}


def run(capsys, argv: list[str], http_client: httpx.Client | None = None) -> tuple[int, str, str]:
    """main(argv) in-process: (exit code, stdout, stderr)."""
    try:
        code = provision.main(argv, http_client=http_client)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_refusal(code: int, out: str, err: str, expected_code: int, reason: str) -> None:
    assert code == expected_code, err
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert reason in err
    assert "Traceback" not in err


def person(database_url: str, user_id: str) -> tuple[dict | None, dict | None]:
    auth = query(database_url, "select * from auth.users where id = %s", (user_id,))
    profile = query(database_url, "select * from public.user_profiles where id = %s", (user_id,))
    return (auth[0] if auth else None), (profile[0] if profile else None)


@pytest.fixture(autouse=True)
def no_supabase_environment(monkeypatch):
    """Local mode unless a test says otherwise, whatever the developer's shell holds."""
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)


@pytest.fixture(scope="module")
def existing_client(database_url) -> str:
    with psycopg.connect(database_url) as conn:
        return str(conn.execute("insert into public.clients (name) values (%s) returning id",
                                (unique("Existing client"),)).fetchone()[0])


@pytest.fixture(scope="module")
def taken_email(database_url) -> str:
    """An email with an auth user and a profile."""
    email = new_email("taken")
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0]
        conn.execute("insert into public.user_profiles (id, email, user_type, role) values (%s, %s, 'hil_user', 'hil_operator')",
                     (user_id, email))
    return email


@pytest.fixture(scope="module")
def profile_only_email(database_url) -> str:
    """An email only a profile holds (its auth user has another email): only
    user_profiles_email_key can refuse it."""
    email = new_email("profile-only")
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute("insert into auth.users (email) values (%s) returning id",
                               (new_email("other"),)).fetchone()[0]
        conn.execute("insert into public.user_profiles (id, email, user_type, role) values (%s, %s, 'hil_user', 'hil_operator')",
                     (user_id, email))
    return email


# --------------------------------------------------------------------------------------------
# Local mode
# --------------------------------------------------------------------------------------------
def test_client_create_prints_the_new_client_and_stores_it(capsys, database_url):
    name = unique("Acme Title")
    code, out, err = run(capsys, ["--database-url", database_url, "client", "create",
                                  "--name", f"  {name} ", "--domain", "Acme-Title.COM"])
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert set(printed) == {"id", "name"} and printed["name"] == name
    [row] = query(database_url, "select * from public.clients where id = %s", (printed["id"],))
    assert (row["name"], row["domain"], row["is_active"]) == (name, "acme-title.com", True)
    [audit] = query(database_url, "select actor_type, actor_id from public.audit_events "
                                  "where resource_id = %s and event_type = 'client.created'", (printed["id"],))
    assert audit == {"actor_type": "system", "actor_id": "scripts/provision.py"}


@pytest.mark.parametrize("role, user_type, belongs_to_client", [
    ("hil_operator", "hil_user", False),
    ("hil_manager", "hil_user", False),
    ("client_user", "client_user", True),
    ("client_admin", "client_user", True),
])
def test_user_create_writes_the_auth_user_and_profile_for_each_role(
        capsys, database_url, existing_client, role, user_type, belongs_to_client):
    email = new_email(role)
    argv = ["--database-url", database_url, "user", "create", "--email", email.upper(), "--role", role,
            "--full-name", "Pat Example"]
    if belongs_to_client:
        argv += ["--client-id", existing_client.upper()]
    code, out, err = run(capsys, argv)
    assert (code, err) == (0, "")

    printed = json.loads(out)
    client_id = existing_client if belongs_to_client else None
    assert printed == {"id": printed["id"], "email": email, "role": role, "userType": user_type, "clientId": client_id}
    auth, profile = person(database_url, printed["id"])
    app_metadata = {"provider": "email", "user_type": user_type, "role": role}
    if belongs_to_client:
        app_metadata["client_id"] = existing_client
    assert auth["email"] == email
    assert auth["raw_app_meta_data"] == app_metadata  # no client_id key at all for HIL people
    assert auth["raw_user_meta_data"] == {"full_name": "Pat Example"}
    assert auth["email_confirmed_at"] is not None
    assert {key: profile[key] for key in ("email", "full_name", "user_type", "role", "client_id")} == {
        "email": email, "full_name": "Pat Example", "user_type": user_type, "role": role,
        "client_id": uuid.UUID(existing_client) if belongs_to_client else None,
    }


def test_user_create_without_full_name_leaves_user_metadata_empty(capsys, database_url):
    code, out, _ = run(capsys, ["--database-url", database_url, "user", "create",
                                "--email", new_email(), "--role", "hil_operator"])
    assert code == 0
    auth, profile = person(database_url, json.loads(out)["id"])
    assert auth["raw_user_meta_data"] == {} and profile["full_name"] is None


# Each case: email ("{new}" a fresh one, "{taken}" one in use, "{TAKEN}" it in capitals,
# "{profile_only}" one only a profile holds), the other arguments ("{client}" an existing
# client, "{missing}" a uuid no client has), and the reason stderr must name.
REFUSED_USERS = [
    pytest.param("{new}", ["--role", "superuser"], "unknown role 'superuser'", id="unknown-role"),
    pytest.param("{new}", ["--role", "client_user"], "pass --client-id", id="client-user-without-client-id"),
    pytest.param("{new}", ["--role", "client_admin"], "pass --client-id", id="client-admin-without-client-id"),
    pytest.param("{new}", ["--role", "hil_operator", "--client-id", "{client}"], "belongs to no client",
                 id="hil-operator-with-client-id"),
    pytest.param("{new}", ["--role", "hil_manager", "--client-id", "{client}"], "belongs to no client",
                 id="hil-manager-with-client-id"),
    pytest.param("{new}", ["--role", "client_user", "--client-id", "acme"], "is not a uuid", id="client-id-not-a-uuid"),
    pytest.param("{new}", ["--role", "client_admin", "--client-id", "{missing}"], "no such client",
                 id="client-id-of-no-client"),
    pytest.param("no-at-sign.example.com", ["--role", "hil_operator"], "malformed email", id="email-without-at"),
    pytest.param("@example.com", ["--role", "hil_operator"], "malformed email", id="email-without-name"),
    pytest.param("pat@localhost", ["--role", "hil_operator"], "malformed email", id="email-without-dot-domain"),
    pytest.param("pat@example..com", ["--role", "hil_operator"], "malformed email", id="email-empty-label"),
    pytest.param("pat smith@example.com", ["--role", "hil_operator"], "malformed email", id="email-with-space"),
    pytest.param("pat@@example.com", ["--role", "hil_operator"], "malformed email", id="email-two-ats"),
    pytest.param("p" * 250 + "@example.com", ["--role", "hil_operator"], "malformed email", id="email-too-long"),
    pytest.param("{taken}", ["--role", "hil_operator"], "already exists", id="duplicate-email"),
    pytest.param("{TAKEN}", ["--role", "hil_manager"], "already exists", id="duplicate-email-other-case"),
    pytest.param("{taken}", ["--role", "client_user", "--client-id", "{client}"], "already exists",
                 id="duplicate-email-client-user"),
    pytest.param("{profile_only}", ["--role", "hil_operator"], "already exists", id="duplicate-profile-email"),
]


def fill(template: str, values: dict[str, str]) -> str:
    return template.format(**values) if template.startswith("{") else template


@pytest.mark.parametrize("email, args, reason", REFUSED_USERS)
def test_bad_user_input_is_refused_in_one_line_and_writes_nothing(
        capsys, database_url, existing_client, taken_email, profile_only_email, email, args, reason):
    values = {"new": new_email(), "taken": taken_email, "TAKEN": taken_email.upper(),
              "profile_only": profile_only_email, "client": existing_client, "missing": str(uuid.uuid4())}
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", fill(email, values),
                                  *[fill(arg, values) for arg in args]])
    assert_one_line_refusal(code, out, err, 1, reason)
    assert counts(database_url) == before


REFUSED_CLIENTS = [
    pytest.param("{taken}", [], "already exists", id="duplicate-name"),
    pytest.param("   ", [], "1 to 200 characters", id="blank-name"),
    pytest.param("x" * 201, [], "1 to 200 characters", id="name-too-long"),
    pytest.param("{new}", ["--domain", "https://acme.com"], "malformed domain", id="domain-with-scheme"),
    pytest.param("{new}", ["--domain", "acme com"], "malformed domain", id="domain-with-space"),
    pytest.param("{new}", ["--domain=-acme.com"], "malformed domain", id="domain-label-starts-with-hyphen"),
    pytest.param("{new}", ["--domain", "acme"], "malformed domain", id="domain-without-dot"),
]


@pytest.mark.parametrize("name, args, reason", REFUSED_CLIENTS)
def test_bad_client_input_is_refused_in_one_line_and_writes_nothing(capsys, database_url, name, args, reason):
    taken = query(database_url, "select name from public.clients order by created_at limit 1")[0]["name"]
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "client", "create",
                                  "--name", fill(name, {"taken": taken, "new": unique("Client")}), *args])
    assert_one_line_refusal(code, out, err, 1, reason)
    assert counts(database_url) == before


USAGE_ERRORS = [
    pytest.param(["user", "create", "--email", "a@b.test"], "--role", id="missing-role"),
    pytest.param(["user", "create", "--role", "hil_operator"], "--email", id="missing-email"),
    pytest.param(["client", "create"], "--name", id="missing-name"),
    pytest.param([], "required", id="missing-noun"),
    pytest.param(["user"], "required", id="missing-verb"),
    pytest.param(["user", "delete"], "invalid choice", id="unknown-verb"),
    pytest.param(["--hosted", "--local", "client", "create", "--name", "x"], "not allowed with", id="hosted-and-local"),
]


@pytest.mark.parametrize("args, reason", USAGE_ERRORS)
def test_usage_errors_exit_2_in_one_line(capsys, database_url, args, reason):
    code, out, err = run(capsys, ["--database-url", database_url, *args])
    assert_one_line_refusal(code, out, err, 2, reason)


def test_no_database_url_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, out, err = run(capsys, ["client", "create", "--name", unique("Client")])
    assert_one_line_refusal(code, out, err, 2, "no database")


def test_database_url_defaults_to_the_environment(capsys, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, out, _ = run(capsys, ["client", "create", "--name", unique("Client")])
    assert code == 0 and query(database_url, "select 1 from public.clients where id = %s", (json.loads(out)["id"],))


def test_unreachable_database_exits_2_without_printing_the_password(capsys):
    code, out, err = run(capsys, ["--database-url", "postgresql://postgres:hunter2-secret@127.0.0.1:1/nowhere",
                                  "user", "create", "--email", new_email(), "--role", "hil_operator"])
    assert_one_line_refusal(code, out, err, 2, "cannot reach the database")
    assert "hunter2-secret" not in err


def test_local_mode_refuses_to_write_auth_users_of_hosted_supabase(capsys, monkeypatch, database_url):
    monkeypatch.setattr(provision.provisioning, "is_hosted_supabase", lambda conn: True)
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create",
                                  "--email", new_email(), "--role", "hil_operator"])
    assert_one_line_refusal(code, out, err, 2, "SUPABASE_SERVICE_ROLE_KEY")
    assert counts(database_url) == before


@pytest.mark.parametrize("present", [[], ["SUPABASE_URL"], ["SUPABASE_SERVICE_ROLE_KEY"]])
def test_hosted_flag_without_both_settings_exits_2_and_writes_nothing(capsys, monkeypatch, database_url, present):
    for name in present:
        monkeypatch.setenv(name, "set")
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "--hosted", "user", "create",
                                  "--email", new_email(), "--role", "hil_operator"])
    assert_one_line_refusal(code, out, err, 2, "--hosted needs")
    assert counts(database_url) == before


def test_hosted_mode_with_a_malformed_supabase_url_exits_2_and_writes_nothing(capsys, monkeypatch, database_url):
    monkeypatch.setenv("SUPABASE_URL", "project-ref.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-role-key")
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create",
                                  "--email", new_email(), "--role", "hil_operator"])
    assert_one_line_refusal(code, out, err, 2, "Invalid URL")
    assert counts(database_url) == before


# --------------------------------------------------------------------------------------------
# End to end, as a subprocess
# --------------------------------------------------------------------------------------------
def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)


def test_script_creates_a_client_and_its_admin_end_to_end(database_url):
    client = run_script("--database-url", database_url, "client", "create", "--name", unique("E2E client"))
    assert (client.returncode, client.stderr) == (0, "")
    client_id = json.loads(client.stdout)["id"]
    email = new_email("admin")
    user = run_script("--database-url", database_url, "user", "create", "--email", email,
                      "--role", "client_admin", "--client-id", client_id, "--full-name", "Ada Admin")
    assert (user.returncode, user.stderr) == (0, "")
    printed = json.loads(user.stdout)
    assert printed["clientId"] == client_id and printed["userType"] == "client_user"
    auth, profile = person(database_url, printed["id"])
    assert auth["raw_app_meta_data"]["client_id"] == client_id
    assert str(profile["client_id"]) == client_id and profile["role"] == "client_admin"


@pytest.mark.parametrize("args, code, reason", [
    (["user", "create", "--email", "bad-email", "--role", "hil_operator"], 1, "malformed email"),
    (["user", "create", "--email", "a@b.test", "--role", "client_user", "--client-id", "nope"], 1, "not a uuid"),
    (["user", "create", "--email", "a@b.test"], 2, "--role"),
])
def test_script_failures_are_one_line_without_traceback(database_url, args, code, reason):
    before = counts(database_url)
    result = run_script("--database-url", database_url, *args)
    assert_one_line_refusal(result.returncode, result.stdout, result.stderr, code, reason)
    assert counts(database_url) == before


# --------------------------------------------------------------------------------------------
# Hosted mode against a fake Supabase Auth
# --------------------------------------------------------------------------------------------
class FakeAuth:
    """Supabase Auth's admin users API over httpx.MockTransport, writing auth.users of the test
    database as the real one writes the project's.

    writes_database=False plays an Auth whose project is not --database-url's;
    delete_fails makes DELETE answer 500.
    """

    def __init__(self, database_url: str, key: str, *, writes_database: bool = True,
                 delete_fails: bool = False, unauthorized_body: dict | None = None):
        self.database_url = database_url
        self.key = key
        self.writes_database = writes_database
        self.delete_fails = delete_fails
        self.unauthorized_body = unauthorized_body or {"message": "Invalid API key"}
        self.requests: list[httpx.Request] = []
        self.created_ids: list[str] = []
        self.client = httpx.Client(transport=httpx.MockTransport(self.handle))

    @staticmethod
    def answer(status: int, body: dict) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"X-Supabase-Api-Version": "2024-01-01"})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("apikey") != self.key or request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json=self.unauthorized_body)  # the API gateway, no version header
        if request.method == "POST" and request.url.path == "/auth/v1/admin/users":
            return self.create(json.loads(request.content))
        if request.method == "DELETE" and request.url.path.startswith("/auth/v1/admin/users/"):
            if self.delete_fails:
                return self.answer(500, {"code": "unexpected_failure", "message": "database is down"})
            with psycopg.connect(self.database_url) as conn:
                conn.execute("delete from auth.users where id = %s", (request.url.path.rsplit("/", 1)[1],))
            return self.answer(200, {})
        return self.answer(404, {"code": "not_found", "message": "no route"})

    def create(self, body: dict) -> httpx.Response:
        user_id = str(uuid.uuid4())
        app_metadata = {"provider": "email", "providers": ["email"], **body.get("app_metadata", {})}
        if self.writes_database:
            try:
                with psycopg.connect(self.database_url) as conn:
                    conn.execute(
                        "insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at) "
                        "values (%s, %s, %s, %s, now())",
                        (user_id, body["email"], Jsonb(app_metadata), Jsonb(body.get("user_metadata", {}))),
                    )
            except psycopg.errors.UniqueViolation:
                return self.answer(422, {"code": "email_exists",
                                         "message": "A user with this email address has already been registered"})
        self.created_ids.append(user_id)
        now = datetime.now(timezone.utc).isoformat()
        return self.answer(200, {
            "id": user_id, "aud": "authenticated", "role": "authenticated", "email": body["email"],
            "email_confirmed_at": now, "app_metadata": app_metadata,
            "user_metadata": body.get("user_metadata", {}), "created_at": now, "updated_at": now,
        })

    def calls(self) -> list[tuple[str, str]]:
        return [(request.method, request.url.path) for request in self.requests]


@pytest.fixture
def service_role_key(monkeypatch) -> str:
    key = f"service-role-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    return key


@pytest.mark.parametrize("role, with_client", [("client_admin", True), ("client_user", True),
                                             ("hil_operator", False), ("hil_manager", False)])
def test_hosted_user_create_goes_through_the_auth_admin_api_then_writes_the_profile(
        capsys, database_url, existing_client, service_role_key, role, with_client):
    auth = FakeAuth(database_url, service_role_key)
    email = new_email(f"hosted-{role}")
    argv = ["--database-url", database_url, "user", "create", "--email", email, "--role", role,
            "--full-name", "Hana Hosted"]
    if with_client:
        argv += ["--client-id", existing_client]
    code, out, err = run(capsys, argv, http_client=auth.client)
    assert (code, err) == (0, "")

    [request] = auth.requests
    assert (request.method, request.url.host, request.url.path) == ("POST", "project-ref.supabase.test",
                                                                     "/auth/v1/admin/users")
    assert request.headers["apikey"] == service_role_key
    assert request.headers["authorization"] == f"Bearer {service_role_key}"
    app_metadata = {"user_type": "client_user" if with_client else "hil_user", "role": role}
    if with_client:
        app_metadata["client_id"] = existing_client
    assert json.loads(request.content) == {"email": email, "email_confirm": True, "app_metadata": app_metadata,
                                           "user_metadata": {"full_name": "Hana Hosted"}}

    printed = json.loads(out)
    auth_row, profile = person(database_url, printed["id"])
    assert {key: auth_row["raw_app_meta_data"][key] for key in app_metadata} == app_metadata
    assert (profile["email"], profile["role"], profile["full_name"]) == (email, role, "Hana Hosted")
    assert profile["client_id"] == (uuid.UUID(existing_client) if with_client else None)


@pytest.mark.parametrize("flags, hosted", [([], True), (["--hosted"], True), (["--local"], False)])
def test_hosted_mode_follows_the_environment_unless_local_is_forced(
        capsys, database_url, service_role_key, flags, hosted):
    auth = FakeAuth(database_url, service_role_key)
    code, out, _ = run(capsys, ["--database-url", database_url, *flags, "user", "create",
                                "--email", new_email(), "--role", "hil_manager"], http_client=auth.client)
    assert code == 0
    assert auth.calls() == ([("POST", "/auth/v1/admin/users")] if hosted else [])
    auth_row, profile = person(database_url, json.loads(out)["id"])
    assert auth_row is not None and profile is not None


def test_hosted_client_create_writes_only_through_the_database(capsys, database_url, service_role_key):
    auth = FakeAuth(database_url, service_role_key)
    code, out, _ = run(capsys, ["--database-url", database_url, "--hosted", "client", "create",
                                "--name", unique("Hosted client")], http_client=auth.client)
    assert code == 0 and auth.requests == []
    assert query(database_url, "select 1 from public.clients where id = %s", (json.loads(out)["id"],))


def test_hosted_duplicate_email_reported_by_auth_is_refused(capsys, database_url, taken_email, service_role_key):
    auth = FakeAuth(database_url, service_role_key)
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", taken_email,
                                  "--role", "hil_operator"], http_client=auth.client)
    assert_one_line_refusal(code, out, err, 1, f"a user with email {taken_email} already exists")
    assert auth.calls() == [("POST", "/auth/v1/admin/users")]
    assert counts(database_url) == before


def test_hosted_unknown_client_is_refused_before_auth_is_asked(capsys, database_url, service_role_key):
    auth = FakeAuth(database_url, service_role_key)
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", new_email(),
                                  "--role", "client_user", "--client-id", str(uuid.uuid4())], http_client=auth.client)
    assert_one_line_refusal(code, out, err, 1, "no such client")
    assert auth.requests == []
    assert counts(database_url) == before


@pytest.mark.parametrize("case, expected_code, reason", [
    # The profile's email is taken though Auth had no such user: user_profiles_email_key refuses.
    ("profile-email-taken", 1, "already exists"),
    # Auth's project is not --database-url's: user_profiles_id_fkey refuses.
    ("other-project", 3, "same project"),
])
def test_hosted_profile_failure_deletes_the_auth_user_again(
        capsys, database_url, profile_only_email, service_role_key, case, expected_code, reason):
    auth = FakeAuth(database_url, service_role_key, writes_database=(case == "profile-email-taken"))
    email = profile_only_email if case == "profile-email-taken" else new_email()
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", email,
                                  "--role", "hil_operator"], http_client=auth.client)
    assert_one_line_refusal(code, out, err, expected_code, reason)
    assert "deleted again" in err

    [created_id] = auth.created_ids
    assert auth.calls() == [("POST", "/auth/v1/admin/users"), ("DELETE", f"/auth/v1/admin/users/{created_id}")]
    assert auth.requests[1].headers["apikey"] == service_role_key
    assert query(database_url, "select 1 from auth.users where id = %s", (created_id,)) == []
    assert counts(database_url) == before


def test_hosted_rollback_that_fails_names_the_auth_user_left_behind(capsys, database_url, service_role_key):
    auth = FakeAuth(database_url, service_role_key, writes_database=False, delete_fails=True)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", new_email(),
                                  "--role", "hil_operator"], http_client=auth.client)
    [created_id] = auth.created_ids
    assert_one_line_refusal(code, out, err, 4, f"deleting Auth user {created_id} again failed")
    assert auth.calls() == [("POST", "/auth/v1/admin/users"), ("DELETE", f"/auth/v1/admin/users/{created_id}")]


@pytest.mark.parametrize("body", [
    {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."},
    {"message": "Invalid API key: {key}"},  # a gateway that echoes the key back
], ids=["gateway", "echoing-gateway"])
def test_auth_401_never_prints_the_service_role_key(capsys, database_url, service_role_key, body):
    auth = FakeAuth(database_url, "the-real-key",
                    unauthorized_body={k: v.format(key=service_role_key) for k, v in body.items()})
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", new_email(),
                                  "--role", "hil_operator"], http_client=auth.client)
    assert_one_line_refusal(code, out, err, 2, "HTTP 401")
    assert "SUPABASE_SERVICE_ROLE_KEY" in err
    assert service_role_key not in out + err
    assert not re.search(r"service-role-[0-9a-f]{8}", out + err)
    assert counts(database_url) == before


class ScriptedAuth(FakeAuth):
    """FakeAuth whose create-user call answers `outcome`: an httpx.Response, or an exception the
    transport raises (network failure)."""

    def __init__(self, database_url: str, key: str, outcome):
        super().__init__(database_url, key)
        self.outcome = outcome

    def create(self, body: dict) -> httpx.Response:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize("outcome, expected_code, reason", [
    (FakeAuth.answer(422, {"code": "validation_failed", "message": "Unable to validate email address"}), 1,
     "Supabase Auth refused the user: Unable to validate email address"),
    (httpx.Response(403, json={"message": "This endpoint requires a valid service_role key"}), 2,
     "refused the service role key (HTTP 403"),
    (FakeAuth.answer(500, {"code": "unexpected_failure", "message": "Database error creating new user"}), 3,
     "Supabase Auth failed (HTTP 500): Database error creating new user"),
    (httpx.ConnectError("connection refused"), 3, "Supabase Auth unreachable or unreadable"),
    (httpx.Response(502, text="<html>Bad gateway</html>"), 3, "Supabase Auth unreachable or unreadable: Bad Gateway"),
], ids=["refused-422", "forbidden-403", "auth-500", "unreachable", "html-502"])
def test_hosted_auth_failures_exit_with_their_code_and_write_nothing(
        capsys, database_url, service_role_key, outcome, expected_code, reason):
    auth = ScriptedAuth(database_url, service_role_key, outcome)
    before = counts(database_url)
    code, out, err = run(capsys, ["--database-url", database_url, "user", "create", "--email", new_email(),
                                  "--role", "hil_operator"], http_client=auth.client)
    assert_one_line_refusal(code, out, err, expected_code, reason)
    assert service_role_key not in err
    assert auth.calls()[0] == ("POST", "/auth/v1/admin/users")
    assert ("DELETE" in {method for method, _ in auth.calls()}) is False
    assert counts(database_url) == before
