"""Migrations, seed and provisioning as hosted Supabase's `postgres`, which is not a superuser.

A fresh database is given, as the superuser, only what hosted Supabase has before a project's
first migration (below, each with its reason), and a role like hosted `postgres`: LOGIN,
NOSUPERUSER, NOREPLICATION, NOBYPASSRLS, CREATEROLE, CREATEDB, member of anon, authenticated
and service_role, owner of the database. Everything after that runs as that role, as
`supabase db push` or scripts/migrate.py --hosted would with the project's connection string.

The local bootstrap is skipped as on hosted Supabase (--hosted, bootstrap=False): its automatic
detection looks for the cluster-wide role supabase_admin, which a test must not create on a
cluster other test sessions share (they would skip their bootstrap too).

Extensions: the migrations create only pg_cron (20261126002500) and pg_net (20261203000300, via
private.schedule_tick() once pg_cron is there), both on hosted Supabase's list and both guarded,
so a database without them (this one) schedules nothing; pgcrypto comes with the bootstrap, as
hosted Supabase pre-installs it, and no migration uses it (gen_random_uuid() is core PostgreSQL).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import uuid

import psycopg
import pytest
from psycopg import conninfo, errors, sql
from psycopg.rows import dict_row

from app import create_app, migrations
from app.auth import Principal
from app.db import Database
from app.migrations import BOOTSTRAP_FILE, MigrationError, apply_migrations, migration_files, split_version
from tests.conftest import create_database, database_url_for, drop_database, server_url
from tests.db.test_schema import REALTIME_TABLES
from tests.realtime.conftest import PAYOFF
from tests.scripts.test_provision import FakeAuth, load_script
from tests.service_fixtures import make_settings
from tests.support import Person, mint_token

ROOT = migrations.ROOT
API_ROLES = ("anon", "authenticated", "service_role")
SEED_TABLES = ("agents", "workflow_templates", "task_templates", "sla_definitions", "sla_escalation_rules",
               "business_hours_config", "business_holidays", "allowed_counterparty_types", "contact_types",
               "contact_labels")

# As the superuser, once the database exists: what hosted Supabase already has, nothing else.
# supabase/local/bootstrap.sql is the project's statement of it and is run as it is:
#   - roles anon, authenticated, service_role (and authenticator), created only when missing
#     (they are cluster-wide and other tests use them): the policies and grants name them;
#   - schema extensions with pgcrypto: where hosted Supabase installs it (no migration uses it);
#   - schema auth with auth.users and its email index: user_profiles.id references it, and
#     provisioning writes it (locally) or Supabase Auth does (hosted); usage for the API roles;
#   - auth.jwt(), auth.uid(), auth.role(), auth.email(): the policies call them;
#   - the empty publication supabase_realtime: migration 20261126001500 adds tables to it.
# Then what hosted Supabase grants its `postgres` role on those (the bootstrap, run by a
# superuser for a superuser, needs none of it):
HOSTED_GRANTS = [
    # hosted `postgres` may become each API role (the service acts as the caller's role)
    "grant anon, authenticated, service_role to {role}",
    # hosted grants more on schema auth, but since 2025-04-21 refuses new tables and functions
    # there: usage is what a migration may count on
    "grant usage on schema auth to {role}",
    # hosted: grant all on auth.users to postgres (foreign keys to it; reading and writing users)
    "grant all on table auth.users to {role}",
    # hosted: the publication is owned by postgres, so a migration may add its tables to it
    "alter publication supabase_realtime owner to {role}",
]


def load(path_name: str, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / path_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Hosted:
    def __init__(self, role: str, dbname: str):
        self.role = role
        self.dbname = dbname
        self.admin_url = database_url_for(dbname)  # the superuser: Supabase's own admin roles
        self.url = conninfo.make_conninfo(self.admin_url, user=role)  # the project's `postgres`
        self.report: migrations.MigrationReport | None = None

    def query(self, statement, params=(), *, as_admin: bool = False) -> list[dict]:
        with psycopg.connect(self.admin_url if as_admin else self.url, row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()


def run_bootstrap(url: str) -> None:
    """The bootstrap as the superuser; once more if another session created a role meanwhile."""
    for attempt in (1, 2):
        try:
            with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
                conn.execute("set local client_min_messages = warning")
                conn.execute(BOOTSTRAP_FILE.read_text())
            return
        except (errors.UniqueViolation, errors.DuplicateObject):
            if attempt == 2:
                raise


@pytest.fixture(scope="module")
def hosted():
    role = f"rexera_hosted_{uuid.uuid4().hex[:10]}"
    dbname = create_database("rexera_hosted")
    state = Hosted(role, dbname)
    try:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("create role {} login nosuperuser noreplication nobypassrls createrole createdb")
                          .format(sql.Identifier(role)))
            admin.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(dbname), sql.Identifier(role)))
        run_bootstrap(state.admin_url)
        with psycopg.connect(state.admin_url, autocommit=True) as admin:
            for statement in HOSTED_GRANTS:
                admin.execute(sql.SQL(statement).format(role=sql.Identifier(role)))
        # Every migration and the seed, as the role.
        state.report = apply_migrations(state.url, bootstrap=False, seed=True)
        yield state
    finally:
        drop_database(dbname)
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


# ---- the role ---------------------------------------------------------------------------------
def test_the_role_is_what_hosted_supabase_gives_a_project(hosted):
    [me] = hosted.query("""select current_user as name, r.rolsuper, r.rolreplication, r.rolbypassrls,
                                  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                                  (select pg_get_userbyid(datdba) from pg_database where datname = current_database()) as db_owner
                             from pg_roles r where r.rolname = current_user""")
    assert me == {"name": hosted.role, "rolsuper": False, "rolreplication": False, "rolbypassrls": False,
                  "rolcreaterole": True, "rolcreatedb": True, "rolcanlogin": True, "db_owner": hosted.role}
    members = hosted.query("select r.rolname from pg_roles r where pg_has_role(current_user, r.oid, 'member')"
                           " and r.rolname = any(%s)", (list(API_ROLES),))
    assert {m["rolname"] for m in members} == set(API_ROLES)


# ---- migrations and seed ------------------------------------------------------------------------
def test_every_migration_and_the_seed_apply_as_the_role(hosted):
    files = migration_files()
    assert hosted.report.applied == [path.name for path in files]
    assert hosted.report.seeded == ["seed.sql"] and hosted.report.bootstrapped is False
    [tracked] = hosted.query("select public.schema_version() as version,"
                             " (select count(*) from supabase_migrations.schema_migrations) as applied")
    assert tracked == {"version": split_version(files[-1])[0], "applied": len(files)}
    counts = hosted.query("select " + ", ".join(f"(select count(*) from public.{t}) as {t}" for t in SEED_TABLES))[0]
    assert all(counts[table] > 0 for table in SEED_TABLES), counts


def test_the_role_owns_what_its_migrations_created(hosted):
    others = hosted.query("""
        select n.nspname || '.' || c.relname as object, pg_get_userbyid(c.relowner) as owner
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('public', 'private', 'supabase_migrations') and c.relowner <> current_user::regrole
        union all
        select n.nspname || '.' || p.proname, pg_get_userbyid(p.proowner)
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('public', 'private') and p.proowner <> current_user::regrole""")
    assert others == []
    published = hosted.query("select tablename from pg_publication_tables"
                             " where pubname = 'supabase_realtime' and schemaname = 'public'")
    assert {r["tablename"] for r in published} == REALTIME_TABLES


def test_row_level_security_is_on_and_holds_for_the_api_roles(hosted):
    without = hosted.query("select tablename from pg_tables where schemaname = 'public' and not rowsecurity")
    assert without == []
    with psycopg.connect(hosted.url, row_factory=dict_row) as conn:  # rolled back at the end
        conn.execute("insert into public.clients (name) values (%s)", (f"rls-{uuid.uuid4().hex[:8]}",))
        owner_sees = conn.execute("select count(*) as n from public.clients").fetchone()["n"]
        conn.execute("set local role authenticated")  # no claims: a signed-in nobody
        authenticated_sees = conn.execute("select count(*) as n from public.clients").fetchone()["n"]
        conn.execute("set local role anon")
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select count(*) from public.clients")
        conn.rollback()
    assert (owner_sees >= 1, authenticated_sees) == (True, 0)


def test_a_second_apply_as_the_role_does_nothing(hosted, capsys):
    def state() -> dict:
        return hosted.query(
            "select (select array_agg(version order by version) from supabase_migrations.schema_migrations) as versions,"
            " (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            "   where n.nspname in ('public', 'private')) as functions,"
            " (select count(*) from pg_policies) as policies, "
            + ", ".join(f"(select count(*) from public.{t}) as {t}" for t in SEED_TABLES))[0]

    before = state()
    code = load("migrate.py", "migrate_script").main(["--database-url", hosted.url, "--hosted", "--seed"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "migrations: nothing to apply" in out and "done: 0 migration(s) applied" in out
    assert state() == before


@pytest.mark.parametrize("statement", [
    "alter role current_user with superuser",  # in Supabase's list of unsupported operations
    "copy (select 1) to program 'true'",  # likewise (COPY ... PROGRAM)
    "create extension file_fdw",  # an untrusted extension: superuser only (and not on hosted Supabase)
], ids=["alter-role-superuser", "copy-program", "untrusted-extension"])
def test_a_migration_that_needs_a_superuser_fails_as_the_role(hosted, tmp_path, monkeypatch, statement):
    """The proof that the tests above would catch one: a new migration needing a superuser is
    refused as the role and rolled back whole (ALTER SYSTEM cannot prove it: it is refused
    inside any migration's transaction, superuser or not)."""
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    (directory / "99991231000000_needs_a_superuser.sql").write_text(
        f"create table public.superuser_probe (id uuid primary key);\n{statement};\n")
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", directory)
    with pytest.raises(MigrationError) as failure:
        apply_migrations(hosted.url, bootstrap=False)
    assert failure.value.path.name == "99991231000000_needs_a_superuser.sql"
    assert failure.value.error.sqlstate == "42501", str(failure.value)
    [after] = hosted.query("""select to_regclass('public.superuser_probe') as probe, r.rolsuper,
                                     exists (select 1 from supabase_migrations.schema_migrations
                                              where version = '99991231000000') as recorded
                                from pg_roles r where r.rolname = current_user""")
    assert after == {"probe": None, "rolsuper": False, "recorded": False}


# ---- provisioning, then the service, as the role ------------------------------------------------
def test_provisioning_as_the_role_and_the_new_people_use_the_service(hosted, capsys, monkeypatch):
    provision = load_script()

    def run(argv: list[str], http_client=None) -> dict:
        code = provision.main(["--database-url", hosted.url, *argv], http_client=http_client)
        captured = capsys.readouterr()
        assert (code, captured.err) == (0, ""), captured.err
        return json.loads(captured.out)

    mine = run(["client", "create", "--name", f"Hosted Title {uuid.uuid4().hex[:6]}", "--domain", "hosted.test"])
    other = run(["client", "create", "--name", f"Other Title {uuid.uuid4().hex[:6]}"])
    # Hosted mode: Supabase Auth (here FakeAuth, writing auth.users as Supabase's own admin role)
    # creates the user, the script writes the profile as the role.
    key = f"service-role-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPABASE_URL", "https://project-ref.supabase.test")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    auth = FakeAuth(hosted.admin_url, key)
    admin = run(["--hosted", "user", "create", "--email", f"admin-{uuid.uuid4().hex[:6]}@hosted.test",
                 "--role", "client_admin", "--client-id", mine["id"], "--full-name", "Ada Admin"], auth.client)
    operator = run(["--hosted", "user", "create", "--email", f"op-{uuid.uuid4().hex[:6]}@hosted.test",
                    "--role", "hil_operator"], auth.client)
    assert auth.calls() == [("POST", "/auth/v1/admin/users")] * 2
    profiles = hosted.query("select id::text, role::text, client_id::text from public.user_profiles where id = any(%s::uuid[])",
                            ([admin["id"], operator["id"]],))
    assert sorted(map(tuple, (p.values() for p in profiles))) == sorted(
        [(admin["id"], "client_admin", mine["id"]), (operator["id"], "hil_operator", None)])

    people = {"admin": Person("admin", "client_admin", user_id=uuid.UUID(admin["id"]), client_id=uuid.UUID(mine["id"])),
              "operator": Person("operator", "hil_operator", user_id=uuid.UUID(operator["id"]))}

    # The service's database layer, connected as the role: a request-role query sees what RLS shows.
    database = Database(hosted.url, min_size=1, max_size=2)
    database.open(wait=True)
    try:
        person = people["admin"]
        got = database.single(
            Principal(kind="person", request_role="authenticated", claims=person.claims, user_id=person.user_id,
                      role=person.role, client_id=person.client_id),
            "select current_user as role, auth.uid() as uid, private.client_id() as client,"
            " (select array_agg(id::text) from public.clients) as clients")
        assert got == {"role": "authenticated", "uid": person.user_id, "client": person.client_id,
                       "clients": [mine["id"]]}
    finally:
        database.close()
    assert {r["id"] for r in hosted.query("select id::text from public.clients")} >= {mine["id"], other["id"]}

    # And the API, its pool connected as the role.
    app = create_app(make_settings(hosted.url))
    try:
        client = app.test_client()

        def call(name, method, path, **kwargs):
            return getattr(client, method)(path, headers={"Authorization": f"Bearer {mint_token(people[name])}"},
                                           **kwargs)

        made = call("operator", "post", "/api/workflows",
                    json={"type": "PAYOFF_REQUEST", "clientId": mine["id"], "payload": PAYOFF})
        assert made.status_code == 201, made.json
        started = call("admin", "post", f"/api/workflows/{made.json['id']}/actions", json={"action": "start"})
        assert started.status_code == 200 and started.json["newStatus"] == "IN_PROGRESS", started.json
        listed = call("admin", "get", "/api/workflows")
        assert listed.status_code == 200, listed.json
        assert [w["id"] for w in listed.json["workflows"]] == [made.json["id"]]
    finally:
        app.extensions["database"].close()
    [stored] = hosted.query("select client_id::text, status, created_by::text, total_tasks from public.workflows"
                            " where id = %s", (made.json["id"],))
    assert stored == {"client_id": mine["id"], "status": "IN_PROGRESS", "created_by": operator["id"],
                      "total_tasks": started.json["tasksCreated"]}
