"""public.recover_lost_execution and public.n8n_executions_to_check: a workflow whose n8n
execution was lost goes on in a new execution that skips what is done, with nothing applied
twice and the loss in its timeline."""
from __future__ import annotations

import pytest

from tests.db.factories import make_workflow, start_workflow, tasks_of
from tests.db.world import PEOPLE
from tests.support import act_as, act_as_service
from tests.service_fixtures import ERROR_TOKEN
from tests.webhooks.test_n8n_callbacks import post_event


def recover(db, workflow_id, execution_id="exec-1", reason="error"):
    return db.execute("select public.recover_lost_execution(%s, %s, %s) as r",
                      (workflow_id, execution_id, reason)).fetchone()["r"]


def triggers(db, workflow_id):
    return db.execute("select status, payload from public.n8n_dispatches where workflow_id = %s and kind = 'TRIGGER'"
                      " order by payload ? 'resume', created_at", (workflow_id,)).fetchall()


@pytest.fixture
def interrupted(client, db):
    """A payoff workflow on execution exec-1: the first step done, the second running."""
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    for event, data in [("task.started", {"taskKey": "identify_lender_contact"}),
                        ("task.completed", {"taskKey": "identify_lender_contact", "output": {"lender": "First Bank"}}),
                        ("task.started", {"taskKey": "send_payoff_request", "agentName": "mia"})]:
        response = post_event(client, workflow["id"], event, **data)
        assert response.status_code == 200, response.json
    return workflow


def test_the_workflow_goes_on_in_a_new_execution_that_skips_what_is_done(db, interrupted):
    result = recover(db, interrupted["id"], reason="job stalled more than maxStalledCount")
    assert result["recovered"] is True and result["losses"] == 1
    assert result["interruptedTasks"] == ["send_payoff_request"] and result["done"] == ["identify_lender_contact"]

    workflow = db.execute("select status, n8n_execution_id, n8n_status, metadata from public.workflows where id = %s",
                          (interrupted["id"],)).fetchone()
    assert (workflow["status"], workflow["n8n_execution_id"], workflow["n8n_status"]) == ("IN_PROGRESS", None, "lost")
    [lost] = workflow["metadata"]["lostExecutions"]
    assert lost["executionId"] == "exec-1" and lost["interruptedTasks"] == ["send_payoff_request"]
    assert lost["reason"] == "job stalled more than maxStalledCount"

    first, again = triggers(db, interrupted["id"])
    assert again["status"] == "PENDING" and "resume" not in first["payload"]
    assert again["payload"]["resume"] == {"lostExecutionId": "exec-1",
                                          "done": {"identify_lender_contact": {"lender": "First Bank"}}}
    assert {k: again["payload"][k] for k in ("workflowId", "workflowType", "priority", "payload")} == \
        {k: first["payload"][k] for k in ("workflowId", "workflowType", "priority", "payload")}
    assert [(t["taskKey"], t["taskId"]) for t in again["payload"]["tasks"]] == \
        [(t["taskKey"], t["taskId"]) for t in first["payload"]["tasks"]]

    tasks = tasks_of(db, interrupted["id"])
    assert tasks["send_payoff_request"]["status"] == "RUNNING"
    assert tasks["identify_lender_contact"]["status"] == "COMPLETED"
    attempt = db.execute("select status, error_code, error_message from public.task_executions where task_id = %s",
                         (tasks["send_payoff_request"]["id"],)).fetchone()
    assert attempt["status"] == "FAILED" and attempt["error_code"] == "EXECUTION_LOST"
    assert "exec-1" in attempt["error_message"]
    [event] = db.execute("select event_type, actor_type, message, data from public.task_timeline_events"
                         " where workflow_id = %s and event_type = 'execution_lost'", (interrupted["id"],)).fetchall()
    assert event["actor_type"] == "system" and "new execution" in event["message"]
    assert event["data"]["executionId"] == "exec-1"
    audit = db.execute("select data from public.audit_events where workflow_id = %s and event_type = 'workflow.execution_lost'",
                       (interrupted["id"],)).fetchone()
    assert audit["data"]["interruptedTasks"] == ["send_payoff_request"] and audit["data"]["losses"] == 1
    notified = db.execute("select count(*) n from public.notifications where workflow_id = %s"
                          " and dedupe_key = %s", (interrupted["id"], f"execution_lost:{interrupted['id']}:exec-1")).fetchone()
    assert notified["n"] >= 1


