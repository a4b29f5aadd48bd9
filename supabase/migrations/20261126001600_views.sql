-- Read models for the four "views" endpoints of the REST API (dashboard, performance, SLA,
-- notifications) and the one mutation they need (mark notifications read).
--
-- Each view is one function returning one document with camelCase keys, so an endpoint
-- answers in one round trip. All of them are security invoker: row-level security decides
-- what each caller sees, exactly as if the caller had queried the tables (a client user's
-- dashboard counts only their client's workflows; internal tables such as task_executions or
-- sla_alerts simply come out empty for them).
--
-- Performance (target: dashboard p95 < 50 ms with 100,000 workflows and 1,000,000 tasks):
-- - every list is read in its final order from an index and cut by LIMIT before any per-row
--   work; business time is computed only for the rows returned, all of them in one pass
--   (private.business_minutes_many) instead of one calendar loop per row;
-- - the summary counts (open workflows and tasks by status) come from counters kept by
--   triggers (see "Activity counters"), a sum over a few hundred rows; the remaining counts
--   (metrics of a time window) read partial indexes that also hold the columns of the RLS
--   filter, so they are answered from the index alone (see "Indexes" below);
-- - conditions on enum columns (status, sla_status...) are written exactly as the predicates
--   of those partial indexes. Enum comparison is not leakproof, so under RLS PostgreSQL may
--   not use it as an index condition (it must filter after the policy); the only way an enum
--   condition narrows an index scan for a signed-in caller is a partial index predicate;
-- - a statement with an optional filter (`p_type is null or ...`) needs a plan made for the
--   actual arguments, where the filter folds away and the planner can use the index that
--   fits the case at hand (a generic plan would keep the filter and could not): the views
--   with such filters (performance, notifications) run with plan_cache_mode =
--   force_custom_plan. Planning each statement on every call costs a few milliseconds,
--   though, so the two views read most often (dashboard, SLA) have no optional filter in any
--   statement: where an argument changes the query, each case is a statement of its own,
--   and their cached plans are reused from call to call;
-- - jit = off, since compiling these short queries costs more (tens of milliseconds) than
--   running them;
-- - the dashboard and SLA views, read most often, build json (json_build_object, json_agg)
--   rather than jsonb and return it, and the service passes the text on as it comes: jsonb
--   builds a tree of every object and then prints it, about twice the work for the same text.
--   Measured with pgbench (one client, BEGIN + request context + the view + COMMIT, three
--   alternating runs each): dashboard 6.6-7.3 ms -> 5.4-6.4 ms, SLA view 4.9-5.5 ms ->
--   3.7-5.1 ms. Their keys come in the order written (jsonb would sort them by length).
--
-- Risk order, used by the HIL queue and the SLA tracking list: BREACHED first, then
-- AT_RISK, then ON_TIME; within each, the earliest SLA due date first (no due date last),
-- then the most urgent priority. Both enums are declared in increasing order
-- (ON_TIME < AT_RISK < BREACHED, LOW < NORMAL < HIGH < URGENT), so this is
-- `order by sla_status desc, sla_due_at, priority desc` (id breaks remaining ties).
--
-- A task needs a person (the HIL queue) when it is a HIL step that is open (PENDING, RUNNING,
-- WAITING, AWAITING_REVIEW), or when it is AWAITING_REVIEW or FAILED in a workflow that is not
-- finished (neither COMPLETED nor CANCELLED).
--
-- Errors: 22023 for a bad argument (the service maps it to 422).

