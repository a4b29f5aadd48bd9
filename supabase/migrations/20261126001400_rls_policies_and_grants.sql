-- Row-level security and grants: who may read and change what (SPEC section 3).
--
-- Roles come from auth.jwt() -> 'app_metadata' (server-set), read through the private.*
-- helpers, each wrapped in (select ...) so it is evaluated once per statement:
--   hil_operator  reads everything operational, acts on workflows and tasks, no admin tables
--   hil_manager   all of the above plus SLA rules, escalation, users, clients, catalogs
--   client_user   only their own client's workflows and what hangs off them, and only the
--                 client-visible communications and documents; never HIL notes, costs,
--                 audit or other clients
--   client_admin  a client_user who also manages their company's users and contacts
--   agent         (claims minted by the service) only the one workflow it works on
--   anon          nothing
-- The service path uses service_role, which bypasses RLS by design.
--
-- Own-row policies (a person's profile, preferences, notifications and notification events)
-- compare with private.person_id(), never with auth.uid() alone: it is the caller's id only
-- while their profile says they are who the token claims, active, at an active client, so a
-- person deactivated, deleted or moved keeps nothing those policies gave.

-- ============================================================================================
-- Grants. New Supabase projects no longer grant new tables to anon and authenticated, and old
-- ones grant everything: say exactly what each role gets.
-- ============================================================================================
revoke all on all tables in schema public from anon, authenticated;
revoke all on all sequences in schema public from anon, authenticated;
grant usage on schema public to anon, authenticated, service_role;

grant select, insert, update, delete on all tables in schema public to authenticated;
-- Written only by the database (triggers, security definer functions) or the service path.
revoke insert, update, delete on
  public.audit_events, public.realtime_events, public.task_timeline_events,
  public.webhook_receipts, public.n8n_dispatches, public.sla_tracking,
  public.sla_performance_metrics
  from authenticated;

grant all on all tables in schema public to service_role;
grant usage, select on all sequences in schema public to service_role;

-- Every function in public is callable only where granted explicitly.
revoke execute on all functions in schema public from public, anon;
grant execute on all functions in schema public to authenticated, service_role;

-- ============================================================================================
-- RLS on every table in public (the policies below open what each role may do)
-- ============================================================================================
do $$
declare
  v_table record;
begin
  for v_table in select tablename from pg_tables where schemaname = 'public' loop
    execute format('alter table public.%I enable row level security', v_table.tablename);
  end loop;
end
$$;

-- ============================================================================================
-- Tenants and people
-- ============================================================================================
create policy "HIL people can read every client" on public.clients
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own client" on public.clients
  for select to authenticated using (id = (select private.client_id()));
create policy "Managers can create clients" on public.clients
  for insert to authenticated with check ((select private.is_manager()));
create policy "Managers can update clients" on public.clients
  for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()));
create policy "Managers can delete clients" on public.clients
  for delete to authenticated using ((select private.is_manager()));

create policy "People can read their own profile" on public.user_profiles
  for select to authenticated using (id = (select private.person_id()));
create policy "HIL people can read every profile" on public.user_profiles
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their colleagues' profiles" on public.user_profiles
  for select to authenticated using (client_id = (select private.client_id()));
create policy "Managers can create profiles" on public.user_profiles
  for insert to authenticated with check ((select private.is_manager()));
create policy "Client admins can create their company's profiles" on public.user_profiles
  for insert to authenticated
  with check ((select private.is_client_admin()) and client_id = (select private.client_id()));
create policy "Managers can update profiles" on public.user_profiles
  for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()));
create policy "Client admins can update their company's profiles" on public.user_profiles
  for update to authenticated
  using ((select private.is_client_admin()) and client_id = (select private.client_id()))
  with check ((select private.is_client_admin()) and client_id = (select private.client_id()));
create policy "Managers can delete profiles" on public.user_profiles
  for delete to authenticated using ((select private.is_manager()));
