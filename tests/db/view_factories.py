"""Factories for the views tests: workflows, tasks and notifications with exactly the statuses,
SLA clocks and timestamps a test needs. Run as the service path (before act_as)."""
from __future__ import annotations

import itertools
import uuid

from tests.db.factories import make_workflow
from tests.db.world import CLIENT_A
from tests.support import Person

_numbers = itertools.count(1)

# Legal moves from PENDING to each status (the status triggers refuse shortcuts).
WORKFLOW_PATHS = {
    "PENDING": [],
    "IN_PROGRESS": ["IN_PROGRESS"],
    "AWAITING_REVIEW": ["IN_PROGRESS", "AWAITING_REVIEW"],
    "BLOCKED": ["IN_PROGRESS", "BLOCKED"],
    "PAUSED": ["IN_PROGRESS", "PAUSED"],
    "COMPLETED": ["IN_PROGRESS", "COMPLETED"],
    "FAILED": ["IN_PROGRESS", "FAILED"],
    "CANCELLED": ["CANCELLED"],
}


def set_columns(conn, table, row_id, **columns):
    """Set columns that triggers otherwise keep (updated_at, completed_at, created_at...):
    one update with triggers off (session_replication_role needs the superuser)."""
    conn.execute("set local session_replication_role = replica")
    try:
        assignments = ", ".join(f"{name} = %s" for name in columns)
        conn.execute(f"update public.{table} set {assignments} where id = %s", [*columns.values(), row_id])
    finally:
        conn.execute("set local session_replication_role = origin")
    # The activity counters are kept by the triggers skipped above: recompute this workflow's.
    conn.execute("select private.refresh_activity(array(select workflow_id from public.tasks where id = %s"
                 " union select id from public.workflows where id = %s))", (row_id, row_id))
    return conn.execute(f"select * from public.{table} where id = %s", (row_id,)).fetchone()


def make_hil_person(conn, role="hil_operator") -> Person:
    """A HIL person of their own (no world rows point at them)."""
    user_id = uuid.uuid4()
    email = f"hil-{user_id.hex[:10]}@test.example"
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
    conn.execute("""insert into public.user_profiles (id, email, user_type, role)
                    values (%s, %s, 'hil_user', %s)""", (user_id, email, role))
    return Person(email, role, user_id=user_id)


def make_workflow_in(conn, status="IN_PROGRESS", *, workflow_type="PAYOFF_REQUEST", client_id=CLIENT_A, times=None,
                     **columns):
    """A workflow moved legally to `status`; `times` (created_at, started_at, completed_at,
    updated_at...) set afterwards, as given."""
    workflow = make_workflow(conn, workflow_type, client_id, **columns)
    for step in WORKFLOW_PATHS[status]:
        conn.execute("update public.workflows set status = %s where id = %s", (step, workflow["id"]))
    if times:
        return set_columns(conn, "workflows", workflow["id"], **times)
    return conn.execute("select * from public.workflows where id = %s", (workflow["id"],)).fetchone()


def make_task(conn, workflow, status="PENDING", *, executor_type="AI", completed_at=None, **columns):
    """A task of `workflow` inserted directly with the given status and SLA columns."""
    number = next(_numbers)
    values = {"workflow_id": workflow["id"], "client_id": workflow["client_id"], "task_key": f"view_step_{number}",
              "task_type": "view_step", "title": f"View step {number}", "executor_type": executor_type,
              "status": status, **columns}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    task = conn.execute(f"insert into public.tasks ({names}) values ({marks}) returning *", list(values.values())).fetchone()
    if completed_at is not None:
        return set_columns(conn, "tasks", task["id"], completed_at=completed_at)
    return task


def make_notification(conn, recipient_id, *, notification_type="WORKFLOW_UPDATE", priority="NORMAL", created_at=None,
                      read_at=None, **columns):
    number = next(_numbers)
    values = {"recipient_id": recipient_id, "notification_type": notification_type, "priority": priority,
              "title": f"Notification {number}", "message": f"Message {number}", "read_at": read_at, **columns}
    if created_at is not None:
        values["created_at"] = created_at
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return conn.execute(f"insert into public.notifications ({names}) values ({marks}) returning *",
                        list(values.values())).fetchone()


def make_execution(conn, task, attempt, *, agent_name, status="SUCCEEDED", started_at, cost_usd=None):
    return conn.execute(
        """insert into public.task_executions (task_id, workflow_id, attempt, agent_name, status, started_at, cost_usd)
           values (%s, %s, %s, %s, %s, %s, %s) returning *""",
        (task["id"], task["workflow_id"], attempt, agent_name, status, started_at, cost_usd)).fetchone()


def make_agent_result(conn, task, *, agent_name, created_at, processing_time_ms=None, confidence_score=None,
                      success=True):
    return conn.execute(
        """insert into public.agent_results (task_id, workflow_id, agent_name, success, processing_time_ms,
                                             confidence_score, created_at)
           values (%s, %s, %s, %s, %s, %s, %s) returning *""",
        (task["id"], task["workflow_id"], agent_name, success, processing_time_ms, confidence_score,
         created_at)).fetchone()


def make_sla_alert(conn, task, *, alert_level="RED", raised_at, resolved_at=None, percent_used=90):
    return conn.execute(
        """insert into public.sla_alerts (task_id, workflow_id, client_id, alert_level, percent_used, message,
                                          raised_at, resolved_at)
           values (%s, %s, %s, %s, %s, %s, %s, %s) returning *""",
        (task["id"], task["workflow_id"], task["client_id"], alert_level, percent_used,
         f"{task['title']} at {percent_used} %", raised_at, resolved_at)).fetchone()
