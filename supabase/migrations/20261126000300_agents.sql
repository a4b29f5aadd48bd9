-- Agents: the catalog of the ten external AI agents, the links from plans, tasks and attempts
-- to it, the workflows an agent may see, and the results agents report per task.

-- ============================================================================================
-- Agent catalog
-- ============================================================================================
create table public.agents (
  id uuid primary key default gen_random_uuid(),
  name text not null check (name ~ '^[a-z][a-z0-9_]{1,30}$'),
  display_name text not null,
  specialty text not null,
  description text,
  endpoint_path text not null check (endpoint_path ~ '^/'),
  capabilities text[] not null default '{}',
  timeout_ms integer not null default 30000 check (timeout_ms between 100 and 600000),
  max_retries integer not null default 3 check (max_retries between 0 and 10),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint agents_name_key unique (name)
);
comment on table public.agents is 'The ten external AI agents: name, endpoint path (relative to the agent base URL, which is deployment configuration), task types handled.';
create trigger agents_touch_updated_at before update on public.agents
  for each row execute function private.touch_updated_at();

-- Plans, tasks and attempts name their agent; renaming an agent follows through.
alter table public.task_templates add constraint task_templates_agent_name_fkey
  foreign key (agent_name) references public.agents (name) on update cascade;
alter table public.tasks add constraint tasks_agent_name_fkey
  foreign key (agent_name) references public.agents (name) on update cascade;
alter table public.task_executions add constraint task_executions_agent_name_fkey
  foreign key (agent_name) references public.agents (name) on update cascade;

-- ============================================================================================
-- Agent scope: an agent sees only the workflow it is working on
-- ============================================================================================
-- Its request names that workflow (app_metadata.workflow_id, read by private.agent_workflow_id),
-- and the name counts only while the agent has work there: a task of that workflow assigned to
-- it, or an attempt it made (n8n's routing and fallbacks choose the agent per attempt, and
-- record it on the task and the execution). Without this, whoever held an agent key could name
-- any workflow.
-- Security definer: read in the policies of tasks and task_executions themselves, so it must not
-- go through their RLS (that would recurse). PL/pgSQL, so its plans are kept per connection.
create or replace function private.agent_has_work_in(p_workflow_id uuid, p_agent_name text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.tasks t where t.workflow_id = p_workflow_id and t.agent_name = p_agent_name)
      or exists (select 1 from public.task_executions e where e.workflow_id = p_workflow_id and e.agent_name = p_agent_name);
end
$$;

revoke all on function private.agent_has_work_in(uuid, text) from public, anon;
grant execute on function private.agent_has_work_in(uuid, text) to authenticated, service_role;

-- ============================================================================================
-- Agent results: what an agent reported for a task (confidence, time, tokens, cost)
-- ============================================================================================
create table public.agent_results (
  id uuid primary key default gen_random_uuid(),
  task_id uuid not null references public.tasks (id) on delete cascade,
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  task_execution_id uuid references public.task_executions (id) on delete set null,
  agent_name text not null references public.agents (name) on update cascade,
  success boolean not null,
  confidence_score numeric(4, 3) check (confidence_score between 0 and 1),
  processing_time_ms integer check (processing_time_ms >= 0),
  tokens_used integer check (tokens_used >= 0),
  cost_usd numeric(12, 4) check (cost_usd >= 0),
  result jsonb,
  error_details jsonb,
  created_at timestamptz not null default now()
);
comment on table public.agent_results is 'Per-task agent outcomes feeding the performance view. Internal: never shown to clients.';
create index agent_results_task_id_idx on public.agent_results (task_id);
create index agent_results_workflow_id_idx on public.agent_results (workflow_id);
create index agent_results_task_execution_id_idx on public.agent_results (task_execution_id);
create index agent_results_agent_created_idx on public.agent_results (agent_name, created_at);
