-- SLA engine (SPEC section 8): each task's clock in business time, the sweep that raises alert
-- levels and escalates, and the daily compliance rollup.
--
-- The clock of a task (public.sla_tracking, one row per task) follows the task and its
-- workflow, whoever changes them, through triggers:
--   - it starts when the task becomes actionable: open and every task it depends on finished
--     (or the task already left PENDING); a task that is never actionable never gets a clock;
--   - it stops for a while when the workflow is PAUSED or the task is WAITING on the client
--     (metadata.waitingOn = 'CLIENT'), keeping the business minutes used so far, and restarts
--     with the remaining business minutes when that ends;
--   - it stops for good when the task is COMPLETED, SKIPPED or CANCELLED: the task's sla_status
--     then says whether it finished ON_TIME or BREACHED.
-- At each (re)start the instants at which each alert level is reached are computed once, in
-- business time. The sweep then only compares them with `now`: it reads the clocks whose next
-- level has come (an index on next_alert_at), so a quiet minute reads and writes nothing.
--
-- Levels by share of SLA time used: GREEN < 60 %, YELLOW 60-80 %, ORANGE 80-95 %, RED 95-100 %,
-- BREACHED after the due date. ORANGE and RED are AT_RISK. A level never goes down.
--
-- The task columns the views read (sla_started_at, sla_due_at, sla_status) mirror the clock:
-- sla_due_at is null while the clock is stopped (no business time passes, so nothing is due).
--
-- Time: clock events happen at private.sla_now(), the transaction time unless the setting
-- rexera.sla_now names another instant (tests and replays of past events); the sweep and the
-- rollup take their instant as an argument.

-- ============================================================================================
-- Clock time and thresholds
-- ============================================================================================
create or replace function private.sla_now() returns timestamptz
language plpgsql stable
set search_path = ''
as $$
-- plpgsql keeps its plan for the session; a SQL function with a SET clause is planned again
-- in every statement that calls it, which costs more than the call.
begin
  return coalesce(nullif(current_setting('rexera.sla_now', true), '')::timestamptz, now());
end
$$;

create or replace function private.sla_status_of(p_level public.sla_alert_level) returns public.sla_status
language plpgsql immutable
set search_path = ''
as $$
begin
  return case p_level when 'BREACHED' then 'BREACHED'
                      when 'ORANGE' then 'AT_RISK' when 'RED' then 'AT_RISK'
                      else 'ON_TIME' end::public.sla_status;
end
$$;

-- The instant the clock must next be looked at, given its level: the next level's threshold
-- (RED: any instant after the due date, first seen by a sweep at or after due_at).
create or replace function private.sla_next_alert_at(
  p_level public.sla_alert_level, p_yellow_at timestamptz, p_orange_at timestamptz, p_red_at timestamptz,
  p_due_at timestamptz
) returns timestamptz
language plpgsql immutable
set search_path = ''
as $$
begin
  return case p_level when 'GREEN' then p_yellow_at when 'YELLOW' then p_orange_at
                      when 'ORANGE' then p_red_at when 'RED' then p_due_at end;
end
$$;

/*
 * The thresholds of a clock that (re)starts at p_from with p_consumed of its p_minutes already
 * used: the instants at which ceil(60 %), ceil(80 %), ceil(95 %) and all of its business
 * minutes are used. A level already reached gets the (re)start instant itself (or the next
 * opening). Clamped to p_due_at when given (a due date fixed by the writer, or the past due
 * date of a clock that had run out before it stopped).
 */
create or replace function private.sla_thresholds(
  p_from timestamptz, p_minutes integer, p_consumed integer, p_due_at timestamptz default null,
  out yellow_at timestamptz, out orange_at timestamptz, out red_at timestamptz, out due_at timestamptz
)
language plpgsql stable
set search_path = ''
as $$
begin
  due_at := coalesce(p_due_at, public.add_business_minutes(p_from, p_minutes - p_consumed));
  yellow_at := least(public.add_business_minutes(p_from, greatest(ceil(0.60 * p_minutes)::integer - p_consumed, 0)), due_at);
  orange_at := least(public.add_business_minutes(p_from, greatest(ceil(0.80 * p_minutes)::integer - p_consumed, 0)), due_at);
  red_at := least(public.add_business_minutes(p_from, greatest(ceil(0.95 * p_minutes)::integer - p_consumed, 0)), due_at);
