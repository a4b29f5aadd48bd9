-- Orchestration: the outbox of n8n triggers, processed webhook event ids (idempotency), and
-- dependencies between workflows.

-- ============================================================================================
-- n8n dispatch outbox: written in the same transaction as the change that needs n8n, then
-- delivered by the dispatcher (for update skip locked, retries with backoff)
-- ============================================================================================
create table public.n8n_dispatches (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  kind text not null check (kind in ('TRIGGER', 'CANCEL', 'RESUME')),
  status text not null default 'PENDING'
    check (status in ('PENDING', 'DELIVERING', 'DELIVERED', 'FAILED', 'DEAD')),
  correlation_id uuid not null default gen_random_uuid(),
  payload jsonb not null default '{}'::jsonb,
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 8 check (max_attempts > 0),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  response jsonb,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint n8n_dispatches_correlation_id_key unique (correlation_id)
);
comment on table public.n8n_dispatches is 'Outbox of calls to n8n (start, cancel, resume), delivered with retries so nothing is lost while n8n is down.';
create index n8n_dispatches_workflow_id_idx on public.n8n_dispatches (workflow_id);
create index n8n_dispatches_due_idx on public.n8n_dispatches (next_attempt_at)
  where status in ('PENDING', 'FAILED');
-- At most one undelivered trigger per workflow.
create unique index n8n_dispatches_one_open_trigger on public.n8n_dispatches (workflow_id)
  where kind = 'TRIGGER' and status in ('PENDING', 'DELIVERING', 'FAILED');
create trigger n8n_dispatches_touch_updated_at before update on public.n8n_dispatches
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- Webhook receipts: each event id is applied once; replays return the stored response
-- ============================================================================================
create table public.webhook_receipts (
  id uuid primary key default gen_random_uuid(),
  source text not null check (source in ('n8n', 'n8n_error', 'inbound')),
  event_id text not null check (length(event_id) between 1 and 200),
  event_type text not null,
  workflow_id uuid references public.workflows (id) on delete cascade,
  status_code integer not null check (status_code between 100 and 599),
  response jsonb not null default '{}'::jsonb,
  -- Events refused because they contradict the task's state, kept for operators.
  rejected_reason text,
  received_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  -- Keyed by workflow too: with (source, event id) alone, one workflow's key could claim an id
  -- another workflow would use, whose genuine event was then answered as a replay. workflow_id
  -- is null for an event naming no workflow that exists; those share one namespace (nulls not
  -- distinct), which names nothing anybody could be affected through.
  constraint webhook_receipts_event_key unique nulls not distinct (source, workflow_id, event_id)
);
comment on table public.webhook_receipts is 'Processed webhook event ids with their first response (exactly-once application of callbacks).';
create index webhook_receipts_workflow_id_idx on public.webhook_receipts (workflow_id);
create index webhook_receipts_rejected_idx on public.webhook_receipts (received_at)
  where rejected_reason is not null;

-- ============================================================================================
-- Cross-workflow dependencies
-- ============================================================================================
create table public.workflow_dependencies (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  depends_on_workflow_id uuid not null references public.workflows (id) on delete cascade,
  dependency_type text not null default 'BLOCKS' check (dependency_type in ('BLOCKS', 'INFORMS')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_dependencies_pair_key unique (workflow_id, depends_on_workflow_id),
  constraint workflow_dependencies_not_self check (workflow_id <> depends_on_workflow_id)
);
comment on table public.workflow_dependencies is 'A workflow that waits on (or is informed by) another workflow, e.g. a payoff after the lien search of the same closing.';
create index workflow_dependencies_depends_on_idx on public.workflow_dependencies (depends_on_workflow_id);
create trigger workflow_dependencies_touch_updated_at before update on public.workflow_dependencies
  for each row execute function private.touch_updated_at();
