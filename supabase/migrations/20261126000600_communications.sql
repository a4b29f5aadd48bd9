-- Communications: emails, calls, messages and SMS exchanged for a workflow, with the metadata
-- of each channel and their attachments. Only rows marked client-visible reach client users.
-- A client's message notifies the workflow's HIL owner.

create table public.communications (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  task_id uuid references public.tasks (id) on delete set null,
  counterparty_id uuid references public.counterparties (id) on delete set null,
  communication_type public.communication_type not null,
  direction text not null check (direction in ('INBOUND', 'OUTBOUND', 'INTERNAL')),
  status text not null default 'SENT'
    check (status in ('DRAFT', 'QUEUED', 'SENT', 'DELIVERED', 'RECEIVED', 'READ', 'FAILED')),
  subject text,
  body text,
  from_address text,
  to_addresses text[] not null default '{}',
  is_client_visible boolean not null default false,
  sender_id uuid references public.user_profiles (id) on delete set null,
  agent_name text references public.agents (name) on update cascade,
  thread_id uuid,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint communications_internal_not_client_visible check (not (direction = 'INTERNAL' and is_client_visible))
);
comment on table public.communications is 'Messages exchanged for a workflow (email, call, message, sms). Clients see only client-visible ones.';
create index communications_workflow_id_idx on public.communications (workflow_id, created_at desc);
create index communications_task_id_idx on public.communications (task_id);
create index communications_counterparty_id_idx on public.communications (counterparty_id);
create index communications_sender_id_idx on public.communications (sender_id);
create index communications_agent_name_idx on public.communications (agent_name);
create index communications_thread_id_idx on public.communications (thread_id);
create trigger communications_touch_updated_at before update on public.communications
  for each row execute function private.touch_updated_at();

-- A client's message reaches the workflow's HIL owner: when a client user records an INBOUND
-- communication on their workflow (through our API or Supabase's REST API alike), the
-- workflow's HIL owner, if any, gets a CLIENT_MESSAGE_RECEIVED notification in the same
-- transaction. The task that handles the message (handle_client_update) is injected by n8n,
-- not here. (public.notifications is created in 20261126000800_hil_collaboration.sql; a
-- PL/pgSQL body is resolved when it runs.)
--
-- Security definer: notifications are HIL-only for inserts under RLS, and a client must not be
-- able to write notifications directly. As a trigger this function cannot be called on its
-- own; it writes exactly one notification, addressed to the owner of the workflow the new row
-- belongs to and built only from that row, so it cannot be used to forge others.
create or replace function private.notify_client_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_workflow record;
begin
  if not private.is_client() or new.direction <> 'INBOUND' then
    return null;
  end if;
  select w.hil_owner_id, w.client_id, w.title into v_workflow
    from public.workflows w where w.id = new.workflow_id;
  if v_workflow.hil_owner_id is null then
    return null;
  end if;
  insert into public.notifications (
    recipient_id, notification_type, priority, title, message, action_required, workflow_id, task_id, data
  ) values (
    v_workflow.hil_owner_id, 'CLIENT_MESSAGE_RECEIVED', 'HIGH',
    left('Client message: ' || v_workflow.title, 300),
    left(coalesce(nullif(btrim(new.subject), ''), nullif(btrim(new.body), ''), 'The client sent a '
         || new.communication_type::text || '.'), 500),
    true, new.workflow_id, new.task_id,
    jsonb_build_object(
      'communicationId', new.id,
      'communicationType', new.communication_type,
      'clientId', v_workflow.client_id,
      'senderId', new.sender_id
    )
  );
  return null;
end
$$;
revoke all on function private.notify_client_message() from public, anon;
create trigger communications_notify_client_message after insert on public.communications
  for each row execute function private.notify_client_message();

create table public.email_metadata (
  id uuid primary key default gen_random_uuid(),
  communication_id uuid not null references public.communications (id) on delete cascade,
  message_id text,
  in_reply_to text,
  references_header text[] not null default '{}',
  cc text[] not null default '{}',
  bcc text[] not null default '{}',
  headers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_metadata_communication_id_key unique (communication_id),
  constraint email_metadata_message_id_key unique (message_id)
);
comment on table public.email_metadata is 'Threading headers of an email communication.';
create index email_metadata_in_reply_to_idx on public.email_metadata (in_reply_to);
create trigger email_metadata_touch_updated_at before update on public.email_metadata
  for each row execute function private.touch_updated_at();

create table public.call_metadata (
  id uuid primary key default gen_random_uuid(),
  communication_id uuid not null references public.communications (id) on delete cascade,
  phone_number text,
  duration_seconds integer check (duration_seconds >= 0),
  recording_url text,
  transcript text,
  outcome text,
  ivr_path text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint call_metadata_communication_id_key unique (communication_id)
);
comment on table public.call_metadata is 'Duration, recording and transcript of a call (Florian, Max).';
create trigger call_metadata_touch_updated_at before update on public.call_metadata
  for each row execute function private.touch_updated_at();

create table public.message_metadata (
  id uuid primary key default gen_random_uuid(),
  communication_id uuid not null references public.communications (id) on delete cascade,
  channel text not null default 'portal' check (channel in ('portal', 'sms', 'chat')),
  external_message_id text,
  delivery_status text,
  read_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint message_metadata_communication_id_key unique (communication_id)
);
comment on table public.message_metadata is 'Channel and delivery details of a portal message or SMS.';
create trigger message_metadata_touch_updated_at before update on public.message_metadata
  for each row execute function private.touch_updated_at();
