-- Tenants and people: the shared vocabulary, the claim helpers every policy uses, clients,
-- user profiles (1:1 with auth.users), whether a person's token still counts, and user
-- preferences.

-- ============================================================================================
-- Shared vocabulary (SPEC section 3): one set of names in the database, API, n8n and events
-- ============================================================================================
create type public.workflow_type as enum ('MUNI_LIEN_SEARCH', 'HOA_ACQUISITION', 'PAYOFF_REQUEST');
create type public.workflow_status as enum (
  'PENDING', 'IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELLED'
);
create type public.task_status as enum (
  'PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW', 'COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED'
);
create type public.executor_type as enum ('AI', 'HIL');
create type public.priority_level as enum ('LOW', 'NORMAL', 'HIGH', 'URGENT');
create type public.sla_status as enum ('ON_TIME', 'AT_RISK', 'BREACHED');
create type public.sla_alert_level as enum ('GREEN', 'YELLOW', 'ORANGE', 'RED', 'BREACHED');
create type public.user_type as enum ('hil_user', 'client_user');
create type public.user_role as enum ('hil_operator', 'hil_manager', 'client_user', 'client_admin');
create type public.counterparty_type as enum ('hoa', 'lender', 'municipality', 'utility', 'tax_authority');
create type public.communication_type as enum ('email', 'call', 'message', 'sms');
create type public.document_type as enum ('WORKING', 'DELIVERABLE', 'ATTACHMENT');
create type public.notification_type as enum (
  'WORKFLOW_UPDATE', 'TASK_INTERRUPT', 'HIL_MENTION', 'CLIENT_MESSAGE_RECEIVED',
  'COUNTERPARTY_MESSAGE_RECEIVED', 'SLA_WARNING', 'AGENT_FAILURE'
);
create type public.actor_type as enum ('human', 'agent', 'system');

-- ============================================================================================
-- Claim helpers. Policies read the caller from auth.jwt() -> 'app_metadata', which only the
-- server can set (user_metadata is editable by users and never trusted). Kept in schema
-- `private` so they are not exposed as RPC endpoints; stable so each is evaluated once per
-- statement when wrapped in (select ...).
--
-- PL/pgSQL, not SQL: a SQL function with a SET clause (search_path = '', which every helper
-- keeps) is never inlined, and PostgreSQL 15 keeps no plan for it between statements, so each
-- statement evaluating (select private.is_hil()) parsed and planned is_hil, app_role,
-- app_metadata and auth.jwt() again. PL/pgSQL keeps each body compiled and its plans for the
-- session. Measured with pgbench (one client, BEGIN + request context + the statement +
-- COMMIT; select 1 costs 0.20 ms): select private.is_hil() 0.77 -> 0.33 ms, one workflow
-- document 1.07 -> 0.51 ms. Every request that touches a table with RLS pays this once per
-- statement (tests/db/test_schema.py keeps it so).
-- ============================================================================================
create schema if not exists private;
grant usage on schema private to anon, authenticated, service_role;

create or replace function private.app_metadata() returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(auth.jwt() -> 'app_metadata', '{}'::jsonb);
end
$$;

-- A person's token counts only while their profile says the same: active, with the role (and,
-- for client people, the client) the token claims, at an active client (private.person_is_current,
-- below, reads user_profiles and clients whatever their own policies allow: those policies call
-- these helpers). Deleting or deactivating a person or their client, or moving them to another
-- role or client, takes effect at once, not when their token expires.
-- The answer is kept for the rest of the transaction (a request asks it in every policy of
-- every statement), keyed by the person and what they claim; a change to user_profiles or
-- clients forgets it (triggers below).
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

-- The caller's role: from app_metadata (agents, the service), and for people only while their
-- profile matches (private.person_matches_profile).
create or replace function private.app_role() returns text
language plpgsql stable
set search_path = ''
as $$
declare
  v_meta jsonb := private.app_metadata();
  v_role text := v_meta ->> 'role';
begin
  if v_role in ('hil_operator', 'hil_manager', 'client_user', 'client_admin') then
    return case when private.person_matches_profile(v_meta) then v_role end;
  end if;
  return v_role;
end
$$;

create or replace function private.is_hil() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(private.app_role() in ('hil_operator', 'hil_manager'), false);
end
$$;

create or replace function private.is_manager() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(private.app_role() = 'hil_manager', false);
end
$$;

create or replace function private.is_client() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(private.app_role() in ('client_user', 'client_admin'), false);
end
$$;

create or replace function private.is_client_admin() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(private.app_role() = 'client_admin', false);
end
$$;

create or replace function private.is_agent() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(private.app_role() = 'agent', false);
end
$$;