end
$$;

-- A clock inserted with only its start, due date and minutes (a fixture, a data import) gets
-- its thresholds here, so that every clock the sweep reads is complete.
create or replace function private.complete_sla_clock() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_t record;
begin
  new.resumed_at := coalesce(new.resumed_at, new.started_at);
  if new.yellow_at is null or new.orange_at is null or new.red_at is null then
    select * into v_t from private.sla_thresholds(new.resumed_at, new.business_minutes, new.consumed_business_minutes,
                                                   new.due_at);
    new.yellow_at := v_t.yellow_at;
    new.orange_at := v_t.orange_at;
    new.red_at := v_t.red_at;
    if new.paused_at is null and new.stopped_at is null then
      new.next_alert_at := private.sla_next_alert_at(new.alert_level, new.yellow_at, new.orange_at, new.red_at, new.due_at);
    end if;
  end if;
  return new;
end
$$;
create trigger sla_tracking_complete_clock before insert on public.sla_tracking
  for each row execute function private.complete_sla_clock();

-- ============================================================================================
-- Following tasks and workflows: start, stop for a while, restart, stop for good
-- ============================================================================================
/*
 * Brings the clocks of the tasks of the given workflows in line with the tasks' and
 * workflows' state at private.sla_now(): every task of them, or only p_task_ids when given
 * (the tasks a change can concern). Idempotent: a clock already in the wanted state is left
 * alone. Called by the triggers below; security definer because the writer (an agent, a
 * person) may not write clocks or alerts.
 */
create or replace function private.sync_sla_clocks(p_workflow_ids uuid[], p_task_ids uuid[] default null)
returns integer
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan  -- docs/performance.md#generic-plans
as $$
declare
  v_now timestamptz := private.sla_now();
  v_changed integer := 0;
  v_current text;
  v_start timestamptz;
  v_used integer;
  v_final public.sla_status;
  v_t record;
  r record;
