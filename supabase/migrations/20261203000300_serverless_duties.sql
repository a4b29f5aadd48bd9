-- Duties that need no process of the service's own (issue 17): a tick (POST /api/internal/tick)
-- does what remains periodic (a request delivers the outbox rows it queued itself, through
-- public.claim_n8n_dispatches(p_ids => ...) in 20261126002100_dispatch.sql). On Supabase,
-- pg_cron calls the tick through pg_net every minute where both extensions exist; elsewhere
-- this file schedules nothing.

-- The tick from the database (hosted Supabase): pg_net posts to the service's tick URL with the
-- cron secret, both read from Supabase Vault at each call (secrets named rexera_tick_url and
-- rexera_cron_secret; see docs/deploying.md). Returns pg_net's request id, or null (with a
-- notice saying why) when something it needs is missing. Dynamic SQL: the vault and net
-- schemas exist only where the extensions do.
create or replace function private.call_tick() returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
  v_request bigint;
begin
  if to_regclass('vault.decrypted_secrets') is null or to_regproc('net.http_post') is null then
    raise notice 'no tick sent: Supabase Vault and pg_net are needed';
    return null;
  end if;
  execute $q$select (select decrypted_secret from vault.decrypted_secrets where name = 'rexera_tick_url'),
                    (select decrypted_secret from vault.decrypted_secrets where name = 'rexera_cron_secret')$q$
    into v_url, v_secret;
  if v_url is null or v_secret is null then
    raise notice 'no tick sent: Vault has no secret named rexera_tick_url or rexera_cron_secret';
    return null;
  end if;
  execute 'select net.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := $4)'
    into v_request
    using v_url, '{}'::jsonb,
          jsonb_build_object('Authorization', 'Bearer ' || v_secret, 'Content-Type', 'application/json'), 30000;
  return v_request;
end
$$;

-- Schedules the tick every minute under the job name rexera-tick (scheduling under an existing
-- name replaces that job). Returns what it did; call it again after enabling pg_cron or pg_net.
create or replace function private.schedule_tick(p_schedule text default '* * * * *') returns text
language plpgsql
set search_path = ''
as $$
begin
  if to_regproc('cron.schedule') is null then
    return 'not scheduled: pg_cron is not installed (run the tick from Vercel Cron or another scheduler)';
  end if;
  if to_regproc('net.http_post') is null and exists (
       select 1 from pg_catalog.pg_available_extensions where name = 'pg_net') then
    begin
      create extension if not exists pg_net;
    exception when others then
      return 'not scheduled: pg_net cannot be enabled here (' || sqlerrm || ')';
    end;
  end if;
  if to_regproc('net.http_post') is null then
    return 'not scheduled: pg_net is not installed (run the tick from Vercel Cron or another scheduler)';
  end if;
  execute 'select cron.schedule($1, $2, $3)' using 'rexera-tick', p_schedule, 'select private.call_tick()';
  return 'scheduled: rexera-tick ' || p_schedule;
end
$$;

revoke execute on function private.call_tick(), private.schedule_tick(text) from public, anon, authenticated, service_role;

do $$
begin
  raise notice 'tick: %', private.schedule_tick();
end
$$;
