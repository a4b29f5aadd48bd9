-- Realtime stream upkeep: pruning old events after a retention, callable only by the service
-- path (the service's listener runs it periodically; pg_cron on hosted Supabase may too).

-- ============================================================================================
-- Pruning
-- ============================================================================================
-- Deletes events older than p_keep and returns how many went. Clients resuming from an event
-- older than the retention get what is left (documented in the README). Security invoker:
-- only service_role (and the table owner) may delete from the stream.
create or replace function public.prune_realtime_events(p_keep interval)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_deleted bigint;
begin
  if p_keep is null or p_keep < interval '1 minute' then
    raise exception 'the retention must be at least one minute, got %', p_keep using errcode = '22023';
  end if;
  delete from public.realtime_events where created_at < now() - p_keep;
  get diagnostics v_deleted = row_count;
  return v_deleted;
end
$$;
comment on function public.prune_realtime_events(interval) is 'Deletes realtime events older than the given retention; service role only.';
revoke all on function public.prune_realtime_events(interval) from public, anon, authenticated;
grant execute on function public.prune_realtime_events(interval) to service_role;
