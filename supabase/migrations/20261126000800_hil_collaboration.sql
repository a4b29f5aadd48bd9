-- HIL collaboration: threaded internal notes with mentions, their tags and attachments, and
-- notifications addressed to one person.

create table public.hil_notes (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  task_id uuid references public.tasks (id) on delete set null,
  parent_note_id uuid references public.hil_notes (id) on delete cascade,
  author_id uuid not null references public.user_profiles (id) on delete restrict,
  body text not null check (length(body) between 1 and 20000),
  mentions uuid[] not null default '{}',
  is_resolved boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.hil_notes is 'Internal, threaded notes between HIL people on a workflow or task. Never shown to clients.';
create index hil_notes_workflow_id_idx on public.hil_notes (workflow_id, created_at);
create index hil_notes_task_id_idx on public.hil_notes (task_id);
create index hil_notes_parent_note_id_idx on public.hil_notes (parent_note_id);
create index hil_notes_author_id_idx on public.hil_notes (author_id);
create index hil_notes_mentions_idx on public.hil_notes using gin (mentions);
create trigger hil_notes_touch_updated_at before update on public.hil_notes
  for each row execute function private.touch_updated_at();

create table public.hil_note_tags (
  id uuid primary key default gen_random_uuid(),
  note_id uuid not null references public.hil_notes (id) on delete cascade,
  tag text not null check (tag ~ '^[a-z0-9][a-z0-9_-]{0,40}$'),
  created_at timestamptz not null default now(),
  constraint hil_note_tags_pair_key unique (note_id, tag)
);
comment on table public.hil_note_tags is 'Free tags on HIL notes (blocker, follow-up, client-call...).';
create index hil_note_tags_tag_idx on public.hil_note_tags (tag);

create table public.hil_note_attachments (
  id uuid primary key default gen_random_uuid(),
  note_id uuid not null references public.hil_notes (id) on delete cascade,
  document_id uuid references public.documents (id) on delete set null,
  filename text not null,
  storage_path text,
  size_bytes bigint check (size_bytes >= 0),
  created_at timestamptz not null default now()
);
comment on table public.hil_note_attachments is 'Files attached to a HIL note.';
create index hil_note_attachments_note_id_idx on public.hil_note_attachments (note_id);
create index hil_note_attachments_document_id_idx on public.hil_note_attachments (document_id);

create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  recipient_id uuid not null references public.user_profiles (id) on delete cascade,
  notification_type public.notification_type not null,
  priority public.priority_level not null default 'NORMAL',
  title text not null,
  message text not null,
  action_required boolean not null default false,
  workflow_id uuid references public.workflows (id) on delete cascade,
  task_id uuid references public.tasks (id) on delete cascade,
  data jsonb not null default '{}'::jsonb,
  -- Makes a notification that must be sent once (an SLA escalation) unique per recipient.
  dedupe_key text,
  read_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint notifications_dedupe_key unique (recipient_id, dedupe_key)
);
comment on table public.notifications is 'Notifications to one person (mentions, SLA warnings, agent failures...), read and marked read by that person only.';
create index notifications_recipient_created_idx on public.notifications (recipient_id, created_at desc);
create index notifications_recipient_unread_idx on public.notifications (recipient_id) where read_at is null;
create index notifications_workflow_id_idx on public.notifications (workflow_id);
create index notifications_task_id_idx on public.notifications (task_id);
create trigger notifications_touch_updated_at before update on public.notifications
  for each row execute function private.touch_updated_at();
