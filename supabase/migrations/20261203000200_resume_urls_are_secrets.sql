-- n8n resume URLs are secrets. n8n 2.x signs a Wait node's resume URL (?signature=<hex>; a POST
-- without it is refused), so whoever reads the URL can resume the execution. Until now the URL
-- sat in public.tasks.resume_url, readable by everyone who may read the task (a client user
-- through Supabase's REST API), and was copied into the audit trail and the n8n outbox.
--
-- Now the URL is kept in a table of the private schema that no request role may read, and
-- tasks.resume_url holds a reference to it ('n8n-resume:' || task id), so everything that
-- asked "is n8n waiting on this task?" and passed the value on keeps working. The dispatcher
-- (the service path) exchanges the reference for the URL at delivery through
-- private.n8n_resume_url(), and forgets the URL once it was used.

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

-- URLs written before this migration move too.
update public.tasks set resume_url = resume_url where resume_url is not null;