-- ============================================================================================
-- Indexes
--
-- Row-level security adds its filter to every scan (tasks: is_hil() or client_id = ... or
-- workflow_id = ...; workflows: ... client_id = ... or id = ...). An index answers a count
-- without visiting the table only if it also holds the columns that filter reads, so the
-- indexes the views count from include client_id and workflow_id (tasks) or client_id and id
-- (workflows). Their predicates are repeated word for word in the queries.
-- ============================================================================================
-- Candidates for the HIL queue (a HIL step that is open, or any step awaiting review or
-- failed), in risk order: the dashboard reads the first 50 in index order, and counts the
-- queue, from this index alone (executor_type and status included for the finished-workflow
-- test, assigned_to for the per-person filter).
create index tasks_person_queue_idx on public.tasks (sla_status desc, sla_due_at, priority desc, id)
  include (workflow_id, client_id, executor_type, status, assigned_to)
  where (executor_type = 'HIL' and status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
     or status in ('AWAITING_REVIEW', 'FAILED');

-- Open tasks in risk order: the SLA tracking list (read in index order, cut by LIMIT) and the
-- SLA summary counts (index-only; the existing tasks_open_sla_idx holds neither sla_status
-- nor the RLS columns, so it needs a table visit per open task).
create index tasks_open_risk_idx on public.tasks (sla_status desc, sla_due_at, priority desc, id)
  include (workflow_id, client_id)
  where status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW');

-- Open tasks by the person holding them (the dashboard's team): counted per person from the
-- index alone, with the RLS columns.
create index tasks_open_assignee_idx on public.tasks (assigned_to, sla_status)
  include (workflow_id, client_id)
  where assigned_to is not null and status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED');

-- Tasks completed in a time window (dashboard SLA compliance): a range scan from the index
-- alone instead of a scan of every task.
create index tasks_completed_at_idx on public.tasks (completed_at)
  include (sla_due_at, workflow_id, client_id)
  where status = 'COMPLETED';

-- Active workflows in dashboard order: the first 50 straight from the index.
create index workflows_active_priority_idx on public.workflows (priority desc, updated_at desc, id)
  where status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED');

-- Workflows not finished (neither COMPLETED nor CANCELLED): the active and pending counts in
-- one pass, the set of unfinished workflows the HIL queue checks (index-only), and the workflow
-- list filtered by status and type. Under RLS the enum comparisons of that list (status =
-- any(...), workflow_type = any(...)) are not leakproof, so they are never index conditions
-- there and an index on status or on type does not serve a person's list; this index does,
-- since its predicate is implied by the filter (IN_PROGRESS implies "not finished"), scanned
-- whole with the filter checked on each entry. workflow_type is included so that the total of
-- a status + type list is an index-only scan (measured on 10,000 workflows, the list of
-- IN_PROGRESS payoffs: 5.1-6.3 ms -> 4.1-4.4 ms; the entry stays 48 bytes, the column fits in
-- the alignment padding).
create index workflows_unfinished_idx on public.workflows (id)
  include (status, client_id, workflow_type)
  where status not in ('COMPLETED', 'CANCELLED');

-- Workflows completed in a time window (dashboard summary and metrics): a range scan,
-- index-only with started_at for the average completion time.
create index workflows_completed_at_idx on public.workflows (completed_at)
  include (started_at, id, client_id)
  where status = 'COMPLETED';

-- ============================================================================================
-- Helpers
-- ============================================================================================
/*
 * Start of a view's time window: p_now minus 24 hours ('today'), 7 x 24 hours ('week') or
 * 30 x 24 hours ('month'). Fixed lengths in hours, so the window does not depend on the
 * session time zone. Anything else, or a null p_now, raises 22023.
 */
create or replace function private.view_window_start(p_timeframe text, p_now timestamptz)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_now is null then
    raise exception 'p_now must not be null' using errcode = '22023';
  end if;
  return p_now - case p_timeframe
    when 'today' then interval '24 hours'
    when 'week' then interval '168 hours'
    when 'month' then interval '720 hours'
    else null
  end;
end
$$;

/*
 * The timeframe check, separate so it raises before any query runs.
 */
create or replace function private.check_view_timeframe(p_timeframe text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_timeframe is null or p_timeframe not in ('today', 'week', 'month') then
    raise exception 'timeframe must be one of today, week, month (got %)', coalesce(p_timeframe, 'null')
      using errcode = '22023';
  end if;
end
$$;

/*
 * One notification as the views show it (dashboard recentNotifications, notifications_view):
 * json, which the dashboard's json_agg and notifications_view's jsonb_agg both take.
 */
create or replace function private.notification_json(n public.notifications)
returns json
language sql
stable
set search_path = ''
as $$
  select json_build_object(
    'id', n.id,
    'notificationType', n.notification_type,
    'priority', n.priority,
    'title', n.title,
    'message', n.message,
    'actionRequired', n.action_required,
    'workflowId', n.workflow_id,
    'taskId', n.task_id,
    'readAt', n.read_at,
    'createdAt', n.created_at
  )
$$;

/*
 * public.business_minutes_between for many pairs at once: result[i] is
 * business_minutes_between(p_a[i], p_b[i]), null when either is null. Same calendar and
 * semantics (20261126001000_business_time.sql), computed in one pass: calling the function per
 * row walks the calendar day by day for every row (a task a year overdue costs a year of
 * iterations), while this reads the calendar once, converts each local day of the whole span
 * once, and sorts those days together with every instant asked about.
 * How: with E(t) = the business seconds from the start of the span up to t, the business
 * seconds in [a, b) are E(b) - E(a), and minutes = floor(seconds / 60), negated when b < a,
 * as in the function. E(t) = the full length of every business day closing at or before t,
 * plus the part of the day open at t, if any. That relies on the days' intervals following one
 * another without overlap, which holds since each lies within its own local day.
 * Raises 22023 without business hours, like the function (unless no pair needs computing).
 */
create or replace function private.business_minutes_many(p_a timestamptz[], p_b timestamptz[])
returns integer[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_tz text;
  v_first_day date;
  v_last_day date;
  v_minutes integer[];
begin
  -- Nothing to compute (no pair without a null): no calendar needed either.
  if not exists (select 1 from unnest(p_a, p_b) as x (a, b) where x.a is not null and x.b is not null) then
    return array(select null::integer from unnest(p_a, p_b));
  end if;
  select min(c.timezone) into v_tz from public.business_hours_config c;  -- one zone (trigger-enforced)
  if v_tz is null then
    raise exception 'no business hours configured' using errcode = '22023';
  end if;
  -- From one day early, as in business_minutes_between.
  select (min(least(x.a, x.b)) at time zone v_tz)::date - 1, (max(greatest(x.a, x.b)) at time zone v_tz)::date
    into v_first_day, v_last_day
    from unnest(p_a, p_b) as x (a, b)
   where x.a is not null and x.b is not null;

  with business_days as (
    select (d.day + c.opens_at) at time zone v_tz as opens_at,
           (d.day + c.closes_at) at time zone v_tz as closes_at
      from (select v_first_day + i as day from generate_series(0, v_last_day - v_first_day) as i) d
      join public.business_hours_config c on c.weekday = extract(isodow from d.day)
     where not exists (select 1 from public.business_holidays h where h.holiday_date = d.day)
  ),
  -- Each business day as its closing instant, and each instant asked about (kind 1), in time
  -- order; a day closing exactly at an instant comes first (it is complete by then).
  timeline as (
    select b.closes_at as at, 0 as kind, b.opens_at,
           extract(epoch from b.closes_at) - extract(epoch from b.opens_at) as seconds
      from business_days b
     where b.closes_at > b.opens_at
    union all
    select p.at, 1, null, 0
      from (select distinct u.at from unnest(p_a || p_b) as u (at) where u.at is not null) p
  ),
  elapsed as (
    select l.at, l.kind,
           sum(l.seconds) over days_before
             -- the day open at this instant, if any: the next day to close, if it opened before
             + greatest(0, extract(epoch from l.at) - extract(epoch from min(l.opens_at) over days_after)) as seconds
      from timeline l
    window days_before as (order by l.at, l.kind rows between unbounded preceding and current row),
           -- the same order backwards (a frame that grows, not one whose start moves: min()
           -- would be recomputed for every row)
           days_after as (order by l.at desc, l.kind desc rows between unbounded preceding and current row)
  )
  select coalesce(array_agg(
           case when x.a is null or x.b is null then null
                else case when x.b < x.a then -1 else 1 end * floor(abs(eb.seconds - ea.seconds) / 60)::integer
           end order by x.ord), '{}')
    into v_minutes
    from unnest(p_a, p_b) with ordinality as x (a, b, ord)
    left join elapsed ea on ea.kind = 1 and ea.at = x.a
    left join elapsed eb on eb.kind = 1 and eb.at = x.b;
  return v_minutes;
end
$$;

revoke execute on function private.view_window_start(text, timestamptz),
  private.check_view_timeframe(text),
  private.notification_json(public.notifications),
  private.business_minutes_many(timestamptz[], timestamptz[]) from public, anon;
grant execute on function private.view_window_start(text, timestamptz),
  private.check_view_timeframe(text),
  private.notification_json(public.notifications),
  private.business_minutes_many(timestamptz[], timestamptz[]) to authenticated, service_role;

-- ============================================================================================
-- Activity counters
--
-- The dashboard summary and the SLA summary count open workflows and tasks by status. Counting
-- them per request reads tens of thousands of index entries (tens of milliseconds with 100,000
-- tasks); these counters keep the same numbers up to date as rows change, so a summary is a
-- sum over a few hundred rows.
--
-- Two levels:
-- - private.workflow_activity: one row per workflow with what it and its tasks add to each
--   count. Any change to a workflow or its tasks recomputes that workflow's row from the
--   current rows (about a dozen tasks), so the result never depends on the order in which
--   triggers fire within a transaction, and a workflow's contribution is always exact.
-- - private.activity_counters: the sums of those rows per client, split into 8 shards by
--   workflow id so that concurrent changes to different workflows of one client rarely wait
--   for the same counter row. Row-level security gives each caller exactly the rows of the
--   clients whose workflows and tasks they may read (HIL people: all; a client's users: their
--   client's), so the sums equal what a count under RLS would give. Agents see no counter rows;
--   the views count their one workflow directly.
--
-- What is counted (the same conditions the views used to count with):
-- - workflows_total: every workflow (the total of an unfiltered workflow list);
-- - active_workflows: status IN_PROGRESS, AWAITING_REVIEW, BLOCKED or PAUSED; pending_workflows:
--   status PENDING;
-- - tasks_awaiting_hil: tasks needing a person (a HIL step that is open, or a step awaiting
--   review or failed in a workflow that is not finished);
-- - tasks_at_risk, tasks_breached: open tasks (PENDING, RUNNING, WAITING, AWAITING_REVIEW) by
--   SLA status;
-- - clocks_on_time, clocks_at_risk, clocks_breached: open tasks with an SLA due date, by SLA
--   status.
--
-- Concurrency: recomputing a workflow first locks its activity row, then counts in a new
-- statement, which (read committed) sees every transaction that changed the workflow before
-- and committed; a transaction that changes the same workflow later waits for the lock.
-- private.rebuild_activity_counters() recomputes everything (after a bulk load with triggers
-- off, or to check the counters).
-- ============================================================================================
create table private.workflow_activity (
  workflow_id uuid primary key,
  client_id uuid not null,
  shard smallint not null,
  workflows_total integer not null,
  active_workflows integer not null,
  pending_workflows integer not null,
  tasks_awaiting_hil integer not null,
  tasks_at_risk integer not null,
  tasks_breached integer not null,
  clocks_on_time integer not null,
  clocks_at_risk integer not null,
  clocks_breached integer not null
);
comment on table private.workflow_activity is
  'What each workflow and its tasks add to private.activity_counters (kept by triggers).';

create table private.activity_counters (
  client_id uuid not null,
  shard smallint not null check (shard between 0 and 7),
  workflows_total bigint not null default 0,
  active_workflows bigint not null default 0,
  pending_workflows bigint not null default 0,
  tasks_awaiting_hil bigint not null default 0,
  tasks_at_risk bigint not null default 0,
  tasks_breached bigint not null default 0,
  clocks_on_time bigint not null default 0,
  clocks_at_risk bigint not null default 0,
  clocks_breached bigint not null default 0,
  primary key (client_id, shard)
);
comment on table private.activity_counters is
  'Open workflows and tasks by status per client (8 shards per client; sum them), kept by triggers for the dashboard and SLA summaries.';

alter table private.activity_counters enable row level security;
create policy "HIL people can read every counter" on private.activity_counters
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own client's counters" on private.activity_counters
  for select to authenticated using (client_id = (select private.client_id()));
revoke all on private.activity_counters from public, anon, authenticated;
grant select on private.activity_counters to authenticated, service_role;
revoke all on private.workflow_activity from public, anon, authenticated;

/*
 * The counter shard of a workflow: its id's last byte, modulo 8.
 */
create or replace function private.counter_shard(p_workflow_id uuid)
returns smallint
language plpgsql immutable
set search_path = ''
as $$
-- plpgsql keeps its plan for the session; a SQL function with a SET clause is planned again
-- in every statement that calls it, which costs more than the call.
begin
  return (get_byte(uuid_send(p_workflow_id), 15) % 8)::smallint;
end
$$;

/*
 * Recomputes the activity of the given workflows from their current rows and applies the
 * difference to private.activity_counters. A workflow that no longer exists adds nothing.
 */
create or replace function private.refresh_activity(p_workflow_ids uuid[])
returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan  -- docs/performance.md#generic-plans
as $$
begin
  if coalesce(cardinality(p_workflow_ids), 0) = 0 then
    return;
  end if;
  -- Lock the rows (creating those of new workflows) before counting, in id order.
  insert into private.workflow_activity as a (workflow_id, client_id, shard, workflows_total, active_workflows,
                                              pending_workflows, tasks_awaiting_hil, tasks_at_risk, tasks_breached,
                                              clocks_on_time, clocks_at_risk, clocks_breached)
  select w.id, w.client_id, private.counter_shard(w.id), 0, 0, 0, 0, 0, 0, 0, 0, 0
    from public.workflows w
   where w.id = any (p_workflow_ids)
   order by w.id
  on conflict (workflow_id) do nothing;
  perform 1 from private.workflow_activity a where a.workflow_id = any (p_workflow_ids) order by a.workflow_id for update;

  with fresh as (
    select w.id as workflow_id, w.client_id, private.counter_shard(w.id) as shard, 1 as workflows_total,
           (w.status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED'))::integer as active_workflows,
           (w.status = 'PENDING')::integer as pending_workflows,
           t.awaiting, t.at_risk, t.breached, t.on_time_due, t.at_risk_due, t.breached_due
      from public.workflows w
     cross join lateral (
       select count(*) filter (where (t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
                                  or (t.status in ('AWAITING_REVIEW', 'FAILED') and w.status not in ('COMPLETED', 'CANCELLED')))::integer as awaiting,
              count(*) filter (where t.open and t.sla_status = 'AT_RISK')::integer as at_risk,
              count(*) filter (where t.open and t.sla_status = 'BREACHED')::integer as breached,
              count(*) filter (where t.open and t.has_due and t.sla_status = 'ON_TIME')::integer as on_time_due,
              count(*) filter (where t.open and t.has_due and t.sla_status = 'AT_RISK')::integer as at_risk_due,
              count(*) filter (where t.open and t.has_due and t.sla_status = 'BREACHED')::integer as breached_due
         from (select x.executor_type, x.status, x.sla_status,
                      x.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') as open,
                      x.sla_due_at is not null as has_due
                 from public.tasks x
                where x.workflow_id = w.id) t
     ) t
     where w.id = any (p_workflow_ids)
  ),
  stored as (
    select a.* from private.workflow_activity a where a.workflow_id = any (p_workflow_ids)
  ),
  -- What changes: each workflow's fresh values minus its stored ones (a moved workflow takes
  -- its share from one client to another).
  deltas as (
    select f.client_id, f.shard, f.workflows_total, f.active_workflows, f.pending_workflows, f.awaiting, f.at_risk,
           f.breached, f.on_time_due, f.at_risk_due, f.breached_due
      from fresh f
    union all
    select s.client_id, s.shard, -s.workflows_total, -s.active_workflows, -s.pending_workflows, -s.tasks_awaiting_hil, -s.tasks_at_risk,
           -s.tasks_breached, -s.clocks_on_time, -s.clocks_at_risk, -s.clocks_breached
      from stored s
  ),
  summed as (
    select d.client_id, d.shard, sum(d.workflows_total) as workflows_total, sum(d.active_workflows) as active_workflows, sum(d.pending_workflows) as pending_workflows,
           sum(d.awaiting) as awaiting, sum(d.at_risk) as at_risk, sum(d.breached) as breached,
           sum(d.on_time_due) as on_time_due, sum(d.at_risk_due) as at_risk_due, sum(d.breached_due) as breached_due
      from deltas d
     group by d.client_id, d.shard
  ),
  saved as (
    update private.workflow_activity a
       set client_id = f.client_id, shard = f.shard, workflows_total = f.workflows_total,
           active_workflows = f.active_workflows,
           pending_workflows = f.pending_workflows, tasks_awaiting_hil = f.awaiting, tasks_at_risk = f.at_risk,
           tasks_breached = f.breached, clocks_on_time = f.on_time_due, clocks_at_risk = f.at_risk_due,
           clocks_breached = f.breached_due
      from fresh f
     where a.workflow_id = f.workflow_id
       and (a.client_id, a.shard, a.workflows_total, a.active_workflows, a.pending_workflows, a.tasks_awaiting_hil, a.tasks_at_risk,
            a.tasks_breached, a.clocks_on_time, a.clocks_at_risk, a.clocks_breached)
           is distinct from (f.client_id, f.shard, f.workflows_total, f.active_workflows, f.pending_workflows, f.awaiting, f.at_risk,
                             f.breached, f.on_time_due, f.at_risk_due, f.breached_due)
  ),
  gone as (
    delete from private.workflow_activity a
     where a.workflow_id = any (p_workflow_ids)
       and not exists (select 1 from fresh f where f.workflow_id = a.workflow_id)
  )
  insert into private.activity_counters as c (client_id, shard, workflows_total, active_workflows, pending_workflows,
                                              tasks_awaiting_hil, tasks_at_risk, tasks_breached, clocks_on_time,
                                              clocks_at_risk, clocks_breached)
  select s.client_id, s.shard, s.workflows_total, s.active_workflows, s.pending_workflows, s.awaiting, s.at_risk,
         s.breached, s.on_time_due, s.at_risk_due, s.breached_due
    from summed s
   where (s.workflows_total, s.active_workflows, s.pending_workflows, s.awaiting, s.at_risk, s.breached, s.on_time_due,
          s.at_risk_due, s.breached_due) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
   order by s.client_id, s.shard
  on conflict (client_id, shard) do update
     set workflows_total = c.workflows_total + excluded.workflows_total,
         active_workflows = c.active_workflows + excluded.active_workflows,
         pending_workflows = c.pending_workflows + excluded.pending_workflows,
         tasks_awaiting_hil = c.tasks_awaiting_hil + excluded.tasks_awaiting_hil,
         tasks_at_risk = c.tasks_at_risk + excluded.tasks_at_risk,
         tasks_breached = c.tasks_breached + excluded.tasks_breached,
         clocks_on_time = c.clocks_on_time + excluded.clocks_on_time,
         clocks_at_risk = c.clocks_at_risk + excluded.clocks_at_risk,
         clocks_breached = c.clocks_breached + excluded.clocks_breached;
end
$$;

/*
 * What a task adds to its workflow's activity, as a comparable value: its workflow, whether it
 * is an open HIL step, whether it awaits review or failed, and while it is open its SLA status
 * and whether it has a due date. Two versions of a task with equal shares add the same to
 * every count (a task started or waiting changes none).
 */
create or replace function private.task_activity_share(t public.tasks)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return concat_ws('/', t.workflow_id,
                   t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'),
                   t.status in ('AWAITING_REVIEW', 'FAILED'),
                   case when t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW')
                        then concat_ws('/', t.sla_status, t.sla_due_at is null) end);
end
$$;

/*
 * Statement triggers: the workflows of the tasks whose share changed are recomputed once per
 * statement (an update that changes nothing counted, such as an assignment, a progress counter
 * or a task that starts, costs one comparison per row).
 */
create or replace function private.count_task_changes() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.refresh_activity(array(select distinct n.workflow_id from new_rows n));
  elsif tg_op = 'DELETE' then
    perform private.refresh_activity(array(select distinct o.workflow_id from old_rows o));
  else
    perform private.refresh_activity(array(
      select distinct x.workflow_id
        from old_rows o
        join new_rows n on n.id = o.id
       cross join lateral (values (o.workflow_id), (n.workflow_id)) as x (workflow_id)
       where private.task_activity_share(o) is distinct from private.task_activity_share(n)));
  end if;
  return null;
end
$$;

create or replace function private.count_workflow_changes() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.refresh_activity(array(select n.id from new_rows n));
  elsif tg_op = 'DELETE' then
    perform private.refresh_activity(array(select o.id from old_rows o));
  else
    perform private.refresh_activity(array(
      select n.id
        from old_rows o
        join new_rows n on n.id = o.id
       where (o.status, o.client_id) is distinct from (n.status, n.client_id)));
  end if;
  return null;
end
$$;

create trigger tasks_count_inserts after insert on public.tasks
  referencing new table as new_rows for each statement execute function private.count_task_changes();
create trigger tasks_count_updates after update on public.tasks
  referencing old table as old_rows new table as new_rows for each statement execute function private.count_task_changes();
create trigger tasks_count_deletes after delete on public.tasks
  referencing old table as old_rows for each statement execute function private.count_task_changes();
create trigger workflows_count_inserts after insert on public.workflows
  referencing new table as new_rows for each statement execute function private.count_workflow_changes();
create trigger workflows_count_updates after update on public.workflows
  referencing old table as old_rows new table as new_rows for each statement execute function private.count_workflow_changes();
create trigger workflows_count_deletes after delete on public.workflows
  referencing old table as old_rows for each statement execute function private.count_workflow_changes();

/*
 * Recomputes every workflow's activity and every counter from the rows (after a bulk load with
 * triggers off; the result must equal what the triggers keep). Returns the number of
 * workflows.
 */
create or replace function private.rebuild_activity_counters()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count bigint;
begin
  lock table private.workflow_activity, private.activity_counters in exclusive mode;
  delete from private.workflow_activity;
  delete from private.activity_counters;
  perform private.refresh_activity(array(select w.id from public.workflows w));
  select count(*) into v_count from private.workflow_activity;
  return v_count;
end
$$;

/*
 * The summary counts a caller may see, summed over the counter rows RLS lets them read, or
 * counted directly for an agent (one workflow; agents read no counter rows).
 */
create or replace function private.visible_activity(
  out workflows_total bigint, out active_workflows bigint, out pending_workflows bigint, out tasks_awaiting_hil bigint,
  out tasks_at_risk bigint, out tasks_breached bigint, out clocks_on_time bigint,
  out clocks_at_risk bigint, out clocks_breached bigint)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  v_workflow_id uuid := private.agent_workflow_id();
begin
  if v_workflow_id is null then
    select coalesce(sum(c.workflows_total), 0), coalesce(sum(c.active_workflows), 0), coalesce(sum(c.pending_workflows), 0),
           coalesce(sum(c.tasks_awaiting_hil), 0), coalesce(sum(c.tasks_at_risk), 0),
           coalesce(sum(c.tasks_breached), 0), coalesce(sum(c.clocks_on_time), 0),
           coalesce(sum(c.clocks_at_risk), 0), coalesce(sum(c.clocks_breached), 0)
      into workflows_total, active_workflows, pending_workflows, tasks_awaiting_hil, tasks_at_risk, tasks_breached,
           clocks_on_time, clocks_at_risk, clocks_breached
      from private.activity_counters c;
    return;
  end if;
  -- An agent: its workflow, if RLS lets it read it, and that workflow's tasks.
  select count(*),
         count(*) filter (where w.status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED')),
         count(*) filter (where w.status = 'PENDING')
    into workflows_total, active_workflows, pending_workflows
    from public.workflows w
   where w.id = v_workflow_id;
  select count(*) filter (where (t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
                              or (t.status in ('AWAITING_REVIEW', 'FAILED')
                                  and exists (select 1 from public.workflows w
                                               where w.id = t.workflow_id and w.status not in ('COMPLETED', 'CANCELLED')))),
         count(*) filter (where t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and t.sla_status = 'AT_RISK'),
         count(*) filter (where t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and t.sla_status = 'BREACHED'),
         count(*) filter (where t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and t.sla_due_at is not null
                            and t.sla_status = 'ON_TIME'),
         count(*) filter (where t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and t.sla_due_at is not null
                            and t.sla_status = 'AT_RISK'),
         count(*) filter (where t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and t.sla_due_at is not null
                            and t.sla_status = 'BREACHED')
    into tasks_awaiting_hil, tasks_at_risk, tasks_breached, clocks_on_time, clocks_at_risk, clocks_breached
    from public.tasks t
   where t.workflow_id = v_workflow_id;
end
$$;

revoke execute on function private.counter_shard(uuid), private.task_activity_share(public.tasks), private.refresh_activity(uuid[]),
  private.rebuild_activity_counters(), private.visible_activity() from public, anon, authenticated;
grant execute on function private.visible_activity() to authenticated, service_role;
grant execute on function private.rebuild_activity_counters() to service_role;

-- ============================================================================================
-- dashboard_view
-- ============================================================================================
/*
 * The console's filters on the dashboard's task queue, for one task: its status among
 * f_status, its client, its assignee, and its workflow's type and a search (p_pattern, a LIKE
 * pattern, in the title, address or loan number; p_id_text, the search as typed, equal to the
 * workflow id). A null filter lets everything through. dashboard_view calls it only when a
 * filter is given.
 */
create or replace function private.queue_filters_match(
  p_status public.task_status, p_client_id uuid, p_assigned_to uuid, p_workflow_id uuid,
  f_status public.task_status[], f_type public.workflow_type, f_client_id uuid, f_assigned_to uuid,
  p_pattern text, p_id_text text
) returns boolean
language sql
stable
set search_path = ''
as $$
  select (f_status is null or p_status = any(f_status))
     and (f_client_id is null or p_client_id = f_client_id)
     and (f_assigned_to is null or p_assigned_to = f_assigned_to)
     and (f_type is null and p_pattern is null or exists (
           select 1 from public.workflows w
            where w.id = p_workflow_id
              and (f_type is null or w.workflow_type = f_type)
              and (p_pattern is null or w.id::text = p_id_text or w.title ilike p_pattern
                   or w.payload ->> 'address' ilike p_pattern or w.payload ->> 'propertyAddress' ilike p_pattern
                   or w.payload ->> 'loanNumber' ilike p_pattern)))
$$;
revoke execute on function private.queue_filters_match(public.task_status, uuid, uuid, uuid, public.task_status[],
  public.workflow_type, uuid, uuid, text, text) from public, anon;
grant execute on function private.queue_filters_match(public.task_status, uuid, uuid, uuid, public.task_status[],
  public.workflow_type, uuid, uuid, text, text) to authenticated, service_role;

/*
 * The HIL dashboard in one document: summary counts, the work queue (tasks needing a person,
 * riskiest first, at most 50), active workflows (most urgent first, at most 50), the caller's
 * ten newest notifications and the metrics of the timeframe (today / week / month: the 24
 * hours, 7 days or 30 days before p_now).
 * p_hil_id narrows taskQueue (tasks assigned to that person or in workflows they own) and
 * activeWorkflows (workflows they own); summary and metrics are over everything the caller
 * may see. Notifications are always the caller's own (auth.uid()).
 * The queue's filters (the console's): task statuses, workflow type, client, assignee, and a
 * search matching the workflow id, its title, or its payload's address or loan number
 * (case-insensitive substring). team: every HIL person with the open tasks they hold and how
 * many of those are at risk or breached (the manager's view of who holds what).
 */
create or replace function public.dashboard_view(
  p_hil_id uuid default null,
  p_timeframe text default 'today',
  p_now timestamptz default now(),
  p_task_status public.task_status[] default null,
  p_workflow_type public.workflow_type default null,
  p_client_id uuid default null,
  p_assigned_to uuid default null,
  p_search text default null
) returns json
language plpgsql
stable
security invoker
set search_path = ''
set jit = off
as $$
declare
  v_me uuid := auth.uid();
  v_since timestamptz;
  v_active bigint;
  v_pending bigint;
  v_awaiting_hil bigint;
  v_at_risk bigint;
  v_breached bigint;
  v_unread bigint;
  v_queue_ids uuid[];
  v_active_ids uuid[];
  v_queue_due timestamptz[];
  v_queue_minutes integer[];
  v_queue json;
  v_workflows json;
  v_notifications json;
  v_metrics json;
  v_team json;
  -- The search as a LIKE pattern: its own characters matched literally, anywhere in the text.
  v_search text := case when nullif(btrim(p_search), '') is not null
                        then '%' || replace(replace(replace(btrim(p_search), '\', '\\'), '%', '\%'), '_', '\_') || '%' end;
  -- No filter given (the dashboard as it always was): the filter function is never called.
  v_unfiltered boolean := p_task_status is null and p_workflow_type is null and p_client_id is null
                          and p_assigned_to is null and nullif(btrim(p_search), '') is null;
begin
  perform private.check_view_timeframe(p_timeframe);
  v_since := private.view_window_start(p_timeframe, p_now);

  -- Summary, from the activity counters.
  select a.active_workflows, a.pending_workflows, a.tasks_awaiting_hil, a.tasks_at_risk, a.tasks_breached
    into v_active, v_pending, v_awaiting_hil, v_at_risk, v_breached
    from private.visible_activity() a;

  select count(*) into v_unread
    from public.notifications n
   where n.recipient_id = v_me and n.read_at is null;

  -- Work queue: first the ids of the 50 riskiest tasks, read in the order of
  -- tasks_person_queue_idx (index-only, stopping at 50); then business time and details for
  -- those only. The workflow of each candidate is looked up by key as the index is read (a
  -- lateral join: a set of all unfinished workflows would be built in full before the first
  -- row). A person's work (p_hil_id): the tasks assigned to them and the tasks of the
  -- workflows they own (that set looked up once, hashed); a statement of its own, so that
  -- each one's cached plan fits its case.
  if p_hil_id is null then
    v_queue_ids := array(
      select t.id
        from public.tasks t
        left join lateral (select w.status from public.workflows w where w.id = t.workflow_id) tw on true
       where ((t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
              or t.status in ('AWAITING_REVIEW', 'FAILED'))
         and ((t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
              or tw.status not in ('COMPLETED', 'CANCELLED'))
         and (v_unfiltered
              or private.queue_filters_match(t.status, t.client_id, t.assigned_to, t.workflow_id, p_task_status,
                                             p_workflow_type, p_client_id, p_assigned_to, v_search,
                                             lower(btrim(p_search))))
       order by t.sla_status desc, t.sla_due_at, t.priority desc, t.id
       limit 50);
  else
    v_queue_ids := array(
      select t.id
        from public.tasks t
        left join lateral (select w.status from public.workflows w where w.id = t.workflow_id) tw on true
       where ((t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
              or t.status in ('AWAITING_REVIEW', 'FAILED'))
         and ((t.executor_type = 'HIL' and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'))
              or tw.status not in ('COMPLETED', 'CANCELLED'))
         and (t.assigned_to = p_hil_id
              or t.workflow_id in (select w.id from public.workflows w where w.hil_owner_id = p_hil_id))
         and (v_unfiltered
              or private.queue_filters_match(t.status, t.client_id, t.assigned_to, t.workflow_id, p_task_status,
                                             p_workflow_type, p_client_id, p_assigned_to, v_search,
                                             lower(btrim(p_search))))
       order by t.sla_status desc, t.sla_due_at, t.priority desc, t.id
       limit 50);
  end if;

  v_queue_due := array(
    select t.sla_due_at
      from unnest(v_queue_ids) with ordinality as q (id, ord)
      join public.tasks t on t.id = q.id
     order by q.ord);
  v_queue_minutes := private.business_minutes_many(
    array_fill(p_now, array[cardinality(v_queue_due)]), v_queue_due);

  select coalesce(json_agg(json_build_object(
           'taskId', t.id,
           'workflowId', t.workflow_id,
           'workflowTitle', w.title,
           'workflowType', w.workflow_type,
           'clientId', t.client_id,
           'taskKey', t.task_key,
           'title', t.title,
           'status', t.status,
           'priority', t.priority,
           'executorType', t.executor_type,
           'agentName', t.agent_name,
           'assignedTo', t.assigned_to,
           'slaDueAt', t.sla_due_at,
           'slaStatus', t.sla_status,
           'businessMinutesRemaining', v_queue_minutes[q.ord]
         ) order by q.ord), '[]'::json)
    into v_queue
    from unnest(v_queue_ids) with ordinality as q (id, ord)
    join public.tasks t on t.id = q.id
    join public.workflows w on w.id = t.workflow_id;

  -- Active workflows, most urgent first, then most recently updated (p_hil_id: those they
  -- own; a statement of its own, as above).
  if p_hil_id is null then
    v_active_ids := array(
      select w.id
        from public.workflows w
       where w.status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED')
       order by w.priority desc, w.updated_at desc, w.id
       limit 50);
  else
    v_active_ids := array(
      select w.id
        from public.workflows w
       where w.status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED') and w.hil_owner_id = p_hil_id
       order by w.priority desc, w.updated_at desc, w.id
       limit 50);
  end if;
  select coalesce(json_agg(json_build_object(
           'id', a.id,
           'title', a.title,
           'workflowType', a.workflow_type,
           'status', a.status,
           'priority', a.priority,
           'clientId', a.client_id,
           'hilOwnerId', a.hil_owner_id,
           'dueDate', a.due_date,
           'updatedAt', a.updated_at,
           'slaStatus', a.sla_status,
           'progress', json_build_object(
             'totalTasks', a.total_tasks,
             'completedTasks', a.completed_tasks,
             'progressPercentage', case when a.total_tasks = 0 then 0
                                        else round(100.0 * a.completed_tasks / a.total_tasks)::integer end)
         ) order by q.ord), '[]'::json)
    into v_workflows
    from unnest(v_active_ids) with ordinality as q (id, ord)
    join public.workflows a on a.id = q.id;

  -- The caller's ten newest notifications.
  select coalesce(json_agg(private.notification_json(n) order by n.created_at desc, n.id desc), '[]'::json)
    into v_notifications
    from (
      select *
        from public.notifications n
       where n.recipient_id = v_me
       order by n.created_at desc, n.id desc
       limit 10
    ) n;

  -- Who holds what: every HIL person, with their open tasks (not finished) and how many of
  -- those are at risk or breached.
  select coalesce(json_agg(json_build_object(
           'userId', p.id,
           'fullName', p.full_name,
           'email', p.email,
           'role', p.role,
           'openTasks', coalesce(h.open_tasks, 0),
           'atRisk', coalesce(h.at_risk, 0),
           'breached', coalesce(h.breached, 0)
         ) order by coalesce(h.breached, 0) desc, coalesce(h.open_tasks, 0) desc, p.email), '[]'::json)
    into v_team
    from public.user_profiles p
    left join lateral (
      select count(*) as open_tasks,
             count(*) filter (where t.sla_status = 'AT_RISK') as at_risk,
             count(*) filter (where t.sla_status = 'BREACHED') as breached
        from public.tasks t
       where t.assigned_to = p.id
         and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED')
    ) h on true
   where p.role in ('hil_operator', 'hil_manager') and p.is_active;

  -- Metrics of the timeframe.
  select json_build_object(
    'workflowsCreated', (
      select count(*) from public.workflows w where w.created_at >= v_since and w.created_at <= p_now),
    'workflowsCompleted', c.completed,
    'avgCompletionMinutes', c.avg_minutes,
    'slaComplianceRate', (
      -- Tasks completed in the window that had a due date: the share finished by it.
      select case when count(*) > 0
                  then round(count(*) filter (where t.completed_at <= t.sla_due_at)::numeric / count(*), 4) end
        from public.tasks t
       where t.status = 'COMPLETED' and t.completed_at >= v_since and t.completed_at <= p_now
         and t.sla_due_at is not null)
  ) into v_metrics
  from (
    select count(*) as completed,
           round(avg(extract(epoch from w.completed_at - w.started_at) / 60), 1) as avg_minutes
      from public.workflows w
     where w.status = 'COMPLETED' and w.completed_at >= v_since and w.completed_at <= p_now
  ) c;

  return json_build_object(
    'timeframe', p_timeframe,
    'generatedAt', p_now,
    'summary', json_build_object(
      'activeWorkflows', v_active,
      'pendingWorkflows', v_pending,
      'completedWorkflows', v_metrics -> 'workflowsCompleted',
      'tasksAwaitingHil', v_awaiting_hil,
      'tasksAtRisk', v_at_risk,
      'tasksBreached', v_breached,
      'unreadNotifications', v_unread),
    'taskQueue', v_queue,
    'activeWorkflows', v_workflows,
    'team', v_team,
    'recentNotifications', v_notifications,
    'metrics', v_metrics
  );
end
$$;

comment on function public.dashboard_view(uuid, text, timestamptz, public.task_status[], public.workflow_type, uuid, uuid, text) is
  'HIL dashboard: summary, work queue by SLA risk, active workflows, own notifications, timeframe metrics (json).';

-- ============================================================================================
-- performance_view
-- ============================================================================================
/*
 * System, agent and workflow-type performance over the timeframe ending at p_now.
 * - system: workflows created in the window (of p_workflow_type when given), their tasks (as
 *   counted by workflows.total_tasks: skipped and cancelled steps left out) and the cost of
 *   their task executions;
 * - agents: every agent of the catalog (only p_agent_name when given), idle ones included,
 *   with their task executions started and agent results reported in the window (of
 *   workflows of p_workflow_type when given);
 * - workflowTypes: every workflow type (only p_workflow_type when given): workflows created in
 *   the window and SLA compliance from the daily rollups of the window's dates (dates in the
 *   business calendar's time zone).
 * Rates are 0..1 rounded to 4 places, null when there is nothing to divide by.
 */
create or replace function public.performance_view(
  p_timeframe text default 'week',
  p_agent_name text default null,
  p_workflow_type public.workflow_type default null,
  p_now timestamptz default now()
) returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
set plan_cache_mode = force_custom_plan
set jit = off
as $$
declare
  v_since timestamptz;
  v_tz text;
  v_first_day date;
  v_last_day date;
  v_system jsonb;
  v_agents jsonb;
  v_types jsonb;
begin
  perform private.check_view_timeframe(p_timeframe);
  v_since := private.view_window_start(p_timeframe, p_now);
  v_tz := coalesce((select c.timezone from public.business_hours_config c limit 1), 'UTC');
  v_first_day := (v_since at time zone v_tz)::date;
  v_last_day := (p_now at time zone v_tz)::date;

  select jsonb_build_object(
    'totalWorkflows', s.total,
    'completedWorkflows', s.completed,
    'failedWorkflows', s.failed,
    'successRate', case when s.completed + s.failed > 0
                        then round(s.completed::numeric / (s.completed + s.failed), 4) end,
    'avgCompletionMinutes', s.avg_minutes,
    'totalTasks', s.tasks,
    'totalCostUsd', (
      select coalesce(sum(e.cost_usd), 0)
        from public.workflows w
        join public.task_executions e on e.workflow_id = w.id
       where w.created_at >= v_since and w.created_at <= p_now
         and (p_workflow_type is null or w.workflow_type = p_workflow_type))
  ) into v_system
  from (
    select count(*) as total,
           count(*) filter (where w.status = 'COMPLETED') as completed,
           count(*) filter (where w.status = 'FAILED') as failed,
           round(avg(extract(epoch from w.completed_at - w.started_at) / 60)
                   filter (where w.status = 'COMPLETED'), 1) as avg_minutes,
           -- the workflows' own task counters (skipped and cancelled steps left out), rather
           -- than a count over the tasks table
           coalesce(sum(w.total_tasks), 0) as tasks
      from public.workflows w
     where w.created_at >= v_since and w.created_at <= p_now
       and (p_workflow_type is null or w.workflow_type = p_workflow_type)
  ) s;

  select coalesce(jsonb_agg(jsonb_build_object(
           'agentName', a.name,
           'displayName', a.display_name,
           'tasks', e.tasks,
           'successRate', case when e.finished > 0 then round(e.succeeded::numeric / e.finished, 4) end,
           'avgProcessingTimeMs', r.avg_processing_ms,
           'avgConfidence', r.avg_confidence,
           'costPerTaskUsd', case when e.tasks > 0 then round(e.cost / e.tasks, 4) end,
           'totalCostUsd', e.cost
         ) order by a.name), '[]'::jsonb)
    into v_agents
    from public.agents a
    cross join lateral (
      select count(*) as tasks,
             count(*) filter (where x.status = 'SUCCEEDED') as succeeded,
             count(*) filter (where x.status in ('SUCCEEDED', 'FAILED')) as finished,
             coalesce(sum(x.cost_usd), 0) as cost
        from public.task_executions x
       where x.agent_name = a.name and x.started_at >= v_since and x.started_at <= p_now
         and (p_workflow_type is null or exists (
               select 1 from public.workflows w where w.id = x.workflow_id and w.workflow_type = p_workflow_type))
    ) e
    cross join lateral (
      select round(avg(ar.processing_time_ms))::integer as avg_processing_ms,
             round(avg(ar.confidence_score), 4) as avg_confidence
        from public.agent_results ar
       where ar.agent_name = a.name and ar.created_at >= v_since and ar.created_at <= p_now
         and (p_workflow_type is null or exists (
               select 1 from public.workflows w where w.id = ar.workflow_id and w.workflow_type = p_workflow_type))
    ) r
   where p_agent_name is null or a.name = p_agent_name;

  select coalesce(jsonb_agg(jsonb_build_object(
           'workflowType', k.workflow_type,
           'total', s.total,
           'completed', s.completed,
           'failed', s.failed,
           'avgCompletionMinutes', s.avg_minutes,
           'slaComplianceRate', case when m.tasks_total > 0 then round(m.tasks_on_time::numeric / m.tasks_total, 4) end,
           'daily', dd.daily
         ) order by k.workflow_type), '[]'::jsonb)
    into v_types
    from unnest(enum_range(null::public.workflow_type)) as k (workflow_type)
    cross join lateral (
      select count(*) as total,
             count(*) filter (where w.status = 'COMPLETED') as completed,
             count(*) filter (where w.status = 'FAILED') as failed,
             round(avg(extract(epoch from w.completed_at - w.started_at) / 60)
                     filter (where w.status = 'COMPLETED'), 1) as avg_minutes
        from public.workflows w
       where w.workflow_type = k.workflow_type and w.created_at >= v_since and w.created_at <= p_now
    ) s
    cross join lateral (
      select sum(pm.tasks_on_time) as tasks_on_time, sum(pm.tasks_total) as tasks_total
        from public.sla_performance_metrics pm
       where pm.workflow_type = k.workflow_type and pm.metric_date between v_first_day and v_last_day
    ) m
    cross join lateral (
      -- SLA compliance of each rolled-up day of the window (the console's chart).
      select coalesce(jsonb_agg(jsonb_build_object(
               'date', d.metric_date,
               'tasksTotal', d.tasks_total,
               'tasksOnTime', d.tasks_on_time,
               'complianceRate', case when d.tasks_total > 0 then round(d.tasks_on_time::numeric / d.tasks_total, 4) end
             ) order by d.metric_date), '[]'::jsonb) as daily
        from (
          select pm.metric_date, sum(pm.tasks_total) as tasks_total, sum(pm.tasks_on_time) as tasks_on_time
            from public.sla_performance_metrics pm
           where pm.workflow_type = k.workflow_type and pm.metric_date between v_first_day and v_last_day
           group by pm.metric_date
        ) d
    ) dd
   where p_workflow_type is null or k.workflow_type = p_workflow_type;

  return jsonb_build_object(
    'timeframe', p_timeframe,
    'generatedAt', p_now,
    'system', v_system,
    'agents', v_agents,
    'workflowTypes', v_types
  );
end
$$;

comment on function public.performance_view(text, text, public.workflow_type, timestamptz) is
  'System, agent and workflow-type performance over a timeframe (jsonb).';

-- ============================================================================================
-- sla_view
-- ============================================================================================
/*
 * SLA monitoring at p_now: counts of the open tasks whose SLA clock has a due date, by SLA
 * status; the open (unresolved) alerts, newest first (at most 100); and up to p_limit
 * (1..500) of those tasks in risk order with the business minutes left and the share of the
 * SLA used so far: the SLA's business minutes less those left, so time a clock stood still
 * (workflow paused, waiting on the client: its due date moved on resume) is not counted, and
 * nothing is used before the clock starts.
 */
create or replace function public.sla_view(
  p_now timestamptz default now(),
  p_limit integer default 100
) returns json
language plpgsql
stable
security invoker
set search_path = ''
set jit = off
as $$
declare
  v_summary json;
  v_alerts json;
  v_ids uuid[];
  v_count integer;
  v_due timestamptz[];
  v_minutes integer[];
  v_tracking json;
begin
  if p_now is null then
    raise exception 'p_now must not be null' using errcode = '22023';
  end if;
  if p_limit is null or p_limit not between 1 and 500 then
    raise exception 'limit must be between 1 and 500 (got %)', coalesce(p_limit::text, 'null')
      using errcode = '22023';
  end if;

  -- Summary, from the activity counters.
  select json_build_object(
    'active', s.active,
    'onTime', s.on_time,
    'atRisk', s.at_risk,
    'breached', s.breached,
    'complianceRate', case when s.active > 0 then round(s.on_time::numeric / s.active, 4) end
  ) into v_summary
  from (
    select a.clocks_on_time + a.clocks_at_risk + a.clocks_breached as active, a.clocks_on_time as on_time,
           a.clocks_at_risk as at_risk, a.clocks_breached as breached
      from private.visible_activity() a
  ) s;

  select coalesce(json_agg(json_build_object(
           'id', a.id,
           'taskId', a.task_id,
           'workflowId', a.workflow_id,
           'alertLevel', a.alert_level,
           'percentUsed', a.percent_used,
           'message', a.message,
           'raisedAt', a.raised_at,
           'acknowledgedAt', a.acknowledged_at,
           'acknowledgedBy', a.acknowledged_by
         ) order by a.raised_at desc, a.id desc), '[]'::json)
    into v_alerts
    from (
      select *
        from public.sla_alerts sa
       where sa.resolved_at is null
       order by sa.raised_at desc, sa.id desc
       limit 100
    ) a;

  -- The riskiest tasks first, in the order of tasks_open_risk_idx, cut by the limit; then
  -- business time for those only, in one pass: minutes left (p_now to due).
  v_ids := array(
    select ot.id
      from public.tasks ot
     where ot.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW') and ot.sla_due_at is not null
     order by ot.sla_status desc, ot.sla_due_at, ot.priority desc, ot.id
     limit p_limit);
  v_count := cardinality(v_ids);
  select coalesce(array_agg(t.sla_due_at order by q.ord), '{}')
    into v_due
    from unnest(v_ids) with ordinality as q (id, ord)
    join public.tasks t on t.id = q.id;
  v_minutes := private.business_minutes_many(array_fill(p_now, array[v_count]), v_due);

  select coalesce(json_agg(json_build_object(
           'taskId', t.id,
           'workflowId', t.workflow_id,
           'taskKey', t.task_key,
           'title', t.title,
           'status', t.status,
           'slaStatus', t.sla_status,
           'slaStartedAt', t.sla_started_at,
           'slaDueAt', t.sla_due_at,
           'slaMinutes', t.sla_minutes,
           'businessMinutesRemaining', v_minutes[q.ord],
           'percentUsed', round(greatest(0, t.sla_minutes - v_minutes[q.ord])::numeric / t.sla_minutes * 100, 1)
         ) order by q.ord), '[]'::json)
    into v_tracking
    from unnest(v_ids) with ordinality as q (id, ord)
    join public.tasks t on t.id = q.id;

  return json_build_object(
    'generatedAt', p_now,
    'summary', v_summary,
    'alerts', v_alerts,
    'tracking', v_tracking
  );
end
$$;

comment on function public.sla_view(timestamptz, integer) is
  'SLA monitoring: open clocks by status, open alerts, and the riskiest tasks with business time left (json).';

-- ============================================================================================
-- notifications_view
-- ============================================================================================
/*
 * The caller's notifications (recipient_id = auth.uid()), newest first, filtered by unread,
 * type and priority and paged by p_limit (1..200) and p_offset (>= 0); totalCount counts
 * what matches the filters, hasMore says whether another page follows, unreadCount counts
 * all the caller's unread ones, countsByType and countsByPriority (every label, zeros
 * included) count the caller's notifications matching p_unread_only only.
 */
create or replace function public.notifications_view(
  p_unread_only boolean default false,
  p_type public.notification_type default null,
  p_priority public.priority_level default null,
  p_limit integer default 50,
  p_offset integer default 0
) returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
set plan_cache_mode = force_custom_plan
set jit = off
as $$
declare
  v_me uuid := auth.uid();
  v_unread_only boolean := coalesce(p_unread_only, false);
  v_counts jsonb;
  v_total bigint;
  v_items jsonb;
begin
  if p_limit is null or p_limit not between 1 and 200 then
    raise exception 'limit must be between 1 and 200 (got %)', coalesce(p_limit::text, 'null')
      using errcode = '22023';
  end if;
  if p_offset is null or p_offset < 0 then
    raise exception 'offset must be 0 or more (got %)', coalesce(p_offset::text, 'null')
      using errcode = '22023';
  end if;

  -- One pass over the caller's notifications for every count. unreadCount sums the unread
  -- among what matched p_unread_only: either way, that is every unread one.
  with own as (
    select n.notification_type, n.priority, count(*) as n, count(*) filter (where n.read_at is null) as unread
      from public.notifications n
     where n.recipient_id = v_me and (not v_unread_only or n.read_at is null)
     group by n.notification_type, n.priority
  )
  select jsonb_build_object(
           'unreadCount', coalesce((select sum(o.unread) from own o), 0),
           'countsByType', (
             select jsonb_object_agg(k.label, coalesce((select sum(o.n) from own o where o.notification_type = k.label), 0)
                                     order by k.label)
               from unnest(enum_range(null::public.notification_type)) as k (label)),
           'countsByPriority', (
             select jsonb_object_agg(k.label, coalesce((select sum(o.n) from own o where o.priority = k.label), 0)
                                     order by k.label)
               from unnest(enum_range(null::public.priority_level)) as k (label))
         ),
         coalesce((select sum(o.n) from own o
                    where (p_type is null or o.notification_type = p_type)
                      and (p_priority is null or o.priority = p_priority)), 0)
    into v_counts, v_total;

  select coalesce(jsonb_agg(private.notification_json(n) order by n.created_at desc, n.id desc), '[]'::jsonb)
    into v_items
    from (
      select *
        from public.notifications n
       where n.recipient_id = v_me
         and (not v_unread_only or n.read_at is null)
         and (p_type is null or n.notification_type = p_type)
         and (p_priority is null or n.priority = p_priority)
       order by n.created_at desc, n.id desc
       limit p_limit offset p_offset
    ) n;

  return jsonb_build_object(
    'notifications', v_items,
    'totalCount', v_total,
    'hasMore', p_offset + jsonb_array_length(v_items) < v_total
  ) || v_counts;
end
$$;

comment on function public.notifications_view(boolean, public.notification_type, public.priority_level, integer, integer) is
  'The caller''s notifications, filtered and paged, with unread and per-type and per-priority counts (jsonb).';

-- ============================================================================================
-- mark_notifications_read
-- ============================================================================================
/*
 * Marks the caller's unread notifications read (only those in p_ids when given, all of them
 * when p_ids is null) and returns how many changed. Already read ones keep their read_at.
 * Security invoker, and explicitly limited to recipient_id = auth.uid(): ids of other
 * people's notifications change nothing (the RLS update policy would refuse them anyway),
 * and a caller without a user id (the service path) marks nothing.
 */
create or replace function public.mark_notifications_read(p_ids uuid[] default null)
returns integer
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_changed integer;
begin
  update public.notifications n
     set read_at = now()
   where n.recipient_id = auth.uid()
     and n.read_at is null
     and (p_ids is null or n.id = any (p_ids));
  get diagnostics v_changed = row_count;
  return v_changed;
end
$$;

comment on function public.mark_notifications_read(uuid[]) is
  'Marks the caller''s unread notifications read (the given ids, or all); returns how many changed.';

-- ============================================================================================
-- Grants: signed-in people and the service, never anonymous callers
-- ============================================================================================
revoke execute on function
  public.dashboard_view(uuid, text, timestamptz, public.task_status[], public.workflow_type, uuid, uuid, text),
  public.performance_view(text, text, public.workflow_type, timestamptz),
  public.sla_view(timestamptz, integer),
  public.notifications_view(boolean, public.notification_type, public.priority_level, integer, integer),
  public.mark_notifications_read(uuid[])
  from public, anon;
grant execute on function
  public.dashboard_view(uuid, text, timestamptz, public.task_status[], public.workflow_type, uuid, uuid, text),
  public.performance_view(text, text, public.workflow_type, timestamptz),
  public.sla_view(timestamptz, integer),
  public.notifications_view(boolean, public.notification_type, public.priority_level, integer, integer),
  public.mark_notifications_read(uuid[])
  to authenticated, service_role;
