"""End to end: the service (with its dispatcher), a real n8n running the exported workflows, and
the simulated agents, talking HTTP to each other. One behaviour per test."""
from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from tests.e2e.harness import new_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FINAL_TASK_STATUSES = {"COMPLETED", "SKIPPED"}


def payoff_payload(**overrides) -> dict:
    return {"address": f"{new_id()} Elm Street, Austin, TX 78701", "borrowerName": "Dana Whitfield",
            "lenderName": "First Harbor Bank", "loanNumber": f"LN-{new_id()}",
            "payoffDate": (date.today() + timedelta(days=20)).isoformat(), "estimatedBalance": 250000.0,
            **overrides}


def hoa_payload(**overrides) -> dict:
    return {"address": f"{new_id()} Lakeview Drive, Plano, TX 75024", "hoaName": "Lakeview Commons HOA",
            "documentsRequested": ["bylaws", "financials"], "buyer": "Sam Ortega",
            "closingDate": (date.today() + timedelta(days=30)).isoformat(), **overrides}


def muni_payload(**overrides) -> dict:
    return {"address": f"{new_id()} Congress Avenue, Austin, TX 78701", "county": "Travis",
            "parcelNumber": f"P-{new_id()}", "buyer": "Robin Castillo",
            "closingDate": (date.today() + timedelta(days=14)).isoformat(),
            "searchTypes": ["tax_liens", "utility_liens", "municipal_liens"], **overrides}


