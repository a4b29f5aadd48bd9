-- Resources: what the communications, documents and counterparties endpoints need from the
-- database beyond plain rows and the policies of 20261126001400.

-- ============================================================================================
-- A client's message reaches the workflow's HIL owner
-- ============================================================================================
-- When a client user records an INBOUND communication on their workflow (through our API or
-- Supabase's REST API alike), the workflow's HIL owner, if any, gets a CLIENT_MESSAGE_RECEIVED
-- notification in the same transaction. The task that handles the message
-- (handle_client_update) is injected by n8n, not here.
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
