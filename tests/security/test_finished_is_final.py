"""Finished is final: a workflow COMPLETED, CANCELLED or FAILED changes through no callback,
action, inbound delivery, error report or injected task (409 invalid_state naming its status,
nothing written; a refused event's receipt is kept so that its retry gets the same 409). What
stays open is what a person deliberately does: a HIL person's correction, audited as one, and a
HIL person's recovery of a FAILED workflow (resume from its last checkpoint, or cancel), which no
machine path and no client may take (docs/security.md)."""
from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.webhooks.signing import inbound_token
from tests.db.factories import make_workflow, start_workflow, tasks_of
from tests.db.world import PEOPLE, row
from tests.security.state import assert_refused, changed_tables, fingerprint
from tests.service_fixtures import CALLBACK_SECRET, ERROR_TOKEN
from tests.support import act_as, act_as_service
from tests.webhooks.test_n8n_callbacks import post_event

FINISHED = ["COMPLETED", "CANCELLED", "FAILED"]
FIRST_STEP = {"PAYOFF_REQUEST": "identify_lender_contact"}
OPERATOR = PEOPLE["operator"]


def apply(db, workflow_id, event_type, event_id, **data):
    """An n8n event applied as the service (as the callback endpoint applies it)."""
    result = db.execute("select public.apply_n8n_event('n8n', %s, %s, %s) as r", (
        event_id, event_type, Jsonb({"workflowId": str(workflow_id), "executionId": "exec-1", **data}))).fetchone()["r"]
    assert result["statusCode"] == 200, result
    return result


