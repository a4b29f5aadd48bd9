"""The read models behind the four views endpoints (dashboard, performance, SLA, notifications)
and marking notifications read: figures on controlled data, ordering by SLA risk, filters,
parameter errors, and what each caller may see.

Every call passes p_now explicitly: P_NOW is a Wednesday, 12:00 in New York (business hours
09:00-17:00 Monday to Friday), so business minutes are easy to count by hand. Counts the
shared world also feeds are compared with a baseline taken in the same transaction.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.db.view_factories import (
    make_agent_result, make_execution, make_hil_person, make_notification, make_sla_alert, make_task,
    make_workflow_in, set_columns,
)
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE, row
from tests.support import act_as, act_as_service

UTC = timezone.utc
P_NOW = datetime(2027, 3, 10, 17, 0, tzinfo=UTC)  # Wednesday 12:00 EST
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
AGENTS = ["cassy", "corey", "florian", "iris", "kosha", "max", "mia", "nina", "rex", "ria"]
NOTIFICATION_TYPES = ["WORKFLOW_UPDATE", "TASK_INTERRUPT", "HIL_MENTION", "CLIENT_MESSAGE_RECEIVED",
                      "COUNTERPARTY_MESSAGE_RECEIVED", "SLA_WARNING", "AGENT_FAILURE"]


# --------------------------------------------------------------------------------------------
# Calling the views
# --------------------------------------------------------------------------------------------
def dashboard(db, hil_id=None, timeframe="today", now=P_NOW):
    return db.execute("select public.dashboard_view(p_hil_id => %s, p_timeframe => %s, p_now => %s) as v",
                      (hil_id, timeframe, now)).fetchone()["v"]


def performance(db, timeframe="week", agent_name=None, workflow_type=None, now=P_NOW):
    return db.execute(
        """select public.performance_view(p_timeframe => %s, p_agent_name => %s, p_workflow_type => %s, p_now => %s) as v""",
        (timeframe, agent_name, workflow_type, now)).fetchone()["v"]


def sla(db, now=P_NOW, limit=100):
    return db.execute("select public.sla_view(p_now => %s, p_limit => %s) as v", (now, limit)).fetchone()["v"]


def notifications(db, unread_only=False, type=None, priority=None, limit=50, offset=0):
    return db.execute(
        """select public.notifications_view(p_unread_only => %s, p_type => %s, p_priority => %s,
                                            p_limit => %s, p_offset => %s) as v""",
        (unread_only, type, priority, limit, offset)).fetchone()["v"]


def mark_read(db, ids=None):
    return db.execute("select public.mark_notifications_read(%s::uuid[]) as n", (ids,)).fetchone()["n"]


def ts(value):
    return None if value is None else datetime.fromisoformat(value)


def ids(items, key="id"):
    return [item[key] for item in items]


def as_text(view) -> str:
    return json.dumps(view)


def minus(after: dict, before: dict) -> dict:
    return {key: after[key] - before[key] for key in after}


QUEUE_ITEM_KEYS = {"taskId", "workflowId", "workflowTitle", "workflowType", "clientId", "taskKey", "title", "status",
                   "priority", "executorType", "agentName", "assignedTo", "slaDueAt", "slaStatus",
                   "businessMinutesRemaining"}
NOTIFICATION_KEYS = {"id", "notificationType", "priority", "title", "message", "actionRequired", "workflowId", "taskId",
                     "readAt", "createdAt"}


# --------------------------------------------------------------------------------------------
# dashboard_view
# --------------------------------------------------------------------------------------------
def test_dashboard_has_every_section(db):
    act_as(db, PEOPLE["operator"])
    view = dashboard(db, timeframe="week")
    assert set(view) == {"timeframe", "generatedAt", "summary", "taskQueue", "activeWorkflows", "team",
                         "recentNotifications", "metrics"}
    assert view["timeframe"] == "week" and ts(view["generatedAt"]) == P_NOW
    assert set(view["summary"]) == {"activeWorkflows", "pendingWorkflows", "completedWorkflows", "tasksAwaitingHil",
                                    "tasksAtRisk", "tasksBreached", "unreadNotifications"}
    assert set(view["metrics"]) == {"workflowsCreated", "workflowsCompleted", "avgCompletionMinutes", "slaComplianceRate"}


def queue(db, **filters):
    """The dashboard's task queue under the console's filters (p_task_status, p_workflow_type,
    p_client_id, p_assigned_to, p_search)."""
    names = ", ".join(f"p_{name} => %s" for name in filters)
    return db.execute(f"select public.dashboard_view(p_now => %s{', ' if names else ''}{names}) as v",
                      (P_NOW, *filters.values())).fetchone()["v"]["taskQueue"]


def test_the_queue_filters_by_status_type_client_assignee_and_a_search(db):
    act_as_service(db)
    payoff = make_workflow_in(db, "IN_PROGRESS", title="Payoff 100% done_ish",
                              payload=Jsonb({"address": "12 Oak Lane, Austin", "loanNumber": "LN-40391"}))
    hoa = make_workflow_in(db, "IN_PROGRESS", workflow_type="HOA_ACQUISITION", client_id=CLIENT_B,
                           payload=Jsonb({"address": "7 Harbor View, Tampa"}))
    failed = make_task(db, payoff, "FAILED")
    review = make_task(db, payoff, "AWAITING_REVIEW", assigned_to=PEOPLE["operator"].user_id)
    hil = make_task(db, hoa, "PENDING", executor_type="HIL")
    mine = {str(failed["id"]), str(review["id"]), str(hil["id"])}

    act_as(db, PEOPLE["operator"])

    def found(**filters):
        return {item["taskId"] for item in queue(db, **filters)} & mine

    assert found() == mine
    assert found(task_status=["FAILED"]) == {str(failed["id"])}
    assert found(task_status=["FAILED", "PENDING"]) == {str(failed["id"]), str(hil["id"])}
    assert found(workflow_type="HOA_ACQUISITION") == {str(hil["id"])}
    assert found(client_id=CLIENT_B) == {str(hil["id"])}
    assert found(assigned_to=PEOPLE["operator"].user_id) == {str(review["id"])}
    both = {str(failed["id"]), str(review["id"])}
    for search in ["ln-40391", "12 OAK", "Austin", str(payoff["id"]), str(payoff["id"]).upper(), "100%", "done_ish"]:
        assert found(search=search) == both, search
    assert found(search="harbor") == {str(hil["id"])}
    # Wildcards are characters: % and _ match themselves only; blank is no search.
    assert found(search="%") == both and found(search="_ish") == both and found(search="o_k") == set()
    assert found(search="   ") == mine and found(search="nothing like it") == set()
    assert found(workflow_type="HOA_ACQUISITION", search="oak") == set()
    # A client user's queue holds their own client's tasks only, whatever the filter asks.
    act_as(db, PEOPLE["client_user_a"])
    assert found(client_id=CLIENT_B) == set()


def test_the_team_says_who_holds_what_and_what_is_overdue(db):
    act_as_service(db)
    helper = make_hil_person(db)
    workflow = make_workflow_in(db, "IN_PROGRESS")
    for status, sla_status in [("PENDING", "ON_TIME"), ("RUNNING", "AT_RISK"), ("FAILED", "BREACHED"),
                               ("AWAITING_REVIEW", "BREACHED"), ("COMPLETED", "BREACHED")]:
        make_task(db, workflow, status, executor_type="HIL", assigned_to=helper.user_id, sla_status=sla_status)
    act_as(db, PEOPLE["manager"])
    team = {p["userId"]: p for p in dashboard(db)["team"]}
    assert team[str(helper.user_id)] == {"userId": str(helper.user_id), "fullName": None,
                                         "email": team[str(helper.user_id)]["email"], "role": "hil_operator",
                                         "openTasks": 4, "atRisk": 1, "breached": 2}
    assert {str(PEOPLE["operator"].user_id), str(PEOPLE["manager"].user_id)} <= set(team)
    # Client people are never on it, and a client user's view shows no HIL people.
    act_as(db, PEOPLE["client_user_a"])
    assert dashboard(db)["team"] == []


def test_dashboard_summary_counts_workflows_and_the_tasks_that_need_a_person(db):
    act_as(db, PEOPLE["operator"])
    before = dashboard(db)["summary"]
    act_as_service(db)
    live = make_workflow_in(db, "IN_PROGRESS")
    for status in ("AWAITING_REVIEW", "BLOCKED", "PAUSED"):
        make_workflow_in(db, status)
    make_workflow_in(db, "PENDING")
    make_workflow_in(db, "PENDING", client_id=CLIENT_B)
    make_workflow_in(db, "COMPLETED", times={"completed_at": P_NOW - HOUR})
    failed = make_workflow_in(db, "FAILED")
    cancelled = make_workflow_in(db, "CANCELLED")
    done = make_workflow_in(db, "COMPLETED", times={"completed_at": P_NOW - 40 * DAY})

    # Needing a person: open HIL steps, and steps awaiting review or failed in unfinished workflows.
    make_task(db, live, "PENDING", executor_type="HIL")                              # +1
    make_task(db, live, "RUNNING", executor_type="HIL", sla_status="AT_RISK")        # +1, at risk
    make_task(db, live, "AWAITING_REVIEW", sla_status="BREACHED")                    # +1, breached
    make_task(db, live, "FAILED")                                                    # +1
    make_task(db, failed, "FAILED")                                                  # +1 (FAILED is not final)
    make_task(db, live, "RUNNING", sla_status="AT_RISK")                             # at risk only
    make_task(db, live, "WAITING", sla_status="BREACHED")                            # breached only
    make_task(db, live, "COMPLETED", executor_type="HIL", sla_status="BREACHED")     # closed: nothing
    make_task(db, live, "SKIPPED", executor_type="HIL")                              # closed: nothing
    make_task(db, live, "FAILED", sla_status="BREACHED")                             # +1; FAILED is not open
    make_task(db, done, "FAILED")                                                    # finished workflow: nothing
    make_task(db, cancelled, "AWAITING_REVIEW")                                      # finished workflow: nothing
    make_task(db, done, "PENDING", executor_type="HIL")                              # an open HIL step: +1

    make_notification(db, PEOPLE["operator"].user_id)
    make_notification(db, PEOPLE["operator"].user_id, read_at=P_NOW - HOUR)
    make_notification(db, PEOPLE["manager"].user_id)

    act_as(db, PEOPLE["operator"])
    assert minus(dashboard(db)["summary"], before) == {
        "activeWorkflows": 4, "pendingWorkflows": 2, "completedWorkflows": 1, "tasksAwaitingHil": 7,
        "tasksAtRisk": 2, "tasksBreached": 2, "unreadNotifications": 1,
    }


def test_dashboard_queue_is_ordered_by_sla_risk_then_due_date_then_priority(db):
    person = make_hil_person(db)
    workflow = make_workflow_in(db, "IN_PROGRESS", hil_owner_id=person.user_id, title="Payoff for queue")
    tasks = {
        "on_time_3h": make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW + 3 * HOUR),
        "on_time_1h": make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW + HOUR),
        "on_time_1h_urgent": make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW + HOUR, priority="URGENT"),
        "at_risk_5h": make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW + 5 * HOUR, sla_status="AT_RISK",
                                priority="LOW"),
        "breached_1h_ago": make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW - HOUR, sla_status="BREACHED"),
        "no_due_date": make_task(db, workflow, executor_type="HIL", priority="URGENT"),
        "breached_2h_ago": make_task(db, workflow, "AWAITING_REVIEW", sla_due_at=P_NOW - 2 * HOUR,
                                     sla_status="BREACHED", priority="LOW", agent_name="iris",
                                     assigned_to=person.user_id),
        "not_needing_anyone": make_task(db, workflow, "RUNNING", sla_due_at=P_NOW - 3 * HOUR, sla_status="BREACHED"),
    }
    act_as(db, PEOPLE["operator"])
    queue = dashboard(db, hil_id=person.user_id)["taskQueue"]

    expected = ["breached_2h_ago", "breached_1h_ago", "at_risk_5h", "on_time_1h_urgent", "on_time_1h", "on_time_3h",
                "no_due_date"]
    assert ids(queue, "taskId") == [str(tasks[name]["id"]) for name in expected]
    # 12:00 on a Wednesday: two hours back is 10:00, five hours on is 17:00 (closing).
    assert [item["businessMinutesRemaining"] for item in queue] == [-120, -60, 300, 60, 60, 180, None]
    first = queue[0]
    assert set(first) == QUEUE_ITEM_KEYS
    assert first == {
        "taskId": str(tasks["breached_2h_ago"]["id"]), "workflowId": str(workflow["id"]),
        "workflowTitle": "Payoff for queue", "workflowType": "PAYOFF_REQUEST", "clientId": str(CLIENT_A),
        "taskKey": tasks["breached_2h_ago"]["task_key"], "title": tasks["breached_2h_ago"]["title"],
        "status": "AWAITING_REVIEW", "priority": "LOW", "executorType": "AI", "agentName": "iris",
        "assignedTo": str(person.user_id), "slaDueAt": first["slaDueAt"], "slaStatus": "BREACHED",
        "businessMinutesRemaining": -120,
    }
    assert ts(first["slaDueAt"]) == P_NOW - 2 * HOUR


def test_dashboard_business_minutes_count_only_business_hours(db):
    person = make_hil_person(db)
    workflow = make_workflow_in(db, "IN_PROGRESS", hil_owner_id=person.user_id)
    # Wednesday 12:00 to Monday 10:00 (EDT from Sunday): Wed 300 + Thu 480 + Fri 480 + Mon 60.
    next_monday = make_task(db, workflow, executor_type="HIL", sla_due_at=datetime(2027, 3, 15, 14, 0, tzinfo=UTC))
    long_overdue = make_task(db, workflow, executor_type="HIL", sla_due_at=P_NOW - 30 * DAY, sla_status="BREACHED")
    act_as(db, PEOPLE["operator"])
    queue = {item["taskId"]: item["businessMinutesRemaining"] for item in dashboard(db, hil_id=person.user_id)["taskQueue"]}
    expected = db.execute("select public.business_minutes_between(%s, %s) as m", (P_NOW, P_NOW - 30 * DAY)).fetchone()["m"]
    assert queue == {str(next_monday["id"]): 1320, str(long_overdue["id"]): expected}
    assert expected < -20 * 8 * 60  # at least 20 business days


def test_dashboard_queue_without_a_person_spans_everyone_and_stops_at_50(db):
    owners = [make_hil_person(db), make_hil_person(db)]
    workflows = [make_workflow_in(db, "IN_PROGRESS", hil_owner_id=owner.user_id) for owner in owners]
    # Overdue for longer than anything else in the database, so they lead the queue.
    tasks = [make_task(db, workflows[i % 2], executor_type="HIL", sla_status="BREACHED",
                       sla_due_at=datetime(2020, 1, 1, tzinfo=UTC) + i * HOUR) for i in range(52)]
    act_as(db, PEOPLE["operator"])
    queue = dashboard(db)["taskQueue"]
    assert len(queue) == 50
    assert ids(queue, "taskId") == [str(task["id"]) for task in tasks[:50]]
    assert {item["workflowId"] for item in queue} == {str(workflow["id"]) for workflow in workflows}


def test_dashboard_person_filter_keeps_their_assigned_tasks_and_their_workflows(db):
    x, y = make_hil_person(db), make_hil_person(db)
    owned_by_x = make_workflow_in(db, "IN_PROGRESS", hil_owner_id=x.user_id)
    paused_of_x = make_workflow_in(db, "PAUSED", hil_owner_id=x.user_id)
    make_workflow_in(db, "COMPLETED", hil_owner_id=x.user_id)
    owned_by_y = make_workflow_in(db, "BLOCKED", hil_owner_id=y.user_id)
    unassigned_in_x = make_task(db, owned_by_x, executor_type="HIL")
    assigned_to_x_in_y = make_task(db, owned_by_y, "AWAITING_REVIEW", assigned_to=x.user_id)
    assigned_to_y_in_y = make_task(db, owned_by_y, executor_type="HIL", assigned_to=y.user_id)
    make_task(db, owned_by_x, "RUNNING", assigned_to=x.user_id)  # an AI step at work: nobody's queue

    act_as(db, PEOPLE["manager"])
    for person, tasks, workflows in [
        (x, [unassigned_in_x, assigned_to_x_in_y], [owned_by_x, paused_of_x]),
        (y, [assigned_to_x_in_y, assigned_to_y_in_y], [owned_by_y]),
    ]:
        view = dashboard(db, hil_id=person.user_id)
        assert set(ids(view["taskQueue"], "taskId")) == {str(task["id"]) for task in tasks}
        assert set(ids(view["activeWorkflows"])) == {str(workflow["id"]) for workflow in workflows}
    everyone = dashboard(db)
    assert {str(owned_by_x["id"]), str(owned_by_y["id"])} <= set(ids(everyone["activeWorkflows"]))


def test_dashboard_active_workflows_come_most_urgent_then_most_recently_updated_with_progress(db):
    person = make_hil_person(db)
    normal_recent = make_workflow_in(db, "IN_PROGRESS", hil_owner_id=person.user_id)
    for status in ("COMPLETED", "COMPLETED", "RUNNING", "SKIPPED"):
        make_task(db, normal_recent, status)
    workflows = {
        "normal_recent": normal_recent,
        "urgent_old": make_workflow_in(db, "AWAITING_REVIEW", hil_owner_id=person.user_id, priority="URGENT"),
        "high": make_workflow_in(db, "BLOCKED", hil_owner_id=person.user_id, priority="HIGH", due_date=P_NOW + DAY),
        "normal_older": make_workflow_in(db, "PAUSED", hil_owner_id=person.user_id),
    }
    make_workflow_in(db, "PENDING", hil_owner_id=person.user_id)
    make_workflow_in(db, "FAILED", hil_owner_id=person.user_id)
    for name, hours_ago in {"normal_recent": 1, "urgent_old": 5, "high": 2, "normal_older": 3}.items():
        workflows[name] = set_columns(db, "workflows", workflows[name]["id"], updated_at=P_NOW - hours_ago * HOUR)

    act_as(db, PEOPLE["operator"])
    active = dashboard(db, hil_id=person.user_id)["activeWorkflows"]
    assert ids(active) == [str(workflows[name]["id"]) for name in ("urgent_old", "high", "normal_recent", "normal_older")]
    by_id = {item["id"]: item for item in active}
    # Four tasks, one skipped: two of three done.
    assert by_id[str(normal_recent["id"])]["progress"] == {"totalTasks": 3, "completedTasks": 2, "progressPercentage": 67}
    assert by_id[str(workflows["normal_older"]["id"])]["progress"] == {"totalTasks": 0, "completedTasks": 0,
                                                                       "progressPercentage": 0}
    high = by_id[str(workflows["high"]["id"])]
    assert set(high) == {"id", "title", "workflowType", "status", "priority", "clientId", "hilOwnerId", "dueDate",
                         "updatedAt", "slaStatus", "progress"}
    assert (high["status"], high["priority"], high["hilOwnerId"], high["clientId"], high["slaStatus"]) == (
        "BLOCKED", "HIGH", str(person.user_id), str(CLIENT_A), "ON_TIME")
    assert ts(high["dueDate"]) == P_NOW + DAY and ts(high["updatedAt"]) == P_NOW - 2 * HOUR


def test_dashboard_recent_notifications_are_the_callers_ten_newest(db):
    person = make_hil_person(db)
    mine = [make_notification(db, person.user_id, created_at=P_NOW - i * MINUTE,
                              read_at=P_NOW if i % 4 == 0 else None) for i in range(1, 13)]
    make_notification(db, PEOPLE["manager"].user_id, created_at=P_NOW)
    act_as(db, person)
    view = dashboard(db)
    assert ids(view["recentNotifications"]) == [str(n["id"]) for n in mine[:10]]
    assert set(view["recentNotifications"][0]) == NOTIFICATION_KEYS
    assert view["summary"]["unreadNotifications"] == 9


def test_dashboard_recent_notifications_item(db):
    person = make_hil_person(db)
    workflow = make_workflow_in(db, "IN_PROGRESS")
    task = make_task(db, workflow, executor_type="HIL")
    made = make_notification(db, person.user_id, notification_type="SLA_WARNING", priority="URGENT",
                             created_at=P_NOW - HOUR, action_required=True, workflow_id=workflow["id"],
                             task_id=task["id"], title="SLA at risk", message="Find lender is at 80 %")
    act_as(db, person)
    item = dashboard(db)["recentNotifications"][0]
    assert item == {"id": str(made["id"]), "notificationType": "SLA_WARNING", "priority": "URGENT",
                    "title": "SLA at risk", "message": "Find lender is at 80 %", "actionRequired": True,
                    "workflowId": str(workflow["id"]), "taskId": str(task["id"]), "readAt": None,
                    "createdAt": item["createdAt"]}
    assert ts(item["createdAt"]) == P_NOW - HOUR


@pytest.mark.parametrize("timeframe, created, completed, avg_minutes, compliance", [
    ("today", 1, 1, 180.0, 0.5),
    ("week", 2, 2, 810.0, 0.6667),
    ("month", 3, 3, 1020.0, 0.5),
])
def test_dashboard_metrics_cover_the_timeframe(db, timeframe, created, completed, avg_minutes, compliance):
    act_as(db, PEOPLE["operator"])
    before = dashboard(db, timeframe=timeframe)
    act_as_service(db)
    for age in (2 * HOUR, 3 * DAY, 20 * DAY, 40 * DAY):
        make_workflow_in(db, "PENDING", times={"created_at": P_NOW - age})
    finished = None
    for start, end in [(5 * HOUR, 2 * HOUR), (4 * DAY, 3 * DAY), (21 * DAY, 20 * DAY), (41 * DAY, 40 * DAY)]:
        finished = make_workflow_in(db, "COMPLETED", times={
            "created_at": P_NOW - 60 * DAY, "started_at": P_NOW - start, "completed_at": P_NOW - end})
    # Completed tasks: on time, late, on time, late, on time (by age).
    for done, due in [(HOUR, 30 * MINUTE), (2 * HOUR, 3 * HOUR), (3 * DAY, 2 * DAY), (20 * DAY, 21 * DAY),
                      (40 * DAY, 39 * DAY)]:
        make_task(db, finished, "COMPLETED", completed_at=P_NOW - done, sla_due_at=P_NOW - due)
    make_task(db, finished, "COMPLETED", completed_at=P_NOW - HOUR)  # no due date: not counted
    make_task(db, finished, "FAILED", sla_due_at=P_NOW - 30 * MINUTE)  # not completed: not counted

    act_as(db, PEOPLE["operator"])
    view = dashboard(db, timeframe=timeframe)
    assert view["metrics"] == {
        "workflowsCreated": before["metrics"]["workflowsCreated"] + created,
        "workflowsCompleted": completed,
        "avgCompletionMinutes": avg_minutes,
        "slaComplianceRate": compliance,
    }
    assert view["summary"]["completedWorkflows"] == completed


def test_dashboard_metrics_are_null_without_completions(db):
    act_as(db, PEOPLE["operator"])
    metrics = dashboard(db, now=datetime(2031, 6, 4, 16, 0, tzinfo=UTC))["metrics"]
    assert metrics == {"workflowsCreated": 0, "workflowsCompleted": 0, "avgCompletionMinutes": None,
                       "slaComplianceRate": None}


@pytest.mark.parametrize("timeframe", ["year", "", "TODAY", None])
def test_dashboard_refuses_an_unknown_timeframe(db, timeframe):
    act_as(db, PEOPLE["operator"])
    with pytest.raises(errors.InvalidParameterValue, match="timeframe"), db.transaction():
        dashboard(db, timeframe=timeframe)


def test_dashboard_of_a_client_user_holds_only_their_own_client(db):
    act_as(db, PEOPLE["client_user_b"])
    b_before = dashboard(db, timeframe="month")
    act_as(db, PEOPLE["client_user_a"])
    a_before = dashboard(db, timeframe="month")
    act_as_service(db)
    secret = make_workflow_in(db, "IN_PROGRESS", hil_owner_id=PEOPLE["operator"].user_id, title="Client A secret")
    queued = make_task(db, secret, executor_type="HIL", sla_due_at=P_NOW - HOUR, sla_status="BREACHED")
    make_task(db, secret, "RUNNING", sla_status="AT_RISK")
    make_workflow_in(db, "COMPLETED", times={"completed_at": P_NOW - HOUR, "created_at": P_NOW - 2 * HOUR})
    make_notification(db, PEOPLE["client_user_a"].user_id, created_at=P_NOW)

    act_as(db, PEOPLE["client_user_b"])
    b_after = dashboard(db, timeframe="month")
    assert b_after == b_before
    assert "aaaaaaaa" not in as_text(b_after) and str(secret["id"]) not in as_text(b_after)
    assert str(CLIENT_A) not in as_text(b_after)
    # Client B still sees its own world: B101 in progress, B102 pending, its own notification.
    assert ids(b_after["activeWorkflows"]) == [str(row("B101"))]
    assert (b_after["summary"]["activeWorkflows"], b_after["summary"]["pendingWorkflows"]) == (1, 1)
    assert ids(b_after["recentNotifications"]) == [str(row("B701"))]
    assert dashboard(db, hil_id=PEOPLE["operator"].user_id, timeframe="month")["taskQueue"] == []

    act_as(db, PEOPLE["client_user_a"])
    a_after = dashboard(db, timeframe="month")
    assert minus(a_after["summary"], a_before["summary"]) == {
        "activeWorkflows": 1, "pendingWorkflows": 0, "completedWorkflows": 1, "tasksAwaitingHil": 1,
        "tasksAtRisk": 1, "tasksBreached": 1, "unreadNotifications": 1}
    assert ids(a_after["taskQueue"], "taskId") == [str(queued["id"])]
    assert "bbbbbbbb" not in as_text(a_after)


# --------------------------------------------------------------------------------------------
# performance_view
# --------------------------------------------------------------------------------------------
def hoa_workflow(db, status, created_ago, run=None, **columns):
    times = {"created_at": P_NOW - created_ago}
    if run:
        times.update(started_at=P_NOW - run[0], completed_at=P_NOW - run[1])
    return make_workflow_in(db, status, workflow_type="HOA_ACQUISITION", times=times, **columns)


def test_performance_system_figures_cover_the_workflows_created_in_the_window(db):
    first = hoa_workflow(db, "COMPLETED", 2 * DAY, run=(2 * DAY, 2 * DAY - HOUR))
    hoa_workflow(db, "COMPLETED", 3 * DAY, run=(3 * DAY, 3 * DAY - 2 * HOUR))
    failed = hoa_workflow(db, "FAILED", 4 * DAY)
    hoa_workflow(db, "IN_PROGRESS", 5 * DAY)
    too_old = hoa_workflow(db, "COMPLETED", 10 * DAY, run=(10 * DAY, 9 * DAY))
    done = [make_task(db, first, status) for status in ("COMPLETED", "COMPLETED", "SKIPPED")]
    make_task(db, failed, "FAILED")
    make_task(db, too_old, "COMPLETED")
    make_execution(db, done[0], 1, agent_name="corey", started_at=P_NOW - DAY, cost_usd=0.10)
    make_execution(db, done[1], 1, agent_name="corey", started_at=P_NOW - DAY, cost_usd=0.25)
    make_execution(db, done[0], 2, agent_name="corey", started_at=P_NOW - DAY)  # no cost reported
    old_task = make_task(db, too_old, "COMPLETED")
    make_execution(db, old_task, 1, agent_name="corey", started_at=P_NOW - 9 * DAY, cost_usd=5)

    act_as(db, PEOPLE["operator"])
    view = performance(db, workflow_type="HOA_ACQUISITION")
    assert view["timeframe"] == "week" and ts(view["generatedAt"]) == P_NOW
    assert view["system"] == {
        "totalWorkflows": 4, "completedWorkflows": 2, "failedWorkflows": 1, "successRate": 0.6667,
        "avgCompletionMinutes": 90.0, "totalTasks": 3, "totalCostUsd": 0.35,
    }
    assert performance(db, "today", workflow_type="HOA_ACQUISITION")["system"] == {
        "totalWorkflows": 0, "completedWorkflows": 0, "failedWorkflows": 0, "successRate": None,
        "avgCompletionMinutes": None, "totalTasks": 0, "totalCostUsd": 0,
    }
    assert performance(db, "month", workflow_type="HOA_ACQUISITION")["system"]["totalWorkflows"] == 5


def test_performance_workflow_type_filter_leaves_other_types_out(db):
    act_as(db, PEOPLE["operator"])
    before = performance(db, "month", workflow_type="MUNI_LIEN_SEARCH")
    act_as_service(db)
    hoa_workflow(db, "COMPLETED", DAY, run=(DAY, DAY - HOUR))
    act_as(db, PEOPLE["operator"])
    assert performance(db, "month", workflow_type="MUNI_LIEN_SEARCH") == before
    assert [t["workflowType"] for t in before["workflowTypes"]] == ["MUNI_LIEN_SEARCH"]


def test_performance_lists_every_agent_with_its_executions_and_results(db):
    workflow = hoa_workflow(db, "IN_PROGRESS", DAY)
    task = make_task(db, workflow, "RUNNING", agent_name="corey")
    for attempt, (status, cost, age) in enumerate([
        ("SUCCEEDED", 0.10, HOUR), ("SUCCEEDED", 0.30, 2 * HOUR), ("FAILED", 0.05, 3 * HOUR), ("RUNNING", None, MINUTE),
        ("SUCCEEDED", 9, 10 * DAY),  # before the window
    ], start=1):
        make_execution(db, task, attempt, agent_name="corey", status=status, started_at=P_NOW - age, cost_usd=cost)
    make_agent_result(db, task, agent_name="corey", created_at=P_NOW - HOUR, processing_time_ms=1000, confidence_score=0.8)
    make_agent_result(db, task, agent_name="corey", created_at=P_NOW - DAY, processing_time_ms=2001, confidence_score=0.9)
    make_agent_result(db, task, agent_name="corey", created_at=P_NOW - 9 * DAY, processing_time_ms=9000,
                      confidence_score=0.1)

    act_as(db, PEOPLE["operator"])
    agents = {a["agentName"]: a for a in performance(db)["agents"]}
    assert list(agents) == AGENTS
    assert agents["corey"] == {
        "agentName": "corey", "displayName": "Corey", "tasks": 4, "successRate": 0.6667,
        "avgProcessingTimeMs": 1501, "avgConfidence": 0.85, "costPerTaskUsd": 0.1125, "totalCostUsd": 0.45,
    }
    assert agents["max"] == {
        "agentName": "max", "displayName": "Max", "tasks": 0, "successRate": None, "avgProcessingTimeMs": None,
        "avgConfidence": None, "costPerTaskUsd": None, "totalCostUsd": 0,
    }
    assert performance(db, agent_name="corey")["agents"] == [agents["corey"]]
    assert performance(db, agent_name="nobody")["agents"] == []
    # Only executions in workflows of the type asked for.
    assert {a["agentName"]: a["tasks"] for a in performance(db, workflow_type="PAYOFF_REQUEST")["agents"]}["corey"] == 0


def test_performance_workflow_types_take_sla_compliance_from_the_daily_rollups(db):
    for day, task_type, on_time, total in [
        ("2027-03-09", "research_hoa_contact", 8, 10), ("2027-03-04", "make_phone_call", 1, 2),
        ("2027-02-28", "make_phone_call", 0, 10),  # before the week
    ]:
        db.execute("""insert into public.sla_performance_metrics (metric_date, workflow_type, task_type, tasks_total,
                                                                  tasks_on_time)
                      values (%s, 'HOA_ACQUISITION', %s, %s, %s)""", (day, task_type, total, on_time))
    hoa_workflow(db, "COMPLETED", DAY + HOUR, run=(DAY, DAY - 30 * MINUTE))
    hoa_workflow(db, "FAILED", 2 * DAY)

    act_as(db, PEOPLE["operator"])
    types = performance(db)["workflowTypes"]
    assert [t["workflowType"] for t in types] == ["MUNI_LIEN_SEARCH", "HOA_ACQUISITION", "PAYOFF_REQUEST"]
    assert types[1] == {"workflowType": "HOA_ACQUISITION", "total": 2, "completed": 1, "failed": 1,
                        "avgCompletionMinutes": 30.0, "slaComplianceRate": 0.75, "daily": [
                            {"date": "2027-03-04", "tasksTotal": 2, "tasksOnTime": 1, "complianceRate": 0.5},
                            {"date": "2027-03-09", "tasksTotal": 10, "tasksOnTime": 8, "complianceRate": 0.8}]}
    assert types[0]["daily"] == []
    assert performance(db, "month")["workflowTypes"][1]["slaComplianceRate"] == 0.4091  # 9 / 22
    # 'today' spans two calendar dates (yesterday noon to now): yesterday's rollup counts.
    assert performance(db, "today", workflow_type="HOA_ACQUISITION")["workflowTypes"] == [
        {"workflowType": "HOA_ACQUISITION", "total": 0, "completed": 0, "failed": 0, "avgCompletionMinutes": None,
         "slaComplianceRate": 0.8,
         "daily": [{"date": "2027-03-09", "tasksTotal": 10, "tasksOnTime": 8, "complianceRate": 0.8}]}]


@pytest.mark.parametrize("timeframe", ["quarter", None])
def test_performance_view_refuses_an_unknown_timeframe(db, timeframe):
    act_as(db, PEOPLE["operator"])
    with pytest.raises(errors.InvalidParameterValue, match="timeframe"), db.transaction():
        performance(db, timeframe)


def test_performance_view_of_a_client_user_holds_only_their_own_client(db):
    act_as(db, PEOPLE["client_user_b"])
    b_before = performance(db, "month")
    act_as_service(db)
    workflow = hoa_workflow(db, "COMPLETED", DAY, run=(DAY, DAY - HOUR))
    task = make_task(db, workflow, "COMPLETED")
    make_execution(db, task, 1, agent_name="corey", started_at=P_NOW - DAY, cost_usd=1.5)

    act_as(db, PEOPLE["client_user_b"])
    assert performance(db, "month") == b_before
    act_as(db, PEOPLE["client_user_a"])
    view = performance(db, "month", workflow_type="HOA_ACQUISITION")
    # Their workflow counts; costs and the agent catalog are internal.
    assert (view["system"]["totalWorkflows"], view["system"]["completedWorkflows"]) == (1, 1)
    assert view["system"]["totalCostUsd"] == 0
    assert view["agents"] == []
    assert view["workflowTypes"][0]["slaComplianceRate"] is None


# --------------------------------------------------------------------------------------------
# sla_view
# --------------------------------------------------------------------------------------------
def test_sla_summary_counts_the_open_clocks_by_sla_status(db):
    act_as(db, PEOPLE["operator"])
    before = sla(db)["summary"]
    act_as_service(db)
    workflow = make_workflow_in(db, "IN_PROGRESS")
    for status, sla_status in [("PENDING", "ON_TIME"), ("RUNNING", "ON_TIME"), ("WAITING", "AT_RISK"),
                               ("AWAITING_REVIEW", "BREACHED")]:
        make_task(db, workflow, status, sla_status=sla_status, sla_due_at=P_NOW + HOUR)
    make_task(db, workflow, "RUNNING", sla_status="BREACHED")  # no due date
    make_task(db, workflow, "COMPLETED", sla_status="BREACHED", sla_due_at=P_NOW - HOUR)  # closed
    make_task(db, workflow, "FAILED", sla_status="AT_RISK", sla_due_at=P_NOW - HOUR)  # not open

    act_as(db, PEOPLE["operator"])
    summary = sla(db)["summary"]
    counts = {key: summary[key] - before[key] for key in ("active", "onTime", "atRisk", "breached")}
    assert counts == {"active": 4, "onTime": 2, "atRisk": 1, "breached": 1}
    assert summary["complianceRate"] == round(summary["onTime"] / summary["active"], 4)


def test_sla_compliance_rate_is_null_without_open_clocks(db):
    act_as(db, PEOPLE["operator"])
    summary = sla(db)["summary"]  # the world's open tasks have no due date
    assert summary == {"active": 0, "onTime": 0, "atRisk": 0, "breached": 0, "complianceRate": None}


def test_sla_tracking_is_ordered_by_risk_with_business_time_left_and_used(db):
    workflow = make_workflow_in(db, "IN_PROGRESS")

    def clock(sla_status, due, started, minutes, **columns):
        return make_task(db, workflow, "RUNNING", sla_status=sla_status, sla_due_at=P_NOW + due,
                         sla_started_at=None if started is None else P_NOW + started, sla_minutes=minutes, **columns)

    tasks = {
        # Started 11:00 today, 240 minutes: 60 used.
        "on_time": clock("ON_TIME", 3 * HOUR, -HOUR, 240),
        # Started Tuesday 16:00 and paused since (its due date moved on resume): 60 business
        # minutes left of 120, so 60 used, whatever the wall clock says.
        "at_risk": clock("AT_RISK", HOUR, -20 * HOUR, 120),
        # Same due date as on_time but more urgent; no clock start known.
        "on_time_urgent": clock("ON_TIME", 3 * HOUR, None, None, priority="URGENT"),
        # The clock starts in an hour: nothing used yet.
        "not_started": clock("ON_TIME", 5 * HOUR, HOUR, 60),
        # Started 08:00 (before opening), due 10:00, 60 minutes: 180 used.
        "breached": clock("BREACHED", -2 * HOUR, -4 * HOUR, 60),
    }
    act_as(db, PEOPLE["operator"])
    view = sla(db)
    assert ts(view["generatedAt"]) == P_NOW
    order = ["breached", "at_risk", "on_time_urgent", "on_time", "not_started"]
    assert ids(view["tracking"], "taskId") == [str(tasks[name]["id"]) for name in order]
    figures = {item["taskId"]: (item["businessMinutesRemaining"], item["percentUsed"]) for item in view["tracking"]}
    assert [figures[str(tasks[name]["id"])] for name in order] == [
        (-120, 300.0), (60, 50.0), (180, None), (180, 25.0), (300, 0.0)]
    item = view["tracking"][0]
    assert item == {
        "taskId": str(tasks["breached"]["id"]), "workflowId": str(workflow["id"]),
        "taskKey": tasks["breached"]["task_key"], "title": tasks["breached"]["title"], "status": "RUNNING",
        "slaStatus": "BREACHED", "slaStartedAt": item["slaStartedAt"], "slaDueAt": item["slaDueAt"],
        "slaMinutes": 60, "businessMinutesRemaining": -120, "percentUsed": 300.0,
    }
    assert (ts(item["slaStartedAt"]), ts(item["slaDueAt"])) == (P_NOW - 4 * HOUR, P_NOW - 2 * HOUR)
    assert ids(sla(db, limit=2)["tracking"], "taskId") == [str(tasks[name]["id"]) for name in order[:2]]


def test_sla_alerts_are_the_open_ones_newest_first(db):
    workflow = make_workflow_in(db, "IN_PROGRESS")
    task = make_task(db, workflow, "RUNNING", sla_due_at=P_NOW + HOUR)
    older = make_sla_alert(db, task, alert_level="ORANGE", raised_at=P_NOW - 2 * HOUR, percent_used=75)
    newer = make_sla_alert(db, task, alert_level="RED", raised_at=P_NOW - HOUR, percent_used=90)
    resolved = make_sla_alert(db, task, alert_level="YELLOW", raised_at=P_NOW - 30 * MINUTE,
                              resolved_at=P_NOW - 10 * MINUTE)
    act_as(db, PEOPLE["operator"])
    alerts = sla(db)["alerts"]
    mine = [alert for alert in alerts if alert["taskId"] == str(task["id"])]
    assert ids(mine) == [str(newer["id"]), str(older["id"])]
    assert str(resolved["id"]) not in ids(alerts)
    assert mine[0] == {"id": str(newer["id"]), "taskId": str(task["id"]), "workflowId": str(workflow["id"]),
                       "alertLevel": "RED", "percentUsed": 90, "message": newer["message"],
                       "raisedAt": mine[0]["raisedAt"], "acknowledgedAt": None, "acknowledgedBy": None}
    assert ts(mine[0]["raisedAt"]) == P_NOW - HOUR
    raised = [ts(alert["raisedAt"]) for alert in alerts]
    assert raised == sorted(raised, reverse=True)


@pytest.mark.parametrize("limit", [0, 501, -1, None])
def test_sla_view_refuses_a_limit_outside_1_to_500(db, limit):
    act_as(db, PEOPLE["operator"])
    with pytest.raises(errors.InvalidParameterValue, match="limit"), db.transaction():
        sla(db, limit=limit)


def test_sla_view_of_a_client_user_holds_only_their_own_tasks_and_no_alerts(db):
    act_as(db, PEOPLE["client_user_b"])
    b_before = sla(db)
    act_as_service(db)
    workflow = make_workflow_in(db, "IN_PROGRESS")
    task = make_task(db, workflow, "RUNNING", sla_status="AT_RISK", sla_due_at=P_NOW + HOUR)
    make_sla_alert(db, task, raised_at=P_NOW - MINUTE)

    act_as(db, PEOPLE["client_user_b"])
    b_after = sla(db)
    assert b_after == b_before and b_after["alerts"] == []
    assert str(task["id"]) not in as_text(b_after)
    act_as(db, PEOPLE["client_user_a"])
    a_view = sla(db)
    assert ids(a_view["tracking"], "taskId") == [str(task["id"])]
    assert a_view["summary"]["atRisk"] == 1
    assert a_view["alerts"] == []  # SLA alerts are for HIL eyes


# --------------------------------------------------------------------------------------------
# notifications_view and mark_notifications_read
# --------------------------------------------------------------------------------------------
@pytest.fixture
def inbox(db):
    """A person with five notifications, newest first: n1 .. n5 (n3 read)."""
    person = make_hil_person(db)
    made = {}
    for i, (kind, priority, read) in enumerate([
        ("WORKFLOW_UPDATE", "NORMAL", False), ("SLA_WARNING", "HIGH", False), ("SLA_WARNING", "URGENT", True),
        ("HIL_MENTION", "NORMAL", False), ("SLA_WARNING", "HIGH", False),
    ], start=1):
        made[f"n{i}"] = make_notification(db, person.user_id, notification_type=kind, priority=priority,
                                          created_at=P_NOW - i * MINUTE, read_at=P_NOW if read else None)
    make_notification(db, PEOPLE["manager"].user_id, notification_type="SLA_WARNING")
    return person, {name: str(n["id"]) for name, n in made.items()}


def counts(by_type=None, by_priority=None):
    return ({kind: (by_type or {}).get(kind, 0) for kind in NOTIFICATION_TYPES},
            {p: (by_priority or {}).get(p, 0) for p in ("LOW", "NORMAL", "HIGH", "URGENT")})


def test_notifications_view_lists_the_callers_notifications_newest_first_with_counts(db, inbox):
    person, n = inbox
    act_as(db, person)
    view = notifications(db)
    assert ids(view["notifications"]) == [n["n1"], n["n2"], n["n3"], n["n4"], n["n5"]]
    assert set(view["notifications"][0]) == NOTIFICATION_KEYS
    assert (view["totalCount"], view["hasMore"], view["unreadCount"]) == (5, False, 4)
    assert (view["countsByType"], view["countsByPriority"]) == counts(
        {"WORKFLOW_UPDATE": 1, "SLA_WARNING": 3, "HIL_MENTION": 1}, {"NORMAL": 2, "HIGH": 2, "URGENT": 1})


@pytest.mark.parametrize("filters, expected", [
    ({"unread_only": True}, ["n1", "n2", "n4", "n5"]),
    ({"type": "SLA_WARNING"}, ["n2", "n3", "n5"]),
    ({"priority": "HIGH"}, ["n2", "n5"]),
    ({"unread_only": True, "type": "SLA_WARNING"}, ["n2", "n5"]),
    ({"type": "AGENT_FAILURE"}, []),
])
def test_notifications_view_filters(db, inbox, filters, expected):
    person, n = inbox
    act_as(db, person)
    view = notifications(db, **filters)
    assert ids(view["notifications"]) == [n[name] for name in expected]
    assert view["totalCount"] == len(expected)
    assert view["unreadCount"] == 4
    # Counts by type and priority follow unread_only only, not the type or priority asked for.
    if filters.get("unread_only"):
        assert view["countsByType"]["SLA_WARNING"] == 2 and view["countsByPriority"]["URGENT"] == 0
    else:
        assert view["countsByType"]["SLA_WARNING"] == 3 and view["countsByPriority"]["URGENT"] == 1


@pytest.mark.parametrize("limit, offset, expected, has_more", [
    (2, 0, ["n1", "n2"], True),
    (2, 2, ["n3", "n4"], True),
    (2, 4, ["n5"], False),
    (5, 0, ["n1", "n2", "n3", "n4", "n5"], False),
    (2, 10, [], False),
])
def test_notifications_view_pages(db, inbox, limit, offset, expected, has_more):
    person, n = inbox
    act_as(db, person)
    view = notifications(db, limit=limit, offset=offset)
    assert ids(view["notifications"]) == [n[name] for name in expected]
    assert (view["totalCount"], view["hasMore"]) == (5, has_more)


@pytest.mark.parametrize("paging", [{"limit": 0}, {"limit": 201}, {"limit": None}, {"offset": -1}, {"offset": None}])
def test_notifications_view_refuses_bad_paging(db, paging):
    act_as(db, PEOPLE["operator"])
    with pytest.raises(errors.InvalidParameterValue), db.transaction():
        notifications(db, **paging)


@pytest.mark.parametrize("person, expected", [
    ("client_user_a", "A701"), ("client_user_b", "B701"), ("operator", "A702 B702"), ("manager", ""),
    ("client_admin_a", ""),
])
def test_notifications_view_shows_only_the_callers_own(db, person, expected):
    act_as(db, PEOPLE[person])
    view = notifications(db)
    assert set(ids(view["notifications"])) == {str(row(code)) for code in expected.split()}
    assert view["totalCount"] == view["unreadCount"] == len(expected.split())
    assert sum(view["countsByType"].values()) == len(expected.split())


def test_the_service_path_has_no_notifications_of_its_own(db):
    view = notifications(db)
    assert (view["notifications"], view["totalCount"], view["unreadCount"]) == ([], 0, 0)
    assert mark_read(db) == 0
    assert db.execute("select count(*) as n from public.notifications where read_at is not null").fetchone()["n"] == 0


def test_mark_notifications_read_marks_only_the_callers_unread_ones(db, inbox):
    person, n = inbox
    read_before = db.execute("select read_at from public.notifications where id = %s", (n["n3"],)).fetchone()["read_at"]
    act_as(db, person)
    assert mark_read(db, [n["n1"], str(row("A701")), str(row("A702"))]) == 1
    assert notifications(db)["unreadCount"] == 3
    assert mark_read(db) == 3
    assert mark_read(db) == 0
    assert mark_read(db, []) == 0
    act_as_service(db)
    states = {str(r["id"]): r["read_at"] for r in db.execute(
        "select id, read_at from public.notifications where id = any(%s)",
        ([n[k] for k in n] + [str(row("A701")), str(row("A702"))],))}
    assert all(states[n[name]] is not None for name in ("n1", "n2", "n4", "n5"))
    assert states[n["n3"]] == read_before  # already read: left alone
    assert states[str(row("A701"))] is None and states[str(row("A702"))] is None


def test_a_client_user_cannot_mark_another_persons_notifications_read(db):
    act_as(db, PEOPLE["client_user_b"])
    assert mark_read(db, [str(row("A701")), str(row("A702"))]) == 0
    assert mark_read(db) == 1  # B701, their own
    act_as_service(db)
    unread = {r["id"] for r in db.execute("select id from public.notifications where read_at is null")}
    assert {row("A701"), row("A702"), row("B702")} <= unread and row("B701") not in unread


# --------------------------------------------------------------------------------------------
# Rights and the business-time helper
# --------------------------------------------------------------------------------------------
CALLS = {
    "dashboard_view": "select public.dashboard_view()",
    "performance_view": "select public.performance_view()",
    "sla_view": "select public.sla_view()",
    "notifications_view": "select public.notifications_view()",
    "mark_notifications_read": "select public.mark_notifications_read()",
}


@pytest.mark.parametrize("function", list(CALLS))
def test_views_are_refused_to_anonymous_callers(db, function):
    act_as(db, PEOPLE["anon"])
    with pytest.raises(errors.InsufficientPrivilege), db.transaction():
        db.execute(CALLS[function])


@pytest.mark.parametrize("function", list(CALLS))
def test_views_answer_signed_in_people_and_agents(db, function):
    for person in ("operator", "client_admin_a", "agent_a", "unprovisioned"):
        act_as(db, PEOPLE[person])
        db.execute(CALLS[function])


def test_views_run_with_the_callers_rights(db):
    found = {r["proname"]: r for r in db.execute(
        """select p.proname, p.prosecdef, p.provolatile,
                  has_function_privilege('anon', p.oid, 'execute') as anon,
                  has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
                  has_function_privilege('service_role', p.oid, 'execute') as service_role
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'public' and p.proname = any(%s)""", (list(CALLS),))}
    assert set(found) == set(CALLS)
    for name, fn in found.items():
        assert fn["prosecdef"] is False, name
        assert fn["provolatile"] == ("v" if name == "mark_notifications_read" else "s"), name
        assert (fn["anon"], fn["authenticated"], fn["service_role"]) == (False, True, True), name


def business_minutes_pairs(seed: int, count: int):
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pairs = [(start + timedelta(minutes=rng.randrange(0, 700 * 24 * 60)),
              start + timedelta(minutes=rng.randrange(0, 700 * 24 * 60), seconds=rng.randrange(0, 60)))
             for _ in range(count)]
    # Short spans around the DST changes, holidays, weekends and closing times.
    for anchor in ("2026-03-08T06:30:00+00:00", "2026-11-01T05:30:00+00:00", "2027-03-14T06:59:59+00:00",
                   "2026-07-03T13:00:00+00:00", "2026-12-24T21:59:00+00:00", "2027-01-01T14:00:00+00:00"):
        base = datetime.fromisoformat(anchor)
        for _ in range(15):
            pairs.append((base + timedelta(minutes=rng.randrange(-3000, 3000)),
                          base + timedelta(minutes=rng.randrange(-3000, 3000))))
    pairs += [(P_NOW, P_NOW), (P_NOW, P_NOW + 5 * HOUR), (P_NOW + 5 * HOUR, P_NOW), (None, P_NOW), (P_NOW, None),
              (None, None), (datetime(2027, 3, 10, 22, 0, tzinfo=UTC), datetime(2027, 3, 11, 14, 0, tzinfo=UTC))]
    return pairs


def assert_many_matches_one_by_one(db, pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    many = db.execute("select private.business_minutes_many(%s::timestamptz[], %s::timestamptz[]) as m",
                      (a, b)).fetchone()["m"]
    one_by_one = [r["m"] for r in db.execute(
        """select public.business_minutes_between(x.a, x.b) as m
             from unnest(%s::timestamptz[], %s::timestamptz[]) with ordinality as x (a, b, ord) order by x.ord""",
        (a, b))]
    mismatches = [(pairs[i], many[i], one_by_one[i]) for i in range(len(pairs)) if many[i] != one_by_one[i]]
    assert mismatches == []
    assert len(many) == len(pairs)


def test_business_minutes_in_bulk_match_business_minutes_between(db):
    act_as(db, PEOPLE["operator"])
    assert_many_matches_one_by_one(db, business_minutes_pairs(seed=7, count=400))


def test_business_minutes_in_bulk_match_on_an_unusual_calendar(db):
    # Hours that cross the DST changes (01:30-03:00 on Sundays), a full day on Saturdays,
    # short Mondays, and a different zone.
    db.execute("delete from public.business_hours_config")
    db.execute("""insert into public.business_hours_config (weekday, opens_at, closes_at, timezone) values
                    (1, '10:00', '12:00', 'Europe/Berlin'), (2, '09:00', '17:00', 'Europe/Berlin'),
                    (3, '09:00', '17:00', 'Europe/Berlin'), (4, '09:00', '17:00', 'Europe/Berlin'),
                    (5, '09:00', '17:00', 'Europe/Berlin'), (6, '00:00', '24:00', 'Europe/Berlin'),
                    (7, '01:30', '03:00', 'Europe/Berlin')""")
    pairs = business_minutes_pairs(seed=11, count=300)
    for anchor in ("2026-03-29T00:00:00+00:00", "2026-10-25T00:00:00+00:00"):  # EU changes
        base = datetime.fromisoformat(anchor)
        pairs += [(base + timedelta(minutes=m), base + timedelta(minutes=m + d))
                  for m in range(-120, 240, 37) for d in (-500, 15, 90, 2000)]
    assert_many_matches_one_by_one(db, pairs)


def test_business_minutes_in_bulk_need_business_hours(db):
    db.execute("delete from public.business_hours_config")
    with pytest.raises(errors.InvalidParameterValue, match="no business hours"), db.transaction():
        db.execute("select private.business_minutes_many(array[now()], array[now()])")
    # Nothing to compute needs no calendar: the views still answer with empty lists.
    assert db.execute("select private.business_minutes_many('{}', '{}') as m").fetchone()["m"] == []
    assert db.execute("select private.business_minutes_many(array[now()], array[null::timestamptz]) as m").fetchone()["m"] == [None]
