"""What the server owns: the metadata keys the server writes itself (one list,
private.server_owned_metadata_keys()) are refused from every caller on every path that takes
metadata (422 validation_error naming the key, nothing written); the service's own paths keep
writing them (docs/security.md)."""
from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.db.factories import PAYOFF_PAYLOAD, make_workflow, start_workflow
from tests.db.world import CLIENT_A, PEOPLE, row
from tests.security.state import assert_refused, changed_tables, fingerprint
from tests.support import act_as, act_as_service
from tests.webhooks.test_n8n_callbacks import post_event

# A plausible value of each key, as the server writes it.
SERVER_OWNED = {
    "lostExecutions": [{"executionId": "exec-1", "reason": "crashed"}],
    "lossesInARow": 1,
    "failure": "the portal is down",
    "cancelReason": "client withdrew",
    "escalation": {"reason": "look", "by": "someone", "at": "2026-12-01T00:00:00Z"},
    "waitingOn": "CLIENT",
    "pendingInbound": {"kind": "payoff_statement", "data": {}},
}


def test_the_list_is_the_databases_one_list(db):
    keys = db.execute("select private.server_owned_metadata_keys() as k").fetchone()["k"]
    assert sorted(keys) == sorted(SERVER_OWNED)


def test_every_key_the_server_writes_is_on_the_list(db):
    # Each key written into workflows.metadata or tasks.metadata by a function of the database
    # (metadata || jsonb_build_object('<key>', ...), jsonb_set(metadata, '{<key>,...}')).
    definitions = db.execute("""select string_agg(pg_get_functiondef(p.oid), ' ') as d from pg_proc p
                                 join pg_namespace n on n.oid = p.pronamespace
                                where n.nspname in ('public', 'private') and p.prokind = 'f'""").fetchone()["d"]
    written = set(re.findall(r"metadata\s*\|\|\s*(?:jsonb_strip_nulls\()?jsonb_build_object\('(\w+)'", definitions))
    written |= set(re.findall(r"jsonb_set\(metadata,\s*'\{(\w+)", definitions))
    assert written and written <= set(SERVER_OWNED), written - set(SERVER_OWNED)


@pytest.fixture
def pending(db):
    return make_workflow(db)  # client A's, PENDING: clients may still edit it


def workflow_create(person, key):
    body = {"type": "PAYOFF_REQUEST", "payload": PAYOFF_PAYLOAD, "metadata": {"note": "mine", key: SERVER_OWNED[key]}}
    if not PEOPLE[person].client_id:
        body["clientId"] = str(CLIENT_A)
    return "post", "/api/workflows", body


PATHS = {
    "create a workflow": (["client_user_a", "client_admin_a", "operator", "manager"],
                          lambda person, key, workflow: workflow_create(person, key)),
    "change a workflow": (["client_user_a", "client_admin_a", "operator", "manager"],
                          lambda person, key, workflow: ("patch", f"/api/workflows/{workflow['id']}",
                                                         {"metadata": {"note": "mine", key: SERVER_OWNED[key]}})),
    "change a task": (["operator", "manager", "agent_a"],
                      lambda person, key, workflow: ("patch", f"/api/tasks/{row('A201')}",
                                                     {"metadata": {"note": "mine", key: SERVER_OWNED[key]}})),
}
CASES = [(path, person) for path, (people, _) in PATHS.items() for person in people]


@pytest.mark.parametrize("key", list(SERVER_OWNED))
@pytest.mark.parametrize("path, person", CASES)
def test_no_caller_writes_a_server_owned_key(as_, db, pending, key, path, person):
    method, url, body = PATHS[path][1](person, key, pending)
    before = fingerprint(db)
    response = getattr(as_(person), method)(url, json=body)
    error = assert_refused(response, 422)
    assert error["code"] == "validation_error", error
    assert list(error["details"]["json"]["metadata"]) == [key], error
    assert key in error["details"]["json"]["metadata"][key][0]
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("key", list(SERVER_OWNED))
@pytest.mark.parametrize("person, statement", [
    ("client_user_a", "insert into public.workflows (workflow_type, client_id, title, payload, metadata)"
                      " values ('PAYOFF_REQUEST', %(client)s, 'Mine', '{}', %(metadata)s)"),
    ("client_user_a", "update public.workflows set metadata = %(metadata)s where id = %(w)s"),
    ("operator", "update public.workflows set metadata = metadata || %(metadata)s where id = %(w)s"),
    ("agent_a", "update public.tasks set metadata = metadata || %(metadata)s where id = %(t)s"),
], ids=["client inserts", "client replaces", "operator merges", "agent merges"])
def test_supabase_rest_writes_hold_the_same_rule(db, pending, key, person, statement):
    # Supabase's REST API writes rows as the caller: the database refuses the key itself.
    before = fingerprint(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"metadata.{key} is written by the server only"):
        with db.transaction():
            act_as(db, PEOPLE[person])
            db.execute(statement, {"client": CLIENT_A, "w": pending["id"], "t": row("A201"),
                                   "metadata": Jsonb({key: SERVER_OWNED[key]})})
    act_as_service(db)
    assert changed_tables(before, fingerprint(db)) == []


