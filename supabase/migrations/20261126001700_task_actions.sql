-- Task actions: the multi-row changes behind POST /api/tasks/{id}/actions (and DELETE, which
-- cancels), one atomic function shared by the API, Supabase RPC and n8n's Postgres node.
--
-- Errors use the SQLSTATEs of workflow_action: 22023 bad argument (422), P0002 not found or
-- not visible (404), 42501 not allowed (403), 55000 illegal state (409).
--
-- An escalated task carries metadata.escalation {reason, by, at}; it stays open until the task
-- is completed, resumed or cancelled, which add resolvedAt. A task whose resume_url is set is
-- one n8n is waiting on (a Wait node): completing, resuming or retrying it queues a RESUME in
-- the n8n outbox and clears resume_url, because an n8n resume URL can be called only once.

-- ============================================================================================
-- Helpers
-- ============================================================================================
-- HIL people to tell about a workflow: its active owner and manager, else every active manager.
create or replace function private.workflow_watchers(p_workflow public.workflows) returns setof uuid
language sql stable
set search_path = ''
as $$
  with named as (
    select p.id from public.user_profiles p
     where p.id in (p_workflow.hil_owner_id, p_workflow.manager_id) and p.user_type = 'hil_user' and p.is_active
  )
  select id from named
  union
  select p.id from public.user_profiles p
   where p.role = 'hil_manager' and p.is_active and not exists (select 1 from named)
$$;

create or replace function private.notify_watchers(
  p_workflow public.workflows, p_task_id uuid, p_type public.notification_type, p_priority public.priority_level,
  p_title text, p_message text, p_dedupe_key text
) returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  insert into public.notifications (recipient_id, notification_type, priority, title, message, action_required,
                                    workflow_id, task_id, dedupe_key)
  select person, p_type, p_priority, p_title, p_message, true, p_workflow.id, p_task_id, p_dedupe_key
    from private.workflow_watchers(p_workflow) person
  on conflict (recipient_id, dedupe_key) do nothing;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- ============================================================================================
