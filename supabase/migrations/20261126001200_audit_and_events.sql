-- Audit and events: the append-only audit trail (written by triggers for every writer, so
-- Supabase's REST API and our service leave the same trail) and the realtime event stream
-- that feeds /ws and dashboards, announced with pg_notify carrying only the event id.

-- ============================================================================================
-- Audit trail
-- ============================================================================================
create table public.audit_events (
  id uuid primary key default gen_random_uuid(),
  actor_type public.actor_type not null,
  actor_id text,
  event_type text not null check (event_type ~ '^[a-z_]+\.[a-z_]+$'),
  resource_type text not null,
  resource_id uuid,
  -- Plain ids, not foreign keys: the trail outlives what it describes.
  workflow_id uuid,
  client_id uuid,
  request_id text,
  ip_address text,
  user_agent text,
  changes jsonb not null default '{}'::jsonb,
  data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table public.audit_events is 'Append-only audit trail: who (human, agent, system) did what to which resource, with the changed fields and request context.';
create index audit_events_workflow_id_idx on public.audit_events (workflow_id, created_at desc);
create index audit_events_client_id_idx on public.audit_events (client_id);
create index audit_events_resource_idx on public.audit_events (resource_type, resource_id);
create index audit_events_created_at_idx on public.audit_events (created_at desc);
create trigger audit_events_append_only before update or delete on public.audit_events
  for each row execute function private.refuse_change();

-- One request header as PostgREST (and our service) put them in request.headers. PL/pgSQL,
-- like the claim helpers, so its plan is kept per connection.
create or replace function private.request_header(name text) returns text
language plpgsql stable
set search_path = ''
as $$
begin
  return nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name);
end
$$;

-- Who is acting: an agent (app_metadata.role = agent), a signed-in person, or the system
-- (service role, n8n callbacks, sweeps).
create or replace function private.current_actor(out actor_type public.actor_type, out actor_id text)
language plpgsql stable
set search_path = ''
as $$
declare
  -- The claims are read once (every audit row asks; plpgsql, so its plan is cached).
  v_meta jsonb := private.app_metadata();
  v_uid uuid := auth.uid();
begin
  if v_meta ->> 'role' = 'agent' then
    actor_type := 'agent';
    actor_id := v_meta ->> 'agent_name';
  elsif v_uid is not null then
    actor_type := 'human';
    actor_id := v_uid::text;
  else
    actor_type := 'system';
    actor_id := coalesce(nullif(v_meta ->> 'actor', ''), 'system');
  end if;
end
$$;

-- Writes one audit row. Security definer: every writer leaves a trail, but nobody may write
-- (or forge) audit rows directly; the function only ever records the current caller.
create or replace function private.write_audit_event(
  p_event_type text,
  p_resource_type text,
  p_resource_id uuid,
  p_workflow_id uuid,
  p_client_id uuid,
  p_changes jsonb default '{}'::jsonb,
  p_data jsonb default '{}'::jsonb
) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor record;
  v_headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;  -- read once
begin
  select * into v_actor from private.current_actor();
  insert into public.audit_events (
    actor_type, actor_id, event_type, resource_type, resource_id, workflow_id, client_id,
    request_id, ip_address, user_agent, changes, data
  ) values (
    v_actor.actor_type, v_actor.actor_id, p_event_type, p_resource_type, p_resource_id,
    p_workflow_id, p_client_id,
    v_headers ->> 'x-request-id',
    split_part(coalesce(v_headers ->> 'x-forwarded-for', v_headers ->> 'x-real-ip', ''), ',', 1),
    v_headers ->> 'user-agent',
    coalesce(p_changes, '{}'::jsonb), coalesce(p_data, '{}'::jsonb)
  );
end
$$;
revoke all on function private.write_audit_event(text, text, uuid, uuid, uuid, jsonb, jsonb) from public, anon;

-- Generic row audit: <resource>.created / .updated / .deleted with the changed fields as
-- {"field": {"old": ..., "new": ...}}. Resource name and the columns naming the workflow and
-- client come from trigger arguments. Security definer for the same reason as above.
-- A person's change to a finished workflow or to a task of one is no update but a correction
-- (finished is final for every callback and action, private.refuse_finished): it is recorded
-- as workflow.corrected / task.corrected, with the workflow's status in data.finishedStatus.
create or replace function private.audit_row_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_resource text := tg_argv[0];
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_changes jsonb := '{}'::jsonb;
  v_workflow_id uuid;
  v_client_id uuid;
  v_event text := case tg_op when 'INSERT' then '.created' when 'UPDATE' then '.updated' else '.deleted' end;
  v_data jsonb := '{}'::jsonb;
  v_finished public.workflow_status;
begin
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, jsonb_build_object('old', o.value, 'new', n.value)) into v_changes
      from jsonb_each(v_new) n
      join jsonb_each(v_old) o on o.key = n.key
     where n.key <> 'updated_at' and o.value is distinct from n.value;
    if v_changes is null then
      return null;
    end if;
  elsif tg_op = 'INSERT' then
    v_changes := v_new - 'created_at' - 'updated_at';
  end if;

  if tg_argv[1] <> '' then
    v_workflow_id := (v_row ->> tg_argv[1])::uuid;
  end if;
  if tg_argv[2] <> '' then
    v_client_id := (v_row ->> tg_argv[2])::uuid;
  end if;
  if v_client_id is null and v_workflow_id is not null then
    select w.client_id into v_client_id from public.workflows w where w.id = v_workflow_id;
  end if;
  if tg_op = 'UPDATE' and v_resource in ('workflow', 'task') and auth.uid() is not null
     and coalesce(private.app_metadata() ->> 'role', '') <> 'agent' then
    -- A workflow's own row: the status it had (a workflow that finishes now is no correction).
    v_finished := case when v_resource = 'workflow' then (v_old ->> 'status')::public.workflow_status
                       else private.workflow_status_of(v_workflow_id) end;
    if private.is_finished(v_finished) then
      v_event := '.corrected';
      v_data := jsonb_build_object('finishedStatus', v_finished);
    end if;
  end if;

  perform private.write_audit_event(
    v_resource || v_event,
    v_resource,
    (v_row ->> 'id')::uuid,
    v_workflow_id,
    v_client_id,
    v_changes,
    v_data
  );
  return null;
