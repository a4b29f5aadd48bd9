-- Reference data every environment needs: the ten agents, the three task plans, SLA
-- definitions and escalation rules, the business calendar, and the small catalogs.
-- Idempotent: running it again changes nothing (natural keys, on conflict).
-- Demo tenants and people live in supabase/demo.sql, never here.

-- ============================================================================================
-- Agents
-- ============================================================================================
insert into public.agents (name, display_name, specialty, description, endpoint_path, capabilities, timeout_ms) values
  ('nina', 'Nina', 'contact_research', 'Finds municipalities, HOA and lender contacts.', '/agents/nina',
   array['research_municipality', 'research_hoa_contact', 'identify_lender_contact'], 60000),
  ('mia', 'Mia', 'email', 'Sends and reads email: requests to counterparties, client notices.', '/agents/mia',
   array['send_email_request', 'send_payoff_request', 'notify_client'], 30000),
  ('florian', 'Florian', 'phone_calls', 'Places phone calls to counterparties.', '/agents/florian',
   array['make_phone_call', 'send_payoff_request'], 120000),
  ('rex', 'Rex', 'web_portals', 'Searches municipal and county web portals.', '/agents/rex',
   array['portal_access'], 120000),
  ('iris', 'Iris', 'document_extraction', 'Extracts structured data from documents.', '/agents/iris',
   array['process_documents', 'extract_payoff_data'], 90000),
  ('ria', 'Ria', 'client_communication', 'Keeps the CRM and the client conversation up to date.', '/agents/ria',
   array['update_crm', 'update_crm_record', 'handle_client_update'], 30000),
  ('kosha', 'Kosha', 'invoicing', 'Prices the work and drafts invoices.', '/agents/kosha',
   array['generate_invoice'], 30000),
  ('cassy', 'Cassy', 'quality_validation', 'Checks results before they reach the client.', '/agents/cassy',
   array['quality_validation'], 60000),
  ('max', 'Max', 'ivr', 'Navigates lender phone menus (IVR).', '/agents/max',
   array['send_payoff_request'], 120000),
  ('corey', 'Corey', 'hoa_analysis', 'Reads HOA documents: dues, assessments, restrictions.', '/agents/corey',
   array['analyze_hoa_docs'], 120000)
on conflict (name) do update set
  display_name = excluded.display_name, specialty = excluded.specialty, description = excluded.description,
  endpoint_path = excluded.endpoint_path, capabilities = excluded.capabilities, timeout_ms = excluded.timeout_ms;

-- ============================================================================================
-- Task plans (SPEC section 4). SLA minutes are business minutes.
-- ============================================================================================
insert into public.workflow_templates (workflow_type, name, description, target_business_minutes, required_inputs) values
  ('MUNI_LIEN_SEARCH', 'Municipal lien search',
   'Searches municipal, tax and utility liens on a property through the county''s portals.', 240,
   array['address', 'county', 'parcelNumber', 'buyer', 'closingDate']),
  ('HOA_ACQUISITION', 'HOA document acquisition',
   'Obtains bylaws, financials, minutes and budget from the property''s HOA.', 1440,
   array['address', 'hoaName', 'documentsRequested', 'buyer', 'closingDate']),
  ('PAYOFF_REQUEST', 'Mortgage payoff request',
   'Obtains a payoff statement from the borrower''s lender.', 960,
   array['address', 'borrowerName', 'lenderName', 'loanNumber', 'payoffDate'])
on conflict (workflow_type) do update set
  name = excluded.name, description = excluded.description,
  target_business_minutes = excluded.target_business_minutes, required_inputs = excluded.required_inputs;