def finish(db, status, workflow_type="PAYOFF_REQUEST"):
    """A workflow started, its first step done by an agent (a result, an output, a cost), and then
    finished as it would be: n8n's workflow.completed or workflow.failed, or a cancel."""
    workflow = make_workflow(db, workflow_type)
    start_workflow(db, workflow["id"])
    first = next(iter(tasks_of(db, workflow["id"])))
    apply(db, workflow["id"], "task.started", "evt-started", taskKey=first)
    apply(db, workflow["id"], "task.completed", "evt-step-done", taskKey=first, output={"lender": "First Bank"},
          metrics={"confidence": 0.9, "processingTimeMs": 900, "tokensUsed": 500, "costUsd": 0.03})
    if status == "COMPLETED":
        apply(db, workflow["id"], "workflow.completed", "evt-finished")
    elif status == "FAILED":
        apply(db, workflow["id"], "workflow.failed", "evt-finished", error="the portal is down")
    else:
        db.execute("select public.workflow_action(%s, 'cancel', '{\"reason\": \"client withdrew\"}')", (workflow["id"],))
    current = db.execute("select * from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert current["status"] == status
    return current, tasks_of(db, workflow["id"])


def assert_finished_refusal(response, status) -> dict:
    error = assert_refused(response, 409)
    assert error["code"] == "invalid_state", error
    assert "finished" in error["message"] and status in error["message"], error
    return error


# --------------------------------------------------------------------------------------------
# n8n's callbacks: every event type
# --------------------------------------------------------------------------------------------
STEP = "identify_lender_contact"
EVENTS = {
    "task.started": {"taskKey": STEP, "attempt": 2},
    "task.completed": {"taskKey": STEP, "output": {"lender": "Late Bank", "lenderPhone": "555-0100"},
                       "metrics": {"confidence": 0.5, "processingTimeMs": 100, "tokensUsed": 10, "costUsd": 0.5}},
    "task.failed": {"taskKey": STEP, "error": "late failure", "retryable": False},
    "task.waiting": {"taskKey": "await_statement", "resumeUrl": "http://n8n.test/webhook-waiting/late"},
    "task.skipped": {"taskKey": "await_statement"},
    "task.injected": {"task": {"taskKey": "late_step", "title": "Late step", "agentName": "ria"}},
    "workflow.completed": {},
    "workflow.failed": {"error": "late failure"},
    "escalation": {"reason": "a person must look at this"},
    "escalation of a task": {"taskKey": STEP, "reason": "a person must look at this"},
}


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("event", list(EVENTS))
def test_no_event_changes_a_finished_workflow(client, db, status, event):
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    response = post_event(client, workflow["id"], event.split(" ")[0], event_id=f"evt-late-{event}", **EVENTS[event])
    error = assert_finished_refusal(response, status)
    assert error["details"]["type"] == event.split(" ")[0] and error["details"]["replay"] is False
    # Only the event's receipt is written, holding the refusal.
    assert changed_tables(before, fingerprint(db)) == ["public.webhook_receipts"]
    receipt = db.execute("select status_code, rejected_reason from public.webhook_receipts where event_id = %s",
                         (f"evt-late-{event}",)).fetchone()
    assert receipt["status_code"] == 409 and "finished" in receipt["rejected_reason"]
    # Its retry is answered from the receipt: the same 409, and nothing written at all.
    before = fingerprint(db)
    again = post_event(client, workflow["id"], event.split(" ")[0], event_id=f"evt-late-{event}", **EVENTS[event])
    assert again.status_code == 409 and again.headers["Webhook-Replay"] == "true"
    assert {**again.json["error"], "requestId": None, "details": None} == \
        {**response.json["error"], "requestId": None, "details": None}
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])  # a cancel is an action, not an event
def test_the_event_that_finished_a_workflow_replays_its_first_answer(client, db, status):
    workflow, _ = finish(db, status)
    first = db.execute("select status_code, response from public.webhook_receipts where event_id = 'evt-finished'"
                       " and workflow_id = %s", (workflow["id"],)).fetchone()
    before = fingerprint(db)
    event = "workflow.completed" if status == "COMPLETED" else "workflow.failed"
    response = post_event(client, workflow["id"], event, event_id="evt-finished", **EVENTS[event])
    assert response.status_code == first["status_code"] == 200 and response.json == first["response"]
    assert response.headers["Webhook-Replay"] == "true"
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
def test_a_late_completion_leaves_the_finished_tasks_result_output_and_costs(client, db, status):
    # The tester's example: a signed task.completed with a new event id on a finished workflow.
    workflow, tasks = finish(db, status)
    response = post_event(client, workflow["id"], "task.completed", event_id="evt-late", **EVENTS["task.completed"])
    assert_finished_refusal(response, status)
    task = tasks_of(db, workflow["id"])[STEP]
    assert (task["result"], task["agent_output"]) == (tasks[STEP]["result"], tasks[STEP]["agent_output"])
    counts = db.execute("""select (select count(*) from public.agent_results where workflow_id = %(w)s) results,
                                  (select count(*) from public.cost_items where workflow_id = %(w)s) costs""",
                        {"w": workflow["id"]}).fetchone()
    assert (counts["results"], counts["costs"]) == (1, 1)


# --------------------------------------------------------------------------------------------
# The error workflow's report
# --------------------------------------------------------------------------------------------
def report(client, execution_id, message):
    return client.post("/webhooks/n8n/errors", json={"executionId": execution_id, "error": {"message": message}},
                       headers={"X-N8N-Error-Token": ERROR_TOKEN})


@pytest.mark.parametrize("status", FINISHED)
def test_an_error_report_fails_no_finished_workflow(client, db, status):
    workflow, _ = finish(db, status)
    assert workflow["n8n_execution_id"] == "exec-1"
    before = fingerprint(db)
    assert_finished_refusal(report(client, "exec-1", "a node threw"), status)
    assert changed_tables(before, fingerprint(db)) == ["public.webhook_receipts"]
    before = fingerprint(db)
    assert report(client, "exec-1", "a node threw").status_code == 409
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
def test_a_lost_execution_of_a_finished_workflow_is_not_started_again(client, db, status):
    # n8n's words for an execution lost with its worker: recovery is for a workflow in progress;
    # on a finished one it is refused like every other late report, and writes nothing.
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    response = report(client, "exec-1", "Workflow did not finish, possible out-of-memory issue")
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_state", response.json
    assert status in response.json["error"]["message"]
    assert changed_tables(before, fingerprint(db)) == []


