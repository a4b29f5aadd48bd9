"""Factories for the SLA engine tests: workflows started at a chosen instant, sweeps at chosen
instants, and readers for clocks, alerts and notifications.

Clock events (a task becoming actionable, a pause, a resume, a finish) happen at
private.sla_now(): `at(db, moment)` sets it for the rest of the test's transaction."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from tests.db.factories import make_workflow, start_workflow, tasks_of
from tests.db.view_factories import make_hil_person

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
FIRST_STEP = "identify_lender_contact"  # PAYOFF_REQUEST's first step: 240 business minutes


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def at(conn, moment: datetime) -> None:
    conn.execute("select set_config('rexera.sla_now', %s, true)", (moment.isoformat(),))


def sweep(conn, moment: datetime) -> dict:
    return conn.execute("select public.sla_sweep(%s) as s", (moment,)).fetchone()["s"]


def start_payoff(conn, moment: datetime, **columns) -> tuple[dict, dict]:
    """A PAYOFF_REQUEST started at `moment`: the workflow and its first task (clock running)."""
    at(conn, moment)
    workflow = make_workflow(conn, "PAYOFF_REQUEST", **columns)
    start_workflow(conn, workflow["id"])
    return workflow, tasks_of(conn, workflow["id"])[FIRST_STEP]


def make_team(conn) -> dict:
    """An assignee, a workflow owner and a manager of their own (nobody else's rows point at them)."""
    return {"assignee": make_hil_person(conn).user_id, "owner": make_hil_person(conn).user_id,
            "manager": make_hil_person(conn, "hil_manager").user_id}


def act_on_workflow(conn, workflow_id, action: str, moment: datetime) -> dict:
    at(conn, moment)
    return conn.execute("select public.workflow_action(%s, %s) as r", (workflow_id, action)).fetchone()["r"]


def move_task(conn, task_id, status: str, moment: datetime, **data) -> dict:
    at(conn, moment)
    return conn.execute("select public.transition_task(%s, %s, %s) as r", (task_id, status, Jsonb(data))).fetchone()["r"]


def clock(conn, task_id) -> dict | None:
    return conn.execute("select * from public.sla_tracking where task_id = %s", (task_id,)).fetchone()


def task(conn, task_id) -> dict:
    return conn.execute("select * from public.tasks where id = %s", (task_id,)).fetchone()


def workflow_sla_status(conn, workflow_id) -> str:
    return conn.execute("select sla_status from public.workflows where id = %s", (workflow_id,)).fetchone()["sla_status"]


def alert_levels(conn, task_id) -> list[str]:
    return [r["alert_level"] for r in conn.execute(
        "select alert_level from public.sla_alerts where task_id = %s order by alert_level", (task_id,))]


def sla_notifications(conn, task_id) -> list[tuple]:
    """(recipient, level, target) of the task's SLA notifications, sorted."""
    return sorted((r["recipient_id"], r["data"]["alertLevel"], r["data"]["notifyTarget"]) for r in conn.execute(
        "select recipient_id, data from public.notifications where task_id = %s and notification_type = 'SLA_WARNING'",
        (task_id,)))


def business_add(conn, start: datetime, minutes: int) -> datetime:
    return conn.execute("select public.add_business_minutes(%s, %s) as t", (start, minutes)).fetchone()["t"]
