-- The console's local sign-in (scripts/local.py, CONSOLE_LOCAL_SIGN_IN=on; docs/console.md): a
-- link carries a one-time code, never a token. Only the code's SHA-256 is kept; a code is good
-- once, for a short time, and only for a person who still counts.

create table private.console_sign_in_codes (
  code_hash bytea primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);

comment on table private.console_sign_in_codes is
  'One-time console sign-in codes (hashes only) for local use; see public.issue_console_sign_in_code.';

-- A new code for the person with this e-mail, good for p_ttl_seconds; null when there is no such
-- person. Expired and used codes are cleared on the way.
create or replace function public.issue_console_sign_in_code(p_email text, p_ttl_seconds integer default 1800)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_code text;
begin
  if p_ttl_seconds is null or p_ttl_seconds not between 10 and 86400 then
    raise exception 'a sign-in code lives between 10 seconds and a day' using errcode = '22023';
  end if;
  select u.id into v_user from auth.users u where lower(u.email) = lower(p_email);
  if v_user is null then
    return null;
  end if;
  delete from private.console_sign_in_codes c where c.expires_at < now() or c.used_at is not null;
  v_code := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into private.console_sign_in_codes (code_hash, user_id, expires_at)
  values (sha256(convert_to(v_code, 'UTF8')), v_user, now() + make_interval(secs => p_ttl_seconds));
  return v_code;
end
$$;

-- The person a code signs in, once: the code is spent by this call; null for an unknown, spent
-- or expired code.
create or replace function public.redeem_console_sign_in_code(p_code text)
returns uuid
language sql
security definer
set search_path = ''
as $$
  update private.console_sign_in_codes c
     set used_at = now()
   where c.code_hash = sha256(convert_to(p_code, 'UTF8'))
     and c.used_at is null
     and c.expires_at > now()
  returning c.user_id
$$;

revoke all on table private.console_sign_in_codes from public, anon, authenticated;
revoke execute on function public.issue_console_sign_in_code(text, integer),
  public.redeem_console_sign_in_code(text) from public, anon, authenticated;
grant execute on function public.issue_console_sign_in_code(text, integer),
  public.redeem_console_sign_in_code(text) to service_role;