def find_key(value, key: str):
    """The first value of `key` anywhere in a JSON value."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def deliver_statement(world, workflow_id, estimate: float = 250000.0):
    response = world.deliver_inbound("payoff-statement", {
        "workflowId": workflow_id,
        "statement": {"payoffAmount": round(estimate + 1234.56, 2), "perDiem": 34.25,
                      "goodThrough": (date.today() + timedelta(days=20)).isoformat()},
        "documents": [{"filename": "payoff-statement.pdf", "contentType": "application/pdf", "sizeBytes": 48213}],
        "from": "payoffs@firstharbor.example",
    })
    assert response.status_code == 202, response.text
    return response.json()


def run_payoff_until_waiting(world) -> str:
    workflow_id = world.start("PAYOFF_REQUEST", payoff_payload())
    workflow = world.wait_task(workflow_id, "await_statement", {"WAITING"}, deadline=90)
    assert workflow["tasksByKey"]["await_statement"]["status"] == "WAITING", explain(world, workflow)
    return workflow_id


def explain(world, workflow) -> str:
    return f"{world.describe(workflow)}; n8n: {world.n8n_failure(workflow['id'])}"


def assert_all_tasks_final(workflow):
    open_tasks = {key: task["status"] for key, task in workflow["tasksByKey"].items()
                  if task["status"] not in FINAL_TASK_STATUSES}
    assert not open_tasks, f"tasks not in a final state: {open_tasks}"


# ---- PAYOFF_REQUEST -------------------------------------------------------------------------
def test_payoff_request_runs_from_creation_to_completed(world):
    workflow_id = run_payoff_until_waiting(world)

    received = deliver_statement(world, workflow_id)
    assert received["forwarded"] is True and received["documentsStored"] == 1

    workflow = world.wait_final(workflow_id, deadline=90)
    assert workflow["status"] == "COMPLETED", explain(world, workflow)
    assert_all_tasks_final(workflow)
    tasks = workflow["tasksByKey"]
    for key in ("identify_lender_contact", "send_payoff_request", "await_statement", "extract_payoff_data",
                "generate_invoice", "update_crm_record", "notify_client"):
        assert tasks[key]["status"] == "COMPLETED", (key, explain(world, workflow))

    # send_payoff_request was done by the agent Nina's lender research routed to.
    nina = world.query("""select r.result from public.agent_results r join public.tasks t on t.id = r.task_id
                          where r.workflow_id = %s and t.task_key = 'identify_lender_contact' and r.success""",
                       (workflow_id,))
    assert nina, "no agent result recorded for identify_lender_contact"
    routed = find_key(nina[-1]["result"], "recommendedAgent")
    assert routed in ("max", "florian", "mia"), nina[-1]["result"]
    sent = world.query("""select t.agent_name, r.agent_name as result_agent, r.success
                          from public.tasks t left join public.agent_results r on r.task_id = t.id
                          where t.workflow_id = %s and t.task_key = 'send_payoff_request'""", (workflow_id,))
    assert sent[0]["agent_name"] == routed, (sent, routed)
    assert any(row["result_agent"] == routed and row["success"] for row in sent), (sent, routed)

    # In the database: delivered trigger and resume, the statement stored, the workflow closed.
    dispatches = {row["kind"]: row for row in world.query(
        "select kind, status, attempts from public.n8n_dispatches where workflow_id = %s", (workflow_id,))}
    assert dispatches["TRIGGER"]["status"] == "DELIVERED" and dispatches["TRIGGER"]["attempts"] == 1
    assert dispatches["RESUME"]["status"] == "DELIVERED"
    row = world.query("select status, completed_at, n8n_execution_id from public.workflows where id = %s",
                      (workflow_id,))[0]
    assert row["status"] == "COMPLETED" and row["completed_at"] is not None and row["n8n_execution_id"]
    assert world.query("select count(*) as n from public.documents where workflow_id = %s and filename = %s",
                       (workflow_id, "payoff-statement.pdf"))[0]["n"] == 1


# ---- exactly-once callbacks -------------------------------------------------------------------
def test_a_callback_delivered_twice_changes_nothing_the_second_time(world):
    workflow_id = run_payoff_until_waiting(world)
    calls = [call for call in world.service.recorder.for_workflow(workflow_id) if call["status"] == 200]
    completed = [call for call in calls if call["envelope"]["type"] == "task.completed"]
    assert completed, [call["envelope"]["type"] for call in calls]

    before = world.counts(workflow_id)
    for call in calls:
        response = world.replay_callback(call)
        assert response.status_code == call["status"], response.text
        assert response.headers.get("Webhook-Replay") == "true", (call["envelope"]["type"], response.headers)
    after = world.counts(workflow_id)
    assert after == before

    # The workflow is still able to finish normally.
    deliver_statement(world, workflow_id)
    workflow = world.wait_final(workflow_id, deadline=90)
    assert workflow["status"] == "COMPLETED", explain(world, workflow)


# ---- n8n down ---------------------------------------------------------------------------------
def test_a_trigger_waits_while_n8n_is_down_and_is_delivered_when_it_is_back(world):
    world.n8n.stop()
    try:
        workflow_id = world.start("PAYOFF_REQUEST", payoff_payload())
        world.wait_for(workflow_id, lambda w: world.query(
            "select 1 from public.n8n_dispatches where workflow_id = %s and kind = 'TRIGGER' and status = 'FAILED' "
            "and attempts >= 1", (workflow_id,)), deadline=30, what="a failed trigger attempt")
        failed = world.query("select id, status, attempts, last_error from public.n8n_dispatches "
                             "where workflow_id = %s and kind = 'TRIGGER'", (workflow_id,))
        assert len(failed) == 1 and failed[0]["status"] == "FAILED" and failed[0]["attempts"] >= 1
        assert "unreachable" in failed[0]["last_error"]
        workflow = world.get_workflow(workflow_id)
        assert workflow["tasksByKey"]["identify_lender_contact"]["status"] == "PENDING"
    finally:
        # Park the trigger while n8n starts (it answers 404 until its webhooks are registered;
        # see the report), twice in case a delivery attempt was in flight, then make it due now
        # instead of waiting for the backoff.
        for _ in range(2):
            world.execute("update public.n8n_dispatches set next_attempt_at = now() + interval '1 hour' "
                          "where kind = 'TRIGGER' and status in ('PENDING', 'FAILED')")
            time.sleep(1)
        world.n8n.start()

    world.execute("update public.n8n_dispatches set next_attempt_at = now() where id = %s", (failed[0]["id"],))
    workflow = world.wait_task(workflow_id, "await_statement", {"WAITING"}, deadline=120)
    assert workflow["tasksByKey"]["await_statement"]["status"] == "WAITING", explain(world, workflow)
    delivered = world.query("select status, attempts, delivered_at from public.n8n_dispatches "
                            "where workflow_id = %s and kind = 'TRIGGER'", (workflow_id,))
    assert len(delivered) == 1 and delivered[0]["status"] == "DELIVERED"
    assert delivered[0]["attempts"] >= 2 and delivered[0]["delivered_at"] is not None

    deliver_statement(world, workflow_id)
    workflow = world.wait_final(workflow_id, deadline=90)
    assert workflow["status"] == "COMPLETED", explain(world, workflow)


# ---- HOA_ACQUISITION --------------------------------------------------------------------------
def test_hoa_acquisition_by_email_with_documents_delivered_by_webhook(world):
    workflow_id = world.start("HOA_ACQUISITION", hoa_payload(communicationPreference="email"))
    workflow = world.wait_task(workflow_id, "await_documents", {"WAITING"}, deadline=90)
    assert workflow["tasksByKey"]["await_documents"]["status"] == "WAITING", explain(world, workflow)

    response = world.deliver_inbound("hoa-documents", {
        "workflowId": workflow_id, "from": "manager@lakeview-hoa.example", "note": "Requested documents attached",
        "documents": [{"filename": "bylaws.pdf", "contentType": "application/pdf", "sizeBytes": 120400},
                      {"filename": "financials-2025.pdf", "contentType": "application/pdf", "sizeBytes": 88211}]})
    assert response.status_code == 202, response.text
    assert response.json()["documentsStored"] == 2

    workflow = world.wait_final(workflow_id, deadline=90)
    assert workflow["status"] == "COMPLETED", explain(world, workflow)
    assert_all_tasks_final(workflow)
    tasks = workflow["tasksByKey"]
    assert tasks["make_phone_call"]["status"] == "SKIPPED"
    for key in ("research_hoa_contact", "send_email_request", "await_documents", "analyze_hoa_docs",
                "quality_validation", "generate_invoice", "update_crm", "notify_client"):
        assert tasks[key]["status"] == "COMPLETED", (key, explain(world, workflow))
    assert world.query("select count(*) as n from public.documents where workflow_id = %s "
                       "and filename in ('bylaws.pdf', 'financials-2025.pdf')", (workflow_id,))[0]["n"] == 2
    florian = world.query("""select count(*) as n from public.agent_results where workflow_id = %s
                             and agent_name = 'florian'""", (workflow_id,))[0]["n"]
    assert florian == 0


# ---- MUNI_LIEN_SEARCH -------------------------------------------------------------------------
def test_muni_lien_search_injects_portal_tasks_and_completes(world):
    workflow_id = world.start("MUNI_LIEN_SEARCH", muni_payload())
    workflow = world.wait_final(workflow_id, deadline=120)
    assert workflow["status"] == "COMPLETED", explain(world, workflow)
    assert_all_tasks_final(workflow)
    portals = {key: task for key, task in workflow["tasksByKey"].items() if key.startswith("portal_access:")}
    assert portals, explain(world, workflow)
    assert {task["status"] for task in portals.values()} == {"COMPLETED"}, explain(world, workflow)
    rows = world.query("""select task_key, status, agent_name from public.tasks
                          where workflow_id = %s and task_key like 'portal_access:%%'""", (workflow_id,))
    assert len(rows) == len(portals) and all(row["status"] == "COMPLETED" for row in rows)
    for key in ("research_municipality", "process_documents", "quality_validation", "generate_invoice",
                "update_crm", "notify_client"):
        assert workflow["tasksByKey"][key]["status"] == "COMPLETED", (key, explain(world, workflow))


# ---- failing agent ----------------------------------------------------------------------------
def test_an_agent_failing_every_call_is_retried_then_escalated(world):
    before = world.simulator.stats()["agents"]["nina"]["by_task_type"].get("identify_lender_contact",
                                                                             {"calls": 0, "failed": 0})
    world.simulator.configure(agents={"nina": {"failure_rate": 1.0}})
    workflow_id = world.start("PAYOFF_REQUEST", payoff_payload())
    workflow = world.wait_for(workflow_id, lambda w: w["status"] in ("BLOCKED", "FAILED", "COMPLETED"),
                              deadline=150, what="the escalation")
    assert workflow["status"] == "BLOCKED", explain(world, workflow)
    task = world.query("""select id, status, attempt_count, error_message from public.tasks
                          where workflow_id = %s and task_key = 'identify_lender_contact'""", (workflow_id,))[0]
    assert task["status"] == "FAILED", task
    after = world.simulator.stats()["agents"]["nina"]["by_task_type"]["identify_lender_contact"]
    assert after["failed"] - before["failed"] >= 3, (before, after)
    executions = world.query("select attempt, status from public.task_executions where task_id = %s order by attempt",
                             (task["id"],))
    # n8n retries inside the agent node (3 tries): the service records one failed execution
    # carrying the agent's last error, then the failure and the escalation.
    assert executions and executions[-1]["status"] == "FAILED" and task["attempt_count"] >= 1, (task, executions)
    assert "unavailable" in (task["error_message"] or ""), task  # the agent's last error
    events = [row["event_type"] for row in world.query(
        "select event_type from public.webhook_receipts where workflow_id = %s and status_code < 300 "
        "order by received_at", (workflow_id,))]
    assert "task.failed" in events and "escalation" in events, events
    notifications = world.query("select notification_type::text as kind from public.notifications "
                                "where workflow_id = %s", (workflow_id,))
    assert {"AGENT_FAILURE", "TASK_INTERRUPT"} <= {row["kind"] for row in notifications}, notifications
    # Nothing after the failed step ran.
    assert workflow["tasksByKey"]["send_payoff_request"]["status"] not in ("RUNNING", "COMPLETED")


# ---- cancelling -----------------------------------------------------------------------------
def test_cancelling_a_waiting_workflow_ends_its_n8n_execution(world):
    workflow_id = run_payoff_until_waiting(world)
    execution_id = world.query("select n8n_execution_id from public.workflows where id = %s", (workflow_id,))[0]["n8n_execution_id"]
    status, _ = world.n8n.request("GET", f"/api/v1/executions/{execution_id}")
    assert status == 200

    response = world.http.delete(f"{world.service.base_url}/api/workflows/{workflow_id}", headers=world.headers(), timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED", response.text

    end = time.monotonic() + 30
    while time.monotonic() < end:
        rows = world.query("select status from public.n8n_dispatches where workflow_id = %s and kind = 'CANCEL'", (workflow_id,))
        if rows and rows[0]["status"] == "DELIVERED":
            break
        time.sleep(0.25)
    assert rows and rows[0]["status"] == "DELIVERED", rows
    status, execution = world.n8n.request("GET", f"/api/v1/executions/{execution_id}")
    if world.n8n.version.startswith("1."):
        assert status == 404  # 1.x has no stop: the waiting execution is deleted, it can never resume
    else:
        assert status == 200 and execution["status"] == "canceled", execution  # 2.x stopped it
    late = world.deliver_inbound("payoff-statement", {"workflowId": workflow_id, "statement": {"payoffAmount": 1}})
    assert late.status_code == 409