create policy "Client admins can delete their company's profiles" on public.user_profiles
  for delete to authenticated
  using ((select private.is_client_admin()) and client_id = (select private.client_id()) and id <> (select auth.uid()));

create policy "People can read their own preferences" on public.user_preferences
  for select to authenticated using (user_id = (select private.person_id()));
create policy "People can create their own preferences" on public.user_preferences
  for insert to authenticated with check (user_id = (select private.person_id()));
create policy "People can update their own preferences" on public.user_preferences
  for update to authenticated
  using (user_id = (select private.person_id())) with check (user_id = (select private.person_id()));
create policy "People can delete their own preferences" on public.user_preferences
  for delete to authenticated using (user_id = (select private.person_id()));

-- ============================================================================================
-- Catalogs every signed-in person may read and only managers change: templates, counterparty
-- rules, contact types and labels, document tags, the business calendar
-- ============================================================================================
do $$
declare
  v_table text;
begin
  foreach v_table in array array[
    'workflow_templates', 'task_templates', 'allowed_counterparty_types', 'contact_types',
    'contact_labels', 'document_tags', 'business_hours_config', 'business_holidays'
  ] loop
    execute format($f$create policy "Signed-in people can read %1$s" on public.%1$I
      for select to authenticated
      using ((select private.is_hil()) or (select private.is_client()) or (select private.is_agent()))$f$, v_table);
    execute format($f$create policy "Managers can create %1$s" on public.%1$I
      for insert to authenticated with check ((select private.is_manager()))$f$, v_table);
    execute format($f$create policy "Managers can update %1$s" on public.%1$I
      for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()))$f$, v_table);
    execute format($f$create policy "Managers can delete %1$s" on public.%1$I
      for delete to authenticated using ((select private.is_manager()))$f$, v_table);
  end loop;
end
$$;

-- HIL-only configuration: managers change it, operators read it.
do $$
declare
  v_table text;
begin
  foreach v_table in array array['sla_definitions', 'sla_escalation_rules', 'agents'] loop
    execute format($f$create policy "HIL people can read %1$s" on public.%1$I
      for select to authenticated using ((select private.is_hil()))$f$, v_table);
    execute format($f$create policy "Managers can create %1$s" on public.%1$I
      for insert to authenticated with check ((select private.is_manager()))$f$, v_table);
    execute format($f$create policy "Managers can update %1$s" on public.%1$I
      for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()))$f$, v_table);
    execute format($f$create policy "Managers can delete %1$s" on public.%1$I
      for delete to authenticated using ((select private.is_manager()))$f$, v_table);
  end loop;
end
$$;
create policy "Agents can read their own catalog entry" on public.agents
  for select to authenticated using (name = (select private.agent_name()));

-- ============================================================================================
-- Workflows
-- ============================================================================================
create policy "HIL people can read every workflow" on public.workflows
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own client's workflows" on public.workflows
  for select to authenticated using (client_id = (select private.client_id()));
create policy "Agents can read the workflow they work on" on public.workflows
  for select to authenticated using (id = (select private.agent_workflow_id()));
create policy "HIL people can create workflows" on public.workflows
  for insert to authenticated with check ((select private.is_hil()));
create policy "Client users can create their own client's workflows" on public.workflows
  for insert to authenticated with check (client_id = (select private.client_id()));
create policy "HIL people can update workflows" on public.workflows
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Client users can edit their own pending workflows" on public.workflows
  for update to authenticated
  using (client_id = (select private.client_id()) and status = 'PENDING')
  with check (client_id = (select private.client_id()) and status = 'PENDING');

