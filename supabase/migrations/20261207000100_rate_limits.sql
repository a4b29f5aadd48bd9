-- Rate-limit budgets kept in PostgreSQL, for deployments without Redis (app/ratelimit_storage.py):
-- every worker and every instance of one deployment spends the same budgets. The counters are
-- the "sliding window counter" of the limits library (the same arithmetic its Redis and memory
-- storages use): a count for the current window and one for the previous, weighted by how much
-- of the previous window the sliding one still covers. Unlogged: a crash forgets the counts,
-- which only hands every caller a fresh budget; in exchange a hit writes no WAL.

create unlogged table if not exists private.rate_limit_windows (
  key text not null,
  window_index bigint not null,
  hits integer not null default 0,
  expires_at timestamptz not null,
  primary key (key, window_index)
);
create index if not exists rate_limit_windows_expires_at_idx on private.rate_limit_windows (expires_at);
comment on table private.rate_limit_windows is
  'Rate-limit counters per key and window (sliding window counter); service only, pruned as they expire.';
revoke all on private.rate_limit_windows from public, anon, authenticated;
grant select, insert, update, delete on private.rate_limit_windows to service_role;

-- Takes p_amount from the budget of p_key (p_limit per p_expiry seconds) when it allows, and
-- says so; p_amount 0 only reads. Returns the counts the caller shows as headers. One round trip
-- per hit. About one call in a thousand also deletes expired windows.
create or replace function private.take_rate_limit(p_key text, p_expiry integer, p_limit integer, p_amount integer)
returns table (allowed boolean, previous_hits integer, previous_ttl double precision, current_hits integer,
               current_ttl double precision)
language plpgsql
set search_path = ''
as $$
declare
  v_now double precision := extract(epoch from clock_timestamp());
  v_window bigint := floor(v_now / p_expiry);
  v_elapsed double precision := v_now - v_window * p_expiry::double precision;
begin
  select coalesce(sum(w.hits) filter (where w.window_index = v_window - 1), 0)::integer,
         coalesce(sum(w.hits) filter (where w.window_index = v_window), 0)::integer
    into previous_hits, current_hits
    from private.rate_limit_windows w
   where w.key = p_key and w.window_index in (v_window - 1, v_window);
  previous_ttl := case when previous_hits = 0 then 0 else p_expiry - v_elapsed end;
  current_ttl := 2 * p_expiry - v_elapsed;
  allowed := floor(previous_hits * previous_ttl / p_expiry + current_hits + p_amount) <= p_limit;
  if allowed and p_amount > 0 then
    insert into private.rate_limit_windows as w (key, window_index, hits, expires_at)
    values (p_key, v_window, p_amount, to_timestamp((v_window + 2) * p_expiry::double precision))
    on conflict (key, window_index) do update set hits = w.hits + excluded.hits
    returning w.hits into current_hits;
  end if;
  if random() < 0.001 then
    delete from private.rate_limit_windows w where w.expires_at < clock_timestamp();
  end if;
  return next;
end
$$;
comment on function private.take_rate_limit(text, integer, integer, integer) is
  'Spends (or, with amount 0, reads) a rate-limit budget; service only.';
revoke all on function private.take_rate_limit(text, integer, integer, integer) from public, anon, authenticated;
grant execute on function private.take_rate_limit(text, integer, integer, integer) to service_role;

-- Forgets the budgets of keys starting with p_prefix (all of one deployment's, for tests and
-- an operator's reset); returns how many windows were deleted.
create or replace function private.reset_rate_limits(p_prefix text)
returns integer
language sql
set search_path = ''
as $$
  with gone as (delete from private.rate_limit_windows where starts_with(key, p_prefix) returning 1)
  select count(*)::integer from gone;
$$;
comment on function private.reset_rate_limits(text) is 'Deletes the rate-limit windows of keys with a prefix; service only.';
revoke all on function private.reset_rate_limits(text) from public, anon, authenticated;
grant execute on function private.reset_rate_limits(text) to service_role;