def test_the_lost_execution_is_refused_and_the_new_one_runs_the_step_as_its_next_attempt(client, db, interrupted):
    recover(db, interrupted["id"])
    before = db.execute("select count(*) n from public.agent_results").fetchone()["n"]
    late = post_event(client, interrupted["id"], "task.completed", taskKey="send_payoff_request", output={"sent": 1})
    assert late.status_code == 409 and "was lost" in late.json["error"]["message"]
    assert db.execute("select count(*) n from public.agent_results").fetchone()["n"] == before

    def send(event, **data):
        response = post_event(client, interrupted["id"], event, executionId="exec-2", **data)
        assert response.status_code == 200, response.json
        return response

    send("task.started", taskKey="send_payoff_request", agentName="mia", attempt=1)
    send("task.completed", taskKey="send_payoff_request", attempt=1, output={"sent": 1})
    task = tasks_of(db, interrupted["id"])["send_payoff_request"]
    attempts = db.execute("select attempt, status, n8n_execution_id from public.task_executions where task_id = %s"
                          " order by attempt", (task["id"],)).fetchall()
    assert attempts == [{"attempt": 1, "status": "FAILED", "n8n_execution_id": "exec-1"},
                        {"attempt": 2, "status": "SUCCEEDED", "n8n_execution_id": "exec-2"}]
    assert task["status"] == "COMPLETED" and task["attempt_count"] == 2
    assert db.execute("select n8n_execution_id from public.workflows where id = %s",
                      (interrupted["id"],)).fetchone()["n8n_execution_id"] == "exec-2"
    # The done step is not started again by anyone: its one attempt stays.
    done = tasks_of(db, interrupted["id"])["identify_lender_contact"]
    assert db.execute("select count(*) n from public.task_executions where task_id = %s", (done["id"],)).fetchone()["n"] == 1


@pytest.mark.parametrize("move_on, reason", [
    (lambda db, w: None, "another execution"),
    (lambda db, w: db.execute("select public.workflow_action(%s, 'pause')", (w,)), "PAUSED"),
    (lambda db, w: db.execute("select public.workflow_action(%s, 'cancel')", (w,)), "CANCELLED"),
])
def test_nothing_happens_once_the_workflow_has_moved_on(db, interrupted, move_on, reason):
    move_on(db, interrupted["id"])
    execution = "exec-other" if reason == "another execution" else "exec-1"
    before = len(triggers(db, interrupted["id"]))
    result = recover(db, interrupted["id"], execution)
    assert result["recovered"] is False and reason in result["reason"]
    assert len(triggers(db, interrupted["id"])) == before
    assert db.execute("select count(*) n from public.task_timeline_events where workflow_id = %s"
                      " and event_type = 'execution_lost'", (interrupted["id"],)).fetchone()["n"] == 0


def test_after_the_limit_a_person_takes_over(db, interrupted):
    for n in range(1, 4):
        execution = f"exec-{n}"
        db.execute("update public.workflows set n8n_execution_id = %s where id = %s", (execution, interrupted["id"]))
        db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (interrupted["id"],))
        assert recover(db, interrupted["id"], execution)["recovered"] is True
    db.execute("update public.workflows set n8n_execution_id = 'exec-4' where id = %s", (interrupted["id"],))
    pending = len(triggers(db, interrupted["id"]))
    result = recover(db, interrupted["id"], "exec-4")
    assert result == {"recovered": False, "blocked": True, "losses": 4, "reason": "lost 4 times"}
    assert db.execute("select status from public.workflows where id = %s", (interrupted["id"],)).fetchone()["status"] == "BLOCKED"
    assert len(triggers(db, interrupted["id"])) == pending
    urgent = db.execute("select priority, title from public.notifications where dedupe_key = %s",
                        (f"execution_lost:{interrupted['id']}:exec-4",)).fetchall()
    assert urgent and all(n["priority"] == "URGENT" and "4 times" in n["title"] for n in urgent)

    # The person resumes it: it starts again where it stopped, and the count starts over.
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (interrupted["id"],))
    act_as(db, PEOPLE["operator"])
    resumed = db.execute("select public.workflow_action(%s, 'resume') as r", (interrupted["id"],)).fetchone()["r"]
    act_as_service(db)
    assert resumed["newStatus"] == "IN_PROGRESS" and resumed["dispatchId"]
    trigger = db.execute("select status, payload from public.n8n_dispatches where id = %s",
                         (resumed["dispatchId"],)).fetchone()
    assert trigger["status"] == "PENDING"
    assert trigger["payload"]["resume"] == {"lostExecutionId": "exec-4",
                                            "done": {"identify_lender_contact": {"lender": "First Bank"}}}
    db.execute("update public.workflows set n8n_execution_id = 'exec-5' where id = %s", (interrupted["id"],))
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (interrupted["id"],))
    again = recover(db, interrupted["id"], "exec-5")
    assert again["recovered"] is True and again["losses"] == 1