-- What a client may write on a workflow: its description, not its staffing or state. A client's
-- new workflow has nobody assigned; a pending one keeps who HIL assigned.
create or replace function private.guard_client_workflow_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not private.is_client() then
    return new;
  end if;
  if tg_op = 'INSERT' then
    if new.hil_owner_id is not null or new.manager_id is not null then
      raise exception 'client users may not choose who works on a workflow (hilId, managerId)'
        using errcode = '42501';
    end if;
  elsif new.hil_owner_id is distinct from old.hil_owner_id
    or new.manager_id is distinct from old.manager_id
    or new.n8n_execution_id is distinct from old.n8n_execution_id
    or new.n8n_status is distinct from old.n8n_status
    or new.sla_status is distinct from old.sla_status
    or new.created_by is distinct from old.created_by then
    raise exception 'client users may change only the title, payload, priority, due date and metadata'
      using errcode = '42501';
  end if;
  return new;
end
$$;
create trigger workflows_guard_client_write before insert or update on public.workflows
  for each row execute function private.guard_client_workflow_write();

-- The metadata keys the server writes itself, in workflows.metadata and tasks.metadata: the one
-- list (docs/security.md#finished-is-final-and-what-the-server-owns). The execution watch's
-- lostExecutions and lossesInARow (public.recover_lost_execution: a callback of an execution
-- listed as lost is refused), n8n's failure (workflow.failed), a cancel's cancelReason
-- (workflow_action), an escalation (task_action, n8n's escalation), the waitingOn of a wait
-- (transition_task) and an answer kept for a wait not announced yet, pendingInbound
-- (receive_inbound, recover_lost_execution). A key added to what the server writes is added here.
create or replace function private.server_owned_metadata_keys() returns text[]
language plpgsql immutable
set search_path = ''
as $$
begin
  return array['lostExecutions', 'lossesInARow', 'failure', 'cancelReason', 'escalation', 'waitingOn',
               'pendingInbound'];
end
$$;

-- A caller's own write (private.writes_as_caller: a person or an agent, through the API or
-- Supabase's REST API; never the service or the database's functions, which write these keys)
-- neither sets nor changes a server-owned key: 22023 naming it (the API answers 422
-- validation_error with details.json.metadata.<key>). Sending back the value the server wrote
-- changes nothing and passes; a key the caller's new metadata leaves out is kept as it was.
create or replace function private.guard_server_owned_metadata() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_keys text[] := private.server_owned_metadata_keys();
  v_refused text[];
begin
  if not new.metadata ?| v_keys and (tg_op = 'INSERT' or not old.metadata ?| v_keys) then
    return new;  -- no server-owned key on either side: nothing to check
  end if;
  if not private.writes_as_caller() then
    return new;
  end if;
  select array_agg(k order by k) into v_refused
    from unnest(v_keys) k
   where new.metadata ? k
     and (tg_op = 'INSERT' or (new.metadata -> k) is distinct from (old.metadata -> k));
  if v_refused is not null then
    raise exception 'metadata.% is written by the server only', array_to_string(v_refused, ', metadata.')
      using errcode = '22023', column = 'metadata', constraint = 'server_owned_metadata',
            detail = array_to_string(v_refused, ',');
  end if;
  if tg_op = 'UPDATE' then
    new.metadata := new.metadata || coalesce((select jsonb_object_agg(k, old.metadata -> k)
                                                from unnest(v_keys) k where old.metadata ? k), '{}'::jsonb);
  end if;
  return new;
end
$$;
create trigger workflows_guard_server_owned_metadata before insert or update of metadata on public.workflows
  for each row execute function private.guard_server_owned_metadata();
create trigger tasks_guard_server_owned_metadata before insert or update of metadata on public.tasks
  for each row execute function private.guard_server_owned_metadata();

create policy "HIL people can read every dependency" on public.workflow_dependencies
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own workflows' dependencies" on public.workflow_dependencies
  for select to authenticated
  using (workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "HIL people can create dependencies" on public.workflow_dependencies
  for insert to authenticated with check ((select private.is_hil()));
create policy "HIL people can update dependencies" on public.workflow_dependencies
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "HIL people can delete dependencies" on public.workflow_dependencies
  for delete to authenticated using ((select private.is_hil()));

-- ============================================================================================
-- Tasks, attempts, timeline
-- ============================================================================================
create policy "HIL people can read every task" on public.tasks
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own client's tasks" on public.tasks
  for select to authenticated using (client_id = (select private.client_id()));
create policy "Agents can read the tasks of their workflow" on public.tasks
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can inject tasks" on public.tasks
  for insert to authenticated with check ((select private.is_hil()));
create policy "HIL people can update tasks" on public.tasks
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Agents can update the tasks of their workflow" on public.tasks
  for update to authenticated
  using (workflow_id = (select private.agent_workflow_id()))
  with check (workflow_id = (select private.agent_workflow_id()));

create policy "HIL people can read every attempt" on public.task_executions
  for select to authenticated using ((select private.is_hil()));
create policy "Agents can read the attempts of their workflow" on public.task_executions
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "Agents can record attempts in their workflow" on public.task_executions
  for insert to authenticated with check (workflow_id = (select private.agent_workflow_id()));
create policy "Agents can update attempts in their workflow" on public.task_executions
  for update to authenticated
  using (workflow_id = (select private.agent_workflow_id()))
  with check (workflow_id = (select private.agent_workflow_id()));

create policy "HIL people can read every task timeline" on public.task_timeline_events
  for select to authenticated using ((select private.is_hil()));
create policy "Agents can read the timeline of their workflow" on public.task_timeline_events
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));