# --------------------------------------------------------------------------------------------
# Workflow and task actions, injected tasks, inbound deliveries
# --------------------------------------------------------------------------------------------
WORKFLOW_ACTIONS = {"start": {}, "pause": {}, "resume": {}, "cancel": {"reason": "late"}, "complete": {}}
HIL = ("operator", "manager")
RECOVERY = ("resume", "cancel")  # a HIL person's, of a FAILED workflow only


def recovers(status, person, action) -> bool:
    return status == "FAILED" and person in HIL and action in RECOVERY


@pytest.mark.parametrize("status, person, action", [
    (status, person, action) for status in FINISHED
    for person, action in [("operator", a) for a in WORKFLOW_ACTIONS] + [("manager", a) for a in RECOVERY]
    + [("client_user_a", "start"), ("client_user_a", "cancel")]
    if not recovers(status, person, action)])
def test_no_workflow_action_changes_a_finished_workflow(as_, db, status, person, action):
    # A client's cancel of a FAILED order is refused too (409): what becomes of a failed order is
    # the HIL team's decision, to resume it or close it out.
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    response = as_(person).post(f"/api/workflows/{workflow['id']}/actions",
                                json={"action": action, "data": WORKFLOW_ACTIONS[action]})
    assert_finished_refusal(response, status)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
def test_a_client_never_resumes_a_finished_workflow(as_, db, status):
    # 403, whatever the status: resume is no client's action (only start and cancel are), and the
    # role is checked before the state.
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    response = as_("client_user_a").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"})
    assert assert_refused(response, 403)["code"] == "forbidden"
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status, person", [(s, p) for s in FINISHED for p in ("operator", "client_user_a")
                                            if not recovers(s, p, "cancel")])
def test_a_finished_workflow_cannot_be_deleted(as_, db, status, person):
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    assert_finished_refusal(as_(person).delete(f"/api/workflows/{workflow['id']}"), status)
    assert changed_tables(before, fingerprint(db)) == []


TASK_ACTIONS = {
    "complete": {"result": {"checked": True}}, "retry": {}, "escalate": {"reason": "look again"},
    "assign": {"assigneeId": str(OPERATOR.user_id)}, "fail": {"error": "late"}, "resume": {"complete": True},
}


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("action", list(TASK_ACTIONS))
@pytest.mark.parametrize("step", [STEP, "await_statement"])  # a task done before the end, one not reached
def test_no_task_action_changes_a_finished_workflow(as_, db, status, action, step):
    workflow, tasks = finish(db, status)
    before = fingerprint(db)
    response = as_("operator").post(f"/api/tasks/{tasks[step]['id']}/actions",
                                    json={"action": action, "data": TASK_ACTIONS[action]})
    assert_finished_refusal(response, status)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
def test_a_finished_workflows_task_cannot_be_deleted(as_, db, status):
    workflow, tasks = finish(db, status)
    before = fingerprint(db)
    assert_finished_refusal(as_("operator").delete(f"/api/tasks/{tasks['await_statement']['id']}"), status)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
def test_no_task_is_injected_into_a_finished_workflow(as_, db, status):
    workflow, _ = finish(db, status)
    before = fingerprint(db)
    response = as_("operator").post("/api/tasks", json={"workflowId": str(workflow["id"]), "taskType": "manual_check",
                                                        "title": "Check once more"})
    assert_finished_refusal(response, status)
    assert changed_tables(before, fingerprint(db)) == []


