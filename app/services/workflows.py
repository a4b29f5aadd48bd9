"""Workflows: create, read with related collections, update, and actions."""
from __future__ import annotations

import uuid

import psycopg
from psycopg.types.json import Jsonb

from app.auth import Principal
from app.services.listing import Filters, page_from_rows, page_statement

DEFAULT_TITLES = {
    "MUNI_LIEN_SEARCH": "Municipal lien search",
    "HOA_ACQUISITION": "HOA documents",
    "PAYOFF_REQUEST": "Payoff request",
}

# The API's workflow document, built by PostgreSQL (as PostgREST does): the same fields and
# names as app.schemas.workflows.Workflow, without a Python serialization pass per row.
WORKFLOW_JSON = """jsonb_build_object(
  'id', w.id, 'type', w.workflow_type, 'status', w.status, 'clientId', w.client_id, 'title', w.title,
  'payload', w.payload, 'priority', w.priority, 'hilId', w.hil_owner_id, 'managerId', w.manager_id,
  'createdBy', w.created_by, 'dueDate', w.due_date, 'startedAt', w.started_at, 'completedAt', w.completed_at,
  'n8nExecutionId', w.n8n_execution_id, 'n8nStatus', w.n8n_status, 'slaStatus', w.sla_status,
  'progress', jsonb_build_object('totalTasks', w.total_tasks, 'completedTasks', w.completed_tasks,
    'progressPercentage', case when w.total_tasks = 0 then 0
                               else round(100.0 * w.completed_tasks / w.total_tasks)::integer end),
  'metadata', w.metadata, 'createdAt', w.created_at, 'updatedAt', w.updated_at)"""

INCLUDE_JSON = {
    "tasks": """coalesce((select jsonb_agg(jsonb_build_object(
        'id', t.id, 'taskKey', t.task_key, 'taskType', t.task_type, 'title', t.title, 'status', t.status,
        'executorType', t.executor_type, 'agentName', t.agent_name, 'assignedTo', t.assigned_to,
        'priority', t.priority, 'sequence', t.sequence, 'dependsOn', to_jsonb(t.depends_on),
        'slaDueAt', t.sla_due_at, 'slaStatus', t.sla_status, 'startedAt', t.started_at,
        'completedAt', t.completed_at) order by t.sequence, t.task_key)
      from public.tasks t where t.workflow_id = w.id), '[]'::jsonb)""",
    "communications": """coalesce((select jsonb_agg(jsonb_build_object(
        'id', c.id, 'taskId', c.task_id, 'type', c.communication_type, 'direction', c.direction,
        'status', c.status, 'subject', c.subject, 'isClientVisible', c.is_client_visible,
        'createdAt', c.created_at) order by c.created_at desc)
      from public.communications c where c.workflow_id = w.id), '[]'::jsonb)""",
    "documents": """coalesce((select jsonb_agg(jsonb_build_object(
        'id', d.id, 'taskId', d.task_id, 'documentType', d.document_type, 'status', d.status,
        'filename', d.filename, 'version', d.version, 'deliverableKey', d.deliverable_key,
        'isClientVisible', d.is_client_visible, 'createdAt', d.created_at) order by d.created_at desc)
      from public.documents d where d.workflow_id = w.id), '[]'::jsonb)""",
    "counterparties": """coalesce((select jsonb_agg(jsonb_build_object(
        'id', wc.counterparty_id, 'linkId', wc.id, 'type', c.counterparty_type, 'name', c.name,
        'status', wc.status, 'contactedAt', wc.contacted_at, 'respondedAt', wc.responded_at) order by wc.created_at)
      from public.workflow_counterparties wc join public.counterparties c on c.id = wc.counterparty_id
      where wc.workflow_id = w.id), '[]'::jsonb)""",
}


def workflow_document_sql(include: list[str]) -> str:
    """A SQL expression (over alias w) giving the workflow's API document as text."""
    parts = [WORKFLOW_JSON] + [f"jsonb_build_object('{name}', {INCLUDE_JSON[name]})" for name in dict.fromkeys(include)]
    return "(" + " || ".join(parts) + ")::text"