-- ============================================================================================
-- Orchestration and agent results (internal)
-- ============================================================================================
create policy "HIL people can read the n8n outbox" on public.n8n_dispatches
  for select to authenticated using ((select private.is_hil()));
create policy "HIL people can read webhook receipts" on public.webhook_receipts
  for select to authenticated using ((select private.is_hil()));

create policy "HIL people can read every agent result" on public.agent_results
  for select to authenticated using ((select private.is_hil()));
create policy "Agents can read the results of their workflow" on public.agent_results
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "Agents can report results in their workflow" on public.agent_results
  for insert to authenticated
  with check (workflow_id = (select private.agent_workflow_id()) and agent_name = (select private.agent_name()));

-- ============================================================================================
-- Counterparties and contacts
-- ============================================================================================
create policy "HIL people can read every counterparty" on public.counterparties
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their workflows' counterparties" on public.counterparties
  for select to authenticated
  using (id in (select wc.counterparty_id from public.workflow_counterparties wc
                 where wc.workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id()))));
create policy "Agents can read their workflow's counterparties" on public.counterparties
  for select to authenticated
  using (id in (select wc.counterparty_id from public.workflow_counterparties wc
                 where wc.workflow_id = (select private.agent_workflow_id())));
create policy "HIL people can create counterparties" on public.counterparties
  for insert to authenticated with check ((select private.is_hil()));
create policy "HIL people can update counterparties" on public.counterparties
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Managers can delete counterparties" on public.counterparties
  for delete to authenticated using ((select private.is_manager()));