def finish_world_workflow(db, status):
    """A101, the workflow agent_a works on (its step A201 RUNNING, an attempt by nina), finished."""
    workflow_id = row("A101")
    if status == "CANCELLED":
        db.execute("select public.workflow_action(%s, 'cancel')", (workflow_id,))
    elif status == "FAILED":
        apply(db, workflow_id, "workflow.failed", "evt-world-failed", error="down")
    else:
        db.execute("select public.transition_task(%s, 'COMPLETED', '{\"result\": {\"ok\": true}}')", (row("A201"),))
        db.execute("select public.workflow_action(%s, 'complete')", (workflow_id,))
    return workflow_id


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("request_", [
    ("post", "/actions", {"action": "complete", "data": {"result": {"late": True}}}),
    ("post", "/actions", {"action": "fail", "data": {"error": "late"}}),
    ("patch", "", {"description": "late change", "metadata": {"note": "late"}}),
], ids=["complete", "fail", "patch"])
def test_an_agent_changes_nothing_in_a_finished_workflow(as_, db, status, request_):
    finish_world_workflow(db, status)
    method, suffix, body = request_
    before = fingerprint(db)
    response = getattr(as_("agent_a"), method)(f"/api/tasks/{row('A201')}{suffix}", json=body)
    assert_finished_refusal(response, status)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("kind, workflow_type, path, body", [
    ("payoff statement", "PAYOFF_REQUEST", "/webhooks/inbound/payoff-statement",
     {"statement": {"payoffAmount": 1000.5}, "documents": [{"filename": "statement.pdf"}]}),
    ("hoa documents", "HOA_ACQUISITION", "/webhooks/inbound/hoa-documents", {"documents": [{"filename": "bylaws.pdf"}]}),
])
def test_a_finished_workflow_takes_no_inbound_delivery(client, db, status, kind, workflow_type, path, body):
    workflow, _ = finish(db, status, workflow_type)
    before = fingerprint(db)
    response = client.post(path, json={"workflowId": str(workflow["id"]), **body},
                           headers={"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, str(workflow['id']))}"})
    error = assert_finished_refusal(response, status)
    assert kind in error["message"]
    assert changed_tables(before, fingerprint(db)) == []


# --------------------------------------------------------------------------------------------
# Every path: the functions as Supabase RPC and n8n's Postgres node call them, callers' own writes
# --------------------------------------------------------------------------------------------
FUNCTION_CALLS = [
    *[f"select public.workflow_action(%(w)s, '{action}')" for action in WORKFLOW_ACTIONS],
    *[f"select public.task_action(%(t)s, '{action}', '{json.dumps(data)}')" for action, data in TASK_ACTIONS.items()],
    "select public.task_action(%(t)s, 'cancel')",
    *[f"select public.transition_task(%(t)s, '{s}')" for s in ("RUNNING", "COMPLETED", "FAILED", "SKIPPED")],
]
SERVICE_ONLY_CALLS = ["select public.receive_inbound('payoff_statement', %(w)s, '{}')"]
RECOVERY_CALLS = [f"select public.workflow_action(%(w)s, '{action}')" for action in RECOVERY]


@pytest.mark.parametrize("status, caller, statement", [
    (status, caller, statement) for status in FINISHED
    for caller, statement in [(c, s) for s in FUNCTION_CALLS for c in ("service", "operator")]
    + [("service", s) for s in SERVICE_ONLY_CALLS]
    if not (caller == "operator" and status == "FAILED" and statement in RECOVERY_CALLS)])
def test_every_function_refuses_a_finished_workflow(db, status, caller, statement):
    # The service (and n8n's Postgres node, which calls as it) recovers no failed workflow.
    workflow, tasks = finish(db, status)
    before = fingerprint(db)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=f"finished \\({status}\\)"):
        with db.transaction():
            if caller == "operator":
                act_as(db, OPERATOR)
            db.execute(statement, {"w": workflow["id"], "t": tasks["await_statement"]["id"]})
    act_as_service(db)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("person, statement", [
    ("operator", "insert into public.tasks (workflow_id, task_key, task_type, title) values (%(w)s, 'late', 'late', 'Late')"),
    ("operator", "update public.tasks set status = 'RUNNING' where id = %(t)s"),
    ("agent_a", "update public.tasks set result = '{\"late\": true}' where id = %(t)s"),
    ("operator", "update public.workflows set status = 'IN_PROGRESS' where id = %(w)s"),
    ("manager", "update public.workflows set status = case when status = 'CANCELLED' then 'COMPLETED'"
                " else 'CANCELLED' end::public.workflow_status where id = %(w)s"),
], ids=["a person adds a task", "a correction changes a status", "an agent writes a result",
        "a correction restarts the workflow", "a correction closes the workflow"])
