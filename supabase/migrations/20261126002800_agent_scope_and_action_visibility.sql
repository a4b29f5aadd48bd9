-- An agent sees only the workflow it is working on. Its request names that workflow
-- (X-Workflow-Scope, carried in the claims as app_metadata.workflow_id), and until now the claim
-- alone decided: whoever held an agent key could name any workflow. Now the scope counts only
-- when the agent has work there: a task of that workflow assigned to it, or an attempt it made
-- (n8n's routing and fallbacks choose the agent per attempt, and record it on the task and the
-- execution). A scope without work is no scope: the agent sees nothing, as for any row outside
-- its tenant.

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

create or replace function private.agent_workflow_id() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  v_workflow_id uuid;
begin
  if private.is_agent() then
    v_workflow_id := private.uuid_or_null(private.app_metadata() ->> 'workflow_id');
    if v_workflow_id is not null and private.agent_has_work_in(v_workflow_id, private.agent_name()) then
      return v_workflow_id;
    end if;
  end if;
  return null;
end
$$;

-- The workflow an action may touch. The visibility test is read as true or not at all: a
-- caller without a tenant (an agent without work in its scope, a client user whose claims carry
-- no client id) made it null, and IF takes null as false, so the "not visible" branch was
-- skipped and the action went ahead on any workflow.
create or replace function private.lock_visible_workflow(p_workflow_id uuid) returns public.workflows
language plpgsql
set search_path = ''
as $$
declare
  v_workflow public.workflows;
begin
  select * into v_workflow from public.workflows where id = p_workflow_id for update;
  if not found
     or not coalesce(
       private.is_service() or private.is_hil()
       or (private.is_client() and v_workflow.client_id = private.client_id())
       or (private.is_agent() and v_workflow.id = private.agent_workflow_id()),
       false) then
    raise exception 'workflow % not found', p_workflow_id using errcode = 'P0002';
  end if;
  return v_workflow;
end
$$;