create policy "HIL people can read every workflow counterparty" on public.workflow_counterparties
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their workflows' counterparty links" on public.workflow_counterparties
  for select to authenticated
  using (workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can read their workflow's counterparty links" on public.workflow_counterparties
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can link counterparties" on public.workflow_counterparties
  for insert to authenticated with check ((select private.is_hil()));
create policy "HIL people can update counterparty links" on public.workflow_counterparties
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Agents can update their workflow's counterparty links" on public.workflow_counterparties
  for update to authenticated
  using (workflow_id = (select private.agent_workflow_id()))
  with check (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can unlink counterparties" on public.workflow_counterparties
  for delete to authenticated using ((select private.is_hil()));

create policy "HIL people can read every counterparty contact" on public.counterparty_contacts
  for select to authenticated using ((select private.is_hil()));
create policy "Agents can read their workflow's counterparty contacts" on public.counterparty_contacts
  for select to authenticated
  using (counterparty_id in (select wc.counterparty_id from public.workflow_counterparties wc
                              where wc.workflow_id = (select private.agent_workflow_id())));
create policy "HIL people can create counterparty contacts" on public.counterparty_contacts
  for insert to authenticated with check ((select private.is_hil()));
create policy "HIL people can update counterparty contacts" on public.counterparty_contacts
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "HIL people can delete counterparty contacts" on public.counterparty_contacts
  for delete to authenticated using ((select private.is_hil()));

create policy "HIL people can read every workflow contact" on public.workflow_contacts
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their workflows' contacts" on public.workflow_contacts
  for select to authenticated
  using (workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can read their workflow's contacts" on public.workflow_contacts
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can create workflow contacts" on public.workflow_contacts
  for insert to authenticated with check ((select private.is_hil()));
create policy "Client admins can create their workflows' contacts" on public.workflow_contacts
  for insert to authenticated
  with check ((select private.is_client_admin())
              and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "HIL people can update workflow contacts" on public.workflow_contacts
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Client admins can update their workflows' contacts" on public.workflow_contacts
  for update to authenticated
  using ((select private.is_client_admin())
         and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())))
  with check ((select private.is_client_admin())
              and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "HIL people can delete workflow contacts" on public.workflow_contacts
  for delete to authenticated using ((select private.is_hil()));
create policy "Client admins can delete their workflows' contacts" on public.workflow_contacts
  for delete to authenticated
  using ((select private.is_client_admin())
         and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));

-- Labels on a contact follow the contact's own visibility (its policies apply in the subquery).
create policy "People can read labels of contacts they can see" on public.workflow_contact_labels
  for select to authenticated using (workflow_contact_id in (select c.id from public.workflow_contacts c));
create policy "HIL people and client admins can label contacts they can see" on public.workflow_contact_labels
  for insert to authenticated
  with check (((select private.is_hil()) or (select private.is_client_admin()))
              and workflow_contact_id in (select c.id from public.workflow_contacts c));
create policy "HIL people and client admins can unlabel contacts they can see" on public.workflow_contact_labels
  for delete to authenticated
  using (((select private.is_hil()) or (select private.is_client_admin()))
         and workflow_contact_id in (select c.id from public.workflow_contacts c));

-- ============================================================================================
-- Communications
-- ============================================================================================
create policy "HIL people can read every communication" on public.communications
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read client-visible communications" on public.communications
  for select to authenticated
  using (is_client_visible
         and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can read their workflow's communications" on public.communications
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can record communications" on public.communications
  for insert to authenticated with check ((select private.is_hil()));
create policy "Client users can send messages on their own workflows" on public.communications
  for insert to authenticated
  with check (is_client_visible and direction = 'INBOUND'
              and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can record their workflow's communications" on public.communications
  for insert to authenticated with check (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can update communications" on public.communications
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Agents can update their workflow's communications" on public.communications
  for update to authenticated
  using (workflow_id = (select private.agent_workflow_id()))
  with check (workflow_id = (select private.agent_workflow_id()));

-- Channel details and attachments follow their communication's visibility.
do $$
declare
  v_table text;
begin
  foreach v_table in array array['email_metadata', 'call_metadata', 'message_metadata', 'communication_attachments'] loop
    execute format($f$create policy "Readers of the parent can read %1$s" on public.%1$I
      for select to authenticated using (communication_id in (select c.id from public.communications c))$f$, v_table);
    execute format($f$create policy "HIL people and agents can add %1$s" on public.%1$I
      for insert to authenticated
      with check (((select private.is_hil()) or (select private.is_agent()))
                  and communication_id in (select c.id from public.communications c))$f$, v_table);
    execute format($f$create policy "HIL people can delete %1$s" on public.%1$I
      for delete to authenticated using ((select private.is_hil()))$f$, v_table);
  end loop;
  foreach v_table in array array['email_metadata', 'call_metadata', 'message_metadata'] loop
    execute format($f$create policy "HIL people and agents can update %1$s" on public.%1$I
      for update to authenticated
      using (((select private.is_hil()) or (select private.is_agent()))
             and communication_id in (select c.id from public.communications c))
      with check (((select private.is_hil()) or (select private.is_agent()))
                  and communication_id in (select c.id from public.communications c))$f$, v_table);
  end loop;
end
$$;

-- ============================================================================================
-- Documents
-- ============================================================================================
create policy "HIL people can read every document" on public.documents
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read client-visible documents" on public.documents
  for select to authenticated
  using (is_client_visible
         and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can read their workflow's documents" on public.documents
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can register documents" on public.documents
  for insert to authenticated with check ((select private.is_hil()));
create policy "Client users can upload attachments to their own workflows" on public.documents
  for insert to authenticated
  with check (document_type = 'ATTACHMENT' and is_client_visible
              and workflow_id in (select w.id from public.workflows w where w.client_id = (select private.client_id())));
create policy "Agents can register their workflow's documents" on public.documents
  for insert to authenticated with check (workflow_id = (select private.agent_workflow_id()));
create policy "HIL people can update documents" on public.documents
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));
create policy "Agents can update their workflow's documents" on public.documents
  for update to authenticated
  using (workflow_id = (select private.agent_workflow_id()))
  with check (workflow_id = (select private.agent_workflow_id()));
create policy "Managers can delete documents" on public.documents
  for delete to authenticated using ((select private.is_manager()));

create policy "People can read tags of documents they can see" on public.document_tag_assignments
  for select to authenticated using (document_id in (select d.id from public.documents d));
create policy "HIL people and agents can tag documents they can see" on public.document_tag_assignments
  for insert to authenticated
  with check (((select private.is_hil()) or (select private.is_agent()))
              and document_id in (select d.id from public.documents d));
create policy "HIL people can untag documents" on public.document_tag_assignments
  for delete to authenticated using ((select private.is_hil()));

-- ============================================================================================
-- HIL collaboration (never visible to clients or agents)
-- ============================================================================================
create policy "HIL people can read every note" on public.hil_notes
  for select to authenticated using ((select private.is_hil()));
create policy "HIL people can write notes as themselves" on public.hil_notes
  for insert to authenticated with check ((select private.is_hil()) and author_id = (select auth.uid()));
create policy "Authors and managers can edit notes" on public.hil_notes
  for update to authenticated
  using ((select private.is_hil()) and (author_id = (select auth.uid()) or (select private.is_manager())))
  with check ((select private.is_hil()));
create policy "Authors and managers can delete notes" on public.hil_notes
  for delete to authenticated
  using ((select private.is_hil()) and (author_id = (select auth.uid()) or (select private.is_manager())));

do $$
declare
  v_table text;
begin
  foreach v_table in array array['hil_note_tags', 'hil_note_attachments'] loop
    execute format($f$create policy "HIL people can read %1$s" on public.%1$I
      for select to authenticated using ((select private.is_hil()))$f$, v_table);
    execute format($f$create policy "HIL people can add %1$s" on public.%1$I
      for insert to authenticated with check ((select private.is_hil()))$f$, v_table);
    execute format($f$create policy "HIL people can remove %1$s" on public.%1$I
      for delete to authenticated using ((select private.is_hil()))$f$, v_table);
  end loop;
end
$$;

create policy "People can read their own notifications" on public.notifications
  for select to authenticated using (recipient_id = (select private.person_id()));
create policy "HIL people can notify anyone" on public.notifications
  for insert to authenticated with check ((select private.is_hil()));
create policy "People can mark their own notifications read" on public.notifications
  for update to authenticated
  using (recipient_id = (select private.person_id())) with check (recipient_id = (select private.person_id()));
create policy "People can delete their own notifications" on public.notifications
  for delete to authenticated using (recipient_id = (select private.person_id()));

-- ============================================================================================
-- SLA
-- ============================================================================================
create policy "HIL people can read every SLA clock" on public.sla_tracking
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own client's SLA clocks" on public.sla_tracking
  for select to authenticated using (client_id = (select private.client_id()));

create policy "HIL people can read SLA alerts" on public.sla_alerts
  for select to authenticated using ((select private.is_hil()));
create policy "HIL people can acknowledge SLA alerts" on public.sla_alerts
  for update to authenticated using ((select private.is_hil())) with check ((select private.is_hil()));

create policy "HIL people can read SLA performance" on public.sla_performance_metrics
  for select to authenticated using ((select private.is_hil()));

-- ============================================================================================
-- Finance: costs are internal; clients see their issued invoices
-- ============================================================================================
create policy "HIL people can read costs" on public.cost_items
  for select to authenticated using ((select private.is_hil()));
create policy "HIL people can record costs" on public.cost_items
  for insert to authenticated with check ((select private.is_hil()));
create policy "Agents can record their workflow's costs" on public.cost_items
  for insert to authenticated with check (workflow_id = (select private.agent_workflow_id()));
create policy "Managers can correct costs" on public.cost_items
  for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()));
create policy "Managers can delete costs" on public.cost_items
  for delete to authenticated using ((select private.is_manager()));

create policy "HIL people can read every invoice" on public.invoices
  for select to authenticated using ((select private.is_hil()));
create policy "Client users can read their own issued invoices" on public.invoices
  for select to authenticated using (client_id = (select private.client_id()) and status <> 'DRAFT');
create policy "Agents can read their workflow's invoices" on public.invoices
  for select to authenticated using (workflow_id = (select private.agent_workflow_id()));
create policy "Managers can create invoices" on public.invoices
  for insert to authenticated with check ((select private.is_manager()));
create policy "Agents can draft their workflow's invoice" on public.invoices
  for insert to authenticated
  with check (workflow_id = (select private.agent_workflow_id()) and status = 'DRAFT'
              and client_id = (select w.client_id from public.workflows w where w.id = (select private.agent_workflow_id())));
create policy "Managers can update invoices" on public.invoices
  for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()));