end
$$;

create trigger workflows_audit after insert or update or delete on public.workflows
  for each row execute function private.audit_row_change('workflow', 'id', 'client_id');
create trigger tasks_audit after insert or update or delete on public.tasks
  for each row execute function private.audit_row_change('task', 'workflow_id', 'client_id');
create trigger communications_audit after insert or update or delete on public.communications
  for each row execute function private.audit_row_change('communication', 'workflow_id', '');
create trigger documents_audit after insert or update or delete on public.documents
  for each row execute function private.audit_row_change('document', 'workflow_id', '');
create trigger counterparties_audit after insert or update or delete on public.counterparties
  for each row execute function private.audit_row_change('counterparty', '', '');
create trigger workflow_counterparties_audit after insert or update or delete on public.workflow_counterparties
  for each row execute function private.audit_row_change('workflow_counterparty', 'workflow_id', '');
create trigger workflow_contacts_audit after insert or update or delete on public.workflow_contacts
  for each row execute function private.audit_row_change('workflow_contact', 'workflow_id', '');
create trigger hil_notes_audit after insert or update or delete on public.hil_notes
  for each row execute function private.audit_row_change('hil_note', 'workflow_id', '');
create trigger clients_audit after insert or update or delete on public.clients
  for each row execute function private.audit_row_change('client', '', 'id');
create trigger user_profiles_audit after insert or update or delete on public.user_profiles
  for each row execute function private.audit_row_change('user_profile', '', 'client_id');
create trigger sla_definitions_audit after insert or update or delete on public.sla_definitions
  for each row execute function private.audit_row_change('sla_definition', '', '');
create trigger sla_escalation_rules_audit after insert or update or delete on public.sla_escalation_rules
  for each row execute function private.audit_row_change('sla_escalation_rule', '', '');
create trigger business_hours_config_audit after insert or update or delete on public.business_hours_config
  for each row execute function private.audit_row_change('business_hours', '', '');
create trigger business_holidays_audit after insert or update or delete on public.business_holidays
  for each row execute function private.audit_row_change('business_holiday', '', '');
create trigger invoices_audit after insert or update or delete on public.invoices
  for each row execute function private.audit_row_change('invoice', 'workflow_id', 'client_id');