def test_callers_own_writes_do_not_change_a_finished_workflows_work(db, status, person, statement):
    # Supabase's REST API writes rows as the caller: the database holds the rule there too.
    if person == "agent_a":
        workflow_id, task_id = finish_world_workflow(db, status), row("A201")
    else:
        workflow, tasks = finish(db, status)
        workflow_id, task_id = workflow["id"], tasks["await_statement"]["id"]
    before = fingerprint(db)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=f"finished \\({status}\\)"):
        with db.transaction():
            act_as(db, PEOPLE[person])
            db.execute(statement, {"w": workflow_id, "t": task_id})
    act_as_service(db)
    assert changed_tables(before, fingerprint(db)) == []


# --------------------------------------------------------------------------------------------
# A person's deliberate correction
# --------------------------------------------------------------------------------------------
def audit_events(db, resource_id):
    return db.execute("select event_type, actor_type, actor_id, changes, data from public.audit_events"
                      " where resource_id = %s order by created_at, event_type", (resource_id,)).fetchall()


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("person", ["operator", "manager"])
def test_a_hil_correction_of_a_finished_workflow_is_allowed_and_audited_as_one(as_, db, status, person):
    workflow, _ = finish(db, status)
    kept = {k: v for k, v in workflow["metadata"].items()}  # what the server wrote (failure, cancelReason)
    response = as_(person).patch(f"/api/workflows/{workflow['id']}",
                                 json={"title": "Payoff, corrected", "metadata": {"correction": "title typo"}})
    assert response.status_code == 200, response.json
    assert response.json["status"] == status and response.json["title"] == "Payoff, corrected"
    assert response.json["metadata"] == {**kept, "correction": "title typo"}
    corrected = [e for e in audit_events(db, workflow["id"]) if e["event_type"] == "workflow.corrected"]
    assert len(corrected) == 1 and corrected[0]["actor_type"] == "human"
    assert corrected[0]["actor_id"] == str(PEOPLE[person].user_id)
    assert corrected[0]["data"] == {"finishedStatus": status}
    assert corrected[0]["changes"]["title"]["new"] == "Payoff, corrected"
    assert not [e for e in audit_events(db, workflow["id"]) if e["event_type"] == "workflow.updated"
                and e["actor_type"] == "human"]


@pytest.mark.parametrize("status", FINISHED)
def test_a_hil_correction_of_a_finished_task_is_allowed_and_audited_as_one(as_, db, status):
    workflow, tasks = finish(db, status)
    task = tasks[STEP]
    response = as_("operator").patch(f"/api/tasks/{task['id']}",
                                     json={"description": "The lender was First Bank NA", "metadata": {"checked": True}})
    assert response.status_code == 200, response.json
    assert response.json["status"] == task["status"] and response.json["description"] == "The lender was First Bank NA"
    corrected = [e for e in audit_events(db, task["id"]) if e["event_type"] == "task.corrected"]
    assert len(corrected) == 1 and corrected[0]["data"] == {"finishedStatus": status}
    assert corrected[0]["actor_id"] == str(OPERATOR.user_id)


def test_a_workflow_a_person_finishes_is_no_correction(as_, db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    assert as_("operator").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "cancel"}).status_code == 200
    events = {e["event_type"] for e in audit_events(db, workflow["id"])}
    assert "workflow.cancelled" in events and not any(e.endswith(".corrected") for e in events)
    task_events = db.execute("select distinct event_type from public.audit_events where workflow_id = %s"
                             " and resource_type = 'task'", (workflow["id"],)).fetchall()
    assert not any(e["event_type"].endswith(".corrected") for e in task_events)


def test_a_client_corrects_nothing_of_a_finished_workflow(as_, db):
    workflow, _ = finish(db, "COMPLETED")
    before = fingerprint(db)
    response = as_("client_user_a").patch(f"/api/workflows/{workflow['id']}", json={"title": "Mine now"})
    assert_refused(response, 403)
    assert changed_tables(before, fingerprint(db)) == []


