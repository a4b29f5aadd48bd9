-- SLA: definitions per step, the business calendar (hours per weekday, holidays), the live
-- clock per task, alerts raised once per level, escalation rules and daily compliance rollups.

-- ============================================================================================
-- Business calendar
-- ============================================================================================
create table public.business_hours_config (
  id uuid primary key default gen_random_uuid(),
  -- ISO weekday: 1 = Monday ... 7 = Sunday. A weekday without a row is closed.
  weekday smallint not null check (weekday between 1 and 7),
  opens_at time not null,
  closes_at time not null,
  timezone text not null default 'America/New_York',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint business_hours_config_weekday_key unique (weekday),
  constraint business_hours_config_opens_before_closes check (opens_at < closes_at)
);
comment on table public.business_hours_config is 'Working hours per ISO weekday in one IANA time zone; SLA clocks only run inside them.';
create trigger business_hours_config_touch_updated_at before update on public.business_hours_config
  for each row execute function private.touch_updated_at();

-- One calendar, one time zone: every row must name the same, valid zone.
create or replace function private.check_business_hours_timezone() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Raises 22023 for a zone PostgreSQL does not know (cheaper than scanning pg_timezone_names).
  perform now() at time zone new.timezone;
  if exists (
    select 1 from public.business_hours_config c
    where c.timezone <> new.timezone and c.id <> new.id
  ) then
    raise exception 'all business hours must use one time zone' using errcode = '23514';
  end if;
  return new;
end
$$;
create trigger business_hours_config_check_timezone before insert or update on public.business_hours_config
  for each row execute function private.check_business_hours_timezone();

