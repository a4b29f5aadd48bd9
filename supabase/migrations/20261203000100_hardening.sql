-- Hardening after an outside security test. Four classes of defect, each closed where it lives:
--
-- 1. The service path was recognised by the claims alone: a person's token carrying
--    "role": "service_role" made private.is_service() true inside the action functions. The
--    request role decides now: a request made as anon or authenticated is never the service,
--    whatever its claims say.
-- 2. A person deactivated (or deleted, or moved to another role or client) kept what the
--    own-row policies gave by auth.uid() alone: their notifications, profile, preferences and
--    notification events. Those policies now ask private.person_id(), which is the caller's id
--    only while their profile says they are who the token claims, active, at an active client.
--    private.require_current_person() lets the service refuse such a token outright (401).
-- 3. Receipts of webhook events were keyed by (source, event id): one workflow's key could
--    claim an id another workflow would use, and that workflow's genuine event was then
--    answered as a replay. Receipts are keyed by (source, workflow, event id) now.
-- 4. A task action on a task of a workflow the caller may not see answered "workflow <its id>
--    not found", telling that the task exists and naming its workflow. Task functions now check
--    the task's visibility first and answer exactly as for a task that does not exist.

-- ============================================================================================
-- 1. The service path
-- ============================================================================================
-- The service: a request made as service_role (the claims, if any, saying so too), or a
-- direct connection that set no request role (n8n's Postgres node, pg_cron, migrations).
create or replace function private.is_service() returns boolean
language plpgsql stable
set search_path = ''
as $$
declare
  v_request_role text := coalesce(current_setting('role', true), 'none');
begin
  if v_request_role in ('anon', 'authenticated') then
    return false;
  end if;
  return auth.jwt() is null or coalesce(auth.role(), '') = 'service_role';
end
$$;

-- ============================================================================================
-- 2. People count only while their profile says so
-- ============================================================================================
-- True when the person p_user_id exists, is active, holds the role (and, for client people,
-- the client) that p_metadata claims, and that client is active. Security definer: it reads
-- user_profiles and clients whatever their own policies allow (those policies call it).
create or replace function private.person_is_current(p_user_id uuid, p_metadata jsonb) returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1
      from public.user_profiles p
      left join public.clients c on c.id = p.client_id
     where p.id = p_user_id
       and p.is_active
       and p.role::text = p_metadata ->> 'role'
       and p.client_id is not distinct from private.uuid_or_null(p_metadata ->> 'client_id')
       and (p.client_id is null or c.is_active));
end
$$;
revoke all on function private.person_is_current(uuid, jsonb) from public, anon;
grant execute on function private.person_is_current(uuid, jsonb) to authenticated, service_role;

-- As before (answer kept for the transaction, forgotten when user_profiles changes), asking
-- private.person_is_current.
create or replace function private.person_matches_profile(p_metadata jsonb) returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_key text := coalesce(auth.uid()::text, '') || '|' || coalesce(p_metadata ->> 'role', '') || '|'
                || coalesce(p_metadata ->> 'client_id', '');
  v_known text := current_setting('rexera.person_matches_profile', true);
  v_matches boolean;
begin
  if v_known = v_key || '|t' then
    return true;
  elsif v_known = v_key || '|f' then
    return false;
  end if;
  v_matches := private.person_is_current(auth.uid(), p_metadata);
  perform set_config('rexera.person_matches_profile', v_key || case when v_matches then '|t' else '|f' end, true);
  return v_matches;
end
$$;

-- A client's activity is part of the answer too: forget it when a client changes.
create trigger clients_forget_matches after update or delete on public.clients
  for each statement execute function private.forget_profile_matches();

-- The caller's user id while they count as a person (above); null otherwise. What the own-row
-- policies compare with, instead of auth.uid() alone.
create or replace function private.person_id() returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
  if private.app_role() in ('hil_operator', 'hil_manager', 'client_user', 'client_admin') then
    return auth.uid();
  end if;
  return null;
end
$$;
grant execute on function private.person_id() to anon, authenticated, service_role;

-- Refuses a request whose person does not count (SQLSTATE 28000, which the service answers
-- 401), saying why. The service runs it first in every person's transaction, so every endpoint
-- refuses a deactivated person the same way, and the answer it keeps serves the policies after.
create or replace function private.require_current_person() returns void
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_meta jsonb := private.app_metadata();
  v_profile record;
begin
  if private.person_matches_profile(v_meta) then
    return;
  end if;
  select p.is_active, c.is_active as client_active into v_profile
    from public.user_profiles p left join public.clients c on c.id = p.client_id
   where p.id = auth.uid();
  if not found then
    raise exception 'no person with this token''s user id exists here' using errcode = '28000';
  elsif not v_profile.is_active then
    raise exception 'this person is deactivated' using errcode = '28000';
  elsif v_profile.client_active is false then
    raise exception 'this person''s client is deactivated' using errcode = '28000';
  end if;
  raise exception 'the token''s role or client no longer matches the person''s profile: sign in again'
    using errcode = '28000';
