-- Finance: what each workflow cost us (internal), and the invoices billed to clients.

create table public.cost_items (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  task_id uuid references public.tasks (id) on delete set null,
  agent_name text references public.agents (name) on update cascade,
  category text not null check (category in ('AGENT', 'THIRD_PARTY_FEE', 'HIL_TIME', 'OTHER')),
  description text not null,
  quantity numeric(12, 3) not null default 1 check (quantity > 0),
  amount_usd numeric(12, 4) not null check (amount_usd >= 0),
  incurred_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.cost_items is 'Internal costs of a workflow (agent calls, fees, HIL time). Never shown to clients.';
create index cost_items_workflow_id_idx on public.cost_items (workflow_id);
create index cost_items_task_id_idx on public.cost_items (task_id);
create index cost_items_agent_name_idx on public.cost_items (agent_name);
create trigger cost_items_touch_updated_at before update on public.cost_items
  for each row execute function private.touch_updated_at();

create table public.invoices (
  id uuid primary key default gen_random_uuid(),
  client_id uuid not null references public.clients (id) on delete restrict,
  workflow_id uuid references public.workflows (id) on delete set null,
  invoice_number text not null check (invoice_number ~ '^[A-Z0-9-]{3,40}$'),
  status text not null default 'DRAFT' check (status in ('DRAFT', 'ISSUED', 'PAID', 'VOID')),
  currency char(3) not null default 'USD',
  subtotal_usd numeric(12, 2) not null default 0 check (subtotal_usd >= 0),
  tax_usd numeric(12, 2) not null default 0 check (tax_usd >= 0),
  total_usd numeric(12, 2) not null default 0 check (total_usd >= 0),
  issued_at timestamptz,
  due_at timestamptz,
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint invoices_number_key unique (invoice_number),
  constraint invoices_total_adds_up check (total_usd = subtotal_usd + tax_usd),
  constraint invoices_issued_when_not_draft check (status = 'DRAFT' or issued_at is not null)
);
comment on table public.invoices is 'Invoices billed to a client (Kosha). Clients see their issued invoices, never drafts.';
create index invoices_client_id_idx on public.invoices (client_id);
create index invoices_workflow_id_idx on public.invoices (workflow_id);
create trigger invoices_touch_updated_at before update on public.invoices
  for each row execute function private.touch_updated_at();

create table public.invoice_items (
  id uuid primary key default gen_random_uuid(),
  invoice_id uuid not null references public.invoices (id) on delete cascade,
  cost_item_id uuid references public.cost_items (id) on delete set null,
  description text not null,
  quantity numeric(12, 3) not null default 1 check (quantity > 0),
  unit_price_usd numeric(12, 2) not null check (unit_price_usd >= 0),
  amount_usd numeric(12, 2) not null check (amount_usd >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.invoice_items is 'Lines of an invoice.';
create index invoice_items_invoice_id_idx on public.invoice_items (invoice_id);
create index invoice_items_cost_item_id_idx on public.invoice_items (cost_item_id);
create trigger invoice_items_touch_updated_at before update on public.invoice_items
  for each row execute function private.touch_updated_at();