CLOCKS = """select count(*) filter (where stopped_at is null and paused_at is null) as running,
                  count(*) filter (where paused_at is not null) as paused,
                  count(*) filter (where stopped_at is not null) as stopped,
                  count(*) filter (where next_alert_at is not null) as alerting
             from public.sla_tracking where workflow_id = %s"""


def test_a_failed_workflows_clocks_stand_still_until_a_person_resumes_or_cancels_it(as_, db):
    # Nothing runs a failed workflow's open tasks: their SLA clocks stand still with it (as a
    # paused workflow's do), so they neither breach nor escalate to anyone; a person's resume
    # starts them again with the minutes they had left, a cancel stops them.
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    apply(db, workflow["id"], "task.started", "evt-started", taskKey=STEP)
    started = db.execute(CLOCKS, (workflow["id"],)).fetchone()
    assert started["running"] >= 1 and started["alerting"] == started["running"]
    apply(db, workflow["id"], "workflow.failed", "evt-failed", error="the portal is down")
    failed = db.execute(CLOCKS, (workflow["id"],)).fetchone()
    assert (failed["running"], failed["alerting"], failed["paused"]) == (0, 0, started["running"])
    assert as_("operator").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"}).status_code == 200
    assert db.execute(CLOCKS, (workflow["id"],)).fetchone() == started
    due = db.execute("select sla_due_at from public.tasks where workflow_id = %s and task_key = %s",
                     (workflow["id"], STEP)).fetchone()["sla_due_at"]
    assert due is not None
    apply(db, workflow["id"], "workflow.failed", "evt-failed-again", executionId="exec-2", error="down again")
    assert as_("manager").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "cancel"}).status_code == 200
    cancelled = db.execute(CLOCKS, (workflow["id"],)).fetchone()
    assert (cancelled["running"], cancelled["paused"], cancelled["alerting"]) == (0, 0, 0)


# --------------------------------------------------------------------------------------------
# A HIL person's recovery of a FAILED workflow: resume from the last checkpoint, or cancel
# --------------------------------------------------------------------------------------------
def outbox(db, workflow_id):
    return db.execute("select id, kind, status, payload from public.n8n_dispatches where workflow_id = %s"
                      " order by created_at, payload ? 'resume'", (workflow_id,)).fetchall()


