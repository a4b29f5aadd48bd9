"""Inbound webhooks: a lender's statement and HOA documents reach the n8n wait; client messages."""
from __future__ import annotations

import uuid

import pytest

from app.webhooks.signing import inbound_token
from tests.db.factories import make_workflow, secret_resume_url, start_workflow, tasks_of
from tests.db.world import row
from tests.security.state import changed_tables, fingerprint
from tests.service_fixtures import CALLBACK_SECRET
from tests.webhooks.test_n8n_callbacks import post_event

STATEMENT = {"payoffAmount": 251234.56, "goodThrough": "2026-12-15", "perDiem": 41.2}


def bearer(workflow_id):
    return {"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, str(workflow_id))}"}


@pytest.fixture
def payoff(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    return workflow


def deliver(client, workflow_id, **extra):
    body = {"workflowId": str(workflow_id), "statement": STATEMENT,
            "documents": [{"filename": "statement.pdf", "storagePath": "inbound/statement.pdf", "sizeBytes": 1234}], **extra}
    return client.post("/webhooks/inbound/payoff-statement", json=body, headers=bearer(workflow_id))


def test_a_statement_for_a_waiting_task_resumes_n8n_through_the_outbox(client, db, payoff):
    post_event(client, payoff["id"], "task.waiting", taskKey="await_statement", resumeUrl="http://n8n.test/webhook-waiting/7")
    response = deliver(client, payoff["id"])
    assert response.status_code == 202, response.json
    assert response.json["forwarded"] is True and response.json["documentsStored"] == 1
    resume = db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                        (payoff["id"],)).fetchone()["payload"]
    assert resume["resumeUrl"] == f"n8n-resume:{resume['taskId']}"
    assert secret_resume_url(db, resume["taskId"]) == "http://n8n.test/webhook-waiting/7"
    assert resume["body"]["data"]["statement"] == STATEMENT and resume["body"]["documents"][0]["filename"] == "statement.pdf"
    task = tasks_of(db, payoff["id"])["await_statement"]
    assert task["status"] == "RUNNING" and task["resume_url"] is None
    assert db.execute("select count(*) as n from public.documents where workflow_id = %s", (payoff["id"],)).fetchone()["n"] == 1


def test_a_statement_that_arrives_before_the_wait_is_forwarded_when_n8n_gets_there(client, db, payoff):
    response = deliver(client, payoff["id"])
    assert response.status_code == 202 and response.json["forwarded"] is False
    assert db.execute("select count(*) as n from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                      (payoff["id"],)).fetchone()["n"] == 0
    waiting = post_event(client, payoff["id"], "task.waiting", taskKey="await_statement", resumeUrl="http://n8n.test/webhook-waiting/8")
    assert waiting.json["result"]["resumedWithPendingInbound"] is True
    resume = db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                        (payoff["id"],)).fetchone()["payload"]
    assert secret_resume_url(db, resume["taskId"]).endswith("/8") and resume["body"]["data"]["statement"] == STATEMENT
    assert "pendingInbound" not in tasks_of(db, payoff["id"])["await_statement"]["metadata"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, str(uuid.uuid4()))}"}])
def test_inbound_needs_the_workflows_own_token(client, db, payoff, headers):
    before = db.execute("select count(*) as n from public.documents").fetchone()["n"]
    response = client.post("/webhooks/inbound/payoff-statement", headers=headers,
                           json={"workflowId": str(payoff["id"]), "statement": STATEMENT})
    assert response.status_code == 401
    assert db.execute("select count(*) as n from public.documents").fetchone()["n"] == before


BAD_BODIES = [{"statement": STATEMENT}, {"workflowId": "nope", "statement": STATEMENT}, {"workflowId": "{id}"},
              {"workflowId": "{id}", "statement": "not an object"}]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_bad_body_without_the_token_learns_nothing_about_its_shape(client, body):
    # The token is checked on the raw bytes first: a caller without it hears 401, not 422.
    body = {k: (str(uuid.uuid4()) if v == "{id}" else v) for k, v in body.items()}
    response = client.post("/webhooks/inbound/payoff-statement", json=body, headers={"Authorization": "Bearer x"})
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("body", [b for b in BAD_BODIES if "workflowId" in b and b["workflowId"] == "{id}"])
def test_a_bad_body_with_the_token_is_refused_naming_the_field(client, db, payoff, body):
    body = {k: (str(payoff["id"]) if v == "{id}" else v) for k, v in body.items()}
    response = client.post("/webhooks/inbound/payoff-statement", json=body, headers=bearer(payoff["id"]))
    assert response.status_code == 422 and "statement" in response.json["error"]["details"]["json"]


def test_documents_for_the_wrong_kind_of_workflow_are_refused(client, db, payoff):
    response = client.post("/webhooks/inbound/hoa-documents", headers=bearer(payoff["id"]),
                           json={"workflowId": str(payoff["id"]), "documents": [{"filename": "bylaws.pdf"}]})
    assert response.status_code == 422