begin
  for r in
    select t.id as task_id, t.workflow_id, t.client_id, t.sla_started_at, t.sla_due_at, t.sla_status as task_sla_status,
           t.sla_minutes as minutes, d.id as definition_id,
           s.id as clock_id, s.business_minutes as clock_minutes, s.resumed_at, s.due_at, s.paused_at, s.stopped_at,
           s.consumed_business_minutes as consumed, s.alert_level,
           case
             -- A completed or cancelled workflow's clocks are final too (finished is final): a task
             -- it left open no longer breaches and escalates.
             when t.status in ('COMPLETED', 'SKIPPED', 'CANCELLED') or w.status in ('COMPLETED', 'CANCELLED') then 'STOPPED'
             when t.status = 'PENDING' and exists (
               select 1 from public.tasks dep
                where dep.workflow_id = t.workflow_id and dep.task_key = any (t.depends_on)
                  and dep.status not in ('COMPLETED', 'SKIPPED', 'CANCELLED')) then 'NOT_STARTED'
             -- A failed workflow's clocks stand still like a paused one's: nothing runs its open
             -- tasks, so they neither breach nor escalate, and a person's resume (its recovery,
             -- public.workflow_action) starts them again with the minutes they had left; a
             -- cancel stops them.
             when w.status in ('PAUSED', 'FAILED') or (t.status = 'WAITING' and t.metadata ->> 'waitingOn' = 'CLIENT') then 'PAUSED'
             else 'RUNNING'
           end as wanted
      from public.tasks t
      join public.workflows w on w.id = t.workflow_id
      left join public.sla_tracking s on s.task_id = t.id
      left join lateral (
        select sd.id, sd.business_minutes
          from public.sla_definitions sd
         where sd.is_active and sd.workflow_type = w.workflow_type and sd.task_type = t.task_type
           and (sd.agent_name is null or sd.agent_name = t.agent_name)
         order by sd.agent_name nulls last
         limit 1
      ) d on true
     where t.workflow_id = any (p_workflow_ids)
       and (p_task_ids is null or t.id = any (p_task_ids))
     order by t.id  -- one lock order for every caller
  loop
    v_current := case when r.clock_id is null then 'NOT_STARTED' when r.stopped_at is not null then 'STOPPED'
                      when r.paused_at is not null then 'PAUSED' else 'RUNNING' end;
    -- A clock never goes back to not started, and a stopped clock is final.
    continue when v_current = r.wanted or r.wanted = 'NOT_STARTED' or v_current = 'STOPPED';

    if v_current = 'NOT_STARTED' then
      -- Only a running clock starts; a task that ends (or waits) before its clock ever ran
      -- gets none until it runs. A start planned by the writer (an injected task's
      -- sla_started_at and sla_due_at) is kept.
      continue when r.wanted <> 'RUNNING' or r.minutes is null;
      v_start := case when r.sla_due_at is not null then coalesce(r.sla_started_at, v_now) else v_now end;
      select * into v_t from private.sla_thresholds(v_start, r.minutes, 0, r.sla_due_at);
      insert into public.sla_tracking (task_id, workflow_id, client_id, sla_definition_id, business_minutes,
                                       started_at, resumed_at, due_at, yellow_at, orange_at, red_at, next_alert_at)
      values (r.task_id, r.workflow_id, r.client_id, r.definition_id, r.minutes, v_start, v_start,
              v_t.due_at, v_t.yellow_at, v_t.orange_at, v_t.red_at, v_t.yellow_at)
      on conflict (task_id) do nothing;
      -- (A statement on tasks fires their statement triggers even when it changes no row: the
      -- task is only written when it changes, here and below.)
      if (r.sla_started_at, r.sla_due_at) is distinct from (v_start, v_t.due_at) then
        update public.tasks set sla_started_at = v_start, sla_due_at = v_t.due_at where id = r.task_id;
      end if;

    elsif r.wanted = 'STOPPED' then
      v_used := r.consumed + case when v_current = 'RUNNING'
                                  then greatest(public.business_minutes_between(r.resumed_at, v_now), 0) else 0 end;
      v_final := case when r.alert_level = 'BREACHED' or v_used > r.clock_minutes
                        or (v_current = 'RUNNING' and v_now > r.due_at)
                      then 'BREACHED' else 'ON_TIME' end;
      update public.sla_tracking
         set stopped_at = v_now, paused_at = null, next_alert_at = null, consumed_business_minutes = v_used,
             sla_status = v_final,
             breached_at = case when v_final = 'BREACHED' then coalesce(breached_at, due_at) end
       where id = r.clock_id;
      update public.sla_alerts set resolved_at = v_now, escalation_due_at = null
       where task_id = r.task_id and resolved_at is null;
      if r.task_sla_status is distinct from v_final then
        update public.tasks set sla_status = v_final where id = r.task_id;
      end if;

    elsif r.wanted = 'PAUSED' then  -- from RUNNING
      v_used := r.consumed + greatest(public.business_minutes_between(r.resumed_at, v_now), 0);
      update public.sla_tracking
         set paused_at = v_now, next_alert_at = null, consumed_business_minutes = v_used
       where id = r.clock_id;
      if r.sla_due_at is not null then
        update public.tasks set sla_due_at = null where id = r.task_id;
      end if;

    else  -- RUNNING again, from PAUSED, with the minutes left
      select * into v_t from private.sla_thresholds(
        v_now, r.clock_minutes, r.consumed, case when r.consumed >= r.clock_minutes then r.due_at end);
      update public.sla_tracking
         set paused_at = null, resumed_at = v_now,
             due_at = v_t.due_at, yellow_at = v_t.yellow_at, orange_at = v_t.orange_at, red_at = v_t.red_at,
             next_alert_at = private.sla_next_alert_at(alert_level, v_t.yellow_at, v_t.orange_at, v_t.red_at, v_t.due_at)
       where id = r.clock_id;
      if r.sla_due_at is distinct from v_t.due_at then
        update public.tasks set sla_due_at = v_t.due_at where id = r.task_id;
      end if;
    end if;
    v_changed := v_changed + 1;
  end loop;
  return v_changed;
end
$$;

revoke execute on function private.sync_sla_clocks(uuid[], uuid[]) from public, anon;
grant execute on function private.sync_sla_clocks(uuid[], uuid[]) to authenticated, service_role;

-- Tasks inserted (a plan, an injected task): clocks of the tasks actionable at once start.
create or replace function private.sla_clocks_follow_inserted_tasks() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.sync_sla_clocks(array(select distinct n.workflow_id from new_tasks n));
  return null;
