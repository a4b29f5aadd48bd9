"""Delivery right after the commit: every request whose transaction queues an outbox row (a
workflow start or cancel, a task resume, an inbound document forwarded to a waiting execution,
a callback finding its inbound already here) delivers it before it answers, waits at most
INLINE_DELIVERY_TIMEOUT_SECONDS for n8n, and leaves whatever failed to the dispatcher or the tick."""
from __future__ import annotations

import time

import pytest
from psycopg.types.json import Jsonb

from app import create_app
from app.n8n.dispatcher import CircuitBreaker
from app.webhooks.signing import inbound_token, signed_headers, workflow_key
from tests.db.factories import make_workflow, secret_resume_url, set_task_status, start_workflow, tasks_of
from tests.n8n.fake_n8n import FakeN8n
from tests.service_fixtures import CALLBACK_SECRET, Caller, TransactionalDatabase, make_settings

CRON_SECRET = "cron-secret-for-tests-0123456789"
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def fake():
    server = FakeN8n()
    yield server
    server.stop()


@pytest.fixture
def n8n(fake):
    fake.requests.clear()
    fake.status, fake.body, fake.delay, fake.healthy, fake.health_checks = 200, None, 0.0, True, 0
    return fake


@pytest.fixture(scope="module")
def inline_app(_session_connection, database_url, fake):
    application = create_app(make_settings(
        database_url, deliver_inline=True, inline_delivery_timeout_seconds=TIMEOUT, n8n_base_url=fake.url,
        n8n_api_key="api-key", public_base_url="http://service.test", cron_secret=CRON_SECRET),
        database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def app(inline_app, db, n8n):
    # The shared world's own undelivered rows are out of the way; a fresh circuit per test.
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where status <> 'DELIVERED'")
    inline_app.extensions["n8n_dispatcher"].breaker = CircuitBreaker(threshold=3, cooldown=60)
    return inline_app


@pytest.fixture
def operator(app):
    return Caller(app.test_client(), "operator")


def outbox(db, workflow_id, kind):
    return db.execute("select * from public.n8n_dispatches where workflow_id = %s and kind = %s",
                      (workflow_id, kind)).fetchone()


def started_workflow(db, n8n, operator):
    workflow = make_workflow(db)
    assert operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"}).status_code == 200
    n8n.requests.clear()
    return workflow


def waiting_task(db, workflow, n8n):
    task = tasks_of(db, workflow["id"])["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": f"{n8n.url}/webhook-waiting/9?signature={'cd' * 32}"})
    return task


def test_a_workflow_start_reaches_n8n_before_the_answer(db, n8n, operator):
    workflow = make_workflow(db)
    response = operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"})
    assert response.status_code == 200
    assert [r["path"] for r in n8n.requests] == ["/webhook/rexera/payoff-request"]
    assert n8n.requests[0]["json"]["workflowId"] == str(workflow["id"])
    row = outbox(db, workflow["id"], "TRIGGER")
    assert (row["status"], row["attempts"], row["response"]["deliveredBy"]) == ("DELIVERED", 1, "request")
    assert db.execute("select n8n_execution_id from public.workflows where id = %s",
                      (workflow["id"],)).fetchone()["n8n_execution_id"] == "exec-1"


# Every way a request queues a row; each must reach n8n before the answer, once.
def cancel_action(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    response = operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "cancel"})
    return response, workflow, "CANCEL", "/api/v1/executions/exec-1/stop"


