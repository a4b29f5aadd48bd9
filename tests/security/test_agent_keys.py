"""Agent credentials: X-API-Key with X-Agent-Name and X-Workflow-Scope. A wrong or missing part
is a 401; a right key scoped to one workflow reaches nothing of another."""
from __future__ import annotations

import uuid

import pytest

from tests.db.world import row
from tests.security.state import assert_refused
from tests.service_fixtures import AGENT_KEY
from tests.support import mint_token
from tests.db.world import PEOPLE

A101, A201, B101, B201 = row("A101"), row("A201"), row("B101"), row("B201")


def agent(scope=A101, name="nina", key=AGENT_KEY, **extra) -> dict:
    headers = {"X-API-Key": key, "X-Agent-Name": name, "X-Workflow-Scope": str(scope), **extra}
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize("headers", [
    agent(key="wrong-key-wrong-key-wrong-key"),
    agent(key=""),
    agent(key=AGENT_KEY + "x"),
    agent(key=AGENT_KEY[:-1]),
    agent(key=AGENT_KEY.upper()),
    agent(name=None),
    agent(name=""),
    agent(name="Nina Smith"),
    agent(name="nina'--"),
    agent(scope=None),
    agent(scope=""),
    agent(scope="not-a-uuid"),
    agent(scope=f"{A101}' or '1'='1"),
    agent(scope=f"{A101},{B101}"),
], ids=["wrong key", "empty key", "key plus a char", "key minus a char", "key upper-cased", "no name", "empty name",
        "name with a space", "name with a quote", "no scope", "empty scope", "scope not a uuid", "scope injection",
        "two scopes"])
def test_bad_agent_credentials_are_a_401_and_write_nothing(client, unchanged, headers):
    for method, path, body in [("get", "/api/workflows", None), ("get", f"/api/tasks/{A201}", None),
                               ("post", f"/api/tasks/{A201}/actions", {"action": "complete", "data": {"result": {}}}),
                               ("post", "/api/communications", {"workflowId": str(A101), "type": "email",
                                                                "direction": "OUTBOUND", "body": "hi"})]:
        response = getattr(client, method)(path, json=body, headers=headers)
        assert assert_refused(response, 401)["code"] == "invalid_agent_credentials"


def test_a_wrong_agent_key_wins_over_a_valid_bearer_token(client, unchanged):
    # The agent path is chosen by the presence of X-API-Key; a valid person's token beside a
    # wrong key must not rescue the request.
    headers = {**agent(key="wrong-key-wrong-key-wrong-key"), "Authorization": f"Bearer {mint_token(PEOPLE['manager'])}"}
    assert_refused(client.get("/api/workflows", headers=headers), 401)


def test_an_agent_scoped_to_one_workflow_reaches_nothing_of_another(client, unchanged):
    headers = agent(scope=A101)
    listed = client.get("/api/workflows", headers=headers).json
    assert [w["id"] for w in listed["workflows"]] == [str(A101)]
    tasks = client.get("/api/tasks", headers=headers).json
    assert tasks["totalCount"] >= 1 and {t["workflowId"] for t in tasks["tasks"]} == {str(A101)}
    assert_refused(client.get(f"/api/workflows/{B101}", headers=headers), 404)
    assert_refused(client.get(f"/api/tasks/{B201}", headers=headers), 404)
    assert client.get("/api/tasks", query_string={"workflowId": str(B101)}, headers=headers).json["totalCount"] == 0
    assert_refused(client.post(f"/api/tasks/{B201}/actions", json={"action": "complete", "data": {"result": {}}},
                               headers=headers), (403, 404))
    assert_refused(client.patch(f"/api/tasks/{B201}", json={"priority": "HIGH"}, headers=headers), (403, 404))
    assert_refused(client.post(f"/api/workflows/{B101}/actions", json={"action": "cancel"}, headers=headers), (403, 404))
    assert_refused(client.post("/api/communications", json={"workflowId": str(B101), "type": "email",
                                                            "direction": "OUTBOUND", "body": "hi"}, headers=headers),
                   (403, 404, 422))


def test_an_agent_scoped_to_an_unknown_workflow_sees_nothing(client, unchanged):
    headers = agent(scope=uuid.uuid4())
    for path in ("/api/workflows", "/api/tasks", "/api/communications", "/api/documents"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and response.json["totalCount"] == 0, path
    assert_refused(client.get(f"/api/workflows/{A101}", headers=headers), 404)


def test_an_agent_cannot_create_workflows_or_act_on_them(client, unchanged):
    headers = agent(scope=A101)
    created = client.post("/api/workflows", headers=headers, json={
        "type": "PAYOFF_REQUEST", "clientId": str(row("A001")),
        "payload": {"address": "1 Main St", "borrowerName": "Pat", "lenderName": "Bank", "loanNumber": "1",
                    "payoffDate": "2026-12-15"}})
    assert_refused(created, 403)
    assert_refused(client.post(f"/api/workflows/{A101}/actions", json={"action": "cancel"}, headers=headers), 403)
    assert_refused(client.delete(f"/api/workflows/{A101}", headers=headers), 403)


@pytest.mark.parametrize("headers", [agent(scope=A101, name="mia"), agent(scope=row("A102"))],
                         ids=["another agent's workflow", "a workflow without the agent's tasks"])
def test_an_agent_naming_a_workflow_it_has_no_work_in_sees_and_changes_nothing(client, unchanged, headers):
    """The key is right, but the scope is not a workflow the agent works on: no row is visible,
    as for a workflow of another tenant (existence is not revealed)."""
    for path in ("/api/workflows", "/api/tasks", "/api/communications", "/api/documents"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and response.json["totalCount"] == 0, path
    assert_refused(client.get(f"/api/workflows/{A101}", headers=headers), 404)
    assert_refused(client.get(f"/api/tasks/{A201}", headers=headers), 404)
    assert_refused(client.post(f"/api/tasks/{A201}/actions", json={"action": "complete", "data": {"result": {}}},
                               headers=headers), 404)
    assert_refused(client.post("/api/communications", json={"workflowId": str(A101), "type": "email",
                                                            "direction": "OUTBOUND", "body": "hi"}, headers=headers),
                   404)
