-- Business-time arithmetic for the SLA engine: due dates and elapsed business minutes, computed
-- in the database so that the API, n8n and the SLA sweeps all agree on one calendar.
--
-- Semantics (wall clock): every local date d in the calendar's time zone tz that has a row in
-- business_hours_config for its ISO weekday and is not in business_holidays contributes the
-- half-open interval [(d + opens_at) at time zone tz, (d + closes_at) at time zone tz).
-- Converting per day keeps a business day at its wall-clock length across DST changes (the US
-- change happens at 02:00 local, outside business hours). A local time that does not exist or
-- is ambiguous is resolved the way PostgreSQL's `at time zone` does (the later of the two
-- candidate instants); an interval that would end before it starts counts as empty.
--
-- Both functions are security invoker: they read the calendar with the caller's rights, so the
-- caller needs select on business_hours_config and business_holidays.
-- They are not for anon: only signed-in users and the service compute SLA clocks, and there is
-- no reason to let anonymous callers drive a loop of up to 3660 iterations through PostgREST RPC.

-- ============================================================================================
-- add_business_minutes
-- ============================================================================================
/*
 * The instant at which `minutes` business minutes have elapsed, counting from `start`.
 * - A start outside business hours counts from the next opening.
 * - If the minutes run out exactly at a closing time, that closing instant is returned
 *   (not the next opening).
 * - minutes = 0 returns start when it lies inside business hours (opens <= t < closes),
 *   else the next opening.
 * - null start returns null; null or negative minutes raise 22023; so does a calendar without
 *   business hours, or one that does not yield enough business time within 3660 local days of
 *   the start (e.g. every day a holiday), so that the loop is always bounded.
 * Walks one local day per iteration (never minute by minute): a 7-business-day SLA takes about
 * ten iterations, 100,000 minutes about 300.
 */
create or replace function public.add_business_minutes(start timestamptz, minutes integer)
returns timestamptz
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  max_days constant integer := 3660;
  tz text;
  opens time[] := array[null, null, null, null, null, null, null]::time[];
  closes time[] := array[null, null, null, null, null, null, null]::time[];
  holidays date[];
  remaining numeric;  -- business seconds still to elapse
  cur timestamptz;    -- no business time before this instant counts any more
  d date;
  first_day date;
  wd integer;
  open_at timestamptz;
  close_at timestamptz;
  seg_start timestamptz;
  available numeric;
  r record;
begin
  if minutes is null then
    raise exception 'minutes must not be null' using errcode = '22023';
  end if;
  if minutes < 0 then
    raise exception 'minutes must not be negative (got %)', minutes using errcode = '22023';
  end if;

  for r in select c.weekday, c.opens_at, c.closes_at, c.timezone from public.business_hours_config c loop
    opens[r.weekday] := r.opens_at;
    closes[r.weekday] := r.closes_at;
    tz := r.timezone;  -- one zone for all rows (enforced by a trigger)
  end loop;
  if tz is null then
    raise exception 'no business hours configured' using errcode = '22023';
  end if;

  if start is null then
    return null;
  end if;

  -- Begin one day early: cheap, and safe if a DST oddity maps the previous day's hours past
  -- local midnight.
  first_day := (start at time zone tz)::date - 1;
  select coalesce(array_agg(h.holiday_date), '{}') into holidays
  from public.business_holidays h
  where h.holiday_date between first_day and first_day + max_days;

  remaining := minutes::numeric * 60;
  cur := start;
  d := first_day;
  while d <= first_day + max_days loop
    wd := extract(isodow from d)::integer;
    if opens[wd] is not null and not (d = any (holidays)) then
      open_at := (d + opens[wd]) at time zone tz;
      close_at := (d + closes[wd]) at time zone tz;
      if close_at > cur and close_at > open_at then
        seg_start := greatest(open_at, cur);
        available := extract(epoch from close_at) - extract(epoch from seg_start);
        if remaining <= available then
          -- Seconds, not a day-carrying interval: adding '1 day' would follow the session zone.
          return seg_start + make_interval(secs => remaining::double precision);
        end if;
        remaining := remaining - available;
        cur := close_at;
      end if;
    end if;
    d := d + 1;
  end loop;

  raise exception 'fewer than % business minutes in the % days after %', minutes, max_days, start
    using errcode = '22023',
          hint = 'Check business_hours_config and business_holidays.';
end
$$;

comment on function public.add_business_minutes(timestamptz, integer) is
  'The instant at which the given business minutes have elapsed from start (business_hours_config, business_holidays).';

-- ============================================================================================
-- business_minutes_between
-- ============================================================================================
/*
 * Business minutes in [a, b): floor(business seconds / 60). If b < a, the negative of
 * business_minutes_between(b, a). Null in, null out (strict). A calendar without business
 * hours raises 22023 like add_business_minutes: a silent 0 would stop every SLA clock.
 * Inverse of add_business_minutes: for m >= 0, between(s, add(s, m)) = m.
 * Same per-day walk as add_business_minutes (a loop over local dates rather than one set-based
 * query, which cost more to plan on every call than the loop costs to run).
 */
create or replace function public.business_minutes_between(a timestamptz, b timestamptz)
returns integer
language plpgsql
stable
strict
security invoker
set search_path = ''
as $$
declare
  tz text;
  opens time[] := array[null, null, null, null, null, null, null]::time[];
  closes time[] := array[null, null, null, null, null, null, null]::time[];
  holidays date[];
  seconds numeric := 0;
  d date;
  last_day date;
  wd integer;
  r record;
begin
  if b < a then
    return -public.business_minutes_between(b, a);
  end if;

  for r in select c.weekday, c.opens_at, c.closes_at, c.timezone from public.business_hours_config c loop
    opens[r.weekday] := r.opens_at;
    closes[r.weekday] := r.closes_at;
    tz := r.timezone;
  end loop;
  if tz is null then
    raise exception 'no business hours configured' using errcode = '22023';
  end if;

  d := (a at time zone tz)::date - 1;  -- one day early, as in add_business_minutes
  last_day := (b at time zone tz)::date;
  select coalesce(array_agg(h.holiday_date), '{}') into holidays
  from public.business_holidays h
  where h.holiday_date between d and last_day;

  while d <= last_day loop
    wd := extract(isodow from d)::integer;
    if opens[wd] is not null and not (d = any (holidays)) then
      seconds := seconds + greatest(
        0,
        extract(epoch from least((d + closes[wd]) at time zone tz, b))
          - extract(epoch from greatest((d + opens[wd]) at time zone tz, a))
      );
    end if;
    d := d + 1;
  end loop;

  return floor(seconds / 60)::integer;
end
$$;

comment on function public.business_minutes_between(timestamptz, timestamptz) is
  'Business minutes in [a, b) (negative if b < a), per business_hours_config and business_holidays.';

revoke execute on function public.add_business_minutes(timestamptz, integer) from public, anon;
revoke execute on function public.business_minutes_between(timestamptz, timestamptz) from public, anon;
grant execute on function public.add_business_minutes(timestamptz, integer) to authenticated, service_role;
grant execute on function public.business_minutes_between(timestamptz, timestamptz) to authenticated, service_role;