create policy "Managers can delete invoices" on public.invoices
  for delete to authenticated using ((select private.is_manager()));

create policy "People can read lines of invoices they can see" on public.invoice_items
  for select to authenticated using (invoice_id in (select i.id from public.invoices i));
create policy "Managers and agents can add lines to invoices they can see" on public.invoice_items
  for insert to authenticated
  with check (((select private.is_manager()) or (select private.is_agent()))
              and invoice_id in (select i.id from public.invoices i));
create policy "Managers can update invoice lines" on public.invoice_items
  for update to authenticated using ((select private.is_manager())) with check ((select private.is_manager()));
create policy "Managers can delete invoice lines" on public.invoice_items
  for delete to authenticated using ((select private.is_manager()));

-- ============================================================================================
-- Audit and events
-- ============================================================================================
create policy "HIL people can read the audit trail" on public.audit_events
  for select to authenticated using ((select private.is_hil()));

create policy "People can read notification events addressed to them" on public.realtime_events
  for select to authenticated
  using (event_type = 'hil_notification' and recipient_id = (select private.person_id()));
create policy "HIL people can read every workflow and task event" on public.realtime_events
  for select to authenticated
  using (event_type <> 'hil_notification' and (select private.is_hil()));
create policy "Client users can read their client's workflow and task events" on public.realtime_events
  for select to authenticated
  using (event_type <> 'hil_notification' and client_id = (select private.client_id()));
create policy "Agents can read their workflow's events" on public.realtime_events
  for select to authenticated
  using (event_type <> 'hil_notification' and workflow_id = (select private.agent_workflow_id()));
