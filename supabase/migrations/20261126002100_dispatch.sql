-- Delivering the n8n outbox: claiming due rows without double delivery across dispatchers
-- (for update skip locked, with a lease so a crashed dispatcher's rows come back), and recording
-- each outcome: delivered, retry later, or dead with people told. Service path only.

create or replace function public.claim_n8n_dispatches(p_limit integer default 10, p_lease_seconds integer default 120)
returns setof public.n8n_dispatches
language plpgsql
set search_path = ''
as $$
begin
  if not private.is_service() then
    raise exception 'the outbox is delivered by the service only' using errcode = '42501';
  end if;
  return query
  update public.n8n_dispatches d
     set status = 'DELIVERING', attempts = d.attempts + 1,
         locked_until = now() + make_interval(secs => p_lease_seconds)
   where d.id in (
     select c.id from public.n8n_dispatches c
      where (c.status in ('PENDING', 'FAILED') and c.next_attempt_at <= now())
         or (c.status = 'DELIVERING' and c.locked_until < now())
      order by c.next_attempt_at
      limit p_limit
      for update skip locked)
  returning d.*;
end
$$;

-- p_retry_at null means no retry is wanted (the caller decided the error is final).
create or replace function public.finish_n8n_dispatch(
  p_id uuid, p_delivered boolean, p_error text default null, p_response jsonb default null,
  p_retry_at timestamptz default null
) returns text
language plpgsql
set search_path = ''
as $$
declare
  v_dispatch public.n8n_dispatches;
  v_workflow public.workflows;
  v_status text;
begin
  if not private.is_service() then
    raise exception 'the outbox is delivered by the service only' using errcode = '42501';
  end if;
  select * into v_dispatch from public.n8n_dispatches where id = p_id for update;
  if not found or v_dispatch.status <> 'DELIVERING' then
    return coalesce(v_dispatch.status, 'MISSING');  -- someone else finished it (lease expired)
  end if;
  if p_delivered then
    v_status := 'DELIVERED';
    update public.n8n_dispatches
       set status = v_status, delivered_at = now(), response = p_response, last_error = null, locked_until = null
     where id = p_id;
    if v_dispatch.kind = 'TRIGGER' and p_response ->> 'executionId' is not null then
      update public.workflows set n8n_execution_id = coalesce(n8n_execution_id, p_response ->> 'executionId'),
                                  n8n_status = coalesce(n8n_status, 'running')
       where id = v_dispatch.workflow_id;
    end if;
  elsif p_retry_at is not null and v_dispatch.attempts < v_dispatch.max_attempts then
    v_status := 'FAILED';
    update public.n8n_dispatches
       set status = v_status, next_attempt_at = p_retry_at, last_error = left(p_error, 2000), locked_until = null
     where id = p_id;
  else
    v_status := 'DEAD';
    update public.n8n_dispatches set status = v_status, last_error = left(p_error, 2000), locked_until = null
     where id = p_id;
    select * into v_workflow from public.workflows where id = v_dispatch.workflow_id for update;
    -- A workflow n8n never received waits on a person.
    if v_dispatch.kind = 'TRIGGER' and v_workflow.status = 'IN_PROGRESS' then
      update public.workflows set status = 'BLOCKED' where id = v_workflow.id;
    end if;
    perform private.notify_watchers(v_workflow, null, 'AGENT_FAILURE', 'URGENT',
      'n8n could not be reached for ' || v_workflow.title,
      'Gave up delivering the ' || lower(v_dispatch.kind) || ' to n8n after ' || v_dispatch.attempts
        || ' attempts: ' || coalesce(p_error, 'no error text'),
      'dispatch_dead:' || v_dispatch.id);
  end if;
  return v_status;
end
$$;

revoke execute on function public.claim_n8n_dispatches(integer, integer), public.finish_n8n_dispatch(uuid, boolean, text, jsonb, timestamptz)
  from public, anon, authenticated;
grant execute on function public.claim_n8n_dispatches(integer, integer), public.finish_n8n_dispatch(uuid, boolean, text, jsonb, timestamptz)
  to service_role;

-- Wake the dispatchers as soon as something is queued (they also poll, so a lost notification
-- only delays delivery by one interval).
create or replace function private.announce_dispatch() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform pg_notify('rexera_dispatch', '');
  return null;
end
$$;
create trigger n8n_dispatches_announce after insert on public.n8n_dispatches
  for each statement execute function private.announce_dispatch();
