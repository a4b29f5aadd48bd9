"""Communications: list, read with channel metadata and attachments, record.

Everything runs as the caller, so RLS decides what is seen and written: clients see only
client-visible communications of their own workflows and may post only client-visible INBOUND
messages there; agents only their workflow's. A client's message notifies the workflow's HIL
owner through a database trigger (migration 20261126000600_communications.sql).
"""
from __future__ import annotations

import uuid

import psycopg

from app.auth import Principal
from app.errors import ApiError
from app.services.listing import Filters, fetch_page


# ============================================================================================
# References in request bodies, checked as the caller: what the caller cannot see does not
# exist for them (one answer for "missing" and "someone else's", so ids cannot be probed).
# ============================================================================================
def require_workflow(conn: psycopg.Connection, workflow_id: uuid.UUID) -> dict:
    workflow = conn.execute("select id, client_id, workflow_type, hil_owner_id from public.workflows where id = %s",
                            (workflow_id,)).fetchone()
    if workflow is None:
        raise ApiError(404, f"workflow {workflow_id} not found", "not_found")
    return workflow


def invalid_reference(field: str, message: str) -> ApiError:
    return ApiError(422, message, "invalid_reference", {"json": {field: [message]}})


def require_task_in_workflow(conn: psycopg.Connection, task_id: uuid.UUID | None, workflow_id: uuid.UUID) -> None:
    if task_id is None:
        return
    found = conn.execute("select 1 from public.tasks where id = %s and workflow_id = %s", (task_id, workflow_id)).fetchone()
    if found is None:
        raise invalid_reference("taskId", f"task {task_id} is not a task of workflow {workflow_id}")


def require_counterparty(conn: psycopg.Connection, counterparty_id: uuid.UUID | None) -> None:
    if counterparty_id is None:
        return
    if conn.execute("select 1 from public.counterparties where id = %s", (counterparty_id,)).fetchone() is None:
        raise invalid_reference("counterpartyId", f"counterparty {counterparty_id} not found")


# ============================================================================================
# Reads
# ============================================================================================
def list_communications(conn: psycopg.Connection, args: dict) -> dict:
    filters = Filters()
    if args.get("workflow_id"):
        filters.add("c.workflow_id = %s", args["workflow_id"])
    if args.get("task_id"):
        filters.add("c.task_id = %s", args["task_id"])
    if args.get("type"):
        filters.add("c.communication_type = any(%s::public.communication_type[])", args["type"])
    if args.get("status"):
        filters.add("c.status = any(%s::text[])", args["status"])
    if args.get("direction"):
        filters.add("c.direction = any(%s::text[])", args["direction"])
    if args.get("is_client_visible") is not None:
        filters.add("c.is_client_visible = %s", args["is_client_visible"])
    page = fetch_page(conn, "communications", "c", filters, limit=args["limit"], offset=args["offset"],
                      cursor=args.get("cursor"))
    page["communications"] = page.pop("rows")
    return page


def get_communication(conn: psycopg.Connection, communication_id: uuid.UUID) -> dict | None:
    row = conn.execute("select * from public.communications where id = %s", (communication_id,)).fetchone()
    if row is None:
        return None
    for key, table in (("email", "email_metadata"), ("call", "call_metadata"), ("message", "message_metadata")):
        row[key] = conn.execute(f"select * from public.{table} where communication_id = %s",  # noqa: S608 (fixed names)
                                (communication_id,)).fetchone()
    row["attachments"] = conn.execute(
        "select * from public.communication_attachments where communication_id = %s order by created_at, id",
        (communication_id,)).fetchall()
    return row


# ============================================================================================
# Writes
# ============================================================================================
def create_communication(conn: psycopg.Connection, principal: Principal, data: dict) -> dict:
    """Record a communication and its channel metadata in the caller's transaction."""
    workflow = require_workflow(conn, data["workflow_id"])
    require_task_in_workflow(conn, data.get("task_id"), workflow["id"])
    require_counterparty(conn, data.get("counterparty_id"))

    direction = data["direction"]
    visible = data.get("is_client_visible")
    if visible is None:
        visible = principal.is_client  # what a client writes is meant for the client's eyes
    status = data.get("status") or ("RECEIVED" if direction == "INBOUND" else "SENT")
    communication = conn.execute(
        """insert into public.communications (workflow_id, task_id, counterparty_id, communication_type, direction,
                                              status, subject, body, from_address, to_addresses, is_client_visible,
                                              sender_id, agent_name, thread_id, sent_at)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning id""",
        (workflow["id"], data.get("task_id"), data.get("counterparty_id"), data["type"], direction, status,
         data.get("subject"), data.get("body"), data.get("from_address"), data["to_addresses"], visible,
         principal.user_id if principal.kind == "person" else None,
         principal.agent_name if principal.kind == "agent" else None,
         data.get("thread_id"), data.get("sent_at")),
    ).fetchone()
    communication_id = communication["id"]

    if "email" in data:
        email = data["email"]
        conn.execute(
            """insert into public.email_metadata (communication_id, message_id, in_reply_to, references_header, cc, bcc)
               values (%s, %s, %s, %s, %s, %s)""",
            (communication_id, email.get("message_id"), email.get("in_reply_to"), email["references"],
             email["cc"], email["bcc"]))
    if "call" in data:
        call = data["call"]
        conn.execute(
            """insert into public.call_metadata (communication_id, phone_number, duration_seconds, recording_url,
                                                 transcript, outcome)
               values (%s, %s, %s, %s, %s, %s)""",
            (communication_id, call.get("phone_number"), call.get("duration_seconds"), call.get("recording_url"),
             call.get("transcript"), call.get("outcome")))
    if "message" in data:
        message = data["message"]
        conn.execute(
            "insert into public.message_metadata (communication_id, channel, external_message_id) values (%s, %s, %s)",
            (communication_id, message["channel"], message.get("external_message_id")))
    return get_communication(conn, communication_id)
