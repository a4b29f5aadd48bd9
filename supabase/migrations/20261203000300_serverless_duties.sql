-- Duties that need no process of the service's own (issue 17): a request delivers the outbox
-- rows it queued right after its commit (claimed by id), a successful delivery after failures
-- releases the rows waiting out their backoff at once, and a tick (POST /api/internal/tick)
-- does what remains periodic. On Supabase, pg_cron calls the tick through pg_net every minute
-- where both extensions exist; elsewhere this file schedules nothing.

-- p_ids: only these rows, and only while they are due (a request's own rows, just committed).
drop function if exists public.claim_n8n_dispatches(integer, integer);
create or replace function public.claim_n8n_dispatches(p_limit integer default 10, p_lease_seconds integer default 120,
                                                       p_ids uuid[] default null)
returns setof public.n8n_dispatches
language plpgsql
set search_path = ''
as $$
begin
  if not private.is_service() then
    raise exception 'the outbox is delivered by the service only' using errcode = '42501';
  end if;
  return query
  update public.n8n_dispatches d
     set status = 'DELIVERING', attempts = d.attempts + 1,
         locked_until = now() + make_interval(secs => p_lease_seconds)
   where d.id in (
     select c.id from public.n8n_dispatches c
      where ((c.status in ('PENDING', 'FAILED') and c.next_attempt_at <= now())
             or (c.status = 'DELIVERING' and c.locked_until < now()))
        and (p_ids is null or c.id = any(p_ids))
      order by c.next_attempt_at
      limit p_limit
      for update skip locked)
  returning d.*;
end
$$;

-- n8n answers again: whatever waits out a backoff is due now. Returns how many rows were released.
create or replace function public.release_n8n_dispatches() returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_released integer;
begin
  if not private.is_service() then
    raise exception 'the outbox is delivered by the service only' using errcode = '42501';
  end if;
  update public.n8n_dispatches set next_attempt_at = now()
   where status = 'FAILED' and next_attempt_at > now();
  get diagnostics v_released = row_count;
  return v_released;
end
$$;

revoke execute on function public.claim_n8n_dispatches(integer, integer, uuid[]), public.release_n8n_dispatches()
  from public, anon, authenticated;
grant execute on function public.claim_n8n_dispatches(integer, integer, uuid[]), public.release_n8n_dispatches()
  to service_role;

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
