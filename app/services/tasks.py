"""Tasks: list and read with related collections, inject into a running workflow, update,
and the task actions."""
from __future__ import annotations

import secrets
import uuid

import psycopg
from psycopg.types.json import Jsonb

from app.errors import ApiError
from app.schemas import snakecase
from app.services.listing import NEWEST_FIRST, Filters, Order, attach_collection, fetch_page
from app.services.metadata import server_owned_keys_refused
from app.services.people import check_hil_person

FINAL_WORKFLOW_STATUSES = ("COMPLETED", "CANCELLED", "FAILED")

WORKFLOWS_BY_ID = "select * from public.workflows where id = any(%s)"
COLLECTION_QUERIES = {
    "timeline": "select * from public.task_timeline_events where task_id = any(%s) order by created_at, id",
    "executions": "select * from public.task_executions where task_id = any(%s) order by attempt",
}


# Business time left on each open task's SLA clock (include=sla).
SLA_CLOCKS = """select t.id, public.business_minutes_between(now(), t.sla_due_at) as minutes
                  from public.tasks t
                 where t.id = any(%s) and t.sla_due_at is not null
                   and t.status not in ('COMPLETED', 'SKIPPED', 'CANCELLED')"""


def not_found(task_id) -> ApiError:
    return ApiError(404, f"task {task_id} not found", "not_found")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "the request is not valid", "validation_error", {"json": {field: [message]}})


def attach_includes(conn: psycopg.Connection, tasks: list[dict], include: list[str]) -> list[dict]:
    """Add each requested related record or collection to each task (one query per kind)."""
    if not tasks:
        return tasks
    for name in dict.fromkeys(include):
        if name == "workflow":
            workflow_ids = list({t["workflow_id"] for t in tasks})
            workflows = {w["id"]: w for w in conn.execute(WORKFLOWS_BY_ID, (workflow_ids,))}
            for task in tasks:
                task["workflow"] = workflows.get(task["workflow_id"])
            continue
        if name == "sla":
            clocks = {row["id"]: row["minutes"] for row in conn.execute(SLA_CLOCKS, ([t["id"] for t in tasks],))}
            for task in tasks:
                task["business_minutes_remaining"] = clocks.get(task["id"])
            continue
        attach_collection(conn, tasks, name, COLLECTION_QUERIES[name], "task_id")
    return tasks


PLAN_ORDER = Order(("sequence", "task_key", "id"), (int, str, uuid.UUID), descending=False)


def list_tasks(conn: psycopg.Connection, args: dict) -> dict:
    filters = Filters()
    if args.get("workflow_id"):
        filters.add("t.workflow_id = %s", args["workflow_id"])
    if args.get("executor_id"):
        filters.add("t.assigned_to = %s", args["executor_id"])
    if args.get("agent_name"):
        filters.add("t.agent_name = %s", args["agent_name"])
    if args.get("status"):
        filters.add("t.status = any(%s::public.task_status[])", args["status"])
    if args.get("sla_status"):
        filters.add("t.sla_status = any(%s::public.sla_status[])", args["sla_status"])
    if args.get("executor_type"):
        filters.add("t.executor_type = %s::public.executor_type", args["executor_type"])
    # One workflow's tasks in its plan's order (what a person reads them in); otherwise newest first.
    order = PLAN_ORDER if args.get("workflow_id") else NEWEST_FIRST
    page = fetch_page(conn, "tasks", "t", filters, limit=args["limit"], offset=args["offset"],
                      cursor=args.get("cursor"), order=order)
    page["tasks"] = attach_includes(conn, page.pop("rows"), args.get("include", []))
    return page


def get_task(conn: psycopg.Connection, task_id: uuid.UUID, include: list[str] = ()) -> dict | None:
    row = conn.execute("select * from public.tasks where id = %s", (task_id,)).fetchone()
    return attach_includes(conn, [row], list(include))[0] if row else None