@pytest.mark.parametrize("person", sorted(PEOPLE))
def test_only_the_service_recovers(db, interrupted, person):
    act_as(db, PEOPLE[person])
    with pytest.raises(Exception) as refused:
        with db.transaction():
            recover(db, interrupted["id"])
    assert getattr(refused.value, "sqlstate", None) == "42501" or "permission denied" in str(refused.value)
    act_as_service(db)
    assert db.execute("select metadata from public.workflows where id = %s", (interrupted["id"],)).fetchone()["metadata"] \
        .get("lostExecutions") is None


def test_a_task_injected_again_by_the_replacing_execution_is_the_same_task(client, db):
    workflow = make_workflow(db, "MUNI_LIEN_SEARCH")
    start_workflow(db, workflow["id"])
    task = {"taskKey": "portal_access:county", "taskType": "portal_access", "agentName": "rex",
            "parentTaskKey": "portal_access"}
    assert post_event(client, workflow["id"], "task.injected", taskKey=task["taskKey"], task=task).status_code == 200
    refused = post_event(client, workflow["id"], "task.injected", taskKey=task["taskKey"], task=task)
    assert refused.status_code == 409 and "already exists" in refused.json["error"]["message"]
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    assert recover(db, workflow["id"])["recovered"] is True
    again = post_event(client, workflow["id"], "task.injected", executionId="exec-2", taskKey=task["taskKey"], task=task)
    assert again.status_code == 200 and again.json["result"]["existed"] is True
    assert db.execute("select count(*) n from public.tasks where workflow_id = %s and task_key = %s",
                      (workflow["id"], task["taskKey"])).fetchone()["n"] == 1


def test_the_watch_asks_about_quiet_workflows_in_turn(db, interrupted):
    def listed(quiet="0 seconds", limit=1000):
        return [r["workflow_id"] for r in db.execute(
            "select workflow_id from public.n8n_executions_to_check(%s::interval, %s)", (quiet, limit)).fetchall()]

    db.execute("delete from private.n8n_execution_checks")
    # Rows written in this test's transaction carry its start time: "quiet for 0 s" takes them.
    assert interrupted["id"] not in listed("1 hour")
    everyone = listed()
    assert interrupted["id"] in everyone
    # Asked about in turn: those asked longest ago come first, one a call here.
    other = make_workflow(db)
    start_workflow(db, other["id"])
    db.execute("update public.workflows set n8n_execution_id = 'exec-other' where id = %s", (other["id"],))
    assert listed(limit=1) == [other["id"]]  # never asked about
    assert listed(limit=1) == [everyone[0]]
    # A parked wait is asked about too, in its turn; a workflow without an execution is not.
    db.execute("update public.tasks set status = 'WAITING' where workflow_id = %s and task_key = 'send_payoff_request'",
               (interrupted["id"],))
    db.execute("delete from private.n8n_execution_checks")
    assert interrupted["id"] in listed()
    db.execute("update public.workflows set n8n_execution_id = null where id = %s", (interrupted["id"],))
    assert interrupted["id"] not in listed()


def test_a_wait_lost_before_it_was_answered_takes_the_answer_in_the_new_execution(client, db, interrupted):
    assert post_event(client, interrupted["id"], "task.completed", taskKey="send_payoff_request",
                      output={}).status_code == 200
    assert post_event(client, interrupted["id"], "task.waiting", taskKey="await_statement",
                      resumeUrl="http://127.0.0.1:5678/webhook-waiting/1?signature=abc").status_code == 200
    assert recover(db, interrupted["id"])["interruptedTasks"] == ["await_statement"]
    task = tasks_of(db, interrupted["id"])["await_statement"]
    assert task["status"] == "WAITING" and task["resume_url"] is None
    assert db.execute("select count(*) n from private.n8n_resume_urls where task_id = %s", (task["id"],)).fetchone()["n"] == 0
    # The statement comes before the new execution announces the wait again: it is kept...
    received = db.execute("select public.receive_inbound('payoff_statement', %s, %s) as r",
                          (interrupted["id"], '{"payoffAmount": 7}')).fetchone()["r"]
    assert received["forwarded"] is False
    # ...and the new execution's wait takes it at once.
    waiting = post_event(client, interrupted["id"], "task.waiting", executionId="exec-2", taskKey="await_statement",
                         resumeUrl="http://127.0.0.1:5678/webhook-waiting/2?signature=def")
    assert waiting.status_code == 200 and waiting.json["result"]["resumedWithPendingInbound"] is True


