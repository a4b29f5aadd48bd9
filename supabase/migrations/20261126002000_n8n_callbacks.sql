-- n8n callbacks: each signed event from n8n applied exactly once, atomically, with its first
-- answer stored for replays. The service verifies the signature before calling this; the
-- function is for the service path only (n8n's Postgres node could call it too).

-- ============================================================================================
-- Applying one event
-- ============================================================================================
create or replace function private.apply_n8n_event_body(p_type text, p_data jsonb) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_workflow public.workflows;
  v_task public.tasks;
  v_workflow_id uuid := private.uuid_or_null(p_data ->> 'workflowId');
  v_attempt integer;
  v_metrics jsonb := coalesce(p_data -> 'metrics', '{}'::jsonb);
  v_agent text;
  v_new jsonb;
  v_minutes integer;
  v_result jsonb := '{}'::jsonb;
  v_notified integer := 0;
begin
  if v_workflow_id is null then
    raise exception 'data.workflowId is missing or not a uuid' using errcode = '22023';
  end if;
  select * into v_workflow from public.workflows where id = v_workflow_id for update;
  if not found then
    raise exception 'workflow % not found', v_workflow_id using errcode = 'P0002';
  end if;
  -- Finished is final: no event changes a finished workflow, whatever its type (a late
  -- task.completed would overwrite a finished task's result and add results and costs, an
  -- escalation would block it and call people). Refused before anything is written; the
  -- refusal is kept on the event's receipt, so a retry of the same event gets the same 409.
  perform private.refuse_finished(v_workflow.status, p_type || ' is not applied');
  -- An execution n8n lost (public.recover_lost_execution) was replaced by a new one; anything
  -- it still sends would run a step twice.
  if v_workflow.metadata -> 'lostExecutions' @> jsonb_build_array(jsonb_build_object('executionId', p_data ->> 'executionId')) then
    raise exception 'n8n execution % was lost and the workflow goes on in another', p_data ->> 'executionId'
      using errcode = '55000';
  end if;
  if p_data ? 'executionId' and v_workflow.n8n_execution_id is null then
    update public.workflows set n8n_execution_id = p_data ->> 'executionId', n8n_status = 'running'
     where id = v_workflow.id;
  end if;

  if p_type like 'task.%' and p_type <> 'task.injected' then
    select * into v_task from public.tasks
     where workflow_id = v_workflow.id and task_key = p_data ->> 'taskKey' for update;
    if not found then
      raise exception 'task % not found in workflow %', coalesce(p_data ->> 'taskKey', 'null'), v_workflow.id
        using errcode = 'P0002';
    end if;
    v_agent := coalesce(nullif(p_data ->> 'agentName', ''), v_task.agent_name);
    if v_agent is not null and not exists (select 1 from public.agents a where a.name = v_agent) then
      raise exception 'unknown agent %', v_agent using errcode = '22023';
    end if;
    v_attempt := greatest(coalesce((p_data ->> 'attempt')::integer, v_task.attempt_count, 1), 1);
    -- A step started again by the execution that replaced a lost one is the task's next attempt
    -- (the exports number attempts within their own execution). Only after a loss: the usual
    -- callback pays nothing for it.
    if v_workflow.metadata ? 'lostExecutions' and p_data ? 'executionId' and exists (
         select 1 from public.task_executions e
          where e.task_id = v_task.id and e.attempt = v_attempt
            and e.n8n_execution_id is distinct from p_data ->> 'executionId') then
      select coalesce((select e.attempt from public.task_executions e
                        where e.task_id = v_task.id and e.n8n_execution_id = p_data ->> 'executionId'
                        order by e.attempt desc limit 1),
                      case when p_type = 'task.started'
                           then (select max(e.attempt) + 1 from public.task_executions e where e.task_id = v_task.id)
                      end,
                      v_attempt)
        into v_attempt;
    end if;
  end if;

  case p_type
  when 'task.started' then
    if v_agent is distinct from v_task.agent_name then
      update public.tasks set agent_name = v_agent where id = v_task.id;  -- chosen by n8n's routing
    end if;
    v_result := public.transition_task(v_task.id, 'RUNNING', jsonb_build_object('attempt', v_attempt));
    insert into public.task_executions (task_id, workflow_id, attempt, agent_name, n8n_execution_id, input)
    values (v_task.id, v_workflow.id, v_attempt, v_agent, p_data ->> 'executionId', p_data -> 'input')
    on conflict (task_id, attempt) do nothing;

  when 'task.completed' then
    v_result := public.transition_task(v_task.id, 'COMPLETED', jsonb_build_object('output', p_data -> 'output'));
    update public.task_executions
       set status = 'SUCCEEDED', finished_at = greatest(now(), started_at), output = p_data -> 'output',
           duration_ms = (v_metrics ->> 'processingTimeMs')::integer,
           tokens_used = (v_metrics ->> 'tokensUsed')::integer,
           cost_usd = (v_metrics ->> 'costUsd')::numeric
     where task_id = v_task.id and attempt = v_attempt;
    if v_agent is not null then
      insert into public.agent_results (task_id, workflow_id, task_execution_id, agent_name, success, confidence_score,
                                        processing_time_ms, tokens_used, cost_usd, result)
      values (v_task.id, v_workflow.id,
              (select e.id from public.task_executions e where e.task_id = v_task.id and e.attempt = v_attempt),
              v_agent, true, (v_metrics ->> 'confidence')::numeric, (v_metrics ->> 'processingTimeMs')::integer,
              (v_metrics ->> 'tokensUsed')::integer, (v_metrics ->> 'costUsd')::numeric, p_data -> 'output');
      if coalesce((v_metrics ->> 'costUsd')::numeric, 0) > 0 then
        insert into public.cost_items (workflow_id, task_id, agent_name, category, description, amount_usd)
        values (v_workflow.id, v_task.id, v_agent, 'AGENT', v_task.title || ' (' || v_agent || ')',
                (v_metrics ->> 'costUsd')::numeric);
      end if;
    end if;

  when 'task.failed' then
    v_result := public.transition_task(v_task.id, 'FAILED',
      jsonb_build_object('error', coalesce(p_data ->> 'error', 'failed without a message')));
    update public.task_executions
       set status = 'FAILED', finished_at = greatest(now(), started_at),
           error_code = p_data ->> 'errorCode', error_message = p_data ->> 'error'
     where task_id = v_task.id and attempt = v_attempt;
    if v_agent is not null then
      insert into public.agent_results (task_id, workflow_id, agent_name, success, error_details)
      values (v_task.id, v_workflow.id, v_agent, false,
              jsonb_strip_nulls(jsonb_build_object('error', p_data ->> 'error', 'retryable', p_data -> 'retryable')));
    end if;
    if not coalesce((p_data ->> 'retryable')::boolean, false) then
      v_notified := private.notify_watchers(v_workflow, v_task.id, 'AGENT_FAILURE', 'HIGH',
        v_task.title || ' failed',
        coalesce(v_agent, 'The agent') || ' failed on ' || v_task.title || ': ' || coalesce(p_data ->> 'error', 'no message'),
        'agent_failure:' || v_task.id || ':' || v_attempt);
    end if;

  when 'task.waiting' then
    if coalesce(p_data ->> 'resumeUrl', '') !~ '^https?://' then
      raise exception 'data.resumeUrl must be an http(s) URL' using errcode = '22023';
    end if;
    -- waitingOn ('CLIENT' stops the task's SLA clock until the client answers) is passed on.
    v_result := public.transition_task(v_task.id, 'WAITING', jsonb_strip_nulls(jsonb_build_object(
      'resumeUrl', p_data ->> 'resumeUrl', 'waitingOn', p_data ->> 'waitingOn')));
    -- What the wait is for may already be here (an inbound webhook came first): resume at once.
    if v_task.metadata ? 'pendingInbound' then
      update public.tasks set metadata = metadata - 'pendingInbound' where id = v_task.id;
      perform public.task_action(v_task.id, 'resume', jsonb_build_object('body', v_task.metadata -> 'pendingInbound'));
      v_result := v_result || jsonb_build_object('resumedWithPendingInbound', true);
    end if;

  when 'task.skipped' then
    v_result := public.transition_task(v_task.id, 'SKIPPED', '{}'::jsonb);

  when 'task.injected' then
    v_new := p_data -> 'task';
    if jsonb_typeof(v_new) is distinct from 'object' or coalesce(v_new ->> 'taskKey', '') = '' then
      raise exception 'data.task must be an object with a taskKey' using errcode = '22023';
    end if;
    select d.business_minutes into v_minutes from public.sla_definitions d
     where d.is_active and d.workflow_type = v_workflow.workflow_type
       and d.task_type = coalesce(v_new ->> 'taskType', v_new ->> 'taskKey')
     order by d.agent_name nulls last limit 1;
    v_minutes := coalesce((v_new ->> 'slaMinutes')::integer, v_minutes, 60);
    insert into public.tasks (workflow_id, client_id, task_key, task_type, title, description, sequence,
                              executor_type, agent_name, priority, depends_on, parent_task_id, sla_minutes,
                              sla_started_at, sla_due_at, agent_input)
    values (v_workflow.id, v_workflow.client_id, v_new ->> 'taskKey',
            coalesce(v_new ->> 'taskType', split_part(v_new ->> 'taskKey', ':', 1)),
            coalesce(v_new ->> 'title', v_new ->> 'taskKey'), v_new ->> 'description',
            coalesce((v_new ->> 'sequence')::integer,
                     (select p.sequence from public.tasks p
                       where p.workflow_id = v_workflow.id and p.task_key = v_new ->> 'parentTaskKey'), 1),
            coalesce(v_new ->> 'executorType', 'AI')::public.executor_type, v_new ->> 'agentName',
            coalesce(v_new ->> 'priority', 'NORMAL')::public.priority_level,
            coalesce(array(select jsonb_array_elements_text(v_new -> 'dependsOn')), '{}'),
            (select p.id from public.tasks p where p.workflow_id = v_workflow.id and p.task_key = v_new ->> 'parentTaskKey'),
            v_minutes, now(), public.add_business_minutes(now(), v_minutes), v_new -> 'input')
    on conflict (workflow_id, task_key) do nothing
    returning jsonb_build_object('taskId', id, 'taskKey', task_key, 'newStatus', status) into v_result;
    if v_result is null then
      -- Added already: by the lost execution this one replaced (it injects again), else refused.
      if not v_workflow.metadata ? 'lostExecutions' then
        raise exception 'task % already exists in workflow %', v_new ->> 'taskKey', v_workflow.id
          using errcode = '23505';
      end if;
      select jsonb_build_object('taskId', t.id, 'taskKey', t.task_key, 'newStatus', t.status, 'existed', true)
        into v_result from public.tasks t where t.workflow_id = v_workflow.id and t.task_key = v_new ->> 'taskKey';
    end if;

  when 'workflow.completed' then
    if v_workflow.status not in ('IN_PROGRESS', 'AWAITING_REVIEW') then
      raise exception 'workflow is %, it cannot complete', v_workflow.status using errcode = '55000';
    end if;
    -- Steps n8n never reached belong to branches it did not take.
    update public.tasks set status = 'SKIPPED' where workflow_id = v_workflow.id and status = 'PENDING';
    if exists (select 1 from public.tasks t where t.workflow_id = v_workflow.id
                 and t.status in ('RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED')) then
      raise exception 'tasks are still open: %', (select string_agg(t.task_key || ' ' || t.status, ', ')
        from public.tasks t where t.workflow_id = v_workflow.id and t.status in ('RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED'))
        using errcode = '55000';
    end if;
    update public.workflows set status = 'COMPLETED', n8n_status = 'success' where id = v_workflow.id;
    v_result := jsonb_build_object('newStatus', 'COMPLETED');

  when 'workflow.failed' then
    update public.workflows set status = 'FAILED', n8n_status = 'error',
           metadata = metadata || jsonb_build_object('failure', p_data -> 'error')
     where id = v_workflow.id;
    v_notified := private.notify_watchers(v_workflow, null, 'AGENT_FAILURE', 'URGENT', v_workflow.title || ' failed',
      'n8n reported the workflow failed: ' || coalesce(p_data ->> 'error', 'no message'),
      'workflow_failed:' || v_workflow.id || ':' || coalesce(p_data ->> 'executionId', ''));
    v_result := jsonb_build_object('newStatus', 'FAILED');

  when 'escalation' then
    if coalesce(p_data ->> 'reason', '') = '' then
      raise exception 'data.reason is required' using errcode = '22023';
    end if;
    if p_data ? 'taskKey' then
      select * into v_task from public.tasks where workflow_id = v_workflow.id and task_key = p_data ->> 'taskKey';
      if not found then
        raise exception 'task % not found in workflow %', p_data ->> 'taskKey', v_workflow.id using errcode = 'P0002';
      end if;
      v_result := public.task_action(v_task.id, 'escalate', jsonb_build_object('reason', p_data ->> 'reason'));
    else
      if v_workflow.status in ('IN_PROGRESS', 'AWAITING_REVIEW') then
        update public.workflows set status = 'BLOCKED' where id = v_workflow.id;
      end if;
      v_notified := private.notify_watchers(v_workflow, null, 'TASK_INTERRUPT', 'HIGH', v_workflow.title || ' needs a person',
        p_data ->> 'reason', 'escalation:' || v_workflow.id || ':' || md5(p_data ->> 'reason'));
      v_result := jsonb_build_object('newStatus', 'BLOCKED');
    end if;

  else
    raise exception 'unknown event type %', p_type using errcode = '22023';
  end case;

  return v_result || jsonb_build_object('notificationsSent', coalesce((v_result ->> 'notificationsSent')::integer, 0) + v_notified);
end
$$;

-- The exactly-once wrapper: the first delivery of an event id is applied and its answer stored;
-- any later delivery returns that stored answer and changes nothing. An event that contradicts
-- the state (55000), names something unknown (P0002) or carries bad data (22023, 23505) is
-- answered 409/404/422, and the refusal is recorded for operators; anything else raises (the
-- service answers 500, stores nothing, and n8n retries). A receipt is found by (source,
-- workflow, event id), the key of webhook_receipts: one workflow's events cannot claim the ids
-- of another's.
create or replace function public.apply_n8n_event(p_source text, p_event_id text, p_type text, p_data jsonb)
returns jsonb
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan  -- docs/performance.md#generic-plans
as $$
declare
  v_receipt_id uuid;
  v_workflow_id uuid;
  v_stored record;
  v_status integer := 200;
  v_body jsonb;
  v_reason text;
begin
  if not private.is_service() then
    raise exception 'n8n events are applied by the service only' using errcode = '42501';
  end if;
  select w.id into v_workflow_id from public.workflows w where w.id = private.uuid_or_null(p_data ->> 'workflowId');
  insert into public.webhook_receipts (source, event_id, event_type, workflow_id, status_code)
  values (p_source, p_event_id, p_type, v_workflow_id, 102)
  on conflict (source, workflow_id, event_id) do nothing
  returning id into v_receipt_id;
  if v_receipt_id is null then
    select status_code, response into v_stored from public.webhook_receipts
     where source = p_source and workflow_id is not distinct from v_workflow_id and event_id = p_event_id;
    return jsonb_build_object('statusCode', v_stored.status_code, 'body', v_stored.response, 'replay', true);
  end if;

  begin
    v_body := jsonb_build_object('received', true, 'eventId', p_event_id, 'type', p_type,
                                 'result', private.apply_n8n_event_body(p_type, p_data));
  exception
    when sqlstate '55000' or sqlstate '23505' then
      v_status := 409;
      v_reason := sqlerrm;
    when sqlstate 'P0002' then
      v_status := 404;
      v_reason := sqlerrm;
    when sqlstate '22023' or sqlstate '22P02' or sqlstate '23514' or sqlstate '23503' or sqlstate '22003' then
      v_status := 422;
      v_reason := sqlerrm;
  end;
  if v_reason is not null then
    v_body := jsonb_build_object('received', true, 'eventId', p_event_id, 'type', p_type, 'applied', false,
                                 'reason', v_reason);
  end if;
  update public.webhook_receipts set status_code = v_status, response = v_body, rejected_reason = v_reason
   where id = v_receipt_id;
  return jsonb_build_object('statusCode', v_status, 'body', v_body, 'replay', false);
end
$$;
revoke execute on function public.apply_n8n_event(text, text, text, jsonb) from public, anon, authenticated;
grant execute on function public.apply_n8n_event(text, text, text, jsonb) to service_role;
