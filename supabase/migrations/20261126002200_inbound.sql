-- Inbound webhooks: what outside parties send to a waiting workflow (a lender's payoff
-- statement, an HOA's documents). Stored, then forwarded to the n8n Wait node the task recorded
-- (through the outbox), or kept on the task until n8n reaches its wait. Service path only.

create or replace function public.receive_inbound(p_kind text, p_workflow_id uuid, p_data jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_workflow public.workflows;
  v_task public.tasks;
  v_expected_type public.workflow_type;
  v_task_key text;
  v_document jsonb;
  v_stored integer := 0;
  v_forwarded boolean := false;
  v_body jsonb;
begin
  if not private.is_service() then
    raise exception 'inbound deliveries are recorded by the service only' using errcode = '42501';
  end if;
  case p_kind
    when 'payoff_statement' then v_expected_type := 'PAYOFF_REQUEST'; v_task_key := 'await_statement';
    when 'hoa_documents' then v_expected_type := 'HOA_ACQUISITION'; v_task_key := 'await_documents';
    else raise exception 'unknown inbound kind %', p_kind using errcode = '22023';
  end case;
  select * into v_workflow from public.workflows where id = p_workflow_id for update;
  if not found then
    raise exception 'workflow % not found', p_workflow_id using errcode = 'P0002';
  end if;
  if v_workflow.workflow_type <> v_expected_type then
    raise exception 'a % workflow does not take a %', v_workflow.workflow_type, replace(p_kind, '_', ' ')
      using errcode = '22023';
  end if;
  -- Finished is final: a finished workflow takes no delivery (nothing is stored, 409).
  perform private.refuse_finished(v_workflow.status, 'it takes no ' || replace(p_kind, '_', ' ') || ' any more');
  select * into v_task from public.tasks where workflow_id = v_workflow.id and task_key = v_task_key for update;
  if not found or v_task.status in ('COMPLETED', 'SKIPPED', 'CANCELLED') then
    raise exception 'workflow % is no longer waiting for this (% is %)', v_workflow.id, v_task_key,
      coalesce(v_task.status::text, 'missing') using errcode = '55000';
  end if;

  for v_document in select * from jsonb_array_elements(coalesce(p_data -> 'documents', '[]'::jsonb)) loop
    insert into public.documents (workflow_id, task_id, document_type, status, filename, storage_path, content_type, size_bytes)
    values (v_workflow.id, v_task.id, 'ATTACHMENT', 'RECEIVED', v_document ->> 'filename', v_document ->> 'storagePath',
            v_document ->> 'contentType', (v_document ->> 'sizeBytes')::bigint);
    v_stored := v_stored + 1;
  end loop;
  insert into public.communications (workflow_id, task_id, communication_type, direction, status, subject, body, from_address)
  values (v_workflow.id, v_task.id, 'email', 'INBOUND', 'RECEIVED',
          initcap(replace(p_kind, '_', ' ')) || ' received',
          left(coalesce(p_data ->> 'note', ''), 10000), p_data ->> 'from');

  v_body := jsonb_build_object('kind', p_kind, 'data', p_data - 'documents', 'documents', coalesce(p_data -> 'documents', '[]'::jsonb));
  if v_task.status = 'WAITING' and v_task.resume_url is not null then
    perform public.task_action(v_task.id, 'resume', jsonb_build_object('body', v_body));
    v_forwarded := true;
  else
    -- n8n has not reached its wait yet: the callback announcing the wait picks this up.
    update public.tasks set metadata = metadata || jsonb_build_object('pendingInbound', v_body) where id = v_task.id;
  end if;
  return jsonb_build_object('received', true, 'workflowId', v_workflow.id, 'taskKey', v_task_key,
                            'documentsStored', v_stored, 'forwarded', v_forwarded);
end
$$;
revoke execute on function public.receive_inbound(text, uuid, jsonb) from public, anon, authenticated;
grant execute on function public.receive_inbound(text, uuid, jsonb) to service_role;
