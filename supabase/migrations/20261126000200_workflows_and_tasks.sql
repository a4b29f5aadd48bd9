-- Workflows and tasks: task plans kept as data (templates), workflows, their tasks, one row
-- per execution attempt, and the append-only task timeline. State transitions are enforced
-- here by triggers, whoever writes.

-- ============================================================================================
-- Templates: the task plan of each workflow type (seeded by supabase/seed.sql)
-- ============================================================================================
create table public.workflow_templates (
  id uuid primary key default gen_random_uuid(),
  workflow_type public.workflow_type not null,
  name text not null,
  description text,
  target_business_minutes integer not null check (target_business_minutes > 0),
  required_inputs text[] not null default '{}',
  version integer not null default 1 check (version > 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_templates_type_key unique (workflow_type)
);
comment on table public.workflow_templates is 'One task plan per workflow type: target duration and required payload fields.';
create trigger workflow_templates_touch_updated_at before update on public.workflow_templates
  for each row execute function private.touch_updated_at();

create table public.task_templates (
  id uuid primary key default gen_random_uuid(),
  workflow_template_id uuid not null references public.workflow_templates (id) on delete cascade,
  task_key text not null check (task_key ~ '^[a-z][a-z0-9_]*$'),
  task_type text not null,
  title text not null,
  description text,
  sequence integer not null check (sequence > 0),
  executor_type public.executor_type not null default 'AI',
  agent_name text,
  depends_on text[] not null default '{}',
  sla_minutes integer not null check (sla_minutes > 0),
  priority public.priority_level not null default 'NORMAL',
  -- Steps in an alternative branch (created up front, SKIPPED when the branch is not taken).
  branch_group text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint task_templates_key unique (workflow_template_id, task_key),
  constraint task_templates_no_self_dependency check (not (task_key = any (depends_on)))
);
comment on table public.task_templates is 'The steps of a task plan: stable task key, agent, dependencies and SLA in business minutes.';
create index task_templates_agent_name_idx on public.task_templates (agent_name);
create trigger task_templates_touch_updated_at before update on public.task_templates
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Workflows
-- ============================================================================================
create table public.workflows (
  id uuid primary key default gen_random_uuid(),
  workflow_type public.workflow_type not null,
  status public.workflow_status not null default 'PENDING',
  client_id uuid not null references public.clients (id) on delete restrict,
  title text not null check (length(title) between 1 and 300),
  payload jsonb not null default '{}'::jsonb check (jsonb_typeof(payload) = 'object'),
  priority public.priority_level not null default 'NORMAL',
  hil_owner_id uuid references public.user_profiles (id) on delete set null,
  manager_id uuid references public.user_profiles (id) on delete set null,
  created_by uuid references public.user_profiles (id) on delete set null,
  due_date timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  n8n_execution_id text,
  n8n_status text,
  total_tasks integer not null default 0 check (total_tasks >= 0),
  completed_tasks integer not null default 0 check (completed_tasks >= 0),
  sla_status public.sla_status not null default 'ON_TIME',
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflows_progress_bounded check (completed_tasks <= total_tasks),
  constraint workflows_n8n_execution_id_key unique (n8n_execution_id)
);
comment on table public.workflows is 'One business process instance for a client: type, status, payload, owners, progress counters and the n8n execution that runs it.';
create index workflows_client_id_created_idx on public.workflows (client_id, created_at desc, id);
create index workflows_status_idx on public.workflows (status);
create index workflows_type_idx on public.workflows (workflow_type);
create index workflows_created_at_idx on public.workflows (created_at desc, id);
create index workflows_hil_owner_id_idx on public.workflows (hil_owner_id);
create index workflows_manager_id_idx on public.workflows (manager_id);
create index workflows_created_by_idx on public.workflows (created_by);
create trigger workflows_touch_updated_at before update on public.workflows
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Tasks
-- ============================================================================================
create table public.tasks (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  -- Copied from the workflow by trigger so tenant policies filter tasks without a join.
  client_id uuid not null references public.clients (id) on delete restrict,
  task_key text not null check (task_key ~ '^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?$'),
  task_type text not null,
  title text not null,
  description text,
  sequence integer not null default 1 check (sequence > 0),
  executor_type public.executor_type not null default 'AI',
  agent_name text,
  assigned_to uuid references public.user_profiles (id) on delete set null,
  status public.task_status not null default 'PENDING',
  priority public.priority_level not null default 'NORMAL',
  depends_on text[] not null default '{}',
  parent_task_id uuid references public.tasks (id) on delete cascade,
  branch_group text,
  sla_minutes integer check (sla_minutes > 0),
  sla_started_at timestamptz,
  sla_due_at timestamptz,
  sla_status public.sla_status not null default 'ON_TIME',
  agent_input jsonb,
  agent_output jsonb,
  result jsonb,
  error_message text,
  attempt_count integer not null default 0 check (attempt_count >= 0),
  max_attempts integer not null default 3 check (max_attempts > 0),
  -- Set while n8n waits on the task (a Wait node): 'n8n-resume:' || id, a reference to the
  -- secret resume URL kept in private.n8n_resume_urls (20261126002100_dispatch.sql).
  resume_url text,
  started_at timestamptz,
  completed_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint tasks_workflow_task_key unique (workflow_id, task_key),
  constraint tasks_sla_due_after_start check (sla_due_at is null or sla_started_at is null or sla_due_at >= sla_started_at)
);
comment on table public.tasks is 'Business tasks of a workflow (what people see), one per step of the plan or injected later; task_key is unique per workflow.';
create index tasks_client_id_idx on public.tasks (client_id);
create index tasks_status_idx on public.tasks (status);
create index tasks_agent_name_idx on public.tasks (agent_name);
create index tasks_assigned_to_idx on public.tasks (assigned_to);
create index tasks_parent_task_id_idx on public.tasks (parent_task_id);
create index tasks_open_sla_idx on public.tasks (sla_due_at)
  where status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW');
create index tasks_hil_queue_idx on public.tasks (executor_type, status, sla_due_at);
create trigger tasks_touch_updated_at before update on public.tasks
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Task executions: one row per attempt
-- ============================================================================================
create table public.task_executions (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  attempt integer not null check (attempt > 0),
  agent_name text,
  status text not null default 'RUNNING' check (status in ('RUNNING', 'SUCCEEDED', 'FAILED')),
  n8n_execution_id text,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms integer check (duration_ms >= 0),
  tokens_used integer check (tokens_used >= 0),
  cost_usd numeric(12, 4) check (cost_usd >= 0),
  error_code text,
  error_message text,
  input jsonb,
  output jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint task_executions_attempt_key unique (task_id, attempt),
  constraint task_executions_finish_after_start check (finished_at is null or finished_at >= started_at)
);
comment on table public.task_executions is 'Each attempt at a task: timing, tokens, cost and error. Internal: never shown to clients.';
create index task_executions_workflow_id_idx on public.task_executions (workflow_id);
create index task_executions_agent_name_idx on public.task_executions (agent_name, started_at);
create trigger task_executions_touch_updated_at before update on public.task_executions
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Task timeline: append-only history of what happened to each task
-- ============================================================================================
create table public.task_timeline_events (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  event_type text not null,
  from_status public.task_status,
  to_status public.task_status,
  actor_type public.actor_type not null default 'system',
  actor_id text,
  message text,
  data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table public.task_timeline_events is 'Append-only history of each task: status changes, assignments, escalations, notes from agents.';
create index task_timeline_events_task_id_idx on public.task_timeline_events (task_id, created_at);
create index task_timeline_events_workflow_id_idx on public.task_timeline_events (workflow_id);
create trigger task_timeline_events_append_only before update or delete on public.task_timeline_events
  for each row execute function private.refuse_change();