-- The service path: a request made as service_role (the claims, if any, saying so too), or a
-- direct connection that set no request role (n8n's Postgres node, pg_cron, migrations). The
-- request role decides, never the claims alone: a request made as anon or authenticated is
-- never the service, even with a token claiming "role": "service_role" (found by an outside
-- security test). The action functions let the service do everything.
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

-- A malformed id in a claim must read as "no tenant", never raise inside a policy.
create or replace function private.uuid_or_null(value text) returns uuid
language plpgsql immutable
set search_path = ''
as $$
begin
  if value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return value::uuid;
  end if;
  return null;
end
$$;

-- The client a client user belongs to (null for everyone else).
create or replace function private.client_id() returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
  if private.is_client() then
    return private.uuid_or_null(private.app_metadata() ->> 'client_id');
  end if;
  return null;
end
$$;

-- The one workflow an agent's request is scoped to (null for everyone else). The request names
-- it (X-Workflow-Scope, carried in the claims as app_metadata.workflow_id), but the claim alone
-- does not decide: it counts only while the agent has work there (private.agent_has_work_in,
-- 20261126000300_agents.sql); otherwise the agent sees nothing, as for any row outside its
-- tenant.
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

create or replace function private.agent_name() returns text
language plpgsql stable
set search_path = ''
as $$
begin
  if private.is_agent() then
    return private.app_metadata() ->> 'agent_name';
  end if;
  return null;
end
$$;

-- The caller's user id while they count as a person (private.person_matches_profile); null
-- otherwise. What the own-row policies compare with, instead of auth.uid() alone: a person
-- deactivated, deleted or moved keeps nothing the own-row policies gave (their notifications,
-- profile, preferences, notification events).
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

grant execute on all functions in schema private to anon, authenticated, service_role;

-- ============================================================================================
-- updated_at, kept by a trigger on every table whose rows change
-- ============================================================================================
create or replace function private.touch_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- Append-only tables refuse updates and deletes whoever asks; the one exception is a delete
-- cascading from a deleted parent row (trigger depth > 1), so retention can remove whole
-- workflows.
create or replace function private.refuse_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
    return old;
  end if;
  raise exception '% is append-only', tg_table_name
    using errcode = 'P0001', hint = 'append_only';
end
$$;

-- ============================================================================================
-- Clients (tenants)
-- ============================================================================================
create table public.clients (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  domain text check (domain is null or domain ~ '^[a-z0-9.-]+$'),
  is_active boolean not null default true,
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint clients_name_key unique (name)
);
comment on table public.clients is 'Client companies (tenants). Client users see only rows of their own client.';
create trigger clients_touch_updated_at before update on public.clients
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- User profiles: one per auth.users row, carrying the role the JWT app_metadata repeats
-- ============================================================================================
create table public.user_profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null check (email ~ '^[^@\s]+@[^@\s]+$'),
  full_name text,
  user_type public.user_type not null,
  role public.user_role not null,
  client_id uuid references public.clients (id) on delete restrict,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint user_profiles_email_key unique (email),
  -- HIL people belong to no client; client people belong to exactly one.
  constraint user_profiles_type_matches_role check (
    (user_type = 'hil_user' and role in ('hil_operator', 'hil_manager') and client_id is null)
    or (user_type = 'client_user' and role in ('client_user', 'client_admin') and client_id is not null)
  )
);

-- A profile (or a client) changed: what private.person_matches_profile kept for this
-- transaction may be stale.
create or replace function private.forget_profile_matches() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('rexera.person_matches_profile', '', true);
  return null;
end
$$;
create trigger user_profiles_forget_matches after insert or update or delete on public.user_profiles
  for each statement execute function private.forget_profile_matches();
-- A client's activity is part of the answer too: forget it when a client changes.
create trigger clients_forget_matches after update or delete on public.clients
  for each statement execute function private.forget_profile_matches();
comment on table public.user_profiles is 'People who sign in: HIL operators and managers, and client users. 1:1 with auth.users.';
create index user_profiles_client_id_idx on public.user_profiles (client_id);
create index user_profiles_role_idx on public.user_profiles (role);
create trigger user_profiles_touch_updated_at before update on public.user_profiles
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Whether a person counts: their profile, not their token, decides
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

-- Why the person p_user_id does not count with what p_metadata claims, in words; null when they
-- do. One place for the reasons: require_current_person (below) raises them, and the /ws
-- endpoint's batched connect checks (app/realtime/gate.py) ask it for many sockets at once.
create or replace function private.person_refusal(p_user_id uuid, p_metadata jsonb) returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_profile record;
begin
  if private.person_is_current(p_user_id, p_metadata) then
    return null;
  end if;
  select p.is_active, c.is_active as client_active into v_profile
    from public.user_profiles p left join public.clients c on c.id = p.client_id
   where p.id = p_user_id;
  if not found then
    return 'no person with this token''s user id exists here';
  elsif not v_profile.is_active then
    return 'this person is deactivated';
  elsif v_profile.client_active is false then
    return 'this person''s client is deactivated';
  end if;
  return 'the token''s role or client no longer matches the person''s profile: sign in again';
end
$$;
revoke all on function private.person_refusal(uuid, jsonb) from public, anon;
grant execute on function private.person_refusal(uuid, jsonb) to authenticated, service_role;

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
begin
  if private.person_matches_profile(v_meta) then
    return;
  end if;
  raise exception '%', private.person_refusal(auth.uid(), v_meta) using errcode = '28000';
end
$$;
revoke all on function private.require_current_person() from public, anon;
grant execute on function private.require_current_person() to authenticated, service_role;

-- Open WebSockets of a person end when their profile (or their client) changes: each service
-- process listens on this channel and checks its sockets of that person again.
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

-- ============================================================================================
-- User preferences
-- ============================================================================================
create table public.user_preferences (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.user_profiles (id) on delete cascade,
  timezone text not null default 'America/New_York',
  email_notifications boolean not null default true,
  notification_types public.notification_type[] not null default '{}',
  dashboard_settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint user_preferences_user_id_key unique (user_id)
);
comment on table public.user_preferences is 'Per-person notification and dashboard preferences.';
create trigger user_preferences_touch_updated_at before update on public.user_preferences
  for each row execute function private.touch_updated_at();