@pytest.mark.parametrize("message", ["Workflow did not finish, possible out-of-memory issue",
                                     "job stalled more than maxStalledCount"])
def test_n8n_reporting_a_lost_execution_to_the_error_workflow_starts_it_again(client, db, interrupted, message):
    headers = {"X-N8N-Error-Token": ERROR_TOKEN}
    report = {"executionId": "exec-1", "error": {"message": message}}
    first = client.post("/webhooks/n8n/errors", json=report, headers=headers)
    assert first.status_code == 200, first.json
    assert first.json["lostExecution"]["recovered"] is True
    assert first.json["lostExecution"]["interruptedTasks"] == ["send_payoff_request"]
    workflow = db.execute("select status, metadata from public.workflows where id = %s", (interrupted["id"],)).fetchone()
    assert workflow["status"] == "IN_PROGRESS"
    assert workflow["metadata"]["lostExecutions"][0]["reason"] == f"n8n's error workflow: {message}"
    assert len([t for t in triggers(db, interrupted["id"]) if t["status"] == "PENDING"]) == 1
    # n8n reports it again (a crashed execution, then its stalled job): nothing more happens.
    again = client.post("/webhooks/n8n/errors", json=report, headers=headers)
    assert again.status_code == 200 and again.json["applied"] is False and "was lost" in again.json["reason"]
    assert len([t for t in triggers(db, interrupted["id"]) if t["status"] == "PENDING"]) == 1
    assert db.execute("select count(*) n from public.notifications where dedupe_key like %s",
                      (f"workflow_failed:{interrupted['id']}%",)).fetchone()["n"] == 0


def test_an_ordinary_error_report_still_fails_the_workflow(client, db, interrupted):
    answer = client.post("/webhooks/n8n/errors", json={"executionId": "exec-1", "error": {"message": "409 - refused"}},
                         headers={"X-N8N-Error-Token": ERROR_TOKEN})
    assert answer.status_code == 200
    assert db.execute("select status from public.workflows where id = %s", (interrupted["id"],)).fetchone()["status"] == "FAILED"
    assert len(triggers(db, interrupted["id"])) == 1


@pytest.mark.parametrize("delivery", ["DELIVERED", "PENDING", "DEAD"],
                         ids=["resume delivered", "resume not delivered yet", "resume refused: n8n finished it"])
def test_a_wait_answered_before_the_loss_is_answered_again_in_the_new_execution(client, db, delivery):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    for event, data in [("task.started", {"taskKey": "identify_lender_contact"}),
                        ("task.completed", {"taskKey": "identify_lender_contact", "output": {}}),
                        ("task.started", {"taskKey": "send_payoff_request", "agentName": "mia"}),
                        ("task.completed", {"taskKey": "send_payoff_request", "output": {}}),
                        ("task.waiting", {"taskKey": "await_statement", "resumeUrl": "http://127.0.0.1:5678/webhook-waiting/1"})]:
        assert post_event(client, workflow["id"], event, **data).status_code == 200
    task = tasks_of(db, workflow["id"])["await_statement"]
    db.execute("select public.task_action(%s, 'resume', %s)", (task["id"], '{"body": {"payoffAmount": 5}}'))
    db.execute("update public.n8n_dispatches set status = %s where workflow_id = %s and kind = 'RESUME'",
               (delivery, workflow["id"]))
    assert tasks_of(db, workflow["id"])["await_statement"]["status"] == "RUNNING"
    assert recover(db, workflow["id"])["interruptedTasks"] == ["await_statement"]
    kept = tasks_of(db, workflow["id"])["await_statement"]["metadata"]["pendingInbound"]
    assert kept["payoffAmount"] == 5
    stale = db.execute("select status from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                       (workflow["id"],)).fetchall()
    assert [r["status"] for r in stale] == ["DELIVERED" if delivery == "DELIVERED" else "DEAD"]
    # The new execution announces the wait again and is resumed at once with the same answer.
    waiting = post_event(client, workflow["id"], "task.waiting", executionId="exec-2", taskKey="await_statement",
                         resumeUrl="http://127.0.0.1:5678/webhook-waiting/2")
    assert waiting.status_code == 200 and waiting.json["result"]["resumedWithPendingInbound"] is True
    resumes = db.execute("select status, payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'"
                         " and status = 'PENDING'", (workflow["id"],)).fetchall()
    assert len(resumes) == 1 and resumes[0]["payload"]["body"]["payoffAmount"] == 5