with plan (workflow_type, sequence, task_key, title, executor_type, agent_name, depends_on, sla_minutes, branch_group, priority) as (
  values
    ('MUNI_LIEN_SEARCH', 1, 'research_municipality', 'Research municipality', 'AI', 'nina', '{}'::text[], 30, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 2, 'portal_access', 'Search municipal portals', 'AI', 'rex', '{research_municipality}', 60, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 3, 'process_documents', 'Process lien documents', 'AI', 'iris', '{portal_access}', 45, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 4, 'quality_validation', 'Validate lien report', 'AI', 'cassy', '{process_documents}', 30, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 5, 'generate_invoice', 'Generate invoice', 'AI', 'kosha', '{quality_validation}', 15, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 6, 'update_crm', 'Update CRM', 'AI', 'ria', '{generate_invoice}', 15, null, 'NORMAL'),
    ('MUNI_LIEN_SEARCH', 7, 'notify_client', 'Notify client', 'AI', 'mia', '{update_crm}', 15, null, 'NORMAL'),

    ('HOA_ACQUISITION', 1, 'research_hoa_contact', 'Find HOA contact', 'AI', 'nina', '{}', 45, null, 'NORMAL'),
    ('HOA_ACQUISITION', 2, 'send_email_request', 'Email document request to HOA', 'AI', 'mia', '{research_hoa_contact}', 30, 'hoa_request', 'NORMAL'),
    ('HOA_ACQUISITION', 2, 'make_phone_call', 'Call HOA for documents', 'AI', 'florian', '{research_hoa_contact}', 60, 'hoa_request', 'NORMAL'),
    ('HOA_ACQUISITION', 3, 'await_documents', 'Wait for HOA documents', 'AI', null, '{send_email_request,make_phone_call}', 3360, null, 'NORMAL'),
    ('HOA_ACQUISITION', 4, 'analyze_hoa_docs', 'Analyze HOA documents', 'AI', 'corey', '{await_documents}', 90, null, 'NORMAL'),
    ('HOA_ACQUISITION', 5, 'quality_validation', 'Validate HOA findings', 'AI', 'cassy', '{analyze_hoa_docs}', 45, null, 'NORMAL'),
    ('HOA_ACQUISITION', 6, 'generate_invoice', 'Generate invoice', 'AI', 'kosha', '{quality_validation}', 15, null, 'NORMAL'),
    ('HOA_ACQUISITION', 7, 'update_crm', 'Update CRM', 'AI', 'ria', '{generate_invoice}', 15, null, 'NORMAL'),
    ('HOA_ACQUISITION', 8, 'notify_client', 'Notify client', 'AI', 'mia', '{update_crm}', 15, null, 'NORMAL'),

    ('PAYOFF_REQUEST', 1, 'identify_lender_contact', 'Find lender contact', 'AI', 'nina', '{}', 240, null, 'NORMAL'),
    -- The agent (Max, Florian or Mia) is chosen when n8n routes the request.
    ('PAYOFF_REQUEST', 2, 'send_payoff_request', 'Send payoff request', 'AI', null, '{identify_lender_contact}', 240, null, 'NORMAL'),
    ('PAYOFF_REQUEST', 3, 'await_statement', 'Wait for payoff statement', 'AI', null, '{send_payoff_request}', 960, null, 'NORMAL'),
    ('PAYOFF_REQUEST', 4, 'extract_payoff_data', 'Extract payoff data', 'AI', 'iris', '{await_statement}', 120, null, 'NORMAL'),
    ('PAYOFF_REQUEST', 5, 'generate_invoice', 'Generate invoice', 'AI', 'kosha', '{extract_payoff_data}', 60, null, 'NORMAL'),
    ('PAYOFF_REQUEST', 6, 'update_crm_record', 'Update CRM record', 'AI', 'ria', '{generate_invoice}', 60, null, 'NORMAL'),
    ('PAYOFF_REQUEST', 7, 'notify_client', 'Notify client', 'AI', 'mia', '{update_crm_record}', 60, null, 'NORMAL')
)
insert into public.task_templates (
  workflow_template_id, task_key, task_type, title, sequence, executor_type, agent_name, depends_on,
  sla_minutes, branch_group, priority
)
select wt.id, p.task_key, p.task_key, p.title, p.sequence, p.executor_type::public.executor_type, p.agent_name,
       p.depends_on, p.sla_minutes, p.branch_group, p.priority::public.priority_level
  from plan p
  join public.workflow_templates wt on wt.workflow_type = p.workflow_type::public.workflow_type
on conflict (workflow_template_id, task_key) do update set
  task_type = excluded.task_type, title = excluded.title, sequence = excluded.sequence,
  executor_type = excluded.executor_type, agent_name = excluded.agent_name, depends_on = excluded.depends_on,
  sla_minutes = excluded.sla_minutes, branch_group = excluded.branch_group, priority = excluded.priority;

-- ============================================================================================
-- SLA definitions (one per planned step, plus the injected client-update task) and the
-- default escalation ladder
-- ============================================================================================
insert into public.sla_definitions (workflow_type, task_type, agent_name, business_minutes)
select wt.workflow_type, tt.task_type, null, tt.sla_minutes
  from public.task_templates tt
  join public.workflow_templates wt on wt.id = tt.workflow_template_id