end
$$;
create trigger tasks_sla_clocks_on_insert after insert on public.tasks
  referencing new table as new_tasks
  for each statement execute function private.sla_clocks_follow_inserted_tasks();

-- Tasks whose status, dependencies or wait changed: their own clocks follow, and so do the
-- clocks of the tasks that depend on a task that finished or reopened (a finished task may make
-- the next one actionable). Other updates (the sweep's sla_status, progress) find nothing to
-- follow and cost one pass over the changed rows.
create or replace function private.sla_clocks_follow_updated_tasks() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_workflow_ids uuid[];
  v_task_ids uuid[];
begin
  with changed as (
    select n.id, n.workflow_id, n.task_key,
           (n.status in ('COMPLETED', 'SKIPPED', 'CANCELLED'))
             is distinct from (o.status in ('COMPLETED', 'SKIPPED', 'CANCELLED')) as finish_changed
      from new_tasks n
      join old_tasks o on o.id = n.id
     where n.status is distinct from o.status
        or n.depends_on is distinct from o.depends_on
        or (n.metadata ->> 'waitingOn') is distinct from (o.metadata ->> 'waitingOn')
  )
  select array_agg(distinct c.workflow_id),
         array(select c2.id from changed c2
               union
               select t.id from public.tasks t
                 join changed c3 on c3.finish_changed and t.workflow_id = c3.workflow_id
                                and c3.task_key = any (t.depends_on))
    into v_workflow_ids, v_task_ids
    from changed c;
  if v_workflow_ids is not null then
    perform private.sync_sla_clocks(v_workflow_ids, v_task_ids);
  end if;
  return null;
end
$$;
create trigger tasks_sla_clocks_on_update after update on public.tasks
  referencing old table as old_tasks new table as new_tasks
  for each statement execute function private.sla_clocks_follow_updated_tasks();

-- Workflows paused, failed or resumed: their tasks' clocks stand still or run again; completed
-- or cancelled: they stop.
create or replace function private.sla_clocks_follow_workflows() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_workflow_ids uuid[];
begin
  select array_agg(n.id) into v_workflow_ids
    from new_workflows n
    join old_workflows o on o.id = n.id
   where n.status is distinct from o.status
     and ('PAUSED' in (n.status, o.status) or 'FAILED' in (n.status, o.status) or private.is_finished(n.status));
  if v_workflow_ids is not null then
    perform private.sync_sla_clocks(v_workflow_ids);
  end if;
  return null;
end
$$;
create trigger workflows_sla_clocks_on_update after update on public.workflows
  referencing old table as old_workflows new table as new_workflows
  for each statement execute function private.sla_clocks_follow_workflows();

-- ============================================================================================
-- Escalation: who is told (sla_escalation_rules.notify_target)
-- ============================================================================================
/*
 * ASSIGNEE: the task's assignee, else the workflow's HIL owner, else the workflow's watchers.
 * TEAM: the assignee (or owner) and the workflow's watchers (owner and manager, else every
 * manager). MANAGER: the workflow's manager, else every active manager.
 */
create or replace function private.sla_escalation_recipients(
  p_target text, p_assignee uuid, p_workflow public.workflows
) returns setof uuid
language sql stable
set search_path = ''
as $$
  with assignee as (
    select p.id from public.user_profiles p
     where p.id = coalesce(p_assignee, p_workflow.hil_owner_id) and p.user_type = 'hil_user' and p.is_active
  ), manager as (
    select p.id from public.user_profiles p
     where p.id = p_workflow.manager_id and p.role = 'hil_manager' and p.is_active
  )
  select a.id from assignee a where p_target in ('ASSIGNEE', 'TEAM')
  union
  select x.person from private.workflow_watchers(p_workflow) as x (person)
   where p_target = 'TEAM' or (p_target = 'ASSIGNEE' and not exists (select 1 from assignee))
  union
  select m.id from manager m where p_target = 'MANAGER'
  union
  select p.id from public.user_profiles p
   where p_target = 'MANAGER' and p.role = 'hil_manager' and p.is_active and not exists (select 1 from manager)
$$;

-- ============================================================================================
-- Rounds of the background runners
-- ============================================================================================
-- Every service instance runs a sweeper thread every SLA_SWEEP_INTERVAL_SECONDS, not in step
-- with the others. The first runner to ask in a round takes it and sweeps; the others skip
-- until the round has passed (nine tenths of the interval, so a runner's drift does not cost
-- it its turn). The sweep's advisory lock only keeps two sweeps from overlapping; this keeps
-- several instances to one sweep a round. `rounds` counts the rounds taken.
create table private.duty_rounds (
  duty text primary key,
  started_at timestamptz not null,
  rounds bigint not null default 1
);
comment on table private.duty_rounds is 'When each background duty (the SLA sweep) last started a round, taken by one runner of however many.';

create or replace function private.claim_duty_round(p_duty text, p_every interval) returns boolean
language sql volatile
security definer
set search_path = ''
as $$
  insert into private.duty_rounds as d (duty, started_at) values (p_duty, clock_timestamp())
  on conflict (duty) do update set started_at = excluded.started_at, rounds = d.rounds + 1
   where d.started_at <= clock_timestamp() - p_every * 0.9
  returning true
$$;
revoke all on function private.claim_duty_round(text, interval) from public, anon, authenticated;
grant execute on function private.claim_duty_round(text, interval) to service_role;

-- ============================================================================================
-- The sweep
-- ============================================================================================
/*
 * Raises the alert level of every running clock whose next level has come by p_now: one
 * sla_alerts row per level reached (a clock that skipped levels while nobody swept gets each
 * of them, so the escalation ladder is complete), sla_status on the clock and its task (the
 * workflow follows through the progress trigger), then the notifications of the escalation
 * rules whose delay has passed, each once per task, level, target and person
 * (notifications.dedupe_key).
 *
 * Safe however often and from however many sessions it runs: sweeps take turns on a
 * transaction advisory lock, every write is conditional (a level only rises; `where ... is
 * distinct from`), and alerts and notifications are unique, inserted with on conflict do
 * nothing. Security definer: it writes alerts and other people's notifications; callable by
 * the service only.
 */
create or replace function public.sla_sweep(p_now timestamptz default now())
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_task_ids uuid[];
  v_levels integer;
  v_alerts integer;
  v_tasks integer;
  v_notifications integer;
  v_escalations integer;
begin
  if not private.is_service() then
    raise exception 'the SLA sweep is run by the service only' using errcode = '42501';
  end if;
  if p_now is null then
    raise exception 'now must not be null' using errcode = '22023';
  end if;
  -- The key the service's sweep runner tries first (app/sla/sweeper.py).
  perform pg_advisory_xact_lock(7302115006);

  with due as (
    select s.id,
           s.alert_level as old_level,
           case when p_now > s.due_at then 'BREACHED'
                when p_now >= s.red_at then 'RED'
                when p_now >= s.orange_at then 'ORANGE'
                when p_now >= s.yellow_at then 'YELLOW'
                else 'GREEN' end::public.sla_alert_level as new_level
      from public.sla_tracking s
      join public.tasks t on t.id = s.task_id
     where s.next_alert_at <= p_now
    -- The task first, then its clock, as a task's own change does (its trigger updates the
    -- clock): a sweep and a task transition wait for each other instead of deadlocking.
       for update of t
  ), raised as (
    update public.sla_tracking s
       set alert_level = d.new_level,
           sla_status = private.sla_status_of(d.new_level),
           breached_at = case when d.new_level = 'BREACHED' then s.due_at else s.breached_at end,
           next_alert_at = private.sla_next_alert_at(d.new_level, s.yellow_at, s.orange_at, s.red_at, s.due_at),
           last_evaluated_at = p_now
      from due d
     -- Rechecked on the clock as it is now if a task change (a pause, a finish) came first.
     where s.id = d.id and s.next_alert_at <= p_now and d.new_level > s.alert_level
    returning s.id, s.task_id, s.workflow_id, s.client_id, d.old_level, d.new_level
  ), alerts as (
    insert into public.sla_alerts (task_id, workflow_id, client_id, sla_tracking_id, alert_level, percent_used,
                                   message, raised_at, escalation_due_at)
    select r.task_id, r.workflow_id, r.client_id, r.id, l.level, p.percent,
           format('%s: %s %% of its SLA used (%s)', t.title, p.percent, l.level), p_now, p_now
      from raised r
      join public.tasks t on t.id = r.task_id
      cross join lateral unnest(enum_range(r.old_level, r.new_level)) as l (level)
      cross join lateral (select case l.level when 'YELLOW' then 60 when 'ORANGE' then 80 when 'RED' then 95
                                              else 100 end::numeric as percent) p
     where l.level > r.old_level
    on conflict (task_id, alert_level) do nothing
    returning 1
  )
  select coalesce(array_agg(r.task_id), '{}'), count(*), (select count(*) from alerts)
    into v_task_ids, v_levels, v_alerts
    from raised r;

  update public.tasks t
     set sla_status = s.sla_status
    from unnest(v_task_ids) as c (task_id)
    join public.sla_tracking s on s.task_id = c.task_id
   where t.id = c.task_id and t.sla_status is distinct from s.sla_status;
  get diagnostics v_tasks = row_count;

  -- Escalations due: the alerts raised just now and those whose rules wait (delay_minutes).
  -- A stopped-for-a-while clock's escalations wait until it runs again.
  with pending as (
    select a.id, a.task_id, a.workflow_id, a.alert_level, a.raised_at
      from public.sla_alerts a
      join public.sla_tracking s on s.task_id = a.task_id
     where a.escalation_due_at <= p_now and a.resolved_at is null and s.paused_at is null
  ), rules as (
    -- Every pending alert with each of its rules (or one row without any, so that an alert
    -- whose level has no rule is still rescheduled to never).
    select p.id as alert_id, p.task_id, p.alert_level, r.notify_target, r.notification_priority,
           p.raised_at + make_interval(mins => r.delay_minutes) as fires_at
      from pending p
      join public.workflows w on w.id = p.workflow_id
      left join public.sla_escalation_rules r
        on r.is_active and r.alert_level = p.alert_level
       and (r.workflow_type is null or r.workflow_type = w.workflow_type)
  ), sent as (
    insert into public.notifications (recipient_id, notification_type, priority, title, message, action_required,
                                      workflow_id, task_id, data, dedupe_key)
    select person, 'SLA_WARNING', ru.notification_priority,
           left(format('SLA %s: %s', ru.alert_level, t.title), 300),
           format('%s (%s) in %s is %s: due %s.', t.title, t.task_key, w.title, ru.alert_level,
                  coalesce(to_char(s.due_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'), 'no due date')),
           true, w.id, t.id,
           jsonb_build_object('taskKey', t.task_key, 'alertLevel', ru.alert_level, 'notifyTarget', ru.notify_target,
                              'slaDueAt', s.due_at),
           format('sla:%s:%s:%s', t.id, ru.alert_level, ru.notify_target)
      from rules ru
      join public.tasks t on t.id = ru.task_id
      join public.workflows w on w.id = t.workflow_id
      join public.sla_tracking s on s.task_id = t.id
      cross join lateral private.sla_escalation_recipients(ru.notify_target, t.assigned_to, w) person
     where ru.fires_at <= p_now
    on conflict (recipient_id, dedupe_key) do nothing
    returning 1
  ), next_due as (
    -- Grouped from the rules alone: no join between the two CTEs, whose sizes the planner
    -- cannot know.
    select ru.alert_id, min(ru.fires_at) filter (where ru.fires_at > p_now) as fires_at
      from rules ru
     group by ru.alert_id
  ), rescheduled as (
    update public.sla_alerts a
       set escalation_due_at = n.fires_at
      from next_due n
     where a.id = n.alert_id
    returning 1
  )
  select (select count(*) from sent), (select count(*) from rescheduled) into v_notifications, v_escalations;

  return jsonb_build_object(
    'sweptAt', p_now,
    'levelsRaised', v_levels,
    'alertsCreated', v_alerts,
    'tasksUpdated', v_tasks,
    'alertsEscalated', v_escalations,
    'notificationsCreated', v_notifications
  );
end
$$;

comment on function public.sla_sweep(timestamptz) is
  'Raises SLA alert levels due by now (once per task and level), updates sla_status, escalates per sla_escalation_rules.';

-- ============================================================================================
-- Daily compliance rollup
-- ============================================================================================
/*
 * One row per workflow type (task_type and agent_name null) in sla_performance_metrics for
 * p_day, a date in the business calendar's time zone: the tasks COMPLETED whose clock stopped
 * that day, how many on time and breached, their average business minutes. Idempotent: a
 * second run writes only what changed.
 */
create or replace function public.sla_rollup_daily(p_day date) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_tz text;
  v_rows integer;
begin
  if not private.is_service() then
    raise exception 'the SLA rollup is run by the service only' using errcode = '42501';
  end if;
  select min(c.timezone) into v_tz from public.business_hours_config c;  -- one zone (trigger-enforced)
  v_tz := coalesce(v_tz, 'UTC');

  insert into public.sla_performance_metrics as m (metric_date, workflow_type, task_type, agent_name, tasks_total,
                                                   tasks_on_time, tasks_breached, avg_business_minutes, compliance_rate)
  select p_day, w.workflow_type, null, null, count(*),
         count(*) filter (where s.sla_status = 'ON_TIME'),
         count(*) filter (where s.sla_status = 'BREACHED'),
         round(avg(s.consumed_business_minutes), 2),
         round(count(*) filter (where s.sla_status = 'ON_TIME')::numeric / count(*), 4)
    from public.sla_tracking s
    join public.tasks t on t.id = s.task_id and t.status = 'COMPLETED'
    join public.workflows w on w.id = s.workflow_id
   where s.stopped_at >= (p_day::timestamp at time zone v_tz)
     and s.stopped_at < ((p_day + 1)::timestamp at time zone v_tz)
   group by w.workflow_type
  on conflict on constraint sla_performance_metrics_scope_key do update
     set tasks_total = excluded.tasks_total, tasks_on_time = excluded.tasks_on_time,
         tasks_breached = excluded.tasks_breached, avg_business_minutes = excluded.avg_business_minutes,
         compliance_rate = excluded.compliance_rate
   where (m.tasks_total, m.tasks_on_time, m.tasks_breached, m.avg_business_minutes, m.compliance_rate)
         is distinct from (excluded.tasks_total, excluded.tasks_on_time, excluded.tasks_breached,
                           excluded.avg_business_minutes, excluded.compliance_rate);
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

comment on function public.sla_rollup_daily(date) is
  'Fills sla_performance_metrics for one day (business calendar time zone), per workflow type.';

-- Which days the rollup has done, so that it runs once per day however often it is asked.
create table private.sla_rollup_days (
  metric_date date primary key,
  rolled_up_at timestamptz not null default now()
);
comment on table private.sla_rollup_days is 'Days already rolled up into sla_performance_metrics.';
revoke all on private.sla_rollup_days from public, anon, authenticated;

/*
 * Rolls up each of the last seven finished days (in the calendar's time zone, before p_now's
 * date) not rolled up yet: once per day however often the sweep runner asks, and days missed
 * while nothing ran are caught up. Returns how many days it rolled up.
 */
create or replace function public.sla_rollup_due(p_now timestamptz default now()) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_today date;
  v_day date;
  v_days integer := 0;
begin
  if not private.is_service() then
    raise exception 'the SLA rollup is run by the service only' using errcode = '42501';
  end if;
  v_today := (p_now at time zone coalesce((select min(c.timezone) from public.business_hours_config c), 'UTC'))::date;
  for v_day in
    select d::date from generate_series(v_today - 7, v_today - 1, interval '1 day') d
     where not exists (select 1 from private.sla_rollup_days r where r.metric_date = d::date)
     order by 1
  loop
    insert into private.sla_rollup_days (metric_date) values (v_day) on conflict do nothing;
    if found then  -- another session may have taken the day meanwhile
      perform public.sla_rollup_daily(v_day);
      v_days := v_days + 1;
    end if;
  end loop;
  return v_days;
end
$$;

comment on function public.sla_rollup_due(timestamptz) is
  'Runs the daily SLA rollup for each finished day of the last week not rolled up yet.';

-- ============================================================================================
-- Grants: the sweep and the rollup are for the service path (the runner, the script, pg_cron)
-- ============================================================================================
revoke execute on function public.sla_sweep(timestamptz) from public, anon, authenticated;
revoke execute on function public.sla_rollup_daily(date) from public, anon, authenticated;
revoke execute on function public.sla_rollup_due(timestamptz) from public, anon, authenticated;
grant execute on function public.sla_sweep(timestamptz) to service_role;
grant execute on function public.sla_rollup_daily(date) to service_role;
grant execute on function public.sla_rollup_due(timestamptz) to service_role;
