"""Workflows: create, read with related collections, update, and actions."""
from __future__ import annotations

import uuid

import psycopg
from psycopg.types.json import Jsonb

from app.auth import Principal
from app.schemas import snakecase
from app.services.listing import Filters, attach_collection, fetch_page

DEFAULT_TITLES = {
    "MUNI_LIEN_SEARCH": "Municipal lien search",
    "HOA_ACQUISITION": "HOA documents",
    "PAYOFF_REQUEST": "Payoff request",
}

INCLUDE_QUERIES = {
    "tasks": "select * from public.tasks where workflow_id = any(%s) order by sequence, task_key",
    "communications": "select * from public.communications where workflow_id = any(%s) order by created_at desc",
    "documents": "select * from public.documents where workflow_id = any(%s) order by created_at desc",
    "counterparties": """select wc.*, c.counterparty_type, c.name from public.workflow_counterparties wc
                          join public.counterparties c on c.id = wc.counterparty_id
                         where wc.workflow_id = any(%s) order by wc.created_at""",
}


def attach_includes(conn: psycopg.Connection, workflows: list[dict], include: list[str]) -> list[dict]:
    """Add each requested related collection to each workflow (one query per collection)."""
    if not workflows:
        return workflows
    for name in dict.fromkeys(include):
        attach_collection(conn, workflows, name, INCLUDE_QUERIES[name], "workflow_id")
    return workflows


def list_workflows(conn: psycopg.Connection, args: dict) -> dict:
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
    page = fetch_page(conn, "workflows", "w", filters, limit=args["limit"], offset=args["offset"],
                      cursor=args.get("cursor"))
    page["workflows"] = attach_includes(conn, page.pop("rows"), args.get("include", []))
    return page


def get_workflow(conn: psycopg.Connection, workflow_id: uuid.UUID, include: list[str] = ()) -> dict | None:
    row = conn.execute("select * from public.workflows where id = %s", (workflow_id,)).fetchone()
    return attach_includes(conn, [row], list(include))[0] if row else None


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


def workflow_action(conn: psycopg.Connection, workflow_id: uuid.UUID, action: str, data: dict) -> dict:
    result = conn.execute("select public.workflow_action(%s, %s, %s) as r, now() as at",
                          (workflow_id, action, Jsonb(data))).fetchone()
    # The SQL function speaks camelCase (it is also called over Supabase RPC and by n8n).
    return {**{snakecase(key): value for key, value in result["r"].items()}, "timestamp": result["at"]}
