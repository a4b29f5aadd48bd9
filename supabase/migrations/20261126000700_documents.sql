-- Documents: working files, attachments and versioned deliverables of a workflow, their tags,
-- and the attachments of communications (which point at documents).

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  task_id uuid references public.tasks (id) on delete set null,
  document_type public.document_type not null,
  status text not null default 'RECEIVED'
    check (status in ('PENDING', 'RECEIVED', 'PROCESSING', 'READY', 'APPROVED', 'REJECTED', 'SUPERSEDED')),
  filename text not null check (length(filename) between 1 and 500),
  storage_path text,
  content_type text,
  size_bytes bigint check (size_bytes >= 0),
  -- Versions of one deliverable share a key; each new version supersedes the previous one.
  deliverable_key text,
  version integer not null default 1 check (version > 0),
  previous_version_id uuid references public.documents (id) on delete set null,
  deliverable_data jsonb,
  is_client_visible boolean not null default false,
  uploaded_by uuid references public.user_profiles (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint documents_deliverable_needs_key check (document_type <> 'DELIVERABLE' or deliverable_key is not null)
);
comment on table public.documents is 'Files of a workflow: WORKING files, ATTACHMENTs and versioned DELIVERABLEs (with structured deliverable_data).';
create index documents_workflow_id_idx on public.documents (workflow_id, created_at desc);
create index documents_task_id_idx on public.documents (task_id);
create index documents_previous_version_id_idx on public.documents (previous_version_id);
create index documents_uploaded_by_idx on public.documents (uploaded_by);
create unique index documents_deliverable_version_key on public.documents (workflow_id, deliverable_key, version)
  where deliverable_key is not null;
create trigger documents_touch_updated_at before update on public.documents
  for each row execute function private.touch_updated_at();

create table public.document_tags (
  id uuid primary key default gen_random_uuid(),
  code text not null check (code ~ '^[a-z][a-z0-9_]*$'),
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint document_tags_code_key unique (code)
);
comment on table public.document_tags is 'Catalog of document tags (bylaws, payoff_statement, lien_report...).';
create trigger document_tags_touch_updated_at before update on public.document_tags
  for each row execute function private.touch_updated_at();

create table public.document_tag_assignments (
  id uuid primary key default gen_random_uuid(),
  document_id uuid not null references public.documents (id) on delete cascade,
  document_tag_id uuid not null references public.document_tags (id) on delete cascade,
  created_at timestamptz not null default now(),
  constraint document_tag_assignments_pair_key unique (document_id, document_tag_id)
);
comment on table public.document_tag_assignments is 'Tags applied to a document.';
create index document_tag_assignments_tag_idx on public.document_tag_assignments (document_tag_id);

create table public.communication_attachments (
  id uuid primary key default gen_random_uuid(),
  communication_id uuid not null references public.communications (id) on delete cascade,
  document_id uuid references public.documents (id) on delete set null,
  filename text not null,
  content_type text,
  size_bytes bigint check (size_bytes >= 0),
  storage_path text,
  created_at timestamptz not null default now()
);
comment on table public.communication_attachments is 'Files attached to a communication, linked to the document they became.';
create index communication_attachments_communication_id_idx on public.communication_attachments (communication_id);
create index communication_attachments_document_id_idx on public.communication_attachments (document_id);