INSERT_TASK = """
insert into public.tasks (workflow_id, client_id, task_key, task_type, title, description, sequence, executor_type,
                          agent_name, assigned_to, priority, depends_on, parent_task_id, sla_minutes, sla_started_at,
                          sla_due_at, agent_input)
select w.id, w.client_id, %(task_key)s, %(task_type)s, %(title)s, %(description)s,
       -- a branch sits beside its parent; anything else runs beside the current step
       coalesce((select p.sequence from public.tasks p where p.id = %(parent_task_id)s::uuid),
                (select min(t.sequence) from public.tasks t
                  where t.workflow_id = w.id and t.status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW')),
                (select coalesce(max(t.sequence), 0) + 1 from public.tasks t where t.workflow_id = w.id)),
       %(executor_type)s::public.executor_type, %(agent_name)s, %(assigned_to)s::uuid,
       %(priority)s::public.priority_level, %(depends_on)s::text[], %(parent_task_id)s::uuid,
       sla.minutes, now(), public.add_business_minutes(now(), sla.minutes), %(agent_input)s
  from public.workflows w
 cross join lateral (
   select coalesce(%(sla_minutes)s::integer,
                   (select d.business_minutes from public.sla_definitions d
                     where d.is_active and d.workflow_type = w.workflow_type and d.task_type = %(task_type)s
                       and (d.agent_name is null or d.agent_name = %(agent_name)s)
                     order by d.agent_name nulls last limit 1),
                   60) as minutes
 ) sla
 where w.id = %(workflow_id)s
returning *
"""


def create_task(conn: psycopg.Connection, data: dict) -> dict:
    """Inject a task into a workflow that is still running; the database decides who may."""
    workflow = conn.execute("select id, status from public.workflows where id = %s", (data["workflow_id"],)).fetchone()
    if workflow is None:
        raise ApiError(404, f"workflow {data['workflow_id']} not found", "not_found")
    if workflow["status"] in FINAL_WORKFLOW_STATUSES:  # the database refuses it too (private.guard_finished_work)
        raise ApiError(409, f"workflow is finished ({workflow['status']}): no task can be added to it", "invalid_state")
    if data.get("parent_task_id") and conn.execute(
            "select 1 from public.tasks where id = %s and workflow_id = %s",
            (data["parent_task_id"], workflow["id"])).fetchone() is None:
        raise invalid("parentTaskId", "not a task of this workflow")
    unknown = conn.execute(
        """select array(select unnest(%s::text[])
                         except select task_key from public.tasks where workflow_id = %s) as keys""",
        (data["depends_on"], workflow["id"])).fetchone()["keys"]
    if unknown:
        raise invalid("dependsOn", f"not task keys of this workflow: {', '.join(sorted(unknown))}")
    check_hil_person(conn, data.get("assigned_to"), "assignedTo")
    values = {
        "description": None, "agent_name": None, "assigned_to": None, "parent_task_id": None, "sla_minutes": None,
        **data,
        "task_key": data.get("task_key") or f"{data['task_type']}_{secrets.token_hex(3)}",
        "agent_input": Jsonb(data["agent_input"]) if "agent_input" in data else None,
    }
    return conn.execute(INSERT_TASK, values).fetchone()


def update_task(conn: psycopg.Connection, task_id: uuid.UUID, changes: dict) -> dict | None:
    """The updated task, or None when the caller may see it but not change it."""
    if "assigned_to" in changes:
        check_hil_person(conn, changes["assigned_to"], "assignedTo")
    assignments, params = [], []
    for column, value in changes.items():
        if column == "metadata":
            assignments.append("metadata = metadata || %s")
            params.append(Jsonb(value))
        else:
            assignments.append(f"{column} = %s")
            params.append(value)
    if not assignments:
        return get_task(conn, task_id)
    with server_owned_keys_refused():
        return conn.execute(f"update public.tasks set {', '.join(assignments)} where id = %s returning *",
                            (*params, task_id)).fetchone()


def task_action_query(task_id: uuid.UUID, action: str, data: dict) -> tuple[str, tuple]:
    """The one statement that takes a task action (public.task_action does the whole change)."""
    return "select public.task_action(%s, %s, %s) as r, now() as at", (task_id, action, Jsonb(data))


def action_result(row: dict) -> dict:
    # The SQL functions speak camelCase (they are also called over Supabase RPC and by n8n).
    return {**{snakecase(key): value for key, value in row["r"].items()}, "timestamp": row["at"]}


def task_action(conn: psycopg.Connection, task_id: uuid.UUID, action: str, data: dict) -> dict:
    return action_result(conn.execute(*task_action_query(task_id, action, data)).fetchone())