end
$$;
revoke all on function private.require_current_person() from public, anon;
grant execute on function private.require_current_person() to authenticated, service_role;

-- Open WebSockets of a person end when their profile changes: each service process listens on
-- this channel and checks its sockets of that person again.
create or replace function private.announce_person_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    perform pg_notify('rexera_people', old.id::text);
  elsif old.is_active is distinct from new.is_active or old.role is distinct from new.role
        or old.client_id is distinct from new.client_id then
    perform pg_notify('rexera_people', new.id::text);
  end if;
  return null;
end
$$;
create trigger user_profiles_announce_change after update or delete on public.user_profiles
  for each row execute function private.announce_person_change();

create or replace function private.announce_client_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' or old.is_active is distinct from new.is_active then
    perform pg_notify('rexera_people', 'client:' || old.id::text);
  end if;
  return null;
end
$$;
create trigger clients_announce_change after update or delete on public.clients
  for each row execute function private.announce_client_change();

-- Own-row policies: by private.person_id(), never by auth.uid() alone.
drop policy "People can read their own profile" on public.user_profiles;
create policy "People can read their own profile" on public.user_profiles
  for select to authenticated using (id = (select private.person_id()));

drop policy "People can read their own preferences" on public.user_preferences;
drop policy "People can create their own preferences" on public.user_preferences;
drop policy "People can update their own preferences" on public.user_preferences;
drop policy "People can delete their own preferences" on public.user_preferences;
create policy "People can read their own preferences" on public.user_preferences
  for select to authenticated using (user_id = (select private.person_id()));
create policy "People can create their own preferences" on public.user_preferences
  for insert to authenticated with check (user_id = (select private.person_id()));
create policy "People can update their own preferences" on public.user_preferences
  for update to authenticated
  using (user_id = (select private.person_id())) with check (user_id = (select private.person_id()));
create policy "People can delete their own preferences" on public.user_preferences
  for delete to authenticated using (user_id = (select private.person_id()));

drop policy "People can read their own notifications" on public.notifications;
drop policy "People can mark their own notifications read" on public.notifications;
drop policy "People can delete their own notifications" on public.notifications;
create policy "People can read their own notifications" on public.notifications
  for select to authenticated using (recipient_id = (select private.person_id()));
create policy "People can mark their own notifications read" on public.notifications
  for update to authenticated
  using (recipient_id = (select private.person_id())) with check (recipient_id = (select private.person_id()));
create policy "People can delete their own notifications" on public.notifications
  for delete to authenticated using (recipient_id = (select private.person_id()));

drop policy "People can read notification events addressed to them" on public.realtime_events;
create policy "People can read notification events addressed to them" on public.realtime_events
  for select to authenticated
  using (event_type = 'hil_notification' and recipient_id = (select private.person_id()));

-- ============================================================================================
-- 3. Receipts keyed by (source, workflow, event id)
-- ============================================================================================
-- workflow_id is null for an event naming no workflow that exists; those share one namespace
-- (nulls not distinct), which names nothing anybody could be affected through.
alter table public.webhook_receipts drop constraint webhook_receipts_event_key;
alter table public.webhook_receipts
  add constraint webhook_receipts_event_key unique nulls not distinct (source, workflow_id, event_id);

-- As before, with the receipt found by (source, workflow, event id).
create or replace function public.apply_n8n_event(p_source text, p_event_id text, p_type text, p_data jsonb)
returns jsonb
language plpgsql
set search_path = ''
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

-- ============================================================================================
-- 4. A task the caller may not see is a task that does not exist
-- ============================================================================================
-- Whether the caller may see (and so act on) a workflow: the one test behind every action.
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

-- A task whose workflow the caller may not see: raised exactly as for an unknown task id.
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

-- public.task_action and public.transition_task become private, behind public wrappers that
-- check the task's visibility first (same signatures, same grants, callable as before).
alter function public.task_action(uuid, text, jsonb) set schema private;
alter function private.task_action(uuid, text, jsonb) rename to act_on_visible_task;
revoke all on function private.act_on_visible_task(uuid, text, jsonb) from public, anon, authenticated;
alter function public.transition_task(uuid, public.task_status, jsonb) set schema private;
alter function private.transition_task(uuid, public.task_status, jsonb) rename to transition_visible_task;
revoke all on function private.transition_visible_task(uuid, public.task_status, jsonb) from public, anon, authenticated;

create function public.task_action(p_task_id uuid, p_action text, p_data jsonb default '{}'::jsonb)
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

create function public.transition_task(p_task_id uuid, p_status public.task_status, p_data jsonb default '{}'::jsonb)
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
