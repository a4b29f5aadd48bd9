-- The claim helpers every policy calls, rewritten in PL/pgSQL. Same answers, same signatures.
--
-- Why: a SQL function with a SET clause (here search_path = '', which every helper keeps) is
-- never inlined, and PostgreSQL 15 keeps no plan for such a function between statements: each
-- statement that evaluates (select private.is_hil()) parsed and planned is_hil, then app_role,
-- then app_metadata, then auth.jwt() again. Measured on the API benchmark's database with
-- pgbench (one client, BEGIN + request context + the statement + COMMIT):
--   select 1 0.20 ms; select private.is_hil() 0.77 ms; get one workflow document 1.07 ms.
-- PL/pgSQL keeps each function's compiled body and statement plans for the session, so the
-- same calls cost 0.33 ms and 0.51 ms. Every request that touches a table with RLS pays this
-- once per statement.

create or replace function private.app_metadata() returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(auth.jwt() -> 'app_metadata', '{}'::jsonb);
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

create or replace function private.is_service() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(auth.role(), '') = 'service_role'
      or (auth.jwt() is null and coalesce(current_setting('role', true), 'none') not in ('anon', 'authenticated'));
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

-- The one workflow an agent's request is scoped to (null for everyone else).
create or replace function private.agent_workflow_id() returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
  if private.is_agent() then
    return private.uuid_or_null(private.app_metadata() ->> 'workflow_id');
  end if;
  return null;
end
$$;

-- Read by the audit trail for every changed row.
create or replace function private.request_header(name text) returns text
language plpgsql stable
set search_path = ''
as $$
begin
  return nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name);
end
$$;
