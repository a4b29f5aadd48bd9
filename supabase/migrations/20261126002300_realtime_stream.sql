-- Realtime stream upkeep: pruning old events after a retention, callable only by the service
-- path (the service's listener runs it periodically; pg_cron on hosted Supabase may too).

-- ============================================================================================
-- Pruning
-- ============================================================================================
-- The highest event id pruned so far: a client resuming from an older id may have missed
-- events that no longer exist, and is told so (the replay ends "complete": false, "expired":
-- true) instead of receiving what is left as if it were everything.
create table private.realtime_pruned (
  id boolean primary key default true check (id),
  up_to bigint not null default 0
);
insert into private.realtime_pruned (up_to) values (0);
grant select, update on private.realtime_pruned to service_role;

-- Readable by anyone signed in: a number, the same for everyone.
create or replace function public.realtime_pruned_up_to()
returns bigint
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(max(p.up_to), 0) from private.realtime_pruned p
$$;
revoke all on function public.realtime_pruned_up_to() from public, anon;
grant execute on function public.realtime_pruned_up_to() to authenticated, service_role;

-- Deletes events older than p_keep, records the highest id deleted, and returns how many went.
-- Security invoker: only service_role (and the table owner) may delete from the stream.
create or replace function public.prune_realtime_events(p_keep interval)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_deleted bigint;
  v_up_to bigint;
begin
  if p_keep is null or p_keep < interval '1 minute' then
    raise exception 'the retention must be at least one minute, got %', p_keep using errcode = '22023';
  end if;
  with gone as (
    delete from public.realtime_events where created_at < now() - p_keep returning seq
  )
  select count(*), max(seq) into v_deleted, v_up_to from gone;
  if v_up_to is not null then
    update private.realtime_pruned set up_to = greatest(up_to, v_up_to);
  end if;
  return v_deleted;
end
$$;
comment on function public.prune_realtime_events(interval) is 'Deletes realtime events older than the given retention; service role only.';
revoke all on function public.prune_realtime_events(interval) from public, anon, authenticated;
grant execute on function public.prune_realtime_events(interval) to service_role;
