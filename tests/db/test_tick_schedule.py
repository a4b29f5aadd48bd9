"""The tick from the database (hosted Supabase): where pg_cron and pg_net exist the migration
schedules private.call_tick every minute, which posts to the tick URL with the cron secret read
from Vault; elsewhere it schedules nothing. pg_cron, pg_net and Vault are not on this machine:
stand-ins with their signatures record what would be called."""
from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from app.migrations import apply_migrations

STAND_INS = """
create schema cron;
create table cron.scheduled (jobname text primary key, schedule text, command text);
create function cron.schedule(job_name text, schedule text, command text) returns bigint language sql as $$
  insert into cron.scheduled values (job_name, schedule, command)
  on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command returning 1::bigint $$;
create schema net;
create table net.posted (id bigint generated always as identity, url text, body jsonb, headers jsonb, timeout_milliseconds integer);
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                              headers jsonb default '{"Content-Type": "application/json"}', timeout_milliseconds integer default 5000)
returns bigint language sql as $$
  insert into net.posted (url, body, headers, timeout_milliseconds) values (url, body, headers, timeout_milliseconds) returning id $$;
create schema vault;
create table vault.decrypted_secrets (name text primary key, decrypted_secret text);
"""


def test_without_pg_cron_nothing_is_scheduled(db):
    assert db.execute("select private.schedule_tick() as r").fetchone()["r"].startswith("not scheduled: pg_cron")
    with db.transaction():
        assert db.execute("select private.call_tick() as r").fetchone()["r"] is None


def test_with_pg_cron_and_pg_net_the_tick_is_scheduled_and_posts_with_the_secret(empty_database):
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(STAND_INS)
    apply_migrations(empty_database, seed=False)
    with psycopg.connect(empty_database, autocommit=True, row_factory=dict_row) as conn:
        jobs = conn.execute("select * from cron.scheduled").fetchall()
        assert jobs == [{"jobname": "rexera-tick", "schedule": "* * * * *", "command": "select private.call_tick()"}]
        # No secrets in Vault yet: nothing is posted.
        assert conn.execute("select private.call_tick() as r").fetchone()["r"] is None
        conn.execute("""insert into vault.decrypted_secrets values
                        ('rexera_tick_url', 'https://service.example/api/internal/tick'),
                        ('rexera_cron_secret', 'cron-secret-0123456789abcdef')""")
        request_id = conn.execute("select private.call_tick() as r").fetchone()["r"]
        posted = conn.execute("select * from net.posted").fetchall()
        assert [p["id"] for p in posted] == [request_id]
        assert posted[0]["url"] == "https://service.example/api/internal/tick"
        assert posted[0]["headers"]["Authorization"] == "Bearer cron-secret-0123456789abcdef"
        assert posted[0]["timeout_milliseconds"] == 30000
        # Scheduling again replaces the job under its name.
        assert conn.execute("select private.schedule_tick('*/5 * * * *') as r").fetchone()["r"] == \
            "scheduled: rexera-tick */5 * * * *"
        assert conn.execute("select schedule from cron.scheduled").fetchall() == [{"schedule": "*/5 * * * *"}]


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_no_request_role_may_call_or_schedule_the_tick(db, role):
    for call in ("select private.call_tick()", "select private.schedule_tick()"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with db.transaction():
                db.execute(f"set local role {role}")
                db.execute(call)
