-- Counterparties and contacts: the outside parties a workflow deals with (HOAs, lenders,
-- municipalities...), which types each workflow type allows, their contacts, and the people
-- around a closing (buyer, seller, escrow officer) with their notification preferences.

-- ============================================================================================
-- Counterparties (a shared catalog across clients)
-- ============================================================================================
create table public.counterparties (
  id uuid primary key default gen_random_uuid(),
  counterparty_type public.counterparty_type not null,
  name text not null check (length(btrim(name)) between 1 and 300),
  email text check (email is null or email ~ '^[^@\s]+@[^@\s]+$'),
  phone text,
  website text,
  address jsonb not null default '{}'::jsonb,
  -- How a lender takes payoff requests (routes the PAYOFF_REQUEST send step).
  has_ivr boolean not null default false,
  requires_phone boolean not null default false,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint counterparties_type_name_key unique (counterparty_type, name)
);
comment on table public.counterparties is 'Outside parties (HOAs, lenders, municipalities, utilities, tax authorities), shared across clients.';
create index counterparties_lower_name_idx on public.counterparties (lower(name) text_pattern_ops);
create trigger counterparties_touch_updated_at before update on public.counterparties
  for each row execute function private.touch_updated_at();

create table public.allowed_counterparty_types (
  id uuid primary key default gen_random_uuid(),
  workflow_type public.workflow_type not null,
  counterparty_type public.counterparty_type not null,
  created_at timestamptz not null default now(),
  constraint allowed_counterparty_types_pair_key unique (workflow_type, counterparty_type)
);
comment on table public.allowed_counterparty_types is 'Which counterparty types each workflow type may link (HOA: hoa; payoff: lender, municipality, utility; lien search: municipality, tax_authority).';

-- ============================================================================================
-- Counterparties linked to a workflow
-- ============================================================================================
create table public.workflow_counterparties (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  counterparty_id uuid not null references public.counterparties (id) on delete restrict,
  status text not null default 'PENDING' check (status in ('PENDING', 'CONTACTED', 'RESPONDED', 'COMPLETED')),
  contacted_at timestamptz,
  responded_at timestamptz,
  notes text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_counterparties_pair_key unique (workflow_id, counterparty_id)
);
comment on table public.workflow_counterparties is 'A counterparty taking part in a workflow, with how far the exchange has come.';
create index workflow_counterparties_counterparty_id_idx on public.workflow_counterparties (counterparty_id);
create trigger workflow_counterparties_touch_updated_at before update on public.workflow_counterparties
  for each row execute function private.touch_updated_at();

-- A workflow may only link the counterparty types its type allows.
create or replace function private.check_counterparty_allowed() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_workflow_type public.workflow_type;
  v_counterparty_type public.counterparty_type;
begin
  select w.workflow_type into v_workflow_type from public.workflows w where w.id = new.workflow_id;
  select c.counterparty_type into v_counterparty_type from public.counterparties c where c.id = new.counterparty_id;
  if v_workflow_type is null or v_counterparty_type is null then
    return new; -- the foreign keys report the missing row
  end if;
  if not exists (
    select 1 from public.allowed_counterparty_types a
    where a.workflow_type = v_workflow_type and a.counterparty_type = v_counterparty_type
  ) then
    raise exception 'a % workflow cannot take a % counterparty', v_workflow_type, v_counterparty_type
      using errcode = '23514', constraint = 'workflow_counterparties_type_allowed';
  end if;
  return new;
end
$$;
create trigger workflow_counterparties_check_allowed before insert or update of workflow_id, counterparty_id
  on public.workflow_counterparties
  for each row execute function private.check_counterparty_allowed();

-- ============================================================================================
-- Contacts at counterparties
-- ============================================================================================
create table public.contact_types (
  id uuid primary key default gen_random_uuid(),
  code text not null check (code ~ '^[a-z][a-z0-9_]*$'),
  name text not null,
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contact_types_code_key unique (code)
);
comment on table public.contact_types is 'Roles a person can have around a closing (buyer, seller, escrow officer, loan officer...).';
create trigger contact_types_touch_updated_at before update on public.contact_types
  for each row execute function private.touch_updated_at();

create table public.counterparty_contacts (
  id uuid primary key default gen_random_uuid(),
  counterparty_id uuid not null references public.counterparties (id) on delete cascade,
  full_name text not null,
  title text,
  email text check (email is null or email ~ '^[^@\s]+@[^@\s]+$'),
  phone text,
  is_primary boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.counterparty_contacts is 'People to reach at a counterparty; at most one primary contact each.';
create index counterparty_contacts_counterparty_id_idx on public.counterparty_contacts (counterparty_id);
create unique index counterparty_contacts_one_primary on public.counterparty_contacts (counterparty_id)
  where is_primary;
create trigger counterparty_contacts_touch_updated_at before update on public.counterparty_contacts
  for each row execute function private.touch_updated_at();

-- ============================================================================================
-- People around a workflow's closing
-- ============================================================================================
create table public.workflow_contacts (
  id uuid primary key default gen_random_uuid(),
  workflow_id uuid not null references public.workflows (id) on delete cascade,
  contact_type_id uuid not null references public.contact_types (id) on delete restrict,
  full_name text not null,
  email text check (email is null or email ~ '^[^@\s]+@[^@\s]+$'),
  phone text,
  company text,
  notify_on_status_change boolean not null default false,
  notify_on_completion boolean not null default true,
  notify_on_issue boolean not null default false,
  notification_channel text not null default 'email' check (notification_channel in ('email', 'sms', 'none')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_contacts_reachable check (
    notification_channel = 'none'
    or (notification_channel = 'email' and email is not null)
    or (notification_channel = 'sms' and phone is not null)
  )
);
comment on table public.workflow_contacts is 'Buyer, seller, escrow officer and others on a workflow, with how and when to notify them.';
create index workflow_contacts_workflow_id_idx on public.workflow_contacts (workflow_id);
create index workflow_contacts_contact_type_id_idx on public.workflow_contacts (contact_type_id);
create trigger workflow_contacts_touch_updated_at before update on public.workflow_contacts
  for each row execute function private.touch_updated_at();

create table public.contact_labels (
  id uuid primary key default gen_random_uuid(),
  code text not null check (code ~ '^[a-z][a-z0-9_]*$'),
  name text not null,
  color text check (color is null or color ~ '^#[0-9a-fA-F]{6}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contact_labels_code_key unique (code)
);
comment on table public.contact_labels is 'Labels for workflow contacts (VIP, prefers phone, do not contact...).';
create trigger contact_labels_touch_updated_at before update on public.contact_labels
  for each row execute function private.touch_updated_at();

create table public.workflow_contact_labels (
  id uuid primary key default gen_random_uuid(),
  workflow_contact_id uuid not null references public.workflow_contacts (id) on delete cascade,
  contact_label_id uuid not null references public.contact_labels (id) on delete cascade,
  created_at timestamptz not null default now(),
  constraint workflow_contact_labels_pair_key unique (workflow_contact_id, contact_label_id)
);
comment on table public.workflow_contact_labels is 'Labels applied to a workflow contact.';
create index workflow_contact_labels_contact_label_id_idx on public.workflow_contact_labels (contact_label_id);
