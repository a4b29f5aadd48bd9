"""/api/tasks and /api/tasks/{id}/actions."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.db.factories import make_workflow, set_task_status, start_workflow, tasks_of
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE, row

OPERATOR = PEOPLE["operator"].user_id
MANAGER = PEOPLE["manager"].user_id
RESUME_URL = "http://n8n.local/webhook-waiting/exec-77"


def started(db, workflow_type="PAYOFF_REQUEST", **columns):
    """A fresh running workflow of client A and its tasks by key."""
    workflow = make_workflow(db, workflow_type, **columns)
    start_workflow(db, workflow["id"])
    return workflow, tasks_of(db, workflow["id"])


def task_row(db, task_id):
    return db.execute("select * from public.tasks where id = %s", (task_id,)).fetchone()


def workflow_status(db, workflow_id):
    return db.execute("select status from public.workflows where id = %s", (workflow_id,)).fetchone()["status"]


def count(db, table, where="true", params=()):
    return db.execute(f"select count(*) as n from public.{table} where {where}", params).fetchone()["n"]


def audit_events(db, task_id, event_type):
    return db.execute("select * from public.audit_events where resource_id = %s and event_type = %s",
                      (task_id, event_type)).fetchall()


def act(caller, task_id, action, **data):
    return caller.post(f"/api/tasks/{task_id}/actions", json={"action": action, "data": data})


def inject(caller, workflow_id, **body):
    return caller.post("/api/tasks", json={"workflowId": str(workflow_id), "taskType": "handle_client_update",
                                           "title": "Client asked for the per-diem rate", **body})


def snapshot(db):
    """Everything a refused request must leave as it was."""
    return {table: count(db, table) for table in ("tasks", "notifications", "n8n_dispatches", "audit_events")}


# --------------------------------------------------------------------------------------------
# GET /api/tasks
# --------------------------------------------------------------------------------------------
def test_list_shows_each_caller_only_the_tasks_they_may_see(as_):
    everything = {t["id"] for t in as_("operator").get("/api/tasks?limit=200").json["tasks"]}
    assert {str(row("A201")), str(row("B201"))} <= everything
    for person, client in (("client_user_a", CLIENT_A), ("client_user_b", CLIENT_B)):
        body = as_(person).get("/api/tasks?limit=200").json
        workflows = {t["workflowId"] for t in body["tasks"]}
        assert body["totalCount"] == len(body["tasks"]) >= 1
        assert workflows == {str(row(("A" if client == CLIENT_A else "B") + "101"))}


def test_the_task_representation_is_complete_and_camel_case(as_):
    task = as_("operator").get(f"/api/tasks/{row('A201')}").json
    assert list(task) == [
        "id", "workflowId", "taskKey", "taskType", "title", "description", "sequence", "executorType", "agentName",
        "assignedTo", "status", "priority", "dependsOn", "parentTaskId", "branchGroup", "slaMinutes", "slaStartedAt",
        "slaDueAt", "slaStatus", "agentInput", "agentOutput", "result", "errorMessage", "attemptCount", "maxAttempts",
        "isWaitingOnN8n", "startedAt", "completedAt", "metadata", "createdAt", "updatedAt"]
    assert (task["taskKey"], task["status"], task["agentName"], task["assignedTo"]) == (
        "identify_lender_contact", "RUNNING", "nina", str(OPERATOR))


def test_the_resume_url_is_never_shown_only_that_n8n_waits(as_, db):
    workflow, tasks = started(db)
    set_task_status(db, tasks["await_statement"]["id"], "WAITING", {"resumeUrl": RESUME_URL})
    response = as_("operator").get(f"/api/tasks?workflowId={workflow['id']}&status=WAITING")
    assert [t["isWaitingOnN8n"] for t in response.json["tasks"]] == [True]
    assert "webhook-waiting" not in response.get_data(as_text=True) and "resumeUrl" not in response.json["tasks"][0]


@pytest.mark.parametrize("query, expected_keys", [
    ("status=PENDING,WAITING", {"await_statement", "extract_payoff_data", "generate_invoice", "update_crm_record", "notify_client"}),
    ("status=FAILED", {"send_payoff_request"}),
    ("agentName=nina", {"identify_lender_contact"}),
    (f"executorId={OPERATOR}", {"identify_lender_contact"}),
    ("executorType=HIL", {"await_statement"}),
    ("slaStatus=BREACHED", {"notify_client"}),
    ("slaStatus=AT_RISK,BREACHED&status=PENDING", {"notify_client"}),
])
def test_list_filters(as_, db, query, expected_keys):
    workflow, tasks = started(db)
    set_task_status(db, tasks["identify_lender_contact"]["id"], "COMPLETED", {"assignedTo": str(OPERATOR)})
    set_task_status(db, tasks["send_payoff_request"]["id"], "FAILED", {"error": "IVR hung up"})
    db.execute("update public.tasks set executor_type = 'HIL' where id = %s", (tasks["await_statement"]["id"],))
    db.execute("update public.tasks set executor_type = 'AI' where workflow_id = %s and task_key <> 'await_statement'", (workflow["id"],))
    db.execute("update public.tasks set sla_status = 'BREACHED' where id = %s", (tasks["notify_client"]["id"],))
    body = as_("operator").get(f"/api/tasks?workflowId={workflow['id']}&{query}").json
    assert {t["taskKey"] for t in body["tasks"]} == expected_keys
    assert body["totalCount"] == len(expected_keys) and body["hasMore"] is False


def test_includes_bring_the_workflow_timeline_and_attempts(as_):
    body = as_("operator").get(f"/api/tasks?workflowId={row('A101')}&include=workflow,timeline,executions").json
    task = body["tasks"][0]
    assert task["workflow"]["id"] == str(row("A101")) and task["workflow"]["progress"]["totalTasks"] == 1
    assert {(e["eventType"], e["toStatus"]) for e in task["timeline"]} == {("created", "PENDING"), ("status_changed", "RUNNING")}
    assert [(e["id"], e["attempt"], e["costUsd"]) for e in task["executions"]] == [(str(row("A211")), 1, 0.12)]


def test_clients_get_no_timeline_or_attempts_in_includes(as_):
    task = as_("client_user_a").get(f"/api/tasks/{row('A201')}?include=workflow,timeline,executions").json
    assert task["workflow"]["id"] == str(row("A101"))
    # Internal to the work (app/audience.py): left out of a client's answer, not sent empty.
    assert "timeline" not in task and "executions" not in task


def test_cursor_pages_through_everything_once(as_, db):
    started(db)
    caller = as_("operator")
    seen, cursor = [], None
    while True:
        page = caller.get("/api/tasks?limit=3" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    everything = [t["id"] for t in caller.get("/api/tasks?limit=200").json["tasks"]]
    assert seen == everything and len(seen) == len(set(seen)) >= 9


@pytest.mark.parametrize("query, status, code", [
    ("cursor=garbage!!", 400, "invalid_cursor"),
    ("limit=0", 422, "validation_error"),
    ("limit=201", 422, "validation_error"),
    ("offset=-1", 422, "validation_error"),
    ("limit=ten", 422, "validation_error"),
    ("cursor=abc&offset=5", 422, "validation_error"),
    ("status=DONE", 422, "validation_error"),
    ("slaStatus=LATE", 422, "validation_error"),
    ("executorType=ROBOT", 422, "validation_error"),
    ("include=secrets", 422, "validation_error"),
    ("workflowId=not-a-uuid", 422, "validation_error"),
    ("executorId=42", 422, "validation_error"),
    ("agentName=Nina!", 422, "validation_error"),
])
def test_bad_list_queries_get_a_clear_4xx(as_, query, status, code):
    response = as_("operator").get(f"/api/tasks?{query}")
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code and response.json["error"]["requestId"]


def test_an_agent_sees_only_the_tasks_of_its_workflow(as_):
    body = as_("agent_a").get("/api/tasks?limit=200").json
    assert [t["id"] for t in body["tasks"]] == [str(row("A201"))] and body["totalCount"] == 1
    assert as_("agent_a").get(f"/api/tasks/{row('B201')}").status_code == 404


def test_another_clients_tasks_are_never_listed_counted_or_included(as_):
    body = as_("client_user_b").get(f"/api/tasks?workflowId={row('A101')}&include=workflow,timeline").json
    assert body == {"tasks": [], "totalCount": 0, "hasMore": False, "nextCursor": None}
    assert as_("client_user_b").get(f"/api/tasks?executorId={OPERATOR}").json["totalCount"] == 1


# --------------------------------------------------------------------------------------------
# GET /api/tasks/{id}
# --------------------------------------------------------------------------------------------
def test_get_one_task_with_includes(as_):
    task = as_("operator").get(f"/api/tasks/{row('A201')}?include=executions").json
    assert task["id"] == str(row("A201")) and len(task["executions"]) == 1 and "timeline" not in task


@pytest.mark.parametrize("path, status", [
    ("/api/tasks/not-a-uuid", 404),
    (f"/api/tasks/{uuid.uuid4()}", 404),
    (f"/api/tasks/{row('A201')}?include=everything", 422),
])
def test_bad_task_reads(as_, path, status):
    response = as_("operator").get(path)
    assert response.status_code == status and "error" in response.json


# --------------------------------------------------------------------------------------------
# POST /api/tasks (inject)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task_type, sla_minutes, expected_minutes", [
    ("handle_client_update", None, 30),       # the SLA definition for (PAYOFF_REQUEST, handle_client_update)
    ("handle_client_update", 120, 120),       # asked for
    ("call_the_title_company", None, 60),     # no definition: the default
])
def test_an_operator_injects_a_task_with_a_business_time_sla(as_, db, task_type, sla_minutes, expected_minutes):
    body = {"taskType": task_type, "slaMinutes": sla_minutes} if sla_minutes else {"taskType": task_type}
    response = inject(as_("operator"), row("A101"), **body, priority="HIGH", agentInput={"ask": "per diem"})
    assert response.status_code == 201, response.json
    task = response.json
    assert re.fullmatch(rf"{task_type}_[0-9a-f]{{6}}", task["taskKey"])
    assert (task["status"], task["executorType"], task["priority"], task["slaMinutes"]) == ("PENDING", "HIL", "HIGH", expected_minutes)
    assert task["agentInput"] == {"ask": "per diem"} and task["sequence"] == 1
    stored = task_row(db, task["id"])
    expected_due = db.execute("select public.add_business_minutes(now(), %s) as t", (expected_minutes,)).fetchone()["t"]
    assert stored["sla_started_at"] == db.execute("select now() as t").fetchone()["t"] and stored["sla_due_at"] == expected_due
    assert stored["client_id"] == CLIENT_A
    assert audit_events(db, task["id"], "task.created")[0]["actor_id"] == str(OPERATOR)


def test_an_injected_branch_sits_beside_its_parent(as_, db):
    workflow, tasks = started(db, "MUNI_LIEN_SEARCH")
    parent = tasks["portal_access"]
    response = inject(as_("operator"), workflow["id"], taskKey="portal_access:miami-dade.gov", taskType="portal_access",
                      title="Miami-Dade portal", executorType="AI", agentName="rex", parentTaskId=str(parent["id"]),
                      dependsOn=["research_municipality"], assignedTo=str(MANAGER))
    assert response.status_code == 201, response.json
    task = response.json
    assert (task["taskKey"], task["sequence"], task["parentTaskId"]) == ("portal_access:miami-dade.gov", parent["sequence"], str(parent["id"]))
    assert (task["agentName"], task["dependsOn"], task["assignedTo"]) == ("rex", ["research_municipality"], str(MANAGER))


@pytest.mark.parametrize("body, field", [
    ({"unknownField": 1}, "unknownField"),
    ({"title": 5}, "title"),
    ({"title": ""}, "title"),
    ({"title": None}, "title"),
    ({"taskType": "Handle Update"}, "taskType"),
    ({"taskKey": "Bad Key"}, "taskKey"),
    ({"taskKey": "portal_access:a b"}, "taskKey"),
    ({"executorType": "ROBOT"}, "executorType"),
    ({"executorType": "AI"}, "agentName"),
    ({"priority": "SOMEDAY"}, "priority"),
    ({"slaMinutes": 0}, "slaMinutes"),
    ({"slaMinutes": 100001}, "slaMinutes"),
    ({"slaMinutes": "60"}, "slaMinutes"),
    ({"slaMinutes": 1.5}, "slaMinutes"),
    ({"dependsOn": "identify_lender_contact"}, "dependsOn"),
    ({"dependsOn": ["Not A Key"]}, "dependsOn"),
    ({"dependsOn": ["no_such_step"]}, "dependsOn"),
    ({"agentInput": [1, 2]}, "agentInput"),
    ({"assignedTo": "not-a-uuid"}, "assignedTo"),
    ({"assignedTo": str(PEOPLE["client_user_a"].user_id)}, "assignedTo"),
    ({"parentTaskId": str(row("B201"))}, "parentTaskId"),
    ({"workflowId": "not-a-uuid"}, "workflowId"),
    ({"agentName": "zed"}, "tasks_agent_name_fkey"),
])
def test_bad_injections_are_refused_with_details_and_write_nothing(as_, db, body, field):
    before = snapshot(db)
    response = inject(as_("operator"), row("A101"), **body)
    assert response.status_code == 422, response.json
    assert field in str(response.json["error"]["details"])
    assert snapshot(db) == before


def test_a_missing_task_type_is_required(as_):
    response = as_("operator").post("/api/tasks", json={"workflowId": str(row("A101")), "title": "x"})
    assert response.status_code == 422 and "taskType" in response.json["error"]["details"]["json"]


def test_a_duplicate_task_key_conflicts(as_, db):
    before = snapshot(db)
    response = inject(as_("operator"), row("A101"), taskKey="identify_lender_contact")
    assert response.status_code == 409 and response.json["error"]["code"] == "duplicate"
    assert snapshot(db) == before


@pytest.mark.parametrize("path", [["COMPLETED"], ["CANCELLED"], ["FAILED"]])
def test_a_finished_workflow_takes_no_new_tasks(as_, db, path):
    workflow, _ = started(db)
    for status in path:
        db.execute("update public.workflows set status = %s where id = %s", (status, workflow["id"]))
    before = snapshot(db)
    response = inject(as_("operator"), workflow["id"])
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_state"
    assert path[-1] in response.json["error"]["message"] and snapshot(db) == before


@pytest.mark.parametrize("person, workflow, status", [
    ("client_user_a", "A101", 403),
    ("client_admin_a", "A101", 403),
    ("agent_a", "A101", 403),
    ("client_user_b", "A101", 404),
    ("agent_a", "B101", 404),
    ("operator", "A999", 404),
])
def test_only_hil_people_inject_and_only_where_they_see(as_, db, person, workflow, status):
    before = snapshot(db)
    response = inject(as_(person), row(workflow))
    assert response.status_code == status, response.json
    assert snapshot(db) == before


# --------------------------------------------------------------------------------------------
# PATCH /api/tasks/{id}
# --------------------------------------------------------------------------------------------
def test_an_operator_updates_a_task_and_metadata_is_merged(as_, db):
    db.execute("""update public.tasks set metadata = '{"source": "plan"}' where id = %s""", (row("A201"),))
    response = as_("operator").patch(f"/api/tasks/{row('A201')}", json={
        "title": "Find the lender's payoff desk", "description": "Call first", "priority": "URGENT",
        "assignedTo": str(MANAGER), "metadata": {"note": "VIP"}})
    assert response.status_code == 200, response.json
    stored = task_row(db, row("A201"))
    assert (stored["title"], stored["description"], stored["priority"], stored["assigned_to"]) == (
        "Find the lender's payoff desk", "Call first", "URGENT", MANAGER)
    assert stored["metadata"] == {"source": "plan", "note": "VIP"} and stored["status"] == "RUNNING"
    assert response.json["metadata"] == stored["metadata"]
    # Events of one transaction share created_at: look for the change, not at heap order.
    assert {"old": "NORMAL", "new": "URGENT"} in [
        e["changes"].get("priority") for e in audit_events(db, row("A201"), "task.updated")]


def test_an_assignee_can_be_removed(as_, db):
    response = as_("operator").patch(f"/api/tasks/{row('A201')}", json={"assignedTo": None})
    assert response.status_code == 200 and response.json["assignedTo"] is None
    assert task_row(db, row("A201"))["assigned_to"] is None


@pytest.mark.parametrize("body, field", [
    ({"status": "COMPLETED"}, "status"),
    ({"resumeUrl": "http://x"}, "resumeUrl"),
    ({"priority": "SOMEDAY"}, "priority"),
    ({"title": ""}, "title"),
    ({"title": 7}, "title"),
    ({"metadata": "x"}, "metadata"),
    ({"assignedTo": "not-a-uuid"}, "assignedTo"),
    ({"assignedTo": str(PEOPLE["client_user_a"].user_id)}, "assignedTo"),
])
def test_bad_updates_are_refused_and_change_nothing(as_, db, body, field):
    before = task_row(db, row("A201"))
    response = as_("operator").patch(f"/api/tasks/{row('A201')}", json=body)
    assert response.status_code == 422 and field in str(response.json["error"]["details"])
    assert task_row(db, row("A201")) == before


def test_a_client_cannot_edit_their_own_task(as_, db):
    before = task_row(db, row("A201"))
    response = as_("client_user_a").patch(f"/api/tasks/{row('A201')}", json={"title": "mine now"})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    assert task_row(db, row("A201")) == before


# --------------------------------------------------------------------------------------------
# DELETE /api/tasks/{id}
# --------------------------------------------------------------------------------------------
def test_delete_cancels_the_task_softly(as_, db):
    response = as_("operator").delete(f"/api/tasks/{row('A201')}")
    assert response.status_code == 200 and response.json["status"] == "CANCELLED"
    assert task_row(db, row("A201"))["status"] == "CANCELLED"
    assert audit_events(db, row("A201"), "task.cancel")[0]["changes"] == {"status": {"old": "RUNNING", "new": "CANCELLED"}}
    again = as_("operator").delete(f"/api/tasks/{row('A201')}")
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_state"


@pytest.mark.parametrize("person, status", [("client_user_a", 403), ("agent_a", 403), ("client_user_b", 404)])
def test_only_hil_people_cancel_tasks(as_, db, person, status):
    before = snapshot(db)
    assert as_(person).delete(f"/api/tasks/{row('A201')}").status_code == status
    assert task_row(db, row("A201"))["status"] == "RUNNING" and snapshot(db) == before


# --------------------------------------------------------------------------------------------
# Tenant isolation on every route
# --------------------------------------------------------------------------------------------
def test_client_b_never_reaches_client_as_task(as_, db):
    before = task_row(db, row("A201"))
    caller = as_("client_user_b")
    assert caller.get(f"/api/tasks/{row('A201')}").status_code == 404
    assert caller.patch(f"/api/tasks/{row('A201')}", json={"title": "x"}).status_code == 404
    assert caller.delete(f"/api/tasks/{row('A201')}").status_code == 404
    for action, data in (("complete", {}), ("escalate", {"reason": "x"}), ("retry", {})):
        assert act(caller, row("A201"), action, **data).status_code == 404
    assert task_row(db, row("A201")) == before


# --------------------------------------------------------------------------------------------
# POST /api/tasks/{id}/actions
# --------------------------------------------------------------------------------------------
def test_complete_stores_the_result_and_leaves_the_workflow_to_n8n(as_, db):
    workflow, tasks = started(db)
    task = tasks["identify_lender_contact"]
    response = act(as_("operator"), task["id"], "complete", result={"phone": "555-0100"})
    assert response.status_code == 200, response.json
    body = response.json
    assert {k: body[k] for k in ("success", "taskId", "action", "previousStatus", "newStatus", "workflowUpdated",
                                 "followupTasksCreated", "notificationsSent")} == {
        "success": True, "taskId": str(task["id"]), "action": "complete", "previousStatus": "PENDING",
        "newStatus": "COMPLETED", "workflowUpdated": False, "followupTasksCreated": 0, "notificationsSent": 0}
    assert body["workflowId"] == str(workflow["id"]) and body["timestamp"]
    stored = task_row(db, task["id"])
    assert stored["status"] == "COMPLETED" and stored["result"] == {"phone": "555-0100"}
    assert count(db, "n8n_dispatches", "workflow_id = %s and kind = 'RESUME'", (workflow["id"],)) == 0
    event = audit_events(db, task["id"], "task.complete")[0]
    assert event["actor_type"] == "human" and event["data"] == {"result": {"phone": "555-0100"}}
    assert event["request_id"] == response.headers["X-Request-Id"]


def test_completing_a_task_n8n_waits_on_resumes_n8n(as_, db):
    workflow, tasks = started(db)
    task = tasks["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": RESUME_URL})
    response = act(as_("operator"), task["id"], "complete", result={"payoff": 1000})
    assert response.status_code == 200, response.json
    dispatch = db.execute("select * from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                          (workflow["id"],)).fetchone()
    assert dispatch["status"] == "PENDING"
    assert dispatch["payload"] == {
        "workflowId": str(workflow["id"]), "taskId": str(task["id"]), "taskKey": "await_statement",
        "resumeUrl": f"n8n-resume:{task['id']}",
        "body": {"action": "complete", "result": {"payoff": 1000}, "by": str(OPERATOR)}}
    assert task_row(db, task["id"])["resume_url"] is None


def test_completing_the_last_open_task_does_not_complete_the_workflow(as_, db):
    workflow, tasks = started(db)
    *others, last = tasks.values()
    for task in others:
        set_task_status(db, task["id"], "COMPLETED")
    response = act(as_("operator"), last["id"], "complete")
    assert response.json["workflowUpdated"] is False and response.json["workflowStatus"] == "IN_PROGRESS"
    stored = db.execute("select status, total_tasks, completed_tasks from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert (stored["status"], stored["completed_tasks"]) == ("IN_PROGRESS", stored["total_tasks"])


def test_retry_puts_a_failed_task_back_to_pending(as_, db):
    workflow, tasks = started(db)
    task = tasks["identify_lender_contact"]
    set_task_status(db, task["id"], "RUNNING")
    set_task_status(db, task["id"], "FAILED", {"error": "timeout"})
    response = act(as_("operator"), task["id"], "retry")
    assert response.status_code == 200 and (response.json["previousStatus"], response.json["newStatus"]) == ("FAILED", "PENDING")
    stored = task_row(db, task["id"])
    assert (stored["status"], stored["attempt_count"], stored["error_message"]) == ("PENDING", 1, None)
    assert count(db, "n8n_dispatches", "workflow_id = %s and kind = 'RESUME'", (workflow["id"],)) == 0
    assert len(audit_events(db, task["id"], "task.retry")) == 1


def test_retrying_a_task_n8n_waits_on_resumes_n8n(as_, db):
    workflow, tasks = started(db)
    task = tasks["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": RESUME_URL})
    set_task_status(db, task["id"], "FAILED", {"error": "statement unreadable"})
    assert act(as_("operator"), task["id"], "retry").status_code == 200
    payload = db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                         (workflow["id"],)).fetchone()["payload"]
    assert payload["resumeUrl"] == f"n8n-resume:{task['id']}" and payload["body"] == {"action": "retry", "by": str(OPERATOR)}


@pytest.mark.parametrize("action, data, status_before", [
    ("retry", {}, "RUNNING"),
    ("complete", {}, "COMPLETED"),
    ("fail", {"error": "x"}, "FAILED"),
    ("resume", {}, "RUNNING"),
    ("escalate", {"reason": "x"}, "COMPLETED"),
    ("assign", {"assigneeId": str(MANAGER)}, "SKIPPED"),
])
def test_actions_in_the_wrong_state_conflict_and_change_nothing(as_, db, action, data, status_before):
    _, tasks = started(db)
    task = tasks["identify_lender_contact"]
    for status in {"RUNNING": ["RUNNING"], "COMPLETED": ["COMPLETED"], "FAILED": ["FAILED"], "SKIPPED": ["SKIPPED"]}[status_before]:
        set_task_status(db, task["id"], status, {"error": "x"})
    before, counts = task_row(db, task["id"]), snapshot(db)
    response = act(as_("operator"), task["id"], action, **data)
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_state"
    assert status_before in response.json["error"]["message"]
    assert task_row(db, task["id"]) == before and snapshot(db) == counts


def test_escalate_blocks_the_workflow_and_notifies_its_owner_and_manager(as_, db):
    workflow, tasks = started(db, hil_owner_id=OPERATOR, manager_id=MANAGER)
    task = tasks["send_payoff_request"]
    response = act(as_("operator"), task["id"], "escalate", reason="Lender refuses to talk to a bot")
    assert response.status_code == 200, response.json
    assert (response.json["workflowUpdated"], response.json["workflowStatus"], response.json["notificationsSent"]) == (True, "BLOCKED", 2)
    stored = task_row(db, task["id"])
    assert (stored["executor_type"], stored["priority"], stored["status"]) == ("HIL", "HIGH", "PENDING")
    assert stored["metadata"]["escalation"]["reason"] == "Lender refuses to talk to a bot"
    assert workflow_status(db, workflow["id"]) == "BLOCKED"
    notes = db.execute("select * from public.notifications where task_id = %s", (task["id"],)).fetchall()
    assert {n["recipient_id"] for n in notes} == {OPERATOR, MANAGER}
    assert {(n["notification_type"], n["priority"], n["action_required"]) for n in notes} == {("TASK_INTERRUPT", "HIGH", True)}
    timeline = db.execute("select message from public.task_timeline_events where task_id = %s and event_type = 'escalated'",
                          (task["id"],)).fetchone()
    assert timeline["message"] == "Lender refuses to talk to a bot"
    assert audit_events(db, task["id"], "task.escalate")[0]["changes"] == {"workflowStatus": {"old": "IN_PROGRESS", "new": "BLOCKED"}}


def test_escalating_without_owners_notifies_every_active_manager(as_, db):
    workflow, tasks = started(db, priority="URGENT")
    managers = {r["id"] for r in db.execute("select id from public.user_profiles where role = 'hil_manager' and is_active")}
    response = act(as_("manager"), tasks["identify_lender_contact"]["id"], "escalate", reason="no lender found")
    assert response.json["notificationsSent"] == len(managers) >= 1
    notified = {r["recipient_id"] for r in db.execute("select recipient_id from public.notifications where workflow_id = %s", (workflow["id"],))}
    assert notified == managers
    assert task_row(db, tasks["identify_lender_contact"]["id"])["priority"] == "URGENT"


def test_assign_sets_the_assignee_and_notifies_them(as_, db):
    workflow, tasks = started(db)
    task = tasks["extract_payoff_data"]
    response = act(as_("operator"), task["id"], "assign", assigneeId=str(MANAGER))
    assert response.status_code == 200 and response.json["notificationsSent"] == 1
    assert task_row(db, task["id"])["assigned_to"] == MANAGER
    note = db.execute("select * from public.notifications where task_id = %s", (task["id"],)).fetchone()
    assert (note["recipient_id"], note["notification_type"]) == (MANAGER, "WORKFLOW_UPDATE")
    assert audit_events(db, task["id"], "task.assign")[0]["changes"] == {"assignedTo": {"old": None, "new": str(MANAGER)}}
    assert db.execute("select event_type from public.task_timeline_events where task_id = %s order by created_at desc, event_type limit 1",
                      (task["id"],)).fetchone()["event_type"] == "assigned"


def test_assigning_to_the_current_assignee_again_changes_and_notifies_nothing(as_, db):
    """A double click on "assign": the second request succeeds and writes nothing."""
    _, tasks = started(db)
    task = tasks["extract_payoff_data"]
    assert act(as_("operator"), task["id"], "assign", assigneeId=str(MANAGER)).json["notificationsSent"] == 1
    before = task_row(db, task["id"])
    again = act(as_("operator"), task["id"], "assign", assigneeId=str(MANAGER))
    assert again.status_code == 200, again.json
    assert (again.json["success"], again.json["notificationsSent"], again.json["newStatus"]) == (True, 0, before["status"])
    assert task_row(db, task["id"]) == before  # not even updated_at moved
    assert db.execute("select count(*) as n from public.notifications where task_id = %s", (task["id"],)).fetchone()["n"] == 1
    assert len(audit_events(db, task["id"], "task.assign")) == 1
    # Someone else is a change again.
    other = act(as_("operator"), task["id"], "assign", assigneeId=str(OPERATOR))
    assert other.json["notificationsSent"] == 1 and task_row(db, task["id"])["assigned_to"] == OPERATOR
    assert sorted((e["changes"]["assignedTo"]["old"] or "", e["changes"]["assignedTo"]["new"])
                  for e in audit_events(db, task["id"], "task.assign")) == sorted([("", str(MANAGER)),
                                                                                   (str(MANAGER), str(OPERATOR))])


def test_fail_records_the_error(as_, db):
    _, tasks = started(db)
    task = tasks["identify_lender_contact"]
    response = act(as_("operator"), task["id"], "fail", error="Lender out of business")
    assert response.status_code == 200 and response.json["newStatus"] == "FAILED"
    stored = task_row(db, task["id"])
    assert (stored["status"], stored["error_message"]) == ("FAILED", "Lender out of business")
    assert len(audit_events(db, task["id"], "task.fail")) == 1


def test_resume_continues_a_waiting_task_forwards_the_body_and_unblocks_the_workflow(as_, db):
    workflow, tasks = started(db)
    task = tasks["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": RESUME_URL})
    act(as_("operator"), task["id"], "escalate", reason="statement late")
    attempts = task_row(db, task["id"])["attempt_count"]
    response = act(as_("operator"), task["id"], "resume", body={"extendDays": 2})
    assert response.status_code == 200, response.json
    assert (response.json["newStatus"], response.json["workflowUpdated"], response.json["workflowStatus"]) == ("RUNNING", True, "IN_PROGRESS")
    stored = task_row(db, task["id"])
    assert (stored["status"], stored["attempt_count"], stored["resume_url"]) == ("RUNNING", attempts, None)
    assert "resolvedAt" in stored["metadata"]["escalation"]
    body = db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                      (workflow["id"],)).fetchone()["payload"]["body"]
    assert body == {"extendDays": 2, "action": "resume", "complete": False, "by": str(OPERATOR)}
    assert workflow_status(db, workflow["id"]) == "IN_PROGRESS"
    assert len(audit_events(db, task["id"], "task.resume")) == 1


def test_resume_with_complete_finishes_a_review(as_, db):
    _, tasks = started(db)
    task = tasks["extract_payoff_data"]
    set_task_status(db, task["id"], "AWAITING_REVIEW")
    response = act(as_("operator"), task["id"], "resume", complete=True, result={"approved": True})
    assert response.json["newStatus"] == "COMPLETED" and response.json["workflowUpdated"] is False
    assert task_row(db, task["id"])["result"] == {"approved": True}


def test_resume_leaves_the_workflow_blocked_while_another_task_needs_a_person(as_, db):
    workflow, tasks = started(db)
    set_task_status(db, tasks["await_statement"]["id"], "WAITING")
    act(as_("operator"), tasks["await_statement"]["id"], "escalate", reason="late")
    act(as_("operator"), tasks["identify_lender_contact"]["id"], "escalate", reason="no contact")
    response = act(as_("operator"), tasks["await_statement"]["id"], "resume")
    assert response.json["workflowUpdated"] is False and workflow_status(db, workflow["id"]) == "BLOCKED"
    assert count(db, "n8n_dispatches", "workflow_id = %s and kind = 'RESUME'", (workflow["id"],)) == 0


@pytest.mark.parametrize("action, data", [
    ("escalate", {}),
    ("escalate", {"reason": 5}),
    ("escalate", {"reason": "   "}),
    ("fail", {}),
    ("fail", {"error": ""}),
    ("complete", {"result": "done"}),
    ("complete", {"result": [1]}),
    ("assign", {}),
    ("assign", {"assigneeId": "not-a-uuid"}),
    ("assign", {"assigneeId": 5}),
    ("assign", {"assigneeId": str(uuid.uuid4())}),
    ("assign", {"assigneeId": str(PEOPLE["client_user_a"].user_id)}),
    ("resume", {"complete": "yes"}),
    ("resume", {"body": ["x"]}),
])
def test_bad_action_data_is_refused_and_changes_nothing(as_, db, action, data):
    _, tasks = started(db)
    task = tasks["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": RESUME_URL})
    before, counts = task_row(db, task["id"]), snapshot(db)
    response = act(as_("operator"), task["id"], action, **data)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "invalid_value"
    assert task_row(db, task["id"]) == before and snapshot(db) == counts


@pytest.mark.parametrize("body", [
    {"action": "explode"},
    {"action": "cancel"},
    {},
    {"action": "complete", "data": "x"},
    {"action": "complete", "extra": 1},
    {"action": 5},
])
def test_bad_action_bodies_are_refused(as_, db, body):
    before = snapshot(db)
    response = as_("operator").post(f"/api/tasks/{row('A201')}/actions", json=body)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert snapshot(db) == before


@pytest.mark.parametrize("person, task, action, data, status", [
    ("client_user_a", "A201", "complete", {}, 403),
    ("client_admin_a", "A201", "escalate", {"reason": "x"}, 403),
    ("client_user_a", "A201", "fail", {"error": "x"}, 403),
    ("agent_a", "A201", "escalate", {"reason": "x"}, 403),
    ("agent_a", "A201", "assign", {"assigneeId": str(MANAGER)}, 403),
    ("agent_a", "A201", "retry", {}, 403),
    ("client_user_b", "A201", "complete", {}, 404),
    ("agent_a", "B201", "complete", {}, 404),
    ("operator", "A999", "complete", {}, 404),
])
def test_who_may_act_on_which_task(as_, db, person, task, action, data, status):
    before = snapshot(db)
    response = act(as_(person), row(task), action, **data)
    assert response.status_code == status, response.json
    assert task_row(db, row("A201"))["status"] == "RUNNING" and snapshot(db) == before


@pytest.mark.parametrize("action, data, status", [("complete", {"result": {"lender": "First Bank"}}, "COMPLETED"),
                                                  ("fail", {"error": "portal down"}, "FAILED")])
def test_an_agent_completes_or_fails_the_tasks_of_its_workflow(as_, db, action, data, status):
    response = act(as_("agent_a"), row("A201"), action, **data)
    assert response.status_code == 200, response.json
    assert task_row(db, row("A201"))["status"] == status
    event = audit_events(db, row("A201"), f"task.{action}")[0]
    assert (event["actor_type"], event["actor_id"]) == ("agent", "nina")


def test_tasks_of_a_cancelled_workflow_take_no_actions(as_, db):
    workflow, tasks = started(db)
    db.execute("select public.workflow_action(%s, 'cancel')", (workflow["id"],))
    response = act(as_("operator"), tasks["identify_lender_contact"]["id"], "assign", assigneeId=str(MANAGER))
    assert response.status_code == 409 and "CANCELLED" in response.json["error"]["message"]


def test_a_workflows_tasks_are_listed_in_plan_order_across_pages(as_, db):
    workflow, tasks = started(db)
    expected = [row["task_key"] for row in db.execute(
        "select task_key from public.tasks where workflow_id = %s order by sequence, task_key, id", (workflow["id"],))]
    assert len(expected) > 3
    seen, cursor = [], None
    while True:
        page = as_("operator").get(f"/api/tasks?workflowId={workflow['id']}&limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.json
        seen += [task["taskKey"] for task in page.json["tasks"]]
        cursor = page.json.get("nextCursor")
        if not page.json["hasMore"]:
            break
    assert seen == expected and expected[0] == "identify_lender_contact"


@pytest.mark.parametrize("cursor", ["WzEsICJ4Il0", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIngiXQ", "bm90IGpzb24"])
def test_a_cursor_not_made_for_this_order_is_refused(as_, db, cursor):
    workflow, _ = started(db)
    response = as_("operator").get(f"/api/tasks?workflowId={workflow['id']}&cursor={cursor}")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_cursor"