-- complete | retry | escalate | assign | fail | resume | cancel
--
-- Security definer: an action writes rows the caller may not write directly (the n8n outbox,
-- other people's notifications, the timeline, a blocked workflow); the function authorizes
-- the caller itself from the same app_metadata claims the policies read. HIL people may take
-- every action; agents may complete and fail the tasks of the workflow they work on; clients
-- none. The body is private.act_on_visible_task (which only the service role may call
-- directly); public.task_action, below it, is what callers use.
--
-- Assigning a task to the person it is assigned to already is a no-op that still answers as a
-- success (notificationsSent 0): no write, no second "Task assigned to you" notification, no
-- audit event whose change is old = new (a double click, a client retrying a request whose
-- answer it lost).
-- ============================================================================================
create or replace function private.act_on_visible_task(p_task_id uuid, p_action text, p_data jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_data jsonb := coalesce(p_data, '{}'::jsonb);
  v_task public.tasks;
  v_workflow public.workflows;
  v_workflow_status public.workflow_status;
  v_new_status public.task_status;
  v_by text := (select a.actor_id from private.current_actor() a);
  v_result jsonb;
  v_text text;
  v_assignee uuid;
  v_resume_body jsonb;
  v_dispatch_id uuid;
  v_notified integer := 0;
  v_changes jsonb := '{}'::jsonb;
begin
  if p_action is null or p_action not in ('complete', 'retry', 'escalate', 'assign', 'fail', 'resume', 'cancel') then
    raise exception 'unknown task action %', coalesce(p_action, 'null') using errcode = '22023';
  end if;
  if jsonb_typeof(v_data) <> 'object' then
    raise exception 'data must be an object' using errcode = '22023';
  end if;

  select * into v_task from public.tasks where id = p_task_id;
  if not found then
    raise exception 'task % not found', p_task_id using errcode = 'P0002';
  end if;
  v_workflow := private.lock_visible_workflow(v_task.workflow_id);
  if not (private.is_service() or private.is_hil()
          or (private.is_agent() and p_action in ('complete', 'fail'))) then
    raise exception 'your role may not % a task', p_action using errcode = '42501';
  end if;
  select * into v_task from public.tasks where id = p_task_id for update;
  -- Finished is final (private.refuse_finished): no action on a task of a finished workflow.
  perform private.refuse_finished(v_workflow.status, 'its tasks no longer change');

  -- A result (complete, resume with complete) is an object when given.
  if jsonb_typeof(v_data -> 'result') not in ('object', 'null') then
    raise exception 'data.result must be an object' using errcode = '22023';
  end if;
  if jsonb_typeof(v_data -> 'result') = 'object' then
    v_result := v_data -> 'result';
  end if;

  if p_action = 'complete' then
    if v_task.status = 'COMPLETED' then
      raise exception 'task % is already COMPLETED', v_task.task_key using errcode = '55000';
    end if;
    v_new_status := 'COMPLETED';
    perform public.transition_task(v_task.id, v_new_status, jsonb_strip_nulls(jsonb_build_object('result', v_result)));
    if v_task.resume_url is not null then
      v_resume_body := jsonb_build_object('action', 'complete', 'result', v_result, 'by', v_by);
    end if;

  elsif p_action = 'retry' then
    if v_task.status <> 'FAILED' then
      raise exception 'task % is %, only a FAILED task can be retried', v_task.task_key, v_task.status
        using errcode = '55000';
    end if;
    v_new_status := 'PENDING';
    perform public.transition_task(v_task.id, v_new_status, jsonb_build_object('attempt', v_task.attempt_count));
    update public.tasks set error_message = null where id = v_task.id;
    if v_task.resume_url is not null then
      v_resume_body := jsonb_build_object('action', 'retry', 'by', v_by);
    end if;

  elsif p_action = 'escalate' then
    v_text := btrim(case when jsonb_typeof(v_data -> 'reason') = 'string' then v_data ->> 'reason' end);
    if coalesce(v_text, '') = '' or length(v_text) > 2000 then
      raise exception 'escalate needs data.reason, a text of 1 to 2000 characters' using errcode = '22023';
    end if;
    if v_task.status in ('COMPLETED', 'SKIPPED', 'CANCELLED') then
      raise exception 'task % is %, it cannot be escalated', v_task.task_key, v_task.status using errcode = '55000';
    end if;
    v_new_status := v_task.status;
    update public.tasks
       set executor_type = 'HIL',
           priority = greatest(priority, 'HIGH'::public.priority_level),
           metadata = metadata || jsonb_build_object('escalation', jsonb_build_object('reason', v_text, 'by', v_by, 'at', now()))
     where id = v_task.id;
    insert into public.task_timeline_events (task_id, workflow_id, event_type, from_status, to_status, actor_type, actor_id, message)
    select v_task.id, v_task.workflow_id, 'escalated', v_task.status, v_task.status, a.actor_type, a.actor_id, v_text
      from private.current_actor() a;
    if v_workflow.status = 'IN_PROGRESS' then
      update public.workflows set status = 'BLOCKED' where id = v_workflow.id;
    end if;
    insert into public.notifications (recipient_id, notification_type, priority, title, message, action_required,
                                      workflow_id, task_id, data)
    select person, 'TASK_INTERRUPT', 'HIGH', left('Task escalated: ' || v_task.title, 300), v_text, true,
           v_workflow.id, v_task.id, jsonb_build_object('taskKey', v_task.task_key, 'reason', v_text, 'by', v_by)
      from private.workflow_watchers(v_workflow) person;
    get diagnostics v_notified = row_count;

  elsif p_action = 'assign' then
    v_assignee := private.uuid_or_null(case when jsonb_typeof(v_data -> 'assigneeId') = 'string' then v_data ->> 'assigneeId' end);
    if v_assignee is null or not exists (
      select 1 from public.user_profiles p where p.id = v_assignee and p.user_type = 'hil_user' and p.is_active
    ) then
      raise exception 'assign needs data.assigneeId, the id of an active HIL person' using errcode = '22023';
    end if;
    if v_task.status in ('COMPLETED', 'SKIPPED', 'CANCELLED') then
      raise exception 'task % is %, it cannot be assigned', v_task.task_key, v_task.status using errcode = '55000';
    end if;
    v_new_status := v_task.status;
    -- Assigning a task to the person it is assigned to already changes nothing: no write, no
    -- second notification, no audit event (a double click, a retried request).
    if v_task.assigned_to is distinct from v_assignee then
      update public.tasks set assigned_to = v_assignee where id = v_task.id;
      v_changes := jsonb_build_object('assignedTo', jsonb_build_object('old', v_task.assigned_to, 'new', v_assignee));
      insert into public.notifications (recipient_id, notification_type, priority, title, message, action_required,
                                        workflow_id, task_id, data)
      values (v_assignee, 'WORKFLOW_UPDATE', v_task.priority, left('Task assigned to you: ' || v_task.title, 300),
              format('%s (%s) in %s', v_task.title, v_task.task_key, v_workflow.title), true,
              v_workflow.id, v_task.id, jsonb_build_object('taskKey', v_task.task_key, 'by', v_by));
      v_notified := 1;
    end if;

  elsif p_action = 'fail' then
    v_text := btrim(case when jsonb_typeof(v_data -> 'error') = 'string' then v_data ->> 'error' end);
    if coalesce(v_text, '') = '' then
      raise exception 'fail needs data.error, a text' using errcode = '22023';
    end if;
    if v_task.status = 'FAILED' then
      raise exception 'task % is already FAILED', v_task.task_key using errcode = '55000';
    end if;
    v_new_status := 'FAILED';
    perform public.transition_task(v_task.id, v_new_status, jsonb_build_object('error', left(v_text, 4000)));

  elsif p_action = 'resume' then
    if jsonb_typeof(v_data -> 'complete') not in ('boolean', 'null') then
      raise exception 'data.complete must be true or false' using errcode = '22023';
    end if;
    if jsonb_typeof(v_data -> 'body') not in ('object', 'null') then
      raise exception 'data.body must be an object' using errcode = '22023';
    end if;
    if v_task.status not in ('WAITING', 'AWAITING_REVIEW') then
      raise exception 'task % is %, only a WAITING or AWAITING_REVIEW task can be resumed', v_task.task_key, v_task.status
        using errcode = '55000';
    end if;
    v_new_status := case when (v_data ->> 'complete')::boolean then 'COMPLETED' else 'RUNNING' end;
    -- Going back to RUNNING after a wait is the same attempt, not a new one.
    perform public.transition_task(v_task.id, v_new_status,
                                   jsonb_strip_nulls(jsonb_build_object('result', v_result, 'attempt', v_task.attempt_count)));
    if v_task.resume_url is not null then
      v_resume_body := case when jsonb_typeof(v_data -> 'body') = 'object' then v_data -> 'body' else '{}'::jsonb end
                       || jsonb_build_object('action', 'resume', 'complete', v_new_status = 'COMPLETED', 'by', v_by);
    end if;

  else -- cancel
    if v_task.status in ('COMPLETED', 'SKIPPED', 'CANCELLED') then
      raise exception 'task % is already %', v_task.task_key, v_task.status using errcode = '55000';
    end if;
    v_new_status := 'CANCELLED';
    perform public.transition_task(v_task.id, v_new_status, '{}'::jsonb);
  end if;

  -- n8n is waiting on this task: the outbox resumes its execution (the URL works once).
  if v_resume_body is not null then
    insert into public.n8n_dispatches (workflow_id, kind, payload)
    values (v_workflow.id, 'RESUME', jsonb_build_object(
      'workflowId', v_workflow.id, 'taskId', v_task.id, 'taskKey', v_task.task_key,
      'resumeUrl', v_task.resume_url, 'body', v_resume_body))
    returning id into v_dispatch_id;
    update public.tasks set resume_url = null where id = v_task.id and resume_url is not null;
  end if;

  if p_action in ('complete', 'resume', 'cancel') then
    update public.tasks set metadata = jsonb_set(metadata, '{escalation,resolvedAt}', to_jsonb(now()))
     where id = v_task.id and metadata ? 'escalation' and not (metadata -> 'escalation' ? 'resolvedAt');
  end if;

  -- A resumed task unblocks its workflow unless another task still needs a person.
  if p_action = 'resume' and v_workflow.status in ('BLOCKED', 'PAUSED') and not exists (
    select 1 from public.tasks t
     where t.workflow_id = v_workflow.id and t.id <> v_task.id
       and (t.status = 'FAILED'
            or (t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW')
                and t.metadata ? 'escalation' and not (t.metadata -> 'escalation' ? 'resolvedAt')))
  ) then
    update public.workflows set status = 'IN_PROGRESS' where id = v_workflow.id;
  end if;

  select w.status into v_workflow_status from public.workflows w where w.id = v_workflow.id;
  if v_new_status <> v_task.status then
    v_changes := v_changes || jsonb_build_object('status', jsonb_build_object('old', v_task.status, 'new', v_new_status));
  end if;
  if v_workflow_status <> v_workflow.status then
    v_changes := v_changes || jsonb_build_object('workflowStatus', jsonb_build_object('old', v_workflow.status, 'new', v_workflow_status));
  end if;
  if p_action <> 'assign' or v_changes <> '{}'::jsonb then
    perform private.write_audit_event('task.' || p_action, 'task', v_task.id, v_workflow.id, v_workflow.client_id,
                                      v_changes, v_data);
  end if;

  return jsonb_build_object(
    'success', true,
    'taskId', v_task.id,
    'workflowId', v_workflow.id,
    'taskKey', v_task.task_key,
    'action', p_action,
    'previousStatus', v_task.status,
    'newStatus', v_new_status,
    'workflowUpdated', v_workflow_status <> v_workflow.status,
    'workflowStatus', v_workflow_status,
    'followupTasksCreated', 0,
    'notificationsSent', v_notified,
    'dispatchId', v_dispatch_id
  );
end
$$;
revoke all on function private.act_on_visible_task(uuid, text, jsonb) from public, anon, authenticated;
grant execute on function private.act_on_visible_task(uuid, text, jsonb) to service_role;

-- What callers use: the task's visibility first (a task of a workflow the caller may not see
-- answers exactly as an unknown task id, private.require_visible_task), then the action.
create or replace function public.task_action(p_task_id uuid, p_action text, p_data jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.require_visible_task(p_task_id);
  return private.act_on_visible_task(p_task_id, p_action, p_data);
end
$$;
revoke all on function public.task_action(uuid, text, jsonb) from public, anon;
grant execute on function public.task_action(uuid, text, jsonb) to authenticated, service_role;
