-- Delivering the n8n outbox: claiming due rows without double delivery across dispatchers
-- (for update skip locked, with a lease so a crashed dispatcher's rows come back), and recording
-- each outcome: delivered, retry later, or dead with people told; and n8n's resume URLs, which
-- the dispatcher alone reads. Service path only.

-- p_ids: only these rows, and only while they are due (a request delivers the rows it queued
-- right after its commit, claimed by id).
create or replace function public.claim_n8n_dispatches(p_limit integer default 10, p_lease_seconds integer default 120,
                                                       p_ids uuid[] default null)
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
      where ((c.status in ('PENDING', 'FAILED') and c.next_attempt_at <= now())
             or (c.status = 'DELIVERING' and c.locked_until < now()))
        and (p_ids is null or c.id = any(p_ids))
      order by c.next_attempt_at
      limit p_limit
      for update skip locked)
  returning d.*;
end
$$;

-- n8n answers again (a delivery succeeded after failures, or its health check passes): whatever
-- waits out a backoff is due now. Returns how many rows were released.
create or replace function public.release_n8n_dispatches() returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_released integer;
begin
  if not private.is_service() then
    raise exception 'the outbox is delivered by the service only' using errcode = '42501';
  end if;
  update public.n8n_dispatches set next_attempt_at = now()
   where status = 'FAILED' and next_attempt_at > now();
  get diagnostics v_released = row_count;
  return v_released;
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

revoke execute on function public.claim_n8n_dispatches(integer, integer, uuid[]), public.release_n8n_dispatches(),
  public.finish_n8n_dispatch(uuid, boolean, text, jsonb, timestamptz)
  from public, anon, authenticated;
grant execute on function public.claim_n8n_dispatches(integer, integer, uuid[]), public.release_n8n_dispatches(),
  public.finish_n8n_dispatch(uuid, boolean, text, jsonb, timestamptz)
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

-- ============================================================================================
-- n8n resume URLs are secrets
-- ============================================================================================
-- n8n 2.x signs a Wait node's resume URL (?signature=<hex>; a POST without it is refused), so
-- whoever reads the URL can resume the execution. It is kept in a table of the private schema
-- that no request role may read, and public.tasks.resume_url holds a reference to it
-- ('n8n-resume:' || task id): readers of tasks (a client user through Supabase's REST API), the
-- audit trail and the outbox see only the reference, and everything asking "is n8n waiting on
-- this task?" keeps working. The dispatcher exchanges the reference for the URL at delivery
-- (private.n8n_resume_url) and forgets the URL once it was used.
create table private.n8n_resume_urls (
  task_id uuid primary key references public.tasks (id) on delete cascade,
  url text not null,
  created_at timestamptz not null default now()
);
comment on table private.n8n_resume_urls is
  'Resume URLs of n8n Wait nodes (secrets on n8n 2.x): read only by the dispatcher through private.n8n_resume_url().';
revoke all on private.n8n_resume_urls from public, anon, authenticated;

-- Whoever writes a resume URL to a task (the task.waiting callback, n8n's Postgres node), the
-- URL goes to the private table and the task keeps its reference. Runs before the audit trail
-- and the realtime stream see the row.
create or replace function private.keep_resume_url_secret() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.resume_url is not null and new.resume_url <> 'n8n-resume:' || new.id::text then
    insert into private.n8n_resume_urls (task_id, url) values (new.id, new.resume_url)
    on conflict (task_id) do update set url = excluded.url, created_at = now();
    new.resume_url := 'n8n-resume:' || new.id::text;
  end if;
  return new;
end
$$;
revoke all on function private.keep_resume_url_secret() from public, anon, authenticated;
create trigger tasks_keep_resume_url_secret before insert or update of resume_url on public.tasks
  for each row execute function private.keep_resume_url_secret();

-- The URL behind a reference, for the dispatcher only; null when there is none. With p_used,
-- forgets that URL instead (a resume URL works once; a newer wait's URL is kept).
create or replace function private.n8n_resume_url(p_task_id uuid, p_used text default null) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
begin
  if not private.is_service() then
    raise exception 'resume URLs are read by the service only' using errcode = '42501';
  end if;
  if p_used is not null then
    delete from private.n8n_resume_urls where task_id = p_task_id and url = p_used;
    return null;
  end if;
  select url into v_url from private.n8n_resume_urls where task_id = p_task_id;
  return v_url;
end
$$;
revoke all on function private.n8n_resume_url(uuid, text) from public, anon, authenticated;
grant execute on function private.n8n_resume_url(uuid, text) to service_role;
