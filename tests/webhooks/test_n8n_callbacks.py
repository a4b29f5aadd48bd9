"""POST /webhooks/n8n: verified before the database is touched, applied exactly once."""
from __future__ import annotations

import json
import uuid

import pytest

from app.webhooks.signing import signed_headers, workflow_key
from tests.service_fixtures import CALLBACK_SECRET, ERROR_TOKEN
from tests.db.factories import make_workflow, secret_resume_url, start_workflow, tasks_of


def post_event(client, workflow_id, event_type, event_id=None, key_for=None, derive=workflow_key, **data):
    body = json.dumps({"type": event_type, "timestamp": "2026-11-26T12:00:00Z",
                       "data": {"workflowId": str(workflow_id), "executionId": "exec-1", **data}}).encode()
    key = derive(CALLBACK_SECRET, str(key_for or workflow_id))
    headers = {**signed_headers(key, event_id or f"evt-{uuid.uuid4()}", body), "Content-Type": "application/json"}
    return client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers)


@pytest.fixture
def running(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    return workflow


def counts(db):
    return db.execute("""select (select count(*) from public.webhook_receipts) receipts,
                                (select count(*) from public.task_executions) executions,
                                (select count(*) from public.audit_events) audit,
                                (select count(*) from public.agent_results) results""").fetchone()


def test_started_then_completed_updates_the_business_layer(client, db, running):
    assert post_event(client, running["id"], "task.started", taskKey="identify_lender_contact", attempt=1).status_code == 200
    response = post_event(client, running["id"], "task.completed", taskKey="identify_lender_contact", attempt=1,
                          output={"lender": "First Bank", "hasIvr": True},
                          metrics={"confidence": 0.93, "processingTimeMs": 1200, "tokensUsed": 800, "costUsd": 0.04})
    assert response.status_code == 200, response.json
    assert response.json["result"]["newStatus"] == "COMPLETED"
    task = tasks_of(db, running["id"])["identify_lender_contact"]
    assert task["status"] == "COMPLETED" and task["result"] == {"lender": "First Bank", "hasIvr": True}
    execution = db.execute("select * from public.task_executions where task_id = %s", (task["id"],)).fetchone()
    assert (execution["status"], execution["duration_ms"], execution["n8n_execution_id"]) == ("SUCCEEDED", 1200, "exec-1")
    result = db.execute("select * from public.agent_results where task_id = %s", (task["id"],)).fetchone()
    assert float(result["confidence_score"]) == 0.93 and result["agent_name"] == "nina"
    assert db.execute("select amount_usd from public.cost_items where task_id = %s", (task["id"],)).fetchone()["amount_usd"] > 0
    workflow = db.execute("select n8n_execution_id, completed_tasks from public.workflows where id = %s", (running["id"],)).fetchone()
    assert workflow == {"n8n_execution_id": "exec-1", "completed_tasks": 1}


def test_a_replayed_callback_returns_the_first_answer_and_changes_nothing(client, db, running):
    first = post_event(client, running["id"], "task.started", event_id="evt-once", taskKey="identify_lender_contact")
    before = counts(db)
    again = post_event(client, running["id"], "task.started", event_id="evt-once", taskKey="identify_lender_contact")
    assert again.status_code == first.status_code == 200
    assert again.json == first.json and again.headers["Webhook-Replay"] == "true"
    assert counts(db) == before


@pytest.mark.parametrize("mangle", [
    lambda r: {**r, "webhook-signature": "v1," + "A" * 44},
    lambda r: {**r, "webhook-timestamp": "1000000000"},
    lambda r: {k: v for k, v in r.items() if k != "webhook-id"},
])
def test_bad_signatures_are_refused_before_the_database(client, db, running, mangle):
    body = json.dumps({"type": "task.started", "data": {"workflowId": str(running["id"]), "taskKey": "identify_lender_contact"}}).encode()
    headers = mangle(signed_headers(workflow_key(CALLBACK_SECRET, str(running["id"])), "evt-x", body))
    before = counts(db)
    response = client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_signature"
    assert counts(db) == before


def test_an_execution_holding_the_earlier_form_of_its_key_is_still_heard(client, db, running):
    # Executions started before keys became text (hex) hold the raw 32 bytes; one may wait for days.
    from app.webhooks.signing import earlier_workflow_key

    response = post_event(client, running["id"], "task.started", derive=earlier_workflow_key, taskKey="identify_lender_contact")
    assert response.status_code == 200, response.json
    assert tasks_of(db, running["id"])["identify_lender_contact"]["status"] == "RUNNING"
    other = make_workflow(db)
    refused = post_event(client, running["id"], "task.completed", key_for=other["id"], derive=earlier_workflow_key,
                         taskKey="identify_lender_contact")
    assert refused.status_code == 401 and refused.json["error"]["code"] == "invalid_signature"


def test_another_workflows_key_cannot_sign(client, db, running):
    other = make_workflow(db)
    response = post_event(client, running["id"], "task.started", key_for=other["id"], taskKey="identify_lender_contact")
    assert response.status_code == 401


MALFORMED = [b"not json", b'{"type": "task.started"}', b'{"type": "task.exploded", "data": {"workflowId": "x"}}',
             b'{"type": "task.started", "data": {"workflowId": "x"', b'{"type": "task.started", "data": "workflowId"}']


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_unsigned_bodies_are_refused_before_they_are_parsed(client, body):
    response = client.post("/webhooks/n8n", data=body, content_type="application/json", headers={"webhook-id": "e", "webhook-timestamp": "1", "webhook-signature": "v1,x"})
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("body", [b for b in MALFORMED if b'"workflowId": "x"' in b])
def test_malformed_signed_bodies_get_400(client, body):
    response = client.post("/webhooks/n8n", data=body, content_type="application/json",
                           headers=signed_headers(workflow_key(CALLBACK_SECRET, "x"), "evt-malformed", body))
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_body"


def test_a_body_signed_for_another_workflow_it_names_is_refused(client, db, running):
    other = make_workflow(db)
    body = json.dumps({"type": "task.started", "timestamp": "2026-11-26T12:00:00Z",
                       "data": {"workflowId": str(running["id"]), "taskKey": "identify_lender_contact",
                                "note": {"workflowId": str(other["id"])}}}).encode()
    response = client.post("/webhooks/n8n", data=body, content_type="application/json",
                           headers=signed_headers(workflow_key(CALLBACK_SECRET, str(other["id"])), "evt-other", body))
    assert response.status_code == 400 and "signed" in response.json["error"]["message"]


def test_contradicting_events_get_409_and_are_recorded(client, db, running):
    db.execute("select public.workflow_action(%s, 'cancel')", (running["id"],))
    response = post_event(client, running["id"], "task.completed", event_id="evt-late", taskKey="identify_lender_contact")
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_state"
    receipt = db.execute("select status_code, rejected_reason from public.webhook_receipts where event_id = 'evt-late'").fetchone()
    assert receipt["status_code"] == 409 and "CANCELLED" in receipt["rejected_reason"]
    assert tasks_of(db, running["id"])["identify_lender_contact"]["status"] == "CANCELLED"
    replay = post_event(client, running["id"], "task.completed", event_id="evt-late", taskKey="identify_lender_contact")
    assert replay.status_code == 409 and replay.headers["Webhook-Replay"] == "true"


def test_unknown_task_is_404(client, running):
    assert post_event(client, running["id"], "task.started", taskKey="no_such_step").status_code == 404


def test_waiting_records_the_resume_url_and_injection_adds_a_task(client, db, running):
    assert post_event(client, running["id"], "task.waiting", taskKey="await_statement",
                      resumeUrl="http://127.0.0.1:5678/webhook-waiting/9").status_code == 200
    waiting = tasks_of(db, running["id"])["await_statement"]
    assert waiting["resume_url"] == f"n8n-resume:{waiting['id']}"
    assert secret_resume_url(db, waiting["id"]).endswith("/9")
    response = post_event(client, running["id"], "task.injected",
                          task={"taskKey": "handle_client_update", "taskType": "handle_client_update", "agentName": "ria",
                                "title": "Handle client update", "priority": "HIGH"})
    assert response.status_code == 200, response.json
    injected = tasks_of(db, running["id"])["handle_client_update"]
    assert injected["sla_minutes"] == 30 and injected["priority"] == "HIGH" and injected["sla_due_at"] is not None


def test_workflow_completed_skips_untaken_branches(client, db, running):
    for key in ("identify_lender_contact", "send_payoff_request", "await_statement"):
        post_event(client, running["id"], "task.started", taskKey=key)
        post_event(client, running["id"], "task.completed", taskKey=key)
    response = post_event(client, running["id"], "workflow.completed")
    assert response.status_code == 200, response.json
    statuses = {k: t["status"] for k, t in tasks_of(db, running["id"]).items()}
    assert statuses["identify_lender_contact"] == "COMPLETED" and statuses["notify_client"] == "SKIPPED"
    assert db.execute("select status from public.workflows where id = %s", (running["id"],)).fetchone()["status"] == "COMPLETED"


def test_a_final_failure_notifies_people(client, db, running):
    post_event(client, running["id"], "task.started", taskKey="identify_lender_contact")
    response = post_event(client, running["id"], "task.failed", taskKey="identify_lender_contact", error="timeout", retryable=False)
    assert response.status_code == 200 and response.json["result"]["notificationsSent"] >= 1
    assert db.execute("select count(*) as n from public.notifications where workflow_id = %s and notification_type = 'AGENT_FAILURE'",
                      (running["id"],)).fetchone()["n"] >= 1


def test_escalation_blocks_the_workflow(client, db, running):
    response = post_event(client, running["id"], "escalation", reason="more than half of the portals failed")
    assert response.status_code == 200
    assert db.execute("select status from public.workflows where id = %s", (running["id"],)).fetchone()["status"] == "BLOCKED"


def test_the_error_workflow_fails_the_owning_workflow_once(client, db, running):
    db.execute("update public.workflows set n8n_execution_id = 'exec-err' where id = %s", (running["id"],))
    headers = {"X-N8N-Error-Token": ERROR_TOKEN}
    first = client.post("/webhooks/n8n/errors", json={"executionId": "exec-err", "error": {"message": "boom"}}, headers=headers)
    assert first.status_code == 200, first.json
    again = client.post("/webhooks/n8n/errors", json={"executionId": "exec-err", "error": {"message": "boom"}}, headers=headers)
    assert again.status_code == 200 and again.headers["Webhook-Replay"] == "true"
    assert db.execute("select status from public.workflows where id = %s", (running["id"],)).fetchone()["status"] == "FAILED"
    assert client.post("/webhooks/n8n/errors", json={"executionId": "exec-err"}, headers={"X-N8N-Error-Token": "nope"}).status_code == 401
    assert client.post("/webhooks/n8n/errors", json={"executionId": "unknown"}, headers=headers).status_code == 404


def test_waiting_on_the_client_stops_the_sla_clock(client, db, running):
    for key in ("identify_lender_contact", "send_payoff_request"):
        post_event(client, running["id"], "task.started", taskKey=key)
        post_event(client, running["id"], "task.completed", taskKey=key)
    assert tasks_of(db, running["id"])["await_statement"]["sla_due_at"] is not None  # its clock runs
    response = post_event(client, running["id"], "task.waiting", taskKey="await_statement", waitingOn="client",
                          resumeUrl="http://127.0.0.1:5678/webhook-waiting/10")
    assert response.status_code == 200, response.json
    task = tasks_of(db, running["id"])["await_statement"]
    assert task["status"] == "WAITING" and task["metadata"]["waitingOn"] == "CLIENT"
    assert task["sla_due_at"] is None  # stopped while the client has the ball


EVENT_ID_SHAPES = ["{w1}:exec:1:task.started:1:0", "evt-shared", "{w1}"]


@pytest.mark.parametrize("shape", EVENT_ID_SHAPES)
@pytest.mark.parametrize("event_type, data", [
    ("task.started", {"taskKey": "identify_lender_contact", "attempt": 1}),
    ("escalation", {"reason": "an id taken first by another workflow"}),
])
def test_one_workflows_key_never_affects_another_workflow(client, db, shape, event_type, data):
    # Receipts are keyed by (workflow, event id): W2's key cannot claim an id W1 will use, and
    # W1's genuine event is applied, not answered with W2's stored answer.
    first, second = make_workflow(db), make_workflow(db)
    for workflow in (first, second):
        start_workflow(db, workflow["id"])
    event_id = shape.format(w1=first["id"])
    def send(workflow):
        return post_event(client, workflow["id"], event_type, event_id=event_id, executionId=f"exec-{workflow['id']}",
                          **data)

    taken = send(second)
    assert taken.status_code == 200 and "Webhook-Replay" not in taken.headers
    genuine = send(first)
    assert genuine.status_code == 200 and "Webhook-Replay" not in genuine.headers, genuine.json
    receipts = db.execute("select workflow_id from public.webhook_receipts where event_id = %s order by received_at",
                          (event_id,)).fetchall()
    assert {r["workflow_id"] for r in receipts} == {first["id"], second["id"]}
    if event_type == "task.started":
        assert tasks_of(db, first["id"])["identify_lender_contact"]["status"] == "RUNNING"
    # Each workflow's own replay still gets its own first answer.
    for workflow, answer in ((first, genuine), (second, taken)):
        replay = send(workflow)
        assert replay.headers["Webhook-Replay"] == "true" and replay.json == answer.json


def test_an_event_signed_with_another_workflows_key_is_refused(client, db, running):
    other = make_workflow(db)
    response = post_event(client, running["id"], "task.started", key_for=other["id"], taskKey="identify_lender_contact")
    assert response.status_code == 401