def workflow_page_statement(args: dict) -> tuple:
    """The one statement listing a page of workflow documents (JSON text) under the list filters."""
    return page_statement("workflows", "w", workflow_filters(args), limit=args["limit"], offset=args["offset"],
                          cursor=args.get("cursor"),
                          select=f"{workflow_document_sql(args.get('include', []))} as document, w.created_at, w.id")


def workflow_documents_page(rows: list[dict], limit: int) -> dict:
    page = page_from_rows(rows, limit)
    page["documents"] = [row["document"] for row in page.pop("rows")]
    return page


def list_workflow_documents(conn: psycopg.Connection, args: dict) -> dict:
    """A page of workflow documents (JSON text) under the list filters."""
    return workflow_documents_page(conn.execute(*workflow_page_statement(args)).fetchall(), args["limit"])


def workflow_document_query(workflow_id: uuid.UUID, include: list[str] = ()) -> tuple[str, tuple]:
    """The query (and its parameters) selecting one workflow's document as `document`."""
    return (f"select {workflow_document_sql(list(include))} as document from public.workflows w where w.id = %s",
            (workflow_id,))


def get_workflow_document(conn: psycopg.Connection, workflow_id: uuid.UUID, include: list[str] = ()) -> str | None:
    row = conn.execute(*workflow_document_query(workflow_id, include)).fetchone()
    return row["document"] if row else None


def workflow_filters(args: dict) -> Filters:
    filters = Filters()
    if args.get("client_id"):
        filters.add("w.client_id = %s", args["client_id"])
    if args.get("hil_id"):
        filters.add("w.hil_owner_id = %s", args["hil_id"])
    if args.get("status"):
        filters.add("w.status = any(%s::public.workflow_status[])", args["status"])
    if args.get("type"):
        filters.add("w.workflow_type = any(%s::public.workflow_type[])", args["type"])
    if args.get("created_after"):
        filters.add("w.created_at >= %s", args["created_after"])
    if args.get("created_before"):
        filters.add("w.created_at < %s", args["created_before"])
    return filters


def get_workflow(conn: psycopg.Connection, workflow_id: uuid.UUID) -> dict | None:
    return conn.execute("select * from public.workflows where id = %s", (workflow_id,)).fetchone()


def create_workflow(conn: psycopg.Connection, principal: Principal, data: dict) -> dict:
    payload = data["payload"]
    title = data.get("title") or f"{DEFAULT_TITLES[data['type']]}: {payload.get('address', '')}".strip(": ")
    return conn.execute(
        """insert into public.workflows (workflow_type, client_id, title, payload, priority, hil_owner_id,
                                         manager_id, created_by, due_date, metadata)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning *""",
        (data["type"], data["client_id"], title[:300], Jsonb(payload), data["priority"], data.get("hil_id"),
         data.get("manager_id"), principal.user_id if principal.kind == "person" else None,
         data.get("due_date"), Jsonb(data.get("metadata") or {})),
    ).fetchone()


UPDATABLE_COLUMNS = {"title": "title", "payload": "payload", "priority": "priority", "hil_id": "hil_owner_id",
                     "manager_id": "manager_id", "due_date": "due_date", "metadata": "metadata"}


def update_workflow(conn: psycopg.Connection, workflow_id: uuid.UUID, changes: dict) -> dict | None:
    columns = {UPDATABLE_COLUMNS[k]: (Jsonb(v) if k in ("payload", "metadata") else v) for k, v in changes.items()}
    if not columns:
        return get_workflow(conn, workflow_id)
    assignments = ", ".join(f"{column} = %s" for column in columns)
    return conn.execute(f"update public.workflows set {assignments} where id = %s returning *",
                        (*columns.values(), workflow_id)).fetchone()


def workflow_action_query(workflow_id: uuid.UUID, action: str, data: dict) -> tuple[str, tuple]:
    """The one statement that takes a workflow action (public.workflow_action does the whole change)."""
    return "select public.workflow_action(%s, %s, %s) as r, now() as at", (workflow_id, action, Jsonb(data))


def workflow_action(conn: psycopg.Connection, workflow_id: uuid.UUID, action: str, data: dict) -> dict:
    from app.services.tasks import action_result

    return action_result(conn.execute(*workflow_action_query(workflow_id, action, data)).fetchone())
