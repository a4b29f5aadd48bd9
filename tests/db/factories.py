"""Small factories for database tests (run as the service path unless told otherwise)."""
from __future__ import annotations

import uuid

from tests.db.world import CLIENT_A

PAYOFF_PAYLOAD = {
    "address": "1 Main St", "borrowerName": "Pat Doe", "lenderName": "First Bank",
    "loanNumber": "123", "payoffDate": "2026-12-15",
}


def make_workflow(conn, workflow_type="PAYOFF_REQUEST", client_id=CLIENT_A, **columns):
    from psycopg.types.json import Jsonb

    values = {"workflow_type": workflow_type, "client_id": client_id, "title": f"{workflow_type} {uuid.uuid4().hex[:6]}",
              "payload": Jsonb(PAYOFF_PAYLOAD if workflow_type == "PAYOFF_REQUEST" else {}), **columns}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return conn.execute(f"insert into public.workflows ({names}) values ({marks}) returning *", list(values.values())).fetchone()


def start_workflow(conn, workflow_id):
    return conn.execute("select public.workflow_action(%s, 'start') as r", (workflow_id,)).fetchone()["r"]


def secret_resume_url(conn, task_id):
    """The resume URL n8n gave for a task, where only the service reads it (tasks.resume_url
    holds a reference to it)."""
    row = conn.execute("select url from private.n8n_resume_urls where task_id = %s", (task_id,)).fetchone()
    return row["url"] if row else None


def tasks_of(conn, workflow_id):
    return {t["task_key"]: t for t in conn.execute(
        "select * from public.tasks where workflow_id = %s order by sequence, task_key", (workflow_id,))}


def set_task_status(conn, task_id, status, data=None):
    from psycopg.types.json import Jsonb

    return conn.execute("select public.transition_task(%s, %s, %s) as r", (task_id, status, Jsonb(data or {}))).fetchone()["r"]
