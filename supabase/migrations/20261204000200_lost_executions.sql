-- Executions n8n lost: a worker killed outright (out of memory, a host gone) takes the executions
-- it was running with it. n8n 2.x gives such a job no second try ("job stalled more than
-- maxStalledCount") and its error workflow does not run, so nothing would ever tell the service.
-- The service's execution watch (app/n8n/watch.py; docs/reliability.md#lost-executions) asks
-- n8n about quiet workflows; for one whose execution has ended while the workflow is still in
-- progress, public.recover_lost_execution starts the workflow again in a new execution that
-- skips every step already done (the trigger's `resume.done`, read by each step of the exports).

-- A workflow whose execution n8n lost this many times is handed to a person instead.
create or replace function private.lost_execution_limit() returns integer
language sql immutable
set search_path = ''
as $$ select 3 $$;

-- When the watch last asked n8n about each workflow's execution, so that every round asks about
-- the ones asked about longest ago.
create table private.n8n_execution_checks (
  workflow_id uuid primary key references public.workflows (id) on delete cascade,
  execution_id text not null,
  checked_at timestamptz not null default now()
);
comment on table private.n8n_execution_checks is
  'When the execution watch (app/n8n/watch.py) last asked n8n about a workflow''s execution.';
revoke all on private.n8n_execution_checks from public, anon, authenticated;

-- The next workflows to ask n8n about, recorded as asked: in progress, with an execution, quiet
-- (no change to it or its tasks) for p_quiet; those never asked about first, then those asked
-- about longest ago. Workflows parked at a wait are asked about too (an execution lost while
-- announcing its wait never parks), in their turn. Runners may ask at once: rows another is
-- taking are skipped.
create or replace function public.n8n_executions_to_check(p_quiet interval, p_limit integer default 50)
returns table (workflow_id uuid, execution_id text, quiet_since timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if not private.is_service() then
    raise exception 'the execution watch is the service''s' using errcode = '42501';
  end if;
  return query
  with picked as (
    select w.id, w.n8n_execution_id, q.quiet_since, c.checked_at
      from public.workflows w
      cross join lateral (
        select greatest(w.updated_at, (select max(t.updated_at) from public.tasks t where t.workflow_id = w.id)) as quiet_since
      ) q
      left join private.n8n_execution_checks c on c.workflow_id = w.id and c.execution_id = w.n8n_execution_id
     where w.status = 'IN_PROGRESS'
       and w.n8n_execution_id is not null
       and q.quiet_since <= now() - p_quiet
     order by c.checked_at nulls first, q.quiet_since
     limit greatest(p_limit, 0)
     for update of w skip locked
  ), asked as (
    insert into private.n8n_execution_checks as c (workflow_id, execution_id, checked_at)
    select p.id, p.n8n_execution_id, clock_timestamp() from picked p
    on conflict (workflow_id) do update set execution_id = excluded.execution_id, checked_at = excluded.checked_at
  )
  select p.id, p.n8n_execution_id, p.quiet_since from picked p order by p.checked_at nulls first, p.quiet_since;
end
$$;
revoke all on function public.n8n_executions_to_check(interval, integer) from public, anon, authenticated;
grant execute on function public.n8n_executions_to_check(interval, integer) to service_role;

-- Queues the trigger that starts a workflow again after n8n lost its execution: the workflow's
-- trigger payload with `resume.done`, every task COMPLETED (with its output, which later steps
-- read) or SKIPPED, for the exports to pass over. Returns the outbox row's id.
create or replace function private.queue_resumed_trigger(p_workflow_id uuid, p_lost_execution_id text) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_done jsonb;
  v_dispatch_id uuid;
begin
  select coalesce(jsonb_object_agg(t.task_key, case when t.status = 'COMPLETED' then coalesce(t.agent_output, t.result) end),
                  '{}'::jsonb)
    into v_done
    from public.tasks t where t.workflow_id = p_workflow_id and t.status in ('COMPLETED', 'SKIPPED');
  insert into public.n8n_dispatches (workflow_id, kind, payload)
  values (p_workflow_id, 'TRIGGER', private.n8n_trigger_payload(p_workflow_id) || jsonb_build_object(
    'resume', jsonb_build_object('lostExecutionId', p_lost_execution_id, 'done', v_done)))
  returning id into v_dispatch_id;
  return v_dispatch_id;
end
$$;
revoke all on function private.queue_resumed_trigger(uuid, text) from public, anon, authenticated;

/*
 * Retires the execution a workflow ran as, for a new one to take over (the caller holds the
 * workflow's row lock, records the execution in metadata.lostExecutions, which makes
 * public.apply_n8n_event refuse whatever it still sends, and queues the new trigger with
 * private.queue_resumed_trigger). Here, what the retired execution leaves open:
 *  - a wait it had been answered on (the resume delivered, still queued, or refused because n8n
 *    had ended the execution already) keeps the answer for the new execution's wait, which takes
 *    it at once (task.waiting with metadata.pendingInbound, as when an answer comes before its
 *    wait is announced);
 *  - a wait it announced and nobody answered yet forgets its resume URL, which leads nowhere
 *    now: an answer that comes before the new execution announces the wait again waits for it
 *    (public.receive_inbound keeps it as metadata.pendingInbound);
 *  - an answer to one of its waits not delivered yet is dropped (p_why says why);
 *  - the attempts it had open are closed FAILED (p_error_code, p_message).
 * Used when n8n lost the execution (public.recover_lost_execution) and when a person resumes a
 * failed workflow (private.resume_failed_workflow).
 */
create or replace function private.retire_execution(p_workflow_id uuid, p_error_code text, p_message text, p_why text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.tasks t
     set metadata = t.metadata || jsonb_build_object('pendingInbound', d.payload -> 'body')
    from (select distinct on (d.payload ->> 'taskId') d.payload, d.created_at, d.payload ->> 'taskId' as task_id
            from public.n8n_dispatches d
           where d.workflow_id = p_workflow_id and d.kind = 'RESUME'
           order by d.payload ->> 'taskId', d.created_at desc) d
   where t.workflow_id = p_workflow_id and t.status = 'RUNNING' and t.id::text = d.task_id
     and d.created_at >= (select max(e.created_at) from public.task_timeline_events e
                           where e.task_id = t.id and e.to_status = 'WAITING');
  delete from private.n8n_resume_urls u using public.tasks t
   where u.task_id = t.id and t.workflow_id = p_workflow_id and t.status = 'WAITING';
  update public.tasks set resume_url = null
   where workflow_id = p_workflow_id and status = 'WAITING' and resume_url is not null;
  update public.n8n_dispatches d
     set status = 'DEAD', last_error = p_why || '; the answer goes to the new execution'
   where d.workflow_id = p_workflow_id and d.kind = 'RESUME' and d.status in ('PENDING', 'FAILED');
  update public.task_executions e
     set status = 'FAILED', finished_at = greatest(now(), e.started_at),
         error_code = p_error_code, error_message = p_message
   where e.workflow_id = p_workflow_id and e.status = 'RUNNING';
end
$$;
revoke all on function private.retire_execution(uuid, text, text, text) from public, anon, authenticated;

/*
 * n8n says execution p_execution_id has ended (p_reason: what it said) while its workflow is
 * still IN_PROGRESS. In one transaction:
 *  - the execution is recorded as lost (workflows.metadata.lostExecutions); callbacks it might
 *    still send are refused from now on (public.apply_n8n_event);
 *  - each task it was running or waiting on gets its attempt closed as FAILED and a timeline
 *    event, and keeps its status for the new execution to take over (a start is the task's next
 *    attempt); a wait it had been answered on keeps that answer for the new execution's wait, and
 *    one not answered yet forgets the lost execution's resume URL (private.retire_execution);
 *  - a new TRIGGER is queued with `resume.done`: every task COMPLETED (with its output, which
 *    later steps read) or SKIPPED, so the new execution skips them and nothing is done twice;
 *  - the audit trail, the realtime stream and the workflow's watchers are told.
 * After private.lost_execution_limit() losses in a row the workflow is BLOCKED for a person
 * instead; the person's resume (public.workflow_action) starts it again the same way and counts
 * from zero.
 * Nothing happens (recovered false, with the reason) when the workflow has moved on: another
 * status, or another execution already. Service only.
 */
create or replace function public.recover_lost_execution(p_workflow_id uuid, p_execution_id text, p_reason text)
returns jsonb
language plpgsql
security definer  -- writes the timeline, which only the database writes; callable by the service only
set search_path = ''
as $$
declare
  v_workflow public.workflows;
  v_lost integer;
  v_reason text := coalesce(nullif(p_reason, ''), 'n8n no longer runs it');
  v_message text;
  v_dispatch_id uuid;
  v_interrupted text[];
  v_done jsonb;
begin
  if not private.is_service() then
    raise exception 'lost executions are recovered by the service only' using errcode = '42501';
  end if;
  select * into v_workflow from public.workflows where id = p_workflow_id for update;
  if not found then
    raise exception 'workflow % not found', p_workflow_id using errcode = 'P0002';
  end if;
  if v_workflow.status <> 'IN_PROGRESS' then
    return jsonb_build_object('recovered', false, 'reason', 'workflow is ' || v_workflow.status);
  end if;
  if v_workflow.n8n_execution_id is distinct from p_execution_id then
    return jsonb_build_object('recovered', false, 'reason', 'the workflow runs as another execution');
  end if;

  v_lost := coalesce((v_workflow.metadata ->> 'lossesInARow')::integer, 0) + 1;
  v_message := 'n8n lost execution ' || p_execution_id || ' (' || v_reason || ')';
  select coalesce(array_agg(t.task_key order by t.sequence, t.task_key), '{}') into v_interrupted
    from public.tasks t where t.workflow_id = v_workflow.id and t.status in ('RUNNING', 'WAITING');

  -- Its waits, answers and open attempts (private.retire_execution).
  perform private.retire_execution(v_workflow.id, 'EXECUTION_LOST', v_message, 'n8n lost the execution waiting for it');
  insert into public.task_timeline_events (task_id, workflow_id, event_type, from_status, to_status, actor_type,
                                           actor_id, message, data)
  select t.id, t.workflow_id, 'execution_lost', t.status, t.status, 'system', 'n8n-watch',
         v_message || case when v_lost > private.lost_execution_limit()
                           then '; lost ' || v_lost || ' times, a person takes it from here'
                           else '; the workflow goes on in a new execution from this step' end,
         jsonb_build_object('executionId', p_execution_id, 'reason', v_reason, 'losses', v_lost)
    from public.tasks t where t.workflow_id = v_workflow.id and t.status in ('RUNNING', 'WAITING');

  update public.workflows
     set n8n_execution_id = null, n8n_status = 'lost',
         metadata = metadata || jsonb_build_object('lossesInARow', v_lost, 'lostExecutions',
           coalesce(metadata -> 'lostExecutions', '[]'::jsonb)
             || jsonb_build_array(jsonb_build_object('executionId', p_execution_id, 'reason', v_reason,
                                                     'at', now(), 'interruptedTasks', to_jsonb(v_interrupted))))
   where id = v_workflow.id;

  if v_lost > private.lost_execution_limit() then
    update public.workflows set status = 'BLOCKED' where id = v_workflow.id;
    perform private.notify_watchers(v_workflow, null, 'AGENT_FAILURE', 'URGENT',
      v_workflow.title || ' stopped: n8n lost it ' || v_lost || ' times',
      v_message || '. It was started again ' || (v_lost - 1) || ' times; a person takes it from here.',
      'execution_lost:' || v_workflow.id || ':' || p_execution_id);
    perform private.write_audit_event('workflow.execution_lost', 'workflow', v_workflow.id, v_workflow.id,
      v_workflow.client_id, jsonb_build_object('status', jsonb_build_object('old', 'IN_PROGRESS', 'new', 'BLOCKED')),
      jsonb_build_object('executionId', p_execution_id, 'reason', v_reason, 'losses', v_lost,
                         'interruptedTasks', to_jsonb(v_interrupted)));
    return jsonb_build_object('recovered', false, 'blocked', true, 'losses', v_lost,
                              'reason', 'lost ' || v_lost || ' times');
  end if;

  v_dispatch_id := private.queue_resumed_trigger(v_workflow.id, p_execution_id);
  select d.payload -> 'resume' -> 'done' into v_done from public.n8n_dispatches d where d.id = v_dispatch_id;

  perform private.write_audit_event('workflow.execution_lost', 'workflow', v_workflow.id, v_workflow.id,
    v_workflow.client_id, '{}'::jsonb,
    jsonb_build_object('executionId', p_execution_id, 'reason', v_reason, 'losses', v_lost,
                       'interruptedTasks', to_jsonb(v_interrupted), 'dispatchId', v_dispatch_id,
                       'done', (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(v_done) k)));
  perform private.notify_watchers(v_workflow, null, 'WORKFLOW_UPDATE', 'NORMAL',
    v_workflow.title || ': started again after n8n lost it',
    v_message || '. It goes on in a new execution; steps already done are not repeated'
      || case when cardinality(v_interrupted) > 0
              then ', ' || array_to_string(v_interrupted, ', ') || ' is run again' else '' end || '.',
    'execution_lost:' || v_workflow.id || ':' || p_execution_id);
  return jsonb_build_object('recovered', true, 'losses', v_lost, 'dispatchId', v_dispatch_id,
                            'interruptedTasks', to_jsonb(v_interrupted),
                            'done', (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(v_done) k));
end
$$;
revoke all on function public.recover_lost_execution(uuid, text, text) from public, anon, authenticated;
grant execute on function public.recover_lost_execution(uuid, text, text) to service_role;

/*
 * A HIL person resumes a FAILED workflow (public.workflow_action, which has checked who and set
 * the workflow IN_PROGRESS; p_workflow is the row as it was): recovery from the last checkpoint,
 * the way a workflow n8n lost starts again ("HIL escalation -> manual intervention -> resume
 * workflow"). In the same transaction:
 *  - the execution that failed is retired (private.retire_execution) and recorded in
 *    metadata.lostExecutions with the failure, so that its late callbacks are refused (409) and a
 *    late error report of it changes nothing; metadata.failure moves into that record (the
 *    workflow is no longer failed) and a count of losses in a row starts over;
 *  - its failed tasks are runnable again, as a task's retry makes them (FAILED -> PENDING, the
 *    error cleared, the attempts kept: the new execution's start is the next attempt); tasks
 *    running or waiting keep their status for the new execution to take over; each task the new
 *    execution runs again gets a workflow_resumed event on its timeline;
 *  - a trigger not delivered yet is dropped and one new trigger queued with `resume.done`
 *    (private.queue_resumed_trigger: every task COMPLETED, with its output, or SKIPPED), so that
 *    n8n repeats nothing done;
 *  - the workflow's watchers are told. The SLA clocks paused while it was failed run again with
 *    the minutes they had left (private.sync_sla_clocks, as when a paused workflow resumes).
 * The caller audits the action (workflow.resumed, with what this returns as data.recovery).
 */
create or replace function private.resume_failed_workflow(p_workflow public.workflows) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_execution text := p_workflow.n8n_execution_id;
  v_failure jsonb := p_workflow.metadata -> 'failure';
  v_reason text := 'the workflow failed: ' || coalesce(p_workflow.metadata ->> 'failure', 'no message');
  v_message text;
  v_rerun text[];
  v_dispatch_id uuid;
  v_done jsonb;
begin
  v_message := coalesce('n8n execution ' || v_execution, 'the execution') || ' failed ('
               || left(coalesce(p_workflow.metadata ->> 'failure', 'no message'), 500) || '); a person resumed the workflow';
  select coalesce(array_agg(t.task_key order by t.sequence, t.task_key), '{}') into v_rerun
    from public.tasks t where t.workflow_id = p_workflow.id and t.status in ('RUNNING', 'WAITING', 'FAILED');

  perform private.retire_execution(p_workflow.id, 'EXECUTION_FAILED', v_message, 'the execution waiting for it failed');
  update public.tasks set status = 'PENDING', error_message = null
   where workflow_id = p_workflow.id and status = 'FAILED';
  insert into public.task_timeline_events (task_id, workflow_id, event_type, from_status, to_status, actor_type,
                                           actor_id, message, data)
  select t.id, t.workflow_id, 'workflow_resumed', t.status, t.status, a.actor_type, a.actor_id,
         v_message || '; the workflow goes on in a new execution from this step',
         jsonb_strip_nulls(jsonb_build_object('executionId', v_execution, 'reason', v_reason))
    from public.tasks t cross join private.current_actor() a
   where t.workflow_id = p_workflow.id and t.task_key = any (v_rerun);

  update public.workflows
     set n8n_execution_id = null, n8n_status = null,
         metadata = (metadata - 'failure')
           || case when metadata ? 'lossesInARow' then jsonb_build_object('lossesInARow', 0) else '{}'::jsonb end
           || case when v_execution is null then '{}'::jsonb else jsonb_build_object('lostExecutions',
                coalesce(metadata -> 'lostExecutions', '[]'::jsonb)
                  || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                       'executionId', v_execution, 'reason', v_reason, 'failure', v_failure, 'at', now(),
                       'interruptedTasks', to_jsonb(v_rerun),
                       'resumedBy', (select a.actor_id from private.current_actor() a))))) end
   where id = p_workflow.id;

  -- One execution at a time: a trigger still waiting in the outbox would start a second one.
  update public.n8n_dispatches set status = 'DEAD', last_error = 'replaced by the trigger of a person''s resume'
   where workflow_id = p_workflow.id and kind = 'TRIGGER' and status in ('PENDING', 'FAILED');
  v_dispatch_id := private.queue_resumed_trigger(p_workflow.id, v_execution);
  select d.payload -> 'resume' -> 'done' into v_done from public.n8n_dispatches d where d.id = v_dispatch_id;

  perform private.notify_watchers(p_workflow, null, 'WORKFLOW_UPDATE', 'NORMAL',
    left(p_workflow.title || ': resumed after its failure', 300),
    v_message || '. It goes on in a new execution; steps already done are not repeated'
      || case when cardinality(v_rerun) > 0 then ', ' || array_to_string(v_rerun, ', ') || ' run again' else '' end || '.',
    'workflow_resumed:' || p_workflow.id || ':' || coalesce(v_execution, v_dispatch_id::text));
  return jsonb_build_object('retiredExecutionId', v_execution, 'dispatchId', v_dispatch_id,
                            'rerunTasks', to_jsonb(v_rerun),
                            'done', (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(v_done) k));
end
$$;
revoke all on function private.resume_failed_workflow(public.workflows) from public, anon, authenticated;
