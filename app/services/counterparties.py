"""Counterparties: list, read with contacts and workflow links, create with contacts, and link
to workflows.

Runs as the caller, so RLS decides: HIL people see and change everything; clients see only the
counterparties linked to their workflows (never their contacts); agents only their workflow's.
The database refuses a counterparty type the workflow type does not allow (23514).
"""
from __future__ import annotations

import uuid

import psycopg
from psycopg.types.json import Jsonb

from app.errors import ApiError
from app.services.communications import require_workflow
from app.services.listing import Filters, fetch_page

# Timestamps a link status implies (set the first time the link gets there).
CONTACTED = ("CONTACTED", "RESPONDED", "COMPLETED")
RESPONDED = ("RESPONDED", "COMPLETED")


def not_found(counterparty_id) -> ApiError:
    return ApiError(404, f"counterparty {counterparty_id} not found", "not_found")


def list_counterparties(conn: psycopg.Connection, args: dict) -> dict:
    filters = Filters()
    if args.get("type"):
        filters.add("c.counterparty_type = any(%s::public.counterparty_type[])", args["type"])
    if args.get("search"):
        # A plain substring match (strpos): no pattern characters to escape, nothing to inject.
        filters.add("strpos(lower(c.name), lower(%s)) > 0", args["search"])
    if args.get("workflow_id"):
        filters.add("c.id in (select wc.counterparty_id from public.workflow_counterparties wc where wc.workflow_id = %s)",
                    args["workflow_id"])
    page = fetch_page(conn, "counterparties", "c", filters, limit=args["limit"], offset=args["offset"],
                      cursor=args.get("cursor"))
    page["counterparties"] = page.pop("rows")
    return page


def get_counterparty(conn: psycopg.Connection, counterparty_id: uuid.UUID) -> dict | None:
    row = conn.execute("select * from public.counterparties where id = %s", (counterparty_id,)).fetchone()
    if row is None:
        return None
    row["contacts"] = conn.execute(
        """select * from public.counterparty_contacts where counterparty_id = %s
            order by is_primary desc, full_name, id""", (counterparty_id,)).fetchall()
    row["workflows"] = conn.execute(
        "select * from public.workflow_counterparties where counterparty_id = %s order by created_at, id",
        (counterparty_id,)).fetchall()
    return row


def create_counterparty(conn: psycopg.Connection, data: dict) -> dict:
    """The counterparty and its contacts, in the caller's one transaction."""
    created = conn.execute(
        """insert into public.counterparties (counterparty_type, name, email, phone, website, address, has_ivr,
                                              requires_phone)
           values (%s, %s, %s, %s, %s, %s, %s, %s) returning id""",
        (data["type"], data["name"].strip(), data.get("email"), data.get("phone"), data.get("website"),
         Jsonb(data.get("address") or {}), data["has_ivr"], data["requires_phone"]),
    ).fetchone()
    for contact in data["contacts"]:
        conn.execute(
            """insert into public.counterparty_contacts (counterparty_id, full_name, title, email, phone, is_primary)
               values (%s, %s, %s, %s, %s, %s)""",
            (created["id"], contact["full_name"], contact.get("title"), contact.get("email"), contact.get("phone"),
             contact["is_primary"]))
    return get_counterparty(conn, created["id"])


def require_counterparty(conn: psycopg.Connection, counterparty_id: uuid.UUID) -> None:
    if conn.execute("select 1 from public.counterparties where id = %s", (counterparty_id,)).fetchone() is None:
        raise not_found(counterparty_id)


def link_workflow(conn: psycopg.Connection, counterparty_id: uuid.UUID, data: dict) -> dict:
    require_counterparty(conn, counterparty_id)
    workflow = require_workflow(conn, data["workflow_id"])
    status = data["status"]
    return conn.execute(
        """insert into public.workflow_counterparties (workflow_id, counterparty_id, status, contacted_at,
                                                       responded_at, notes)
           values (%s, %s, %s, case when %s then now() end, case when %s then now() end, %s) returning *""",
        (workflow["id"], counterparty_id, status, status in CONTACTED, status in RESPONDED, data.get("notes")),
    ).fetchone()


def find_link(conn: psycopg.Connection, counterparty_id: uuid.UUID, workflow_id: uuid.UUID) -> dict:
    link = conn.execute("select id from public.workflow_counterparties where counterparty_id = %s and workflow_id = %s",
                        (counterparty_id, workflow_id)).fetchone()
    if link is None:
        raise ApiError(404, f"counterparty {counterparty_id} is not linked to workflow {workflow_id}", "not_found")
    return link


def update_link(conn: psycopg.Connection, counterparty_id: uuid.UUID, workflow_id: uuid.UUID, data: dict) -> dict:
    link = find_link(conn, counterparty_id, workflow_id)
    status = data["status"]
    notes_given = "notes" in data
    updated = conn.execute(
        """update public.workflow_counterparties
              set status = %s,
                  contacted_at = case when %s then coalesce(contacted_at, now()) else contacted_at end,
                  responded_at = case when %s then coalesce(responded_at, now()) else responded_at end,
                  notes = case when %s then %s else notes end
            where id = %s returning *""",
        (status, status in CONTACTED, status in RESPONDED, notes_given, data.get("notes"), link["id"]),
    ).fetchone()
    if updated is None:
        raise ApiError(403, "your role may not change this link", "forbidden")
    return updated


def unlink_workflow(conn: psycopg.Connection, counterparty_id: uuid.UUID, workflow_id: uuid.UUID) -> None:
    link = find_link(conn, counterparty_id, workflow_id)
    deleted = conn.execute("delete from public.workflow_counterparties where id = %s returning id",
                           (link["id"],)).fetchone()
    if deleted is None:
        raise ApiError(403, "your role may not unlink counterparties", "forbidden")
