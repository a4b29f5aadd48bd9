"""Documents: list, read with tags, register (a new deliverable version supersedes the last).

Runs as the caller, so RLS decides: clients see only client-visible documents of their own
workflows and may register only client-visible ATTACHMENTs there; agents only their workflow's.
"""
from __future__ import annotations

import uuid
from collections import defaultdict

import psycopg
from psycopg import errors as pg
from psycopg.types.json import Jsonb

from app.auth import Principal
from app.errors import ApiError
from app.services.communications import require_task_in_workflow, require_workflow
from app.services.listing import Filters, fetch_page

VERSION_KEY = "documents_deliverable_version_key"
VERSION_ATTEMPTS = 5


def attach_tags(conn: psycopg.Connection, documents: list[dict]) -> list[dict]:
    """Add each document's tag codes (one query for the lot)."""
    if not documents:
        return documents
    grouped: dict[uuid.UUID, list[str]] = defaultdict(list)
    for tag in conn.execute(
            """select a.document_id, t.code from public.document_tag_assignments a
                 join public.document_tags t on t.id = a.document_tag_id
                where a.document_id = any(%s) order by t.code""", ([d["id"] for d in documents],)):
        grouped[tag["document_id"]].append(tag["code"])
    for document in documents:
        document["tags"] = grouped[document["id"]]
    return documents


def list_documents(conn: psycopg.Connection, args: dict) -> dict:
    filters = Filters()
    if args.get("workflow_id"):
        filters.add("d.workflow_id = %s", args["workflow_id"])
    if args.get("task_id"):
        filters.add("d.task_id = %s", args["task_id"])
    if args.get("document_type"):
        filters.add("d.document_type = any(%s::public.document_type[])", args["document_type"])
    if args.get("status"):
        filters.add("d.status = any(%s::text[])", args["status"])
    if args.get("tag"):
        filters.add("""d.id in (select a.document_id from public.document_tag_assignments a
                                  join public.document_tags t on t.id = a.document_tag_id
                                 where t.code = any(%s::text[]))""", args["tag"])
    page = fetch_page(conn, "documents", "d", filters, limit=args["limit"], offset=args["offset"],
                      cursor=args.get("cursor"))
    page["documents"] = attach_tags(conn, page.pop("rows"))
    return page


def get_document(conn: psycopg.Connection, document_id: uuid.UUID) -> dict | None:
    row = conn.execute("select * from public.documents where id = %s", (document_id,)).fetchone()
    return attach_tags(conn, [row])[0] if row else None


def resolve_tags(conn: psycopg.Connection, codes: list[str]) -> list[uuid.UUID]:
    codes = list(dict.fromkeys(codes))
    if not codes:
        return []
    found = {r["code"]: r["id"] for r in conn.execute(
        "select code, id from public.document_tags where code = any(%s::text[])", (codes,))}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise ApiError(422, f"unknown document tags: {', '.join(unknown)}", "validation_error",
                       {"json": {"tags": [f"unknown tag {code!r}" for code in unknown]}})
    return [found[code] for code in codes]


INSERT_DOCUMENT = """
insert into public.documents (workflow_id, task_id, document_type, status, filename, storage_path, content_type,
                              size_bytes, deliverable_key, version, previous_version_id, deliverable_data,
                              is_client_visible, uploaded_by)
values (%(workflow_id)s, %(task_id)s, %(document_type)s, coalesce(%(status)s, 'RECEIVED'), %(filename)s,
        %(storage_path)s, %(content_type)s, %(size_bytes)s, %(deliverable_key)s, %(version)s,
        %(previous_version_id)s, %(deliverable_data)s, %(is_client_visible)s, %(uploaded_by)s)
returning id
"""


def create_document(conn: psycopg.Connection, principal: Principal, data: dict) -> dict:
    """Register a document; a DELIVERABLE whose key the workflow already has becomes its next
    version (version = latest + 1, previous_version_id = the latest, which turns SUPERSEDED)."""
    workflow = require_workflow(conn, data["workflow_id"])
    require_task_in_workflow(conn, data.get("task_id"), workflow["id"])
    tag_ids = resolve_tags(conn, data["tags"])
    visible = data.get("is_client_visible")
    values = {
        "workflow_id": workflow["id"], "task_id": data.get("task_id"), "document_type": data["document_type"],
        "status": data.get("status"), "filename": data["filename"], "storage_path": data.get("storage_path"),
        "content_type": data.get("content_type"), "size_bytes": data.get("size_bytes"),
        "deliverable_key": data.get("deliverable_key"), "version": 1, "previous_version_id": None,
        "deliverable_data": Jsonb(data["deliverable_data"]) if "deliverable_data" in data else None,
        "is_client_visible": principal.is_client if visible is None else visible,
        "uploaded_by": principal.user_id if principal.kind == "person" else None,
    }
    if data["document_type"] == "DELIVERABLE":
        document_id = insert_next_version(conn, values)
    else:
        document_id = conn.execute(INSERT_DOCUMENT, values).fetchone()["id"]
    if tag_ids:
        conn.execute(
            """insert into public.document_tag_assignments (document_id, document_tag_id)
               select %s, tag_id from unnest(%s::uuid[]) as tag_id""", (document_id, tag_ids))
    return get_document(conn, document_id)


def insert_next_version(conn: psycopg.Connection, values: dict) -> uuid.UUID:
    """Insert the next version of a deliverable and supersede the latest, safely under
    concurrency: writers through this path queue on a transaction-scoped advisory lock per
    (workflow, key), and anyone else who slips in first (Supabase's REST API, n8n's Postgres
    node) is caught by the unique index documents_deliverable_version_key, after which we read
    the new latest version and try again."""
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"deliverable:{values['workflow_id']}:{values['deliverable_key']}",))
    for attempt in range(1, VERSION_ATTEMPTS + 1):
        try:
            with conn.transaction():
                latest = conn.execute(
                    """select id, version from public.documents
                        where workflow_id = %s and deliverable_key = %s
                        order by version desc limit 1""",
                    (values["workflow_id"], values["deliverable_key"])).fetchone()
                if latest is not None:
                    values = {**values, "version": latest["version"] + 1, "previous_version_id": latest["id"]}
                document_id = conn.execute(INSERT_DOCUMENT, values).fetchone()["id"]
                if latest is not None:
                    superseded = conn.execute(
                        "update public.documents set status = 'SUPERSEDED' where id = %s returning id",
                        (latest["id"],)).fetchone()
                    if superseded is None:
                        raise ApiError(403, "your role may not replace this deliverable", "forbidden")
                return document_id
        except pg.UniqueViolation as error:
            if error.diag.constraint_name != VERSION_KEY or attempt == VERSION_ATTEMPTS:
                raise
    raise AssertionError("unreachable")