def delete_workflow(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    return operator.delete(f"/api/workflows/{workflow['id']}"), workflow, "CANCEL", "/api/v1/executions/exec-1/stop"


def task_resume(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    task = waiting_task(db, workflow, n8n)
    response = operator.post(f"/api/tasks/{task['id']}/actions", json={"action": "resume", "data": {"body": {"ok": 1}}})
    return response, workflow, "RESUME", f"/webhook-waiting/9?signature={'cd' * 32}"


def inbound_statement(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    waiting_task(db, workflow, n8n)
    response = operator.client.post("/webhooks/inbound/payoff-statement", json={
        "workflowId": str(workflow["id"]), "statement": {"payoffAmount": 1000, "goodThrough": "2026-12-31"}},
        headers={"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, str(workflow['id']))}"})
    return response, workflow, "RESUME", f"/webhook-waiting/9?signature={'cd' * 32}"


def callback_finding_its_inbound(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    task = tasks_of(db, workflow["id"])["await_statement"]
    db.execute("update public.tasks set metadata = metadata || %s where id = %s",
               (Jsonb({"pendingInbound": {"kind": "payoff_statement"}}), task["id"]))
    body = ('{"type": "task.waiting", "timestamp": "2026-12-03T00:00:00Z", "data": {"workflowId": "%s", '
            '"taskKey": "await_statement", "resumeUrl": "%s/webhook-waiting/9?signature=%s"}}'
            % (workflow["id"], n8n.url, "cd" * 32)).encode()
    headers = signed_headers(workflow_key(CALLBACK_SECRET, str(workflow["id"])), f"evt-{workflow['id']}", body)
    response = operator.client.post("/webhooks/n8n", data=body, headers={**headers, "Content-Type": "application/json"})
    return response, workflow, "RESUME", f"/webhook-waiting/9?signature={'cd' * 32}"


QUEUEING_REQUESTS = [cancel_action, delete_workflow, task_resume, inbound_statement, callback_finding_its_inbound]


@pytest.mark.parametrize("request_that_queues", QUEUEING_REQUESTS, ids=lambda f: f.__name__)
def test_every_request_that_queues_a_row_delivers_it_before_answering(db, n8n, operator, request_that_queues):
    response, workflow, kind, path = request_that_queues(db, n8n, operator)
    assert response.status_code < 300, response.get_json()
    assert [r["path"] for r in n8n.requests] == [path]
    row = outbox(db, workflow["id"], kind)
    assert (row["status"], row["attempts"], row["response"]["deliveredBy"]) == ("DELIVERED", 1, "request")
    if kind == "RESUME":  # the URL works once: forgotten once used
        assert secret_resume_url(db, tasks_of(db, workflow["id"])["await_statement"]["id"]) is None


def test_a_down_n8n_leaves_the_row_to_a_later_tick_and_the_answer_is_unchanged(db, n8n, operator, app):
    workflow = make_workflow(db)
    n8n.status = 503
    response = operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"})
    assert response.status_code == 200 and response.get_json()["newStatus"] == "IN_PROGRESS"
    row = outbox(db, workflow["id"], "TRIGGER")
    assert (row["status"], row["attempts"]) == ("FAILED", 1)
    assert "503" in row["last_error"]
    # The backoff has passed and n8n answers again: the tick delivers it.
    n8n.status = 200
    db.execute("update public.n8n_dispatches set next_attempt_at = now() where id = %s", (row["id"],))
    tick = app.test_client().post("/api/internal/tick", headers={"Authorization": f"Bearer {CRON_SECRET}"})
    assert tick.status_code == 200 and tick.get_json()["outbox"]["delivered"] == 1
    row = outbox(db, workflow["id"], "TRIGGER")
    assert (row["status"], row["attempts"], row["response"]["deliveredBy"]) == ("DELIVERED", 2, "tick")


def test_a_hung_n8n_holds_the_answer_no_longer_than_the_timeout(db, n8n, operator):
    workflow = make_workflow(db)
    n8n.delay = 10 * TIMEOUT
    began = time.monotonic()
    response = operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"})
    waited = time.monotonic() - began
    assert response.status_code == 200
    assert waited < 5 * TIMEOUT  # the timeout plus the request itself, far below n8n's 10 s
    row = outbox(db, workflow["id"], "TRIGGER")
    assert (row["status"], row["attempts"]) == ("FAILED", 1) and "Timeout" in row["last_error"]


def test_with_the_circuit_open_the_request_does_not_call_n8n(db, n8n, operator, app):
    breaker = app.extensions["n8n_dispatcher"].breaker
    for _ in range(breaker.threshold):
        breaker.failure()
    workflow = make_workflow(db)
    assert operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"}).status_code == 200
    assert n8n.requests == []
    assert outbox(db, workflow["id"], "TRIGGER")["status"] == "PENDING"


def test_a_refused_request_delivers_nothing(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    response = operator.post(f"/api/workflows/{workflow['id']}/actions", json={"action": "start"})
    assert response.status_code == 409
    assert n8n.requests == []


def test_requests_that_queue_nothing_call_nothing(db, n8n, operator):
    workflow = started_workflow(db, n8n, operator)
    task = tasks_of(db, workflow["id"])["await_statement"]
    for response in (operator.get("/api/workflows"), operator.patch(f"/api/workflows/{workflow['id']}", json={"title": "x"}),
                     operator.post(f"/api/tasks/{task['id']}/actions", json={"action": "escalate",
                                                                             "data": {"reason": "stuck"}})):
        assert response.status_code == 200
    assert n8n.requests == []


def test_a_row_another_dispatcher_holds_is_not_delivered_twice(db, n8n, operator, app):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    row = outbox(db, workflow["id"], "TRIGGER")
    db.execute("update public.n8n_dispatches set status = 'DELIVERING', locked_until = now() + interval '1 minute'"
               " where id = %s", (row["id"],))
    report = app.extensions["n8n_dispatcher"].deliver_now([row["id"]], TIMEOUT)
    assert (report.claimed, report.delivered) == (0, 0) and n8n.requests == []
