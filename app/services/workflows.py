"""Workflows: create, read with related collections, update, and actions."""
from __future__ import annotations

import uuid

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from app.auth import Principal
from app.services.listing import Filters, page_from_rows, page_statement
from app.services.metadata import server_owned_keys_refused
from app.services.people import check_hil_person

DEFAULT_TITLES = {
    "MUNI_LIEN_SEARCH": "Municipal lien search",
    "HOA_ACQUISITION": "HOA documents",
    "PAYOFF_REQUEST": "Payoff request",
}

# The API's workflow documents are built by PostgreSQL, by private.workflow_documents (migration
# 20261126002700): JSON text with the fields and names of app.schemas.workflows.Workflow and the
# collections asked for in include=, passed on without a Python serialization pass per row.
DOCUMENTS = "private.workflow_documents"


def workflow_page_statement(args: dict) -> tuple:
    """The one statement listing a page of workflow documents (JSON text) under the list filters:
    the page's rows (filters, keyset cursor, total), then their documents in one call."""
    page, params = page_statement(
        "workflows", "w", workflow_filters(args), limit=args["limit"], offset=args["offset"],
        cursor=args.get("cursor"), select="w.created_at, w.id",
        # unfiltered: the total every caller may see, from the activity counters
        total="select a.workflows_total as page_total_count from private.visible_activity() a")
    query = (sql.SQL("with page as (") + page + sql.SQL(
        ") select page.*, d.document from page left join "
        f"{DOCUMENTS}((select array_agg(page.id) from page), %s::text[]) d on d.workflow_id = page.id"
        " order by page.created_at desc, page.id desc"))
    return query, [*params, list(args.get("include", []))]


def workflow_documents_page(rows: list[dict], limit: int) -> dict:
    page = page_from_rows(rows, limit)
    page["documents"] = [row["document"] for row in page.pop("rows")]
    return page


def list_workflow_documents(conn: psycopg.Connection, args: dict) -> dict:
    """A page of workflow documents (JSON text) under the list filters."""
    return workflow_documents_page(conn.execute(*workflow_page_statement(args)).fetchall(), args["limit"])


def workflow_document_query(workflow_id: uuid.UUID, include: list[str] = ()) -> tuple[str, tuple]:
    """The query (and its parameters) selecting one workflow's document as `document`."""
    return (f"select d.document from {DOCUMENTS}(array[%s]::uuid[], %s::text[]) d", (workflow_id, list(include)))


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


def check_staff(conn: psycopg.Connection, principal: Principal, data: dict) -> None:
    """The owner and the manager a caller names are active HIL people (the manager a manager).
    A client names nobody: the database refuses that (403, private.guard_client_workflow_write)."""
    if principal.is_client:
        return
    if "hil_id" in data:
        check_hil_person(conn, data["hil_id"], "hilId")
    if "manager_id" in data:
        check_hil_person(conn, data["manager_id"], "managerId", manager=True)


def create_workflow(conn: psycopg.Connection, principal: Principal, data: dict) -> dict:
    payload = data["payload"]
    title = data.get("title") or f"{DEFAULT_TITLES[data['type']]}: {payload.get('address', '')}".strip(": ")
    check_staff(conn, principal, data)
    with server_owned_keys_refused():
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


def update_workflow(conn: psycopg.Connection, principal: Principal, workflow_id: uuid.UUID, changes: dict) -> dict | None:
    check_staff(conn, principal, changes)
    columns = {UPDATABLE_COLUMNS[k]: (Jsonb(v) if k in ("payload", "metadata") else v) for k, v in changes.items()}
    if not columns:
        return get_workflow(conn, workflow_id)
    assignments = ", ".join(f"{column} = %s" for column in columns)
    # A HIL person's change to a finished workflow is a correction (audited workflow.corrected);
    # metadata is replaced, but its server-owned keys stay as the server wrote them.
    with server_owned_keys_refused():
        return conn.execute(f"update public.workflows set {assignments} where id = %s returning *",
                            (*columns.values(), workflow_id)).fetchone()


def workflow_action_query(workflow_id: uuid.UUID, action: str, data: dict) -> tuple[str, tuple]:
    """The one statement that takes a workflow action (public.workflow_action does the whole change)."""
    return "select public.workflow_action(%s, %s, %s) as r, now() as at", (workflow_id, action, Jsonb(data))


def workflow_action(conn: psycopg.Connection, workflow_id: uuid.UUID, action: str, data: dict) -> dict:
    from app.services.tasks import action_result

    return action_result(conn.execute(*workflow_action_query(workflow_id, action, data)).fetchone())