-- ============================================================================================
-- Realtime event stream
-- ============================================================================================
create table public.realtime_events (
  id uuid primary key default gen_random_uuid(),
  -- The event id clients see and resume from (?since=): ordered, unlike the uuid.
  seq bigint generated always as identity,
  event_type text not null
    check (event_type in ('workflow_status_changed', 'task_execution_updated', 'hil_notification')),
  workflow_id uuid,
  task_id uuid,
  client_id uuid,
  recipient_id uuid,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  constraint realtime_events_seq_key unique (seq)
);
comment on table public.realtime_events is 'Append-only stream of changes people watch (workflow status and progress, task changes, notifications), written in the same transaction as the change; pg_notify carries the seq.';
create index realtime_events_workflow_id_idx on public.realtime_events (workflow_id, seq);
create index realtime_events_client_id_idx on public.realtime_events (client_id, seq);
create index realtime_events_recipient_id_idx on public.realtime_events (recipient_id, seq);
create index realtime_events_created_at_idx on public.realtime_events (created_at);
-- Rows never change; old ones are pruned (deleted) by the retention job only.
create trigger realtime_events_no_update before update on public.realtime_events
  for each row execute function private.refuse_change();

-- Security definer: every writer's change reaches the stream, but nobody writes it directly.
create or replace function private.emit_realtime_event(
  p_event_type text, p_workflow_id uuid, p_task_id uuid, p_client_id uuid, p_recipient_id uuid, p_payload jsonb
) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_seq bigint;
begin
  insert into public.realtime_events (event_type, workflow_id, task_id, client_id, recipient_id, payload)
  values (p_event_type, p_workflow_id, p_task_id, p_client_id, p_recipient_id, p_payload)
  returning seq into v_seq;
  perform pg_notify('rexera_events', v_seq::text);
end
$$;
revoke all on function private.emit_realtime_event(text, uuid, uuid, uuid, uuid, jsonb) from public, anon;

-- Shapes follow the seed's WorkflowUpdateEvent, TaskUpdateEvent and HILNotificationEvent.
create or replace function private.workflow_realtime_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
     and new.status = old.status
     and new.completed_tasks = old.completed_tasks
     and new.total_tasks = old.total_tasks
     and new.sla_status = old.sla_status then
    return null;
  end if;
  perform private.emit_realtime_event(
    'workflow_status_changed', new.id, null, new.client_id, null,
    jsonb_build_object(
      'type', 'workflow_status_changed',
      'workflowId', new.id,
      'status', new.status,
      'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'metadata', jsonb_build_object(
        'workflowType', new.workflow_type,
        'previousStatus', case when tg_op = 'UPDATE' then old.status end,
        'totalTasks', new.total_tasks,
        'completedTasks', new.completed_tasks,
        'progressPercentage', case when new.total_tasks = 0 then 0
          else round(100.0 * new.completed_tasks / new.total_tasks) end,
        'slaStatus', new.sla_status
      )
    )
  );
  return null;
end
$$;
create trigger workflows_realtime after insert or update on public.workflows
  for each row execute function private.workflow_realtime_event();

create or replace function private.task_realtime_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
     and new.status = old.status
     and new.assigned_to is not distinct from old.assigned_to
     and new.sla_status = old.sla_status
     and new.attempt_count = old.attempt_count then
    return null;
  end if;
  perform private.emit_realtime_event(
    'task_execution_updated', new.workflow_id, new.id, new.client_id, null,
    jsonb_strip_nulls(jsonb_build_object(
      'type', 'task_execution_updated',
      'taskId', new.id,
      'workflowId', new.workflow_id,
      'taskKey', new.task_key,
      'status', new.status,
      'previousStatus', case when tg_op = 'UPDATE' then old.status end,
      'result', new.result,
      'error', new.error_message,
      'slaStatus', new.sla_status,
      'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ))
  );
  return null;
end
$$;
create trigger tasks_realtime after insert or update on public.tasks
  for each row execute function private.task_realtime_event();

create or replace function private.notification_realtime_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.emit_realtime_event(
    'hil_notification', new.workflow_id, new.task_id, null, new.recipient_id,
    jsonb_strip_nulls(jsonb_build_object(
      'type', 'hil_notification',
      'notificationId', new.id,
      'notificationType', new.notification_type,
      'priority', case new.priority when 'LOW' then 'low' when 'NORMAL' then 'medium'
                                    when 'HIGH' then 'high' else 'urgent' end,
      'title', new.title,
      'message', new.message,
      'actionRequired', new.action_required,
      'workflowId', new.workflow_id,
      'taskId', new.task_id,
      'timestamp', to_char(new.created_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ))
  );
  return null;
end
$$;
create trigger notifications_realtime after insert on public.notifications
  for each row execute function private.notification_realtime_event();
