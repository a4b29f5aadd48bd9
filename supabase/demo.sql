-- Demo tenants for local runs and demos: two clients, an operator, a manager, and client users.
-- Writes auth.users directly, so it is for local PostgreSQL only; on hosted Supabase create
-- people with `python scripts/provision.py` (Auth admin API). Idempotent.

insert into public.clients (id, name, domain) values
  ('10000000-0000-4000-8000-000000000001', 'Acme Title', 'acmetitle.example'),
  ('10000000-0000-4000-8000-000000000002', 'Beacon Escrow', 'beaconescrow.example')
on conflict (id) do nothing;

with people (id, email, full_name, user_type, role, client_id) as (
  values
    ('20000000-0000-4000-8000-000000000001'::uuid, 'operator@rexera.example', 'Olivia Operator', 'hil_user', 'hil_operator', null::uuid),
    ('20000000-0000-4000-8000-000000000002'::uuid, 'manager@rexera.example', 'Marcus Manager', 'hil_user', 'hil_manager', null::uuid),
    ('20000000-0000-4000-8000-000000000003'::uuid, 'client@acmetitle.example', 'Carla Client', 'client_user', 'client_user', '10000000-0000-4000-8000-000000000001'::uuid),
    ('20000000-0000-4000-8000-000000000004'::uuid, 'admin@acmetitle.example', 'Adam Admin', 'client_user', 'client_admin', '10000000-0000-4000-8000-000000000001'::uuid),
    ('20000000-0000-4000-8000-000000000005'::uuid, 'client@beaconescrow.example', 'Bea Client', 'client_user', 'client_user', '10000000-0000-4000-8000-000000000002'::uuid)
),
new_users as (
  insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at)
  select id, email,
         jsonb_strip_nulls(jsonb_build_object('provider', 'email', 'user_type', user_type, 'role', role, 'client_id', client_id)),
         jsonb_build_object('full_name', full_name), now()
    from people
  on conflict (id) do nothing
)
insert into public.user_profiles (id, email, full_name, user_type, role, client_id)
select id, email, full_name, user_type::public.user_type, role::public.user_role, client_id from people
on conflict (id) do nothing;
