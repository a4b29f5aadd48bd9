-- Tenants and people: the shared vocabulary, the claim helpers every policy uses, clients,
-- user profiles (1:1 with auth.users) and user preferences.

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
-- ============================================================================================
create schema if not exists private;
grant usage on schema private to anon, authenticated, service_role;

create or replace function private.app_metadata() returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(auth.jwt() -> 'app_metadata', '{}'::jsonb)
$$;

-- A person's token counts only while their profile says the same: active, with the role (and,
-- for client people, the client) the token claims. Deleting or deactivating a person, or moving
-- them to another role or client, takes effect at once, not when their token expires.
-- Security definer: it reads user_profiles whatever that table's own policies allow (they call
-- these helpers); plpgsql, so it may be defined before the table.
-- The answer is kept for the rest of the transaction (a request asks it in every policy of
-- every statement), keyed by the person and what they claim; a change to user_profiles forgets
-- it (trigger below).
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
  v_matches := exists (
    select 1
      from public.user_profiles p
     where p.id = auth.uid()
       and p.is_active
       and p.role::text = p_metadata ->> 'role'
       and p.client_id is not distinct from private.uuid_or_null(p_metadata ->> 'client_id'));
  perform set_config('rexera.person_matches_profile', v_key || case when v_matches then '|t' else '|f' end, true);
  return v_matches;
end
$$;

-- The caller's role: from app_metadata (agents, the service), and for people only while their
-- profile matches (above).
create or replace function private.app_role() returns text
language sql stable
set search_path = ''
as $$
  select case when m.meta ->> 'role' in ('hil_operator', 'hil_manager', 'client_user', 'client_admin')
              then case when private.person_matches_profile(m.meta) then m.meta ->> 'role' end
              else m.meta ->> 'role' end
    from (select private.app_metadata() as meta) m
$$;

create or replace function private.is_hil() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(private.app_role() in ('hil_operator', 'hil_manager'), false)
$$;

create or replace function private.is_manager() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(private.app_role() = 'hil_manager', false)
$$;

create or replace function private.is_client() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(private.app_role() in ('client_user', 'client_admin'), false)
$$;

create or replace function private.is_client_admin() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(private.app_role() = 'client_admin', false)
$$;

create or replace function private.is_agent() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(private.app_role() = 'agent', false)
$$;

-- A malformed id in a claim must read as "no tenant", never raise inside a policy.
create or replace function private.uuid_or_null(value text) returns uuid
language sql immutable
set search_path = ''
as $$
  select case
    when value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then value::uuid
  end
$$;

-- The client a client user belongs to (null for everyone else).
create or replace function private.client_id() returns uuid
language sql stable
set search_path = ''
as $$
  select case when private.is_client()
    then private.uuid_or_null(private.app_metadata() ->> 'client_id') end
$$;

-- The one workflow an agent is working on (null for everyone else).
create or replace function private.agent_workflow_id() returns uuid
language sql stable
set search_path = ''
as $$
  select case when private.is_agent()
    then private.uuid_or_null(private.app_metadata() ->> 'workflow_id') end
$$;

create or replace function private.agent_name() returns text
language sql stable
set search_path = ''
as $$
  select case when private.is_agent() then private.app_metadata() ->> 'agent_name' end
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

-- A profile changed: what private.person_matches_profile kept for this transaction may be stale.
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
comment on table public.user_profiles is 'People who sign in: HIL operators and managers, and client users. 1:1 with auth.users.';
create index user_profiles_client_id_idx on public.user_profiles (client_id);
create index user_profiles_role_idx on public.user_profiles (role);
create trigger user_profiles_touch_updated_at before update on public.user_profiles
  for each row execute function private.touch_updated_at();

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