def test_several_keys_are_each_named(as_, db):
    response = as_("client_user_a").post("/api/workflows", json={
        "type": "PAYOFF_REQUEST", "payload": PAYOFF_PAYLOAD,
        "metadata": {"lostExecutions": [{"executionId": "exec-9"}], "lossesInARow": 0, "note": "ok"}})
    assert_refused(response, 422)
    assert sorted(response.json["error"]["details"]["json"]["metadata"]) == ["lossesInARow", "lostExecutions"]


def test_a_client_cannot_get_n8n_callbacks_refused(as_, client, db):
    # The tester's example: a workflow created with lostExecutions naming an execution, so that
    # n8n's callbacks from it would be refused and the order stall.
    response = as_("client_user_a").post("/api/workflows", json={
        "type": "PAYOFF_REQUEST", "payload": PAYOFF_PAYLOAD, "metadata": {"lostExecutions": [{"executionId": "exec-1"}]}})
    assert response.status_code == 422
    created = as_("client_user_a").post("/api/workflows", json={"type": "PAYOFF_REQUEST", "payload": PAYOFF_PAYLOAD,
                                                                 "metadata": {"note": "fine"}})
    assert created.status_code == 201, created.json
    workflow_id = created.json["id"]
    assert as_("client_user_a").post(f"/api/workflows/{workflow_id}/actions", json={"action": "start"}).status_code == 200
    started = post_event(client, workflow_id, "task.started", taskKey="identify_lender_contact")
    assert started.status_code == 200, started.json


def server_wrote(db, workflow_id):
    """The execution watch's keys, written as the service writes them (a lost execution)."""
    db.execute("select public.workflow_action(%s, 'start')", (workflow_id,))
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow_id,))
    db.execute("update public.workflows set n8n_execution_id = 'exec-1' where id = %s", (workflow_id,))
    result = db.execute("select public.recover_lost_execution(%s, 'exec-1', 'crashed') as r", (workflow_id,)).fetchone()["r"]
    assert result["recovered"] is True
    metadata = db.execute("select metadata from public.workflows where id = %s", (workflow_id,)).fetchone()["metadata"]
    assert metadata["lossesInARow"] == 1 and metadata["lostExecutions"][0]["executionId"] == "exec-1"
    return metadata


def test_the_service_keeps_writing_its_keys_and_a_correction_keeps_them(as_, db, pending):
    metadata = server_wrote(db, pending["id"])
    # A HIL person's metadata replaces theirs, never the server's: the keys are kept as written.
    response = as_("operator").patch(f"/api/workflows/{pending['id']}", json={"metadata": {"note": "called the lender"}})
    assert response.status_code == 200, response.json
    assert response.json["metadata"] == {**metadata, "note": "called the lender"}
    # Sending back what the server wrote changes nothing and passes (a read, edit, write back).
    response = as_("operator").patch(f"/api/workflows/{pending['id']}", json={"metadata": {**metadata, "note": "2"}})
    assert response.status_code == 200 and response.json["metadata"] == {**metadata, "note": "2"}
    # Changing it is refused.
    before = fingerprint(db)
    response = as_("operator").patch(f"/api/workflows/{pending['id']}", json={"metadata": {**metadata, "lossesInARow": 0}})
    assert_refused(response, 422)
    assert list(response.json["error"]["details"]["json"]["metadata"]) == ["lossesInARow"]
    assert changed_tables(before, fingerprint(db)) == []


def test_the_service_paths_write_task_keys(as_, db):
    # An escalation (task_action) and a wait on the client (transition_task), whoever asks.
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task_id = db.execute("select id from public.tasks where workflow_id = %s and task_key = 'identify_lender_contact'",
                         (workflow["id"],)).fetchone()["id"]
    response = as_("operator").post(f"/api/tasks/{task_id}/actions", json={"action": "escalate", "data": {"reason": "odd"}})
    assert response.status_code == 200, response.json
    db.execute("select public.transition_task(%s, 'WAITING', '{\"resumeUrl\": \"http://n8n.test/w/1\", \"waitingOn\": \"client\"}')",
               (task_id,))
    metadata = db.execute("select metadata from public.tasks where id = %s", (task_id,)).fetchone()["metadata"]
    assert metadata["escalation"]["reason"] == "odd" and metadata["waitingOn"] == "CLIENT"


def test_the_openapi_document_names_the_keys_and_the_finished_409(client, db):
    keys = sorted(db.execute("select private.server_owned_metadata_keys() as k").fetchone()["k"])
    document = client.get("/api/openapi.json").json
    for schema in ("WorkflowCreate", "WorkflowUpdate", "TaskUpdate"):
        described = document["components"]["schemas"][schema]["properties"]["metadata"]["description"]
        named = re.search(r"writes itself \(([^)]*)\)", described).group(1)
        assert sorted(named.split(", ")) == keys, schema
    for path, method in [("/api/workflows/{workflow_id}/actions", "post"), ("/api/workflows/{workflow_id}", "delete"),
                         ("/api/tasks", "post"), ("/api/tasks/{task_id}", "delete"),
                         ("/api/tasks/{task_id}", "patch"), ("/api/tasks/{task_id}/actions", "post")]:
        assert "finished" in document["paths"][path][method]["responses"]["409"]["description"], (path, method)
