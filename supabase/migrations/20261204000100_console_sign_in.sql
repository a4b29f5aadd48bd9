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

-- The local sign-in's refresh cookies: an opaque token whose SHA-256 is kept here, one row per
-- token. A sign-in starts a family; each refresh spends its token (rotated_at) and issues the
-- next of the family, which ends when the sign-in's 12 hours do. A spent token presented again
-- is a copy in someone else's hands (refresh token reuse detection, as Supabase Auth does): the
-- whole family is revoked. Sign-out revokes the family too.
create table private.console_refresh_tokens (
  token_hash bytea primary key,
  family_id uuid not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  rotated_at timestamptz,
  revoked_at timestamptz
);

create index console_refresh_tokens_family on private.console_refresh_tokens (family_id);

comment on table private.console_refresh_tokens is
  'Local console refresh tokens (hashes only), rotated on each use and revoked by family on reuse or sign-out.';

-- A new family for a person who just signed in with a code: its first token, good for
-- p_seconds. Expired families are cleared on the way.
create or replace function public.issue_console_refresh_token(p_user uuid, p_seconds integer default 43200)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_token text;
begin
  if p_seconds is null or p_seconds not between 60 and 86400 then
    raise exception 'a console session lives between a minute and a day' using errcode = '22023';
  end if;
  delete from private.console_refresh_tokens t where t.expires_at < now();
  v_token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into private.console_refresh_tokens (token_hash, family_id, user_id, expires_at)
  values (sha256(convert_to(v_token, 'UTF8')), gen_random_uuid(), p_user, now() + make_interval(secs => p_seconds));
  return v_token;
end
$$;

-- Spend a refresh token: the person and the next token of its family (which ends when the
-- family does); no row for an unknown, expired or revoked token. A token already spent revokes
-- its whole family and gives no row.
create or replace function public.rotate_console_refresh_token(p_token text)
returns table (user_id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row private.console_refresh_tokens;
  v_next text;
begin
  select * into v_row from private.console_refresh_tokens t
   where t.token_hash = sha256(convert_to(p_token, 'UTF8'))
   for update;
  if not found or v_row.revoked_at is not null or v_row.expires_at <= now() then
    return;
  end if;
  if v_row.rotated_at is not null then
    update private.console_refresh_tokens t set revoked_at = now()
     where t.family_id = v_row.family_id and t.revoked_at is null;
    return;
  end if;
  update private.console_refresh_tokens t set rotated_at = now() where t.token_hash = v_row.token_hash;
  v_next := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into private.console_refresh_tokens (token_hash, family_id, user_id, expires_at)
  values (sha256(convert_to(v_next, 'UTF8')), v_row.family_id, v_row.user_id, v_row.expires_at);
  return query select v_row.user_id, v_next, v_row.expires_at;
end
$$;

-- Sign-out: the family of this token (spent or not) is revoked; nothing for an unknown token.
create or replace function public.revoke_console_refresh_token(p_token text)
returns void
language sql
security definer
set search_path = ''
as $$
  update private.console_refresh_tokens t set revoked_at = now()
   where t.revoked_at is null
     and t.family_id = (select f.family_id from private.console_refresh_tokens f
                         where f.token_hash = sha256(convert_to(p_token, 'UTF8')))
$$;

revoke all on table private.console_refresh_tokens from public, anon, authenticated;
revoke execute on function public.issue_console_refresh_token(uuid, integer),
  public.rotate_console_refresh_token(text), public.revoke_console_refresh_token(text)
  from public, anon, authenticated;
grant execute on function public.issue_console_refresh_token(uuid, integer),
  public.rotate_console_refresh_token(text), public.revoke_console_refresh_token(text) to service_role;
