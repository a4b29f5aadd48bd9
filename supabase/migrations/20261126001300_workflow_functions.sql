-- Workflow and task state machines and the multi-row changes built on them: legal status
-- transitions (refused by triggers whoever writes), derived progress counters, task plan
-- instantiation, and the workflow and task actions used by the API, Supabase RPC, the n8n
-- callbacks and n8n's Postgres node alike.
--
-- Errors use SQLSTATEs the service maps to HTTP: 55000 illegal state (409), P0002 not found
-- or not visible (404), 42501 not allowed (403), 22023 bad argument (422).
--
-- Who is calling: the service path (private.is_service()) may do everything; people and agents
-- only what their role allows.

-- ============================================================================================
-- Legal transitions
-- ============================================================================================
create or replace function public.workflow_transition_allowed(
  from_status public.workflow_status, to_status public.workflow_status
) returns boolean
language plpgsql immutable
set search_path = ''
as $$
-- plpgsql keeps its plan for the session; a SQL function with a SET clause is planned again
-- in every statement that calls it, which costs more than the call.
begin
  return from_status = to_status or case from_status
    when 'PENDING' then to_status in ('IN_PROGRESS', 'CANCELLED')
    when 'IN_PROGRESS' then to_status in ('AWAITING_REVIEW', 'BLOCKED', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELLED')
    when 'AWAITING_REVIEW' then to_status in ('IN_PROGRESS', 'BLOCKED', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELLED')
    when 'BLOCKED' then to_status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'PAUSED', 'FAILED', 'CANCELLED')
    when 'PAUSED' then to_status in ('IN_PROGRESS', 'BLOCKED', 'CANCELLED')
    -- A failed workflow can be resumed from its last checkpoint, or closed out, by a HIL person
    -- (workflow_action's resume and cancel, the only way out of FAILED: no machine path and no
    -- client moves it, private.refuse_finished, and a caller's own write changes no finished
    -- workflow's status, private.guard_workflow_status).
    when 'FAILED' then to_status in ('IN_PROGRESS', 'CANCELLED')
    else false -- COMPLETED and CANCELLED are final
  end;
end
$$;

create or replace function public.task_transition_allowed(
  from_status public.task_status, to_status public.task_status
) returns boolean
language plpgsql immutable
set search_path = ''
as $$
begin
  return from_status = to_status or case from_status
    when 'PENDING' then to_status in ('RUNNING', 'WAITING', 'AWAITING_REVIEW', 'COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED')
    when 'RUNNING' then to_status in ('WAITING', 'AWAITING_REVIEW', 'COMPLETED', 'FAILED', 'CANCELLED')
    when 'WAITING' then to_status in ('RUNNING', 'AWAITING_REVIEW', 'COMPLETED', 'FAILED', 'CANCELLED')
    when 'AWAITING_REVIEW' then to_status in ('RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED')
    -- A failed task can be retried, resolved by hand, skipped or cancelled.
    when 'FAILED' then to_status in ('PENDING', 'RUNNING', 'COMPLETED', 'SKIPPED', 'CANCELLED')
    else false -- COMPLETED, SKIPPED and CANCELLED are final
  end;
end
$$;
grant execute on function public.workflow_transition_allowed(public.workflow_status, public.workflow_status),
  public.task_transition_allowed(public.task_status, public.task_status) to authenticated, service_role;

-- ============================================================================================
-- Finished is final: a workflow COMPLETED, CANCELLED or FAILED no longer changes through any
-- callback or action (docs/security.md#finished-is-final-and-what-the-server-owns). Every
-- function that creates or changes work (workflow_action, transition_task, task_action,
-- apply_n8n_event, receive_inbound) refuses it first with private.refuse_finished (55000,
-- answered 409 invalid_state), and callers' own writes are held by private.guard_finished_work
-- (tasks) and private.guard_workflow_status (a workflow's status). What stays open is what a
-- person deliberately does:
--  - a HIL person's correction of a finished workflow or task (an update of its fields, never
--    its status), audited as workflow.corrected / task.corrected (private.audit_row_change);
--  - a HIL person's recovery of a FAILED workflow (COMPLETED and CANCELLED are final in the
--    table above, FAILED is not): workflow_action's resume starts it again from its last
--    checkpoint in a new n8n execution, the failed one retired so that nothing it still sends
--    is applied (private.resume_failed_workflow), and its cancel closes it out. FAILED stays
--    final for every machine path (n8n's callbacks and error report, inbound deliveries,
--    injected tasks, agents, the service) and for clients.
-- ============================================================================================
create or replace function private.is_finished(p_status public.workflow_status) returns boolean
language plpgsql immutable
set search_path = ''
as $$
begin
  return p_status in ('COMPLETED', 'CANCELLED', 'FAILED');
end
$$;

-- Raises 55000 "workflow is finished (STATUS): <what is refused>" for a finished workflow.
create or replace function private.refuse_finished(p_status public.workflow_status, p_what text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_status in ('COMPLETED', 'CANCELLED', 'FAILED') then
    raise exception 'workflow is finished (%): %', p_status, p_what
      using errcode = '55000', constraint = 'workflow_finished';
  end if;
end
$$;

-- Whether the statement running now is a caller's own write: made in a request's role (a person
-- or an agent, through the API or Supabase's REST API), not by the service and not inside a
-- security definer function of the database (there current_user is the function's owner; those
-- functions check what they do themselves). Meaningful only in a function that is not security
-- definer itself: the guards of callers' writes.
create or replace function private.writes_as_caller() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return current_user::text in ('anon', 'authenticated', 'service_role') and not private.is_service();
end
$$;

-- A workflow's status whatever the caller may see of it (null for an unknown id).
create or replace function private.workflow_status_of(p_workflow_id uuid) returns public.workflow_status
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  return (select w.status from public.workflows w where w.id = p_workflow_id);
end
$$;

-- ============================================================================================
-- Workflow triggers: refuse illegal transitions, keep lifecycle timestamps
-- ============================================================================================
create or replace function private.guard_workflow_status() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if new.status <> 'PENDING' then
      raise exception 'a workflow starts as PENDING, not %', new.status
        using errcode = '55000', constraint = 'workflow_status_transition';
    end if;
    return new;
  end if;
  if new.workflow_type <> old.workflow_type or new.client_id <> old.client_id then
    raise exception 'a workflow cannot change its type or client'
      using errcode = '55000', constraint = 'workflow_identity_fixed';
  end if;
  -- A caller's own write (private.writes_as_caller: a person through Supabase's REST API) moves
  -- no finished workflow: status changes are actions, and leaving FAILED is a HIL person's
  -- resume or cancel, which retires the failed execution (workflow_action).
  if new.status <> old.status and private.is_finished(old.status) and private.writes_as_caller() then
    perform private.refuse_finished(old.status,
      'a correction does not change a workflow''s status (status changes are actions)');
  end if;
  if not public.workflow_transition_allowed(old.status, new.status) then
    raise exception 'workflow % cannot go from % to %', old.id, old.status, new.status
      using errcode = '55000', constraint = 'workflow_status_transition';
  end if;
  if new.status = 'IN_PROGRESS' and new.started_at is null then
    new.started_at := now();
  end if;
  if new.status in ('COMPLETED', 'FAILED', 'CANCELLED') and old.status <> new.status then
    new.completed_at := now();
  elsif new.status not in ('COMPLETED', 'FAILED', 'CANCELLED') then
    new.completed_at := null;
  end if;
  return new;
end
$$;
create trigger workflows_guard_status before insert or update on public.workflows
  for each row execute function private.guard_workflow_status();

-- ============================================================================================
-- Task triggers: tenant copied from the workflow, illegal transitions refused, timestamps kept
-- ============================================================================================
create or replace function private.guard_task_status() returns trigger
language plpgsql
security definer -- reads the parent workflow whatever the writer may see of it
set search_path = ''
as $$
declare
  v_client_id uuid;
begin
  if tg_op = 'INSERT' then
    select w.client_id into v_client_id from public.workflows w where w.id = new.workflow_id;
    new.client_id := coalesce(v_client_id, new.client_id);
  else
    if new.workflow_id <> old.workflow_id or new.task_key <> old.task_key then
      raise exception 'a task cannot move to another workflow or change its key'
        using errcode = '55000', constraint = 'task_identity_fixed';
    end if;
    new.client_id := old.client_id;
    if not public.task_transition_allowed(old.status, new.status) then
      raise exception 'task % (%) cannot go from % to %', old.task_key, old.id, old.status, new.status
        using errcode = '55000', constraint = 'task_status_transition';
    end if;
  end if;
  if new.status = 'RUNNING' and new.started_at is null then
    new.started_at := now();
  end if;
  if new.status in ('COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED')
     and (tg_op = 'INSERT' or old.status <> new.status) then
    new.completed_at := now();
  elsif new.status not in ('COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED') then
    new.completed_at := null;
  end if;
  return new;
end
$$;
create trigger tasks_guard_status before insert or update on public.tasks
  for each row execute function private.guard_task_status();

-- A caller's own write to a task of a finished workflow (private.writes_as_caller: not the
-- service, not the functions, which refuse it themselves): no task is added to it, an agent
-- changes none of its tasks, and a HIL person's correction leaves a task's status as it is.
-- Not security definer, so that current_user tells a caller's own write from a function's.
create or replace function private.guard_finished_work() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_status public.workflow_status;
begin
  if not private.writes_as_caller() then
    return new;
  end if;
  v_status := private.workflow_status_of(new.workflow_id);
  if not coalesce(private.is_finished(v_status), false) then
    return new;
  end if;
  if tg_op = 'INSERT' then
    perform private.refuse_finished(v_status, 'no task can be added to it');
  elsif not private.is_hil() then
    perform private.refuse_finished(v_status, 'its tasks no longer change');
  elsif new.status <> old.status then
    perform private.refuse_finished(v_status, 'a correction does not change a task''s status (status changes are actions)');
  end if;
  return new;
end
$$;
create trigger tasks_guard_finished_work before insert or update on public.tasks
  for each row execute function private.guard_finished_work();

-- Progress counters follow every task change, whoever makes it, once per statement (a plan of
-- nine tasks inserted at once updates its workflow once). Security definer: derived columns of
-- the workflow must stay right even when the writer (an agent) may not update workflows.
-- Tasks SKIPPED or CANCELLED do not count towards the total. The workflow's SLA status is the
-- worst of its counted tasks' (ON_TIME < AT_RISK < BREACHED): the SLA sweep only writes the
-- tasks, and the workflow follows here whoever changed them.
create or replace function private.refresh_progress_of(p_workflow_ids uuid[]) returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan  -- docs/performance.md#generic-plans
as $$
begin
  if coalesce(cardinality(p_workflow_ids), 0) = 0 then
    return;
  end if;
  update public.workflows w
     set total_tasks = p.total, completed_tasks = p.completed, sla_status = p.sla_status
    from (
      -- a workflow whose last task was deleted counts nothing (the left join's one empty row)
      select c.workflow_id,
             count(t.id) filter (where t.status not in ('SKIPPED', 'CANCELLED')) as total,
             count(t.id) filter (where t.status = 'COMPLETED') as completed,
             coalesce(max(t.sla_status) filter (where t.status not in ('SKIPPED', 'CANCELLED')),
                      'ON_TIME') as sla_status
        from unnest(p_workflow_ids) as c (workflow_id)
        left join public.tasks t on t.workflow_id = c.workflow_id
       group by c.workflow_id
    ) p
   where w.id = p.workflow_id
     and (w.total_tasks, w.completed_tasks, w.sla_status) is distinct from (p.total, p.completed, p.sla_status);
end
$$;

create or replace function private.refresh_workflow_progress() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refresh_progress_of(array(select distinct c.workflow_id from changed_tasks c));
  return null;
end
$$;

-- Updates: only the workflows of tasks whose part in the figures changed (counted or not,
-- completed or not, SLA status): an assignment, a note, a task that starts or waits leaves the
-- workflow's figures as they are, and costs no recount.
create or replace function private.refresh_workflow_progress_after_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.refresh_progress_of(array(
    select distinct x.workflow_id
      from old_tasks o
      join new_tasks n on n.id = o.id
     cross join lateral (values (o.workflow_id), (n.workflow_id)) as x (workflow_id)
     where (o.workflow_id, o.status in ('SKIPPED', 'CANCELLED'), o.status = 'COMPLETED', o.sla_status)
           is distinct from (n.workflow_id, n.status in ('SKIPPED', 'CANCELLED'), n.status = 'COMPLETED', n.sla_status)));
  return null;
end
$$;
create trigger tasks_refresh_progress_on_insert after insert on public.tasks
  referencing new table as changed_tasks
  for each statement execute function private.refresh_workflow_progress();
create trigger tasks_refresh_progress_on_update after update on public.tasks
  referencing old table as old_tasks new table as new_tasks
  for each statement execute function private.refresh_workflow_progress_after_update();
create trigger tasks_refresh_progress_on_delete after delete on public.tasks
  referencing old table as changed_tasks
  for each statement execute function private.refresh_workflow_progress();

-- Each status change is written to the task's timeline. Security definer: the timeline is
-- append-only and written only by the database.
create or replace function private.record_task_timeline() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor record;
begin
  if tg_op = 'UPDATE' and new.status = old.status and new.assigned_to is not distinct from old.assigned_to then
    return null;
  end if;
  select * into v_actor from private.current_actor();
  insert into public.task_timeline_events (task_id, workflow_id, event_type, from_status, to_status, actor_type, actor_id, data)
  values (
    new.id, new.workflow_id,
    case when tg_op = 'INSERT' then 'created'
         when new.status <> old.status then 'status_changed'
         else 'assigned' end,
    case when tg_op = 'UPDATE' then old.status end,
    new.status, v_actor.actor_type, v_actor.actor_id,
    jsonb_strip_nulls(jsonb_build_object('assignedTo', new.assigned_to, 'attempt', new.attempt_count))
  );
  return null;
end
$$;
create trigger tasks_record_timeline after insert or update of status, assigned_to on public.tasks
  for each row execute function private.record_task_timeline();

-- ============================================================================================
-- Task plan instantiation: one task per template step with its SLA in business minutes. No
-- clock runs yet: each task's clock starts when the task becomes actionable (its dependencies
-- done), which the SLA engine (20261126002400_sla_engine.sql) sees from the tasks themselves.
-- ============================================================================================
create or replace function private.instantiate_task_plan(p_workflow_id uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_workflow public.workflows;
  v_count integer;
begin
  select * into v_workflow from public.workflows where id = p_workflow_id;
  -- One statement, so the progress, event and clock triggers fire once for the whole plan.
  -- The most specific SLA definition wins: agent-specific, then per task type, then the plan.
  insert into public.tasks (
    workflow_id, client_id, task_key, task_type, title, description, sequence, executor_type,
    agent_name, priority, depends_on, branch_group, sla_minutes
  )
  select p_workflow_id, v_workflow.client_id, tt.task_key, tt.task_type, tt.title, tt.description, tt.sequence,
         tt.executor_type, tt.agent_name, greatest(tt.priority, v_workflow.priority), tt.depends_on, tt.branch_group,
         coalesce((select d.business_minutes
                     from public.sla_definitions d
                    where d.is_active and d.workflow_type = v_workflow.workflow_type and d.task_type = tt.task_type
                      and (d.agent_name is null or d.agent_name = tt.agent_name)
                    order by d.agent_name nulls last
                    limit 1), tt.sla_minutes)
    from public.task_templates tt
    join public.workflow_templates wt on wt.id = tt.workflow_template_id
   where wt.workflow_type = v_workflow.workflow_type and wt.is_active
   order by tt.sequence, tt.task_key;
  get diagnostics v_count = row_count;
  if v_count = 0 then
    raise exception 'no active task plan for %', v_workflow.workflow_type using errcode = '22023';
  end if;
  return v_count;
end
$$;

-- ============================================================================================
-- Authorization inside the action functions (they are security definer, see below)
-- ============================================================================================
-- Whether the caller may see (and so act on) a workflow: the one test behind every action.
-- Read as true or not at all: a caller without a tenant (an agent without work in its scope, a
-- client user whose claims carry no client id) makes the test null, and IF takes null as
-- false, so a plain "if not (...)" would skip the "not visible" branch and act on any workflow.
create or replace function private.may_see_workflow(p_workflow public.workflows) returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(
    private.is_service() or private.is_hil()
    or (private.is_client() and p_workflow.client_id = private.client_id())
    or (private.is_agent() and p_workflow.id = private.agent_workflow_id()),
    false);
end
$$;

-- Loads and locks a workflow the caller may see; one not visible reads as not found.
create or replace function private.lock_visible_workflow(p_workflow_id uuid) returns public.workflows
language plpgsql
set search_path = ''
as $$
declare
  v_workflow public.workflows;
begin
  select * into v_workflow from public.workflows where id = p_workflow_id for update;
  if not found or not private.may_see_workflow(v_workflow) then
    raise exception 'workflow % not found', p_workflow_id using errcode = 'P0002';
  end if;
  return v_workflow;
end
$$;

-- A task whose workflow the caller may not see is a task that does not exist: raised exactly
-- as for an unknown task id, so the answer tells neither that the task exists nor its
-- workflow. The public task functions (transition_task below, task_action in
-- 20261126001700_task_actions.sql) ask this first, then call their private body.
create or replace function private.require_visible_task(p_task_id uuid) returns void
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_workflow public.workflows;
begin
  select w.* into v_workflow from public.tasks t join public.workflows w on w.id = t.workflow_id where t.id = p_task_id;
  if not found or not private.may_see_workflow(v_workflow) then
    raise exception 'task % not found', p_task_id using errcode = 'P0002';
  end if;
end
$$;

-- What n8n's trigger carries about a workflow (the dispatcher adds the callback URL and keys):
-- its type, priority, payload and tasks. Used to start a workflow and to start it again after
-- n8n lost its execution (public.recover_lost_execution).
create or replace function private.n8n_trigger_payload(p_workflow_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'workflowId', w.id,
    'workflowType', w.workflow_type,
    'priority', w.priority,
    'payload', w.payload,
    'tasks', (select jsonb_agg(jsonb_build_object('taskKey', t.task_key, 'taskId', t.id, 'agentName', t.agent_name)
                               order by t.sequence, t.task_key)
                from public.tasks t where t.workflow_id = w.id))
    from public.workflows w where w.id = p_workflow_id
$$;
revoke all on function private.n8n_trigger_payload(uuid) from public, anon, authenticated;

-- ============================================================================================
-- Workflow actions: start | pause | resume | cancel | complete
--
-- Security definer: an action writes rows the caller may not write directly (the task plan,
-- the n8n outbox, other people's notifications); the function authorizes the caller itself
-- from the same app_metadata claims the policies read. Clients may start and cancel their
-- own workflows; HIL people may do everything; agents nothing. A finished workflow takes no
-- action (private.refuse_finished) but a HIL person's resume or cancel of a FAILED one: its
-- recovery. The service, n8n's Postgres node and clients do not recover a failed workflow
-- (a client's cancel of its failed order is refused too: what becomes of a failed order is
-- the HIL team's decision, to resume it or close it out).
-- ============================================================================================
create or replace function public.workflow_action(p_workflow_id uuid, p_action text, p_data jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_workflow public.workflows;
  v_new_status public.workflow_status;
  v_tasks_created integer := 0;
  v_open_tasks integer;
  v_dispatch_id uuid;
  v_recovery jsonb;
  v_data jsonb := coalesce(p_data, '{}'::jsonb);
begin
  if p_action is null or p_action not in ('start', 'pause', 'resume', 'cancel', 'complete') then
    raise exception 'unknown workflow action %', coalesce(p_action, 'null') using errcode = '22023';
  end if;
  v_workflow := private.lock_visible_workflow(p_workflow_id);
  if not (private.is_service() or private.is_hil()
          or (private.is_client() and p_action in ('start', 'cancel'))) then
    raise exception 'your role may not % a workflow', p_action using errcode = '42501';
  end if;
  if not (v_workflow.status = 'FAILED' and p_action in ('resume', 'cancel')
          and private.is_hil() and not private.is_service()) then
    perform private.refuse_finished(v_workflow.status, 'it can no longer be ' || case p_action
      when 'start' then 'started' when 'pause' then 'paused' when 'resume' then 'resumed'
      when 'cancel' then 'cancelled' else 'completed' end);
  end if;

  if p_action = 'start' then
    if v_workflow.status <> 'PENDING' then
      raise exception 'workflow is %, only a PENDING workflow can be started', v_workflow.status
        using errcode = '55000';
    end if;
    v_new_status := 'IN_PROGRESS';
    update public.workflows set status = v_new_status where id = v_workflow.id;
    v_tasks_created := private.instantiate_task_plan(v_workflow.id);
    insert into public.n8n_dispatches (workflow_id, kind, payload)
    values (v_workflow.id, 'TRIGGER', private.n8n_trigger_payload(v_workflow.id))
    returning id into v_dispatch_id;

  elsif p_action = 'pause' then
    if v_workflow.status not in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED') then
      raise exception 'workflow is %, only an active workflow can be paused', v_workflow.status using errcode = '55000';
    end if;
    v_new_status := 'PAUSED';
    update public.workflows set status = v_new_status where id = v_workflow.id;

  elsif p_action = 'resume' then
    if v_workflow.status not in ('PAUSED', 'BLOCKED', 'FAILED') then
      raise exception 'workflow is %, only a paused, blocked or failed workflow can be resumed', v_workflow.status
        using errcode = '55000';
    end if;
    v_new_status := 'IN_PROGRESS';
    update public.workflows set status = v_new_status where id = v_workflow.id;
    if v_workflow.status = 'FAILED' then
      -- Recovery from the last checkpoint (a HIL person's, checked above): the failed execution
      -- retired, its failed tasks runnable again, a new execution queued that repeats nothing done.
      v_recovery := private.resume_failed_workflow(v_workflow);
      v_dispatch_id := (v_recovery ->> 'dispatchId')::uuid;
      v_data := v_data || jsonb_build_object('recovery', v_recovery);
    -- Blocked because n8n lost its execution too often (public.recover_lost_execution): nothing
    -- runs it any more, so resuming starts it again where it stopped, and the count starts over.
    elsif v_workflow.n8n_status = 'lost' and v_workflow.n8n_execution_id is null then
      update public.workflows set metadata = metadata || jsonb_build_object('lossesInARow', 0) where id = v_workflow.id;
      v_dispatch_id := private.queue_resumed_trigger(v_workflow.id,
                                                     v_workflow.metadata -> 'lostExecutions' -> -1 ->> 'executionId');
    end if;

  elsif p_action = 'cancel' then
    v_new_status := 'CANCELLED';
    update public.tasks set status = 'CANCELLED'
     where workflow_id = v_workflow.id and status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED');
    update public.workflows
       set status = v_new_status,
           metadata = metadata || jsonb_strip_nulls(jsonb_build_object('cancelReason', v_data ->> 'reason'))
     where id = v_workflow.id;
    -- An undelivered trigger is dropped; a running execution is stopped through n8n (a failed
    -- workflow's execution has ended already: nothing to stop).
    update public.n8n_dispatches set status = 'DEAD', last_error = 'workflow cancelled'
     where workflow_id = v_workflow.id and kind = 'TRIGGER' and status in ('PENDING', 'FAILED');
    if v_workflow.status <> 'FAILED' and exists (select 1 from public.n8n_dispatches d
                where d.workflow_id = v_workflow.id and d.kind = 'TRIGGER' and d.status in ('DELIVERING', 'DELIVERED')) then
      insert into public.n8n_dispatches (workflow_id, kind, payload)
      values (v_workflow.id, 'CANCEL', jsonb_build_object('workflowId', v_workflow.id, 'executionId', v_workflow.n8n_execution_id))
      returning id into v_dispatch_id;
    end if;

  else -- complete
    if v_workflow.status not in ('IN_PROGRESS', 'AWAITING_REVIEW') then
      raise exception 'workflow is %, only an active workflow can be completed', v_workflow.status using errcode = '55000';
    end if;
    select count(*) into v_open_tasks from public.tasks
     where workflow_id = v_workflow.id and status not in ('COMPLETED', 'SKIPPED', 'CANCELLED');
    if v_open_tasks > 0 then
      raise exception '% task(s) are still open', v_open_tasks using errcode = '55000';
    end if;
    v_new_status := 'COMPLETED';
    update public.workflows set status = v_new_status where id = v_workflow.id;
  end if;

  perform private.write_audit_event(
    'workflow.' || case p_action when 'start' then 'started' when 'pause' then 'paused'
                                 when 'resume' then 'resumed' when 'cancel' then 'cancelled'
                                 else 'completed' end,
    'workflow', v_workflow.id, v_workflow.id, v_workflow.client_id,
    jsonb_build_object('status', jsonb_build_object('old', v_workflow.status, 'new', v_new_status)), v_data);

  return jsonb_build_object(
    'success', true,
    'workflowId', v_workflow.id,
    'action', p_action,
    'previousStatus', v_workflow.status,
    'newStatus', v_new_status,
    'tasksCreated', v_tasks_created,
    'dispatchId', v_dispatch_id,
    'n8nExecutionId', v_workflow.n8n_execution_id
  );
end
$$;
revoke all on function public.workflow_action(uuid, text, jsonb) from public, anon;
grant execute on function public.workflow_action(uuid, text, jsonb) to authenticated, service_role;

-- ============================================================================================
-- Task transitions: the one place a task's status changes, for API actions and n8n callbacks.
-- p_data may carry: output, result, error, attempt, assignedTo, resumeUrl, executionId, and
-- waitingOn with WAITING ('CLIENT' stops the task's SLA clock until the client answers; kept
-- in metadata.waitingOn while the task waits).
-- Security definer for the same reason as workflow_action; HIL people, agents on their own
-- workflow and the service path may move tasks, client users may not.
-- Callers use public.transition_task, which checks the task's visibility first
-- (private.require_visible_task), then runs the body, private.transition_visible_task (which
-- only the service role may call directly).
-- ============================================================================================
create or replace function private.transition_visible_task(p_task_id uuid, p_status public.task_status, p_data jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_task public.tasks;
  v_workflow public.workflows;
  v_data jsonb := coalesce(p_data, '{}'::jsonb);
  v_attempt integer;
begin
  select * into v_task from public.tasks where id = p_task_id;
  if not found then
    raise exception 'task % not found', p_task_id using errcode = 'P0002';
  end if;
  v_workflow := private.lock_visible_workflow(v_task.workflow_id);
  if not (private.is_service() or private.is_hil() or private.is_agent()) then
    raise exception 'your role may not change tasks' using errcode = '42501';
  end if;
  select * into v_task from public.tasks where id = p_task_id for update;
  -- Not even to the status it has: a task of a finished workflow keeps its result and output.
  perform private.refuse_finished(v_workflow.status, 'its tasks no longer change');
  if not public.task_transition_allowed(v_task.status, p_status) then
    raise exception 'task % is %, it cannot become %', v_task.task_key, v_task.status, p_status
      using errcode = '55000', constraint = 'task_status_transition';
  end if;

  v_attempt := coalesce((v_data ->> 'attempt')::integer,
                        case when p_status = 'RUNNING' and v_task.status <> 'RUNNING'
                             then v_task.attempt_count + 1 else v_task.attempt_count end);
  update public.tasks set
    status = p_status,
    attempt_count = greatest(v_task.attempt_count, v_attempt),
    agent_output = coalesce(v_data -> 'output', agent_output),
    result = coalesce(v_data -> 'result', v_data -> 'output', result),
    error_message = case when p_status = 'FAILED' then coalesce(v_data ->> 'error', error_message)
                         when p_status in ('COMPLETED', 'RUNNING') then null else error_message end,
    assigned_to = coalesce((v_data ->> 'assignedTo')::uuid, assigned_to),
    resume_url = case when p_status = 'WAITING' then coalesce(v_data ->> 'resumeUrl', resume_url)
                      when p_status in ('COMPLETED', 'CANCELLED', 'SKIPPED') then null else resume_url end,
    metadata = case when p_status = 'WAITING' and v_data ? 'waitingOn'
                    then metadata || jsonb_build_object('waitingOn', upper(v_data ->> 'waitingOn'))
                    when p_status <> 'WAITING' then metadata - 'waitingOn'
                    else metadata end
  where id = v_task.id;

  return jsonb_build_object(
    'success', true,
    'taskId', v_task.id,
    'workflowId', v_task.workflow_id,
    'taskKey', v_task.task_key,
    'previousStatus', v_task.status,
    'newStatus', p_status,
    'attempt', greatest(v_task.attempt_count, v_attempt)
  );
end
$$;
revoke all on function private.transition_visible_task(uuid, public.task_status, jsonb) from public, anon, authenticated;
grant execute on function private.transition_visible_task(uuid, public.task_status, jsonb) to service_role;

create or replace function public.transition_task(p_task_id uuid, p_status public.task_status, p_data jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.require_visible_task(p_task_id);
  return private.transition_visible_task(p_task_id, p_status, p_data);
end
$$;
revoke all on function public.transition_task(uuid, public.task_status, jsonb) from public, anon;
grant execute on function public.transition_task(uuid, public.task_status, jsonb) to authenticated, service_role;
