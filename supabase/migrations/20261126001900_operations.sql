-- Operations: what the service's health checks may read without broader grants.

-- The newest applied migration. Security definer: the tracking table belongs to the migration
-- tooling and is not granted to the API roles; this exposes only its latest version.
create or replace function public.schema_version() returns text
language sql stable
security definer
set search_path = ''
as $$
  select max(version) from supabase_migrations.schema_migrations
$$;
revoke execute on function public.schema_version() from public, anon, authenticated;
grant execute on function public.schema_version() to service_role;