@pytest.mark.parametrize("person", HIL)
def test_a_hil_person_resumes_a_failed_workflow_from_its_last_checkpoint(as_, client, db, person):
    workflow, tasks = finish(db, "FAILED")
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    queued = outbox(db, workflow["id"])
    response = as_(person).post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"})
    assert response.status_code == 200, response.json
    assert (response.json["previousStatus"], response.json["newStatus"]) == ("FAILED", "IN_PROGRESS")

    current = db.execute("select * from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert (current["status"], current["n8n_execution_id"], current["completed_at"]) == ("IN_PROGRESS", None, None)
    assert [e["executionId"] for e in current["metadata"]["lostExecutions"]] == ["exec-1"]
    # Its tasks are runnable again: nothing done is undone, nothing open is left failed.
    now = tasks_of(db, workflow["id"])
    assert now[STEP]["status"] == "COMPLETED" and now[STEP]["result"] == tasks[STEP]["result"]
    assert {t["status"] for k, t in now.items() if k != STEP} == {"PENDING"}
    # Exactly one new row in the outbox: the trigger of a new execution that repeats nothing done.
    [trigger] = outbox(db, workflow["id"])[len(queued):]
    assert (trigger["kind"], trigger["status"]) == ("TRIGGER", "PENDING")
    assert trigger["payload"]["resume"] == {"lostExecutionId": "exec-1", "done": {STEP: {"lender": "First Bank"}}}
    # Audited as the person's resume, their watchers told.
    [audit] = [e for e in audit_events(db, workflow["id"]) if e["event_type"] == "workflow.resumed"]
    assert audit["actor_type"] == "human" and audit["actor_id"] == str(PEOPLE[person].user_id)
    assert audit["changes"] == {"status": {"old": "FAILED", "new": "IN_PROGRESS"}}
    assert audit["data"]["recovery"]["retiredExecutionId"] == "exec-1"
    assert audit["data"]["recovery"]["dispatchId"] == str(trigger["id"])
    assert db.execute("select count(*) n from public.notifications where dedupe_key = %s",
                      (f"workflow_resumed:{workflow['id']}:exec-1",)).fetchone()["n"] >= 1

    # The failed execution is retired: what it still sends is refused (409) and writes nothing
    # but its receipt; a late error report of it is answered as for a lost one and writes nothing.
    before = fingerprint(db)
    late = post_event(client, workflow["id"], "task.completed", event_id="evt-late-after-resume",
                      **EVENTS["task.completed"])
    assert late.status_code == 409 and "was lost" in late.json["error"]["message"]
    assert changed_tables(before, fingerprint(db)) == ["public.webhook_receipts"]
    before = fingerprint(db)
    reported = report(client, "exec-1", "a node threw")
    assert reported.status_code == 200 and reported.json["applied"] is False
    assert changed_tables(before, fingerprint(db)) == []
    # The new execution's callbacks are applied.
    started = post_event(client, workflow["id"], "task.started", executionId="exec-2", taskKey="send_payoff_request")
    assert started.status_code == 200, started.json
    assert tasks_of(db, workflow["id"])["send_payoff_request"]["status"] == "RUNNING"


@pytest.mark.parametrize("person", HIL)
@pytest.mark.parametrize("how", ["action", "delete"])
def test_a_hil_person_closes_out_a_failed_workflow(as_, db, person, how):
    workflow, tasks = finish(db, "FAILED")
    queued = outbox(db, workflow["id"])
    if how == "action":
        response = as_(person).post(f"/api/workflows/{workflow['id']}/actions",
                                    json={"action": "cancel", "data": {"reason": "client withdrew"}})
    else:
        response = as_(person).delete(f"/api/workflows/{workflow['id']}")
    assert response.status_code == 200, response.json
    current = db.execute("select status, metadata from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert current["status"] == "CANCELLED" and current["metadata"]["cancelReason"]
    now = tasks_of(db, workflow["id"])
    assert now[STEP]["status"] == "COMPLETED" and {t["status"] for k, t in now.items() if k != STEP} == {"CANCELLED"}
    # n8n's execution ended with the failure: nothing to stop, nothing queued.
    assert [d["id"] for d in outbox(db, workflow["id"])] == [d["id"] for d in queued]
    [audit] = [e for e in audit_events(db, workflow["id"]) if e["event_type"] == "workflow.cancelled"]
    assert audit["actor_id"] == str(PEOPLE[person].user_id)
    assert audit["changes"] == {"status": {"old": "FAILED", "new": "CANCELLED"}}
    # Cancelled is final: not even a HIL person resumes it.
    assert_finished_refusal(as_(person).post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"}),
                            "CANCELLED")


def test_a_resumed_workflow_that_fails_again_is_final_again_for_machines(as_, client, db):
    workflow, _ = finish(db, "FAILED")
    assert as_("operator").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"}).status_code == 200
    apply(db, workflow["id"], "workflow.failed", "evt-failed-again", executionId="exec-2", error="down again")
    before = fingerprint(db)
    response = post_event(client, workflow["id"], "task.started", event_id="evt-after-second-failure",
                          executionId="exec-2", taskKey="send_payoff_request")
    assert_finished_refusal(response, "FAILED")
    assert changed_tables(before, fingerprint(db)) == ["public.webhook_receipts"]
    # And a person recovers it again: both failed executions are retired.
    assert as_("manager").post(f"/api/workflows/{workflow['id']}/actions", json={"action": "resume"}).status_code == 200
    metadata = db.execute("select metadata from public.workflows where id = %s", (workflow["id"],)).fetchone()["metadata"]
    assert [e["executionId"] for e in metadata["lostExecutions"]] == ["exec-1", "exec-2"]