union all
select 'PAYOFF_REQUEST', 'handle_client_update', null, 30
union all
select 'MUNI_LIEN_SEARCH', 'portal_access', 'rex', 60
on conflict (workflow_type, task_type, agent_name) do nothing;

insert into public.sla_escalation_rules (alert_level, workflow_type, notify_target, delay_minutes, notification_priority) values
  ('ORANGE', null, 'ASSIGNEE', 0, 'HIGH'),
  ('RED', null, 'TEAM', 0, 'HIGH'),
  ('BREACHED', null, 'MANAGER', 0, 'URGENT')
on conflict (alert_level, workflow_type, notify_target) do nothing;

-- ============================================================================================
-- Business calendar: 09:00-17:00 Monday to Friday, America/New_York; US federal holidays
-- (observed dates) for 2026 and 2027
-- ============================================================================================
insert into public.business_hours_config (weekday, opens_at, closes_at, timezone)
select d, time '09:00', time '17:00', 'America/New_York' from generate_series(1, 5) d
on conflict (weekday) do nothing;

insert into public.business_holidays (holiday_date, name) values
  ('2026-01-01', 'New Year''s Day'),
  ('2026-01-19', 'Martin Luther King Jr. Day'),
  ('2026-02-16', 'Washington''s Birthday'),
  ('2026-05-25', 'Memorial Day'),
  ('2026-06-19', 'Juneteenth'),
  ('2026-07-03', 'Independence Day (observed)'),
  ('2026-09-07', 'Labor Day'),
  ('2026-10-12', 'Columbus Day'),
  ('2026-11-11', 'Veterans Day'),
  ('2026-11-26', 'Thanksgiving Day'),
  ('2026-12-25', 'Christmas Day'),
  ('2027-01-01', 'New Year''s Day'),
  ('2027-01-18', 'Martin Luther King Jr. Day'),
  ('2027-02-15', 'Washington''s Birthday'),
  ('2027-05-31', 'Memorial Day'),
  ('2027-06-18', 'Juneteenth (observed)'),
  ('2027-07-05', 'Independence Day (observed)'),
  ('2027-09-06', 'Labor Day'),
  ('2027-10-11', 'Columbus Day'),
  ('2027-11-11', 'Veterans Day'),
  ('2027-11-25', 'Thanksgiving Day'),
  ('2027-12-24', 'Christmas Day (observed)'),
  ('2027-12-31', 'New Year''s Day 2028 (observed)')
on conflict (holiday_date) do nothing;

-- ============================================================================================
-- Catalogs
-- ============================================================================================
insert into public.allowed_counterparty_types (workflow_type, counterparty_type) values
  ('HOA_ACQUISITION', 'hoa'),
  ('PAYOFF_REQUEST', 'lender'),
  ('PAYOFF_REQUEST', 'municipality'),
  ('PAYOFF_REQUEST', 'utility'),
  ('MUNI_LIEN_SEARCH', 'municipality'),
  ('MUNI_LIEN_SEARCH', 'tax_authority')
on conflict (workflow_type, counterparty_type) do nothing;

insert into public.contact_types (code, name) values
  ('buyer', 'Buyer'),
  ('seller', 'Seller'),
  ('escrow_officer', 'Escrow officer'),
  ('title_officer', 'Title officer'),
  ('listing_agent', 'Listing agent'),
  ('buyers_agent', 'Buyer''s agent'),
  ('loan_officer', 'Loan officer'),
  ('attorney', 'Attorney'),
  ('hoa_manager', 'HOA manager'),
  ('lender_representative', 'Lender representative')
on conflict (code) do nothing;

insert into public.contact_labels (code, name, color) values
  ('vip', 'VIP', '#b8860b'),
  ('decision_maker', 'Decision maker', '#1f6feb'),
  ('prefers_phone', 'Prefers phone', '#2da44e'),
  ('prefers_email', 'Prefers email', '#8250df'),
  ('do_not_contact', 'Do not contact', '#cf222e')
on conflict (code) do nothing;

insert into public.document_tags (code, name) values
  ('bylaws', 'Bylaws'),
  ('financials', 'Financials'),
  ('meeting_minutes', 'Meeting minutes'),
  ('budget', 'Budget'),
  ('payoff_statement', 'Payoff statement'),
  ('per_diem', 'Per-diem rate'),
  ('lien_report', 'Lien report'),
  ('tax_certificate', 'Tax certificate'),
  ('invoice', 'Invoice'),
  ('correspondence', 'Correspondence')
on conflict (code) do nothing;