def test_a_finished_wait_takes_nothing_more(client, db, payoff):
    db.execute("select public.workflow_action(%s, 'cancel')", (payoff["id"],))
    assert deliver(client, payoff["id"]).status_code == 409


def test_a_client_message_is_recorded_injects_a_task_and_changes_the_payload(as_, db, payoff):
    response = as_("client_user_a").post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "Please include the per-diem rate", "payloadChanges": {"includePerDiem": True}})
    assert response.status_code == 202, response.json
    assert response.json["payloadChanged"] is True and response.json["taskInjected"].startswith("handle_client_update:")
    stored = db.execute("select payload from public.workflows where id = %s", (payoff["id"],)).fetchone()["payload"]
    assert stored["includePerDiem"] is True
    task = tasks_of(db, payoff["id"])[response.json["taskInjected"]]
    assert (task["agent_name"], task["priority"], task["sla_minutes"]) == ("ria", "HIGH", 30)
    message = db.execute("select is_client_visible, direction from public.communications where workflow_id = %s and body like 'Please%%'",
                         (payoff["id"],)).fetchone()
    assert message == {"is_client_visible": True, "direction": "INBOUND"}


def test_a_client_cannot_message_another_clients_workflow(as_, db):
    response = as_("client_user_b").post("/webhooks/inbound/client-message",
                                         json={"workflowId": str(row("A101")), "message": "hi"})
    assert response.status_code == 404


def test_bad_payload_changes_change_nothing(as_, db, payoff):
    before = db.execute("select count(*) as n from public.communications").fetchone()["n"]
    response = as_("client_user_a").post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "x", "payloadChanges": {"payoffDate": "whenever"}})
    assert response.status_code == 422
    assert db.execute("select count(*) as n from public.communications").fetchone()["n"] == before


REFUSING_TRIGGER = """
create function pg_temp.refuse() returns trigger language plpgsql as $$
begin
  raise exception 'refused for the test' using errcode = '{sqlstate}';
end $$;
create trigger refuse_for_the_test before {when} on {table} for each row execute function pg_temp.refuse();
"""


@pytest.mark.parametrize("table, when, sqlstate, status", [
    ("public.workflows", "update", "23514", 422),  # the payload change refused
    ("public.tasks", "insert", "23514", 202),  # the injected task refused: the message stands, no task
    ("public.workflows", "update", "40001", 409),  # a serialization failure on every try
])
def test_a_client_message_is_one_unit(as_, db, payoff, table, when, sqlstate, status):
    # Whatever part of the request is refused, it is refused whole: nothing of it is written.
    db.execute(REFUSING_TRIGGER.format(table=table, when=when, sqlstate=sqlstate))
    before = fingerprint(db)
    response = as_("client_user_a").post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "Please add the per-diem", "payloadChanges": {"includePerDiem": True}})
    assert response.status_code == status, response.json
    if status >= 400:
        assert changed_tables(before, fingerprint(db)) == []
    else:
        assert response.json["taskInjected"] is None


@pytest.mark.parametrize("person", ["operator", "manager", "agent_a", "unprovisioned", "anon"])
def test_only_a_client_user_sends_a_client_message(as_, db, payoff, person):
    # HIL people write through /api/communications; a message here is the client's voice, with
    # the client's user as sender, and it injects the client's update task: nobody else's token.
    before = fingerprint(db)
    response = as_(person).post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "from someone else", "payloadChanges": {"loanNumber": "CHANGED"}})
    assert response.status_code in (401, 403), response.json
    assert response.json["error"]["code"] != "internal_error"
    assert changed_tables(before, fingerprint(db)) == []


def finish(client, db, workflow_id, status):
    if status == "CANCELLED":
        db.execute("select public.workflow_action(%s, 'cancel')", (workflow_id,))
    else:
        event = {"COMPLETED": "workflow.completed", "FAILED": "workflow.failed"}[status]
        assert post_event(client, workflow_id, event, event_id=f"evt-{status}").status_code == 200
    assert db.execute("select status from public.workflows where id = %s", (workflow_id,)).fetchone()["status"] == status


@pytest.mark.parametrize("status", ["COMPLETED", "CANCELLED", "FAILED"])
def test_a_finished_order_keeps_its_payload_and_still_takes_messages(as_, client, db, payoff, status):
    finish(client, db, payoff["id"], status)
    before = fingerprint(db)
    response = as_("client_user_a").post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "change it", "payloadChanges": {"loanNumber": "CHANGED"}})
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_state", response.json
    assert status in response.json["error"]["message"]
    assert changed_tables(before, fingerprint(db)) == []
    # A message alone is kept (a client may write about a finished order); no task is injected.
    response = as_("client_user_a").post("/webhooks/inbound/client-message", json={
        "workflowId": str(payoff["id"]), "message": "thanks"})
    assert response.status_code == 202 and response.json["taskInjected"] is None and not response.json["payloadChanged"]
    stored = db.execute("select payload->>'loanNumber' as n from public.workflows where id = %s", (payoff["id"],)).fetchone()
    assert stored["n"] != "CHANGED"
