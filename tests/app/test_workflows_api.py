"""/api/workflows and /api/workflows/{id}/actions."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.db.world import CLIENT_A, CLIENT_B, row

PAYOFF = {"address": "1 Main St", "borrowerName": "Pat Doe", "lenderName": "First Bank", "loanNumber": "123",
          "payoffDate": "2026-12-15", "estimatedBalance": 250000.5}


def create(caller, **body):
    return caller.post("/api/workflows", json={"type": "PAYOFF_REQUEST", "payload": PAYOFF, **body})


def test_a_client_creates_a_workflow_for_their_own_client(as_, db):
    response = create(as_("client_user_a"))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["type"] == "PAYOFF_REQUEST" and body["status"] == "PENDING" and body["clientId"] == str(CLIENT_A)
    assert body["payload"]["estimatedBalance"] == 250000.5
    assert body["progress"] == {"totalTasks": 0, "completedTasks": 0, "progressPercentage": 0}
    stored = db.execute("select client_id, created_by, title from public.workflows where id = %s", (body["id"],)).fetchone()
    assert stored["client_id"] == CLIENT_A and stored["title"] == "Payoff request: 1 Main St"
    audit = db.execute("select actor_type, request_id from public.audit_events where resource_id = %s and event_type = 'workflow.created'",
                       (body["id"],)).fetchone()
    assert audit["actor_type"] == "human" and audit["request_id"] == response.headers["X-Request-Id"]


def test_a_client_cannot_create_for_another_client(as_, db):
    before = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    response = create(as_("client_user_b"), clientId=str(CLIENT_A))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert db.execute("select count(*) as n from public.workflows").fetchone()["n"] == before


@pytest.mark.parametrize("body, field", [
    ({"type": "PAYOFF_REQUEST", "payload": {**PAYOFF, "payoffDate": "not a date"}}, "payload"),
    ({"type": "PAYOFF_REQUEST", "payload": {k: v for k, v in PAYOFF.items() if k != "loanNumber"}}, "payload"),
    ({"type": "PAYOFF_REQUEST", "payload": {**PAYOFF, "surprise": 1}}, "payload"),
    ({"type": "NOT_A_TYPE", "payload": PAYOFF}, "type"),
    ({"type": "PAYOFF_REQUEST", "payload": PAYOFF, "priority": "SOMEDAY"}, "priority"),
    ({"type": "PAYOFF_REQUEST", "payload": PAYOFF, "unknownField": True}, "unknownField"),
    ({"type": "PAYOFF_REQUEST", "payload": "not an object"}, "payload"),
])
def test_bad_workflow_bodies_are_refused_with_details(as_, db, body, field):
    before = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    response = as_("client_user_a").post("/api/workflows", json=body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error" and field in str(error["details"])
    assert error["requestId"] == response.headers["X-Request-Id"]
    assert db.execute("select count(*) as n from public.workflows").fetchone()["n"] == before


def test_hil_must_name_the_client(as_):
    response = create(as_("operator"))
    assert response.status_code == 422 and "clientId" in str(response.json["error"]["details"])


def test_list_shows_only_the_callers_client(as_):
    a = as_("client_user_a").get("/api/workflows").json
    b = as_("client_user_b").get("/api/workflows").json
    assert {w["clientId"] for w in a["workflows"]} == {str(CLIENT_A)}
    assert {w["clientId"] for w in b["workflows"]} == {str(CLIENT_B)}
    assert a["totalCount"] == 2 and a["hasMore"] is False


def test_list_filters_and_includes(as_):
    body = as_("operator").get(f"/api/workflows?clientId={CLIENT_A}&status=IN_PROGRESS&type=PAYOFF_REQUEST&include=tasks,documents").json
    assert [w["id"] for w in body["workflows"]] == [str(row("A101"))]
    assert [t["id"] for t in body["workflows"][0]["tasks"]] == [str(row("A201"))]
    assert {d["id"] for d in body["workflows"][0]["documents"]} == {str(row("A501")), str(row("A502"))}


def test_includes_respect_what_the_client_may_see(as_):
    body = as_("client_user_a").get(f"/api/workflows/{row('A101')}?include=communications,documents,counterparties").json
    assert [c["id"] for c in body["communications"]] == [str(row("A401"))]
    assert [d["id"] for d in body["documents"]] == [str(row("A501"))]
    assert [c["id"] for c in body["counterparties"]] == [str(row("A301"))]


def test_cursor_pages_through_everything_once(as_):
    caller = as_("operator")
    seen, cursor = [], None
    while True:
        page = caller.get("/api/workflows?limit=1" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [w["id"] for w in page["workflows"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    everything = [w["id"] for w in caller.get("/api/workflows?limit=200").json["workflows"]]
    assert seen == everything and len(seen) == len(set(seen)) >= 4


@pytest.mark.parametrize("query, status, code", [
    ("cursor=garbage!!", 400, "invalid_cursor"),
    ("limit=0", 422, "validation_error"),
    ("limit=201", 422, "validation_error"),
    ("offset=-1", 422, "validation_error"),
    ("status=DONE", 422, "validation_error"),
    ("include=secrets", 422, "validation_error"),
    ("clientId=not-a-uuid", 422, "validation_error"),
    ("createdAfter=yesterday", 422, "validation_error"),
    ("cursor=abc&offset=5", 422, "validation_error"),
])
def test_bad_list_queries_get_a_clear_4xx(as_, query, status, code):
    response = as_("operator").get(f"/api/workflows?{query}")
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code


def test_another_clients_workflow_is_not_found(as_):
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"title": "x"}} if method == "patch" else {}
        response = getattr(as_("client_user_b"), method)(f"/api/workflows/{row('A102')}", **kwargs)
        assert response.status_code == 404, (method, response.json)
    response = as_("client_user_b").post(f"/api/workflows/{row('A102')}/actions", json={"action": "start"})
    assert response.status_code == 404


def test_malformed_ids_are_not_found(as_):
    assert as_("operator").get("/api/workflows/not-a-uuid").status_code == 404


def test_patch_merges_and_validates_the_payload(as_, db):
    created = create(as_("client_user_a")).json
    bad = as_("client_user_a").patch(f"/api/workflows/{created['id']}", json={"payload": {"payoffDate": "soon"}})
    assert bad.status_code == 422 and "payoffDate" in str(bad.json["error"]["details"])
    good = as_("operator").patch(f"/api/workflows/{created['id']}", json={"priority": "URGENT", "payload": {"loanNumber": "999"}})
    assert good.status_code == 200, good.json
    assert good.json["priority"] == "URGENT"
    assert good.json["payload"] == {**PAYOFF, "loanNumber": "999"}
    stored = db.execute("select payload from public.workflows where id = %s", (created["id"],)).fetchone()["payload"]
    assert stored["loanNumber"] == "999" and stored["lenderName"] == "First Bank"


def test_a_client_cannot_edit_a_started_workflow(as_):
    response = as_("client_user_a").patch(f"/api/workflows/{row('A101')}", json={"title": "mine now"})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_start_action_instantiates_the_plan_and_queues_n8n(as_, db):
    created = create(as_("client_user_a")).json
    response = as_("client_user_a").post(f"/api/workflows/{created['id']}/actions", json={"action": "start"})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["success"] is True and body["newStatus"] == "IN_PROGRESS" and body["tasksCreated"] == 7
    assert body["workflowId"] == created["id"] and body["timestamp"]
    assert db.execute("select count(*) as n from public.n8n_dispatches where workflow_id = %s", (created["id"],)).fetchone()["n"] == 1
    again = as_("client_user_a").post(f"/api/workflows/{created['id']}/actions", json={"action": "start"})
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_state"
    assert "PENDING" in again.json["error"]["message"]


@pytest.mark.parametrize("body", [{"action": "explode"}, {}, {"action": "start", "data": "x"}, {"action": "start", "extra": 1}])
def test_bad_actions_are_refused(as_, body):
    response = as_("operator").post(f"/api/workflows/{row('A102')}/actions", json=body)
    assert response.status_code == 422


def test_clients_may_not_pause(as_):
    response = as_("client_user_a").post(f"/api/workflows/{row('A101')}/actions", json={"action": "pause"})
    assert response.status_code == 403


def test_delete_cancels_softly(as_, db):
    response = as_("operator").delete(f"/api/workflows/{row('A102')}")
    assert response.status_code == 200 and response.json["status"] == "CANCELLED"
    assert db.execute("select status from public.workflows where id = %s", (row("A102"),)).fetchone()["status"] == "CANCELLED"


def test_requests_without_credentials_get_401(client):
    response = client.get("/api/workflows")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_credentials"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_routes_answer_in_the_error_shape(as_):
    response = as_("operator").get("/api/nothing-here")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    response = as_("operator").put("/api/workflows")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"


def test_the_request_id_is_the_services_and_a_callers_own_id_is_kept_beside_it(as_):
    response = as_("operator").get("/api/workflows", headers={"X-Request-Id": "abc-123"})
    assert uuid.UUID(response.headers["X-Request-Id"]) and response.headers["X-Client-Request-Id"] == "abc-123"
    assert uuid.UUID(as_("operator").get("/api/workflows").headers["X-Request-Id"])


@pytest.mark.parametrize("changes, field", [({"payload": {**PAYOFF, "address": "a\u0000b"}}, "payload.address"),
                                            ({"title": "x\u0000y"}, "title")])
def test_nul_characters_are_refused_not_a_server_error(as_, db, changes, field):
    before = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    response = create(as_("client_user_a"), **changes)
    assert response.status_code == 422 and response.json["error"]["code"] == "unstorable_text"
    assert response.json["error"]["details"] == {"json": {field: ["contains a NUL character"]}}
    assert db.execute("select count(*) as n from public.workflows").fetchone()["n"] == before


@pytest.mark.parametrize("path, says", [
    ("/api/workflows/123", "'123' is not a workflow id: ids are UUIDs"),
    ("/api/tasks/not-an-id/actions", "'not-an-id' is not a task id"),
    ("/api/documents/42", "'42' is not a document id"),
    ("/api/workflows/0e53b6875dd14496b8748961a1a669e3", "'0e53b6875dd14496b8748961a1a669e3' is not a workflow id"),
    ("/api/counterparties/{0e53b687-5dd1-4496-b874-8961a1a669e3}", "is not a counterparty id"),
    ("/api/workflowz", "no endpoint GET /api/workflowz: the API is described at /api/docs"),
])
def test_a_path_that_names_nothing_says_what_was_wrong(as_, path, says):
    response = as_("operator").get(path)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert says in response.json["error"]["message"]


@pytest.mark.parametrize("field, value, says", [
    ("payoffDate", "15/12/2026", "use YYYY-MM-DD"),
    ("payoffDate", "2026-13-01", "use YYYY-MM-DD"),
    ("payoffDate", "20261215", "use YYYY-MM-DD"),  # ISO 8601's basic spelling: not what the document says
    ("payoffDate", "2026-W50-1", "use YYYY-MM-DD"),  # a week date
])
def test_a_bad_date_says_the_format_expected(as_, db, field, value, says):
    before = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    response = create(as_("client_user_a"), payload={**PAYOFF, field: value})
    assert response.status_code == 422
    assert db.execute("select count(*) as n from public.workflows").fetchone()["n"] == before
    assert says in json.dumps(response.json["error"]["details"])


@pytest.mark.parametrize("value", ["yesterday", "2026-12-01T10:00:00"])
def test_a_bad_created_after_says_the_format_expected(as_, value):
    response = as_("operator").get(f"/api/workflows?createdAfter={value}")
    assert response.status_code == 422 and "2026-12-15T14:30:00Z" in json.dumps(response.json["error"]["details"])


# ---- Who works on a workflow: hilId and managerId -----------------------------------------------
OPERATOR, MANAGER = row("C001"), row("C002")
NOT_STAFF = {  # (the id, what the answer says)
    "a client user": (row("A011"), "not an active HIL person"),
    "another client's user": (row("B011"), "not an active HIL person"),
    "nobody": (uuid.UUID("0e53b687-5dd1-4496-b874-8961a1a669e3"), "not an active HIL person"),
}


def count_workflows(db) -> int:
    return db.execute("select count(*) as n from public.workflows").fetchone()["n"]


@pytest.mark.parametrize("person", ["client_user_a", "client_admin_a"])
@pytest.mark.parametrize("field, value", [("hilId", OPERATOR), ("managerId", MANAGER)])
def test_a_client_does_not_choose_who_works_on_a_new_workflow(as_, db, person, field, value):
    before = count_workflows(db)
    response = create(as_(person), **{field: str(value)})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden", response.json
    assert "hilId, managerId" in json.dumps(response.json["error"])
    assert count_workflows(db) == before


@pytest.mark.parametrize("person", ["operator", "manager"])
@pytest.mark.parametrize("field", ["hilId", "managerId"])
@pytest.mark.parametrize("kind", NOT_STAFF)
def test_only_active_hil_people_own_or_manage_a_workflow(as_, db, person, field, kind):
    value, says = NOT_STAFF[kind]
    before = count_workflows(db)
    created = create(as_(person), clientId=str(CLIENT_A), **{field: str(value)})
    assert created.status_code == 422 and created.json["error"]["details"] == {"json": {field: [says]}}, created.json
    assert count_workflows(db) == before
    stored = db.execute("select hil_owner_id, manager_id from public.workflows where id = %s", (row("A101"),)).fetchone()
    patched = as_(person).patch(f"/api/workflows/{row('A101')}", json={field: str(value)})
    assert patched.status_code == 422 and patched.json["error"]["details"] == {"json": {field: [says]}}, patched.json
    assert db.execute("select hil_owner_id, manager_id from public.workflows where id = %s", (row("A101"),)).fetchone() == stored


def test_a_deactivated_hil_person_and_an_operator_as_manager_are_refused(as_, db):
    created = create(as_("manager"), clientId=str(CLIENT_A), managerId=str(OPERATOR))
    assert created.status_code == 422 and created.json["error"]["details"] == {"json": {"managerId": ["not a HIL manager"]}}
    db.execute("update public.user_profiles set is_active = false where id = %s", (OPERATOR,))
    patched = as_("manager").patch(f"/api/workflows/{row('A101')}", json={"hilId": str(OPERATOR)})
    assert patched.status_code == 422 and patched.json["error"]["details"] == {"json": {"hilId": ["not an active HIL person"]}}


def test_hil_people_staff_a_workflow_and_may_clear_it(as_, db):
    created = create(as_("operator"), clientId=str(CLIENT_A), hilId=str(OPERATOR), managerId=str(MANAGER))
    assert created.status_code == 201, created.json
    stored = db.execute("select hil_owner_id, manager_id from public.workflows where id = %s", (created.json["id"],)).fetchone()
    assert stored == {"hil_owner_id": OPERATOR, "manager_id": MANAGER}
    cleared = as_("manager").patch(f"/api/workflows/{created.json['id']}", json={"hilId": None, "managerId": None})
    assert cleared.status_code == 200, cleared.json
    stored = db.execute("select hil_owner_id, manager_id from public.workflows where id = %s", (created.json["id"],)).fetchone()
    assert stored == {"hil_owner_id": None, "manager_id": None}