create table public.business_holidays (
  id uuid primary key default gen_random_uuid(),
  holiday_date date not null,
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint business_holidays_date_key unique (holiday_date)
);
comment on table public.business_holidays is 'Days on which no business time passes (US federal holidays by default).';
create trigger business_holidays_touch_updated_at before update on public.business_holidays
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- SLA definitions: business minutes per workflow type, task type and (optionally) agent
-- ============================================================================================
create table public.sla_definitions (
  id uuid primary key default gen_random_uuid(),
  workflow_type public.workflow_type not null,
  task_type text not null,
  agent_name text references public.agents (name) on update cascade,
  business_minutes integer not null check (business_minutes > 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sla_definitions_scope_key unique nulls not distinct (workflow_type, task_type, agent_name)
);
comment on table public.sla_definitions is 'How many business minutes a step may take, by workflow type, task type and optionally agent.';
create index sla_definitions_agent_name_idx on public.sla_definitions (agent_name);
create trigger sla_definitions_touch_updated_at before update on public.sla_definitions
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- SLA tracking: the clock of each task
-- ============================================================================================
create table public.sla_tracking (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  client_id uuid not null references public.clients (id) on delete restrict,
  sla_definition_id uuid references public.sla_definitions (id) on delete set null,
  business_minutes integer not null check (business_minutes > 0),
  -- When the task first became actionable.
  started_at timestamptz not null,
  -- When the clock last (re)started: the thresholds below count from here.
  resumed_at timestamptz not null,
  -- While the clock is stopped: the due date it had when it stopped (resuming recomputes it).
  due_at timestamptz not null,
  -- The instants at which 60 %, 80 % and 95 % of the SLA time are used (YELLOW, ORANGE, RED);
  -- BREACHED is any instant after due_at.
  yellow_at timestamptz not null,
  orange_at timestamptz not null,
  red_at timestamptz not null,
  -- When the sweep must look at this clock again: the threshold of the next level while the
  -- clock runs, null while it is stopped or already BREACHED.
  next_alert_at timestamptz,
  -- Set while the clock is stopped (workflow paused, waiting on the client).
  paused_at timestamptz,
  -- Business minutes used before resumed_at (all of them once stopped).
  consumed_business_minutes integer not null default 0 check (consumed_business_minutes >= 0),
  alert_level public.sla_alert_level not null default 'GREEN',
  sla_status public.sla_status not null default 'ON_TIME',
  breached_at timestamptz,
  -- Set when the task is finished (completed, skipped or cancelled): the clock is final.
  stopped_at timestamptz,
  last_evaluated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sla_tracking_task_id_key unique (task_id),
  constraint sla_tracking_due_after_start check (due_at >= started_at),
  constraint sla_tracking_thresholds_ordered check (yellow_at <= orange_at and orange_at <= red_at and red_at <= due_at)
);
comment on table public.sla_tracking is 'The live SLA clock of each actionable task: due date in business time, pauses, current alert level.';
create index sla_tracking_workflow_id_idx on public.sla_tracking (workflow_id);
create index sla_tracking_client_id_idx on public.sla_tracking (client_id);
create index sla_tracking_sla_definition_id_idx on public.sla_tracking (sla_definition_id);
create index sla_tracking_open_due_idx on public.sla_tracking (due_at) where stopped_at is null;
-- The sweep reads only the clocks whose next level has come (none on a quiet minute).
create index sla_tracking_next_alert_idx on public.sla_tracking (next_alert_at) where next_alert_at is not null;
-- The daily rollup reads the clocks that stopped on one day.
create index sla_tracking_stopped_at_idx on public.sla_tracking (stopped_at) where stopped_at is not null;
create trigger sla_tracking_touch_updated_at before update on public.sla_tracking
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- SLA alerts: each level raised at most once per task
-- ============================================================================================
create table public.sla_alerts (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  client_id uuid not null references public.clients (id) on delete restrict,
  sla_tracking_id uuid references public.sla_tracking (id) on delete cascade,
  alert_level public.sla_alert_level not null check (alert_level <> 'GREEN'),
  percent_used numeric(7, 2) not null check (percent_used >= 0),
  message text not null,
  raised_at timestamptz not null default now(),
  acknowledged_by uuid references public.user_profiles (id) on delete set null,
  acknowledged_at timestamptz,
  -- Set when the task's clock stops: no further escalation.
  resolved_at timestamptz,
  -- When the sweep must next look at this alert's escalation rules (rules with a delay fire
  -- later); null once every rule for its level has fired.
  escalation_due_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sla_alerts_level_once unique (task_id, alert_level)
);
comment on table public.sla_alerts is 'SLA alerts (YELLOW, ORANGE, RED, BREACHED), at most one per task and level.';
create index sla_alerts_workflow_id_idx on public.sla_alerts (workflow_id);
create index sla_alerts_client_id_idx on public.sla_alerts (client_id);
create index sla_alerts_sla_tracking_id_idx on public.sla_alerts (sla_tracking_id);
create index sla_alerts_acknowledged_by_idx on public.sla_alerts (acknowledged_by);
create index sla_alerts_open_idx on public.sla_alerts (raised_at desc) where resolved_at is null;
create index sla_alerts_escalation_due_idx on public.sla_alerts (escalation_due_at) where escalation_due_at is not null;
create trigger sla_alerts_touch_updated_at before update on public.sla_alerts
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Escalation rules: who is told at which level, after how long
-- ============================================================================================
create table public.sla_escalation_rules (
  id uuid primary key default gen_random_uuid(),
  alert_level public.sla_alert_level not null check (alert_level in ('YELLOW', 'ORANGE', 'RED', 'BREACHED')),
  -- null: every workflow type
  workflow_type public.workflow_type,
  notify_target text not null check (notify_target in ('ASSIGNEE', 'TEAM', 'MANAGER')),
  delay_minutes integer not null default 0 check (delay_minutes >= 0),
  notification_priority public.priority_level not null default 'HIGH',
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sla_escalation_rules_scope_key unique nulls not distinct (alert_level, workflow_type, notify_target)
);
comment on table public.sla_escalation_rules is 'Escalation ladder: assignee at ORANGE, team at RED, manager at BREACHED by default, with delays.';
create trigger sla_escalation_rules_touch_updated_at before update on public.sla_escalation_rules
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Daily compliance rollup
-- ============================================================================================
create table public.sla_performance_metrics (
  id uuid primary key default gen_random_uuid(),
  metric_date date not null,
  workflow_type public.workflow_type not null,
  task_type text,
  agent_name text references public.agents (name) on update cascade,
  tasks_total integer not null default 0 check (tasks_total >= 0),
  tasks_on_time integer not null default 0 check (tasks_on_time >= 0),
  tasks_breached integer not null default 0 check (tasks_breached >= 0),
  avg_business_minutes numeric(10, 2) check (avg_business_minutes >= 0),
  compliance_rate numeric(5, 4) check (compliance_rate between 0 and 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sla_performance_metrics_scope_key unique nulls not distinct (metric_date, workflow_type, task_type, agent_name),
  constraint sla_performance_metrics_counts check (tasks_on_time + tasks_breached <= tasks_total)
);
comment on table public.sla_performance_metrics is 'Daily SLA compliance per workflow type, task type and agent, filled by a rollup.';
create index sla_performance_metrics_agent_name_idx on public.sla_performance_metrics (agent_name);
create trigger sla_performance_metrics_touch_updated_at before update on public.sla_performance_metrics
  for each row execute function private.touch_updated_at();
