"""A row the caller may not see is indistinguishable from one that does not exist: the same
status, code, message and details (the id asked for aside), for every operation that takes an
id in its path or a reference in its body, and for every kind of caller with a tenant. The
answer never names anything of the hidden row (its workflow, its client).
"""
from __future__ import annotations

import json
import uuid

import pytest

from app.schemas.tasks import TASK_ACTIONS
from tests.db.world import row
from tests.security.surface import HIDDEN_PATH_IDS, OPERATIONS

CALLERS = ["client_user_a", "client_admin_a", "agent_a"]
# Ids of client B's world, none of which may appear in an answer to client A's people.
HIDDEN_WORLD = [str(row(code)) for code in ("B001", "B101", "B102", "B201", "B301", "B401", "B501", "B011")]
PATH_OPERATIONS = [op for op in OPERATIONS if any(name in HIDDEN_PATH_IDS for name in op.path_ids)]
# Body references: (operation, field, the hidden id). The rest of the body is valid.
REFERENCES = [
    ("post", "/api/tasks", {"taskType": "extra_check", "title": "Extra"}, "workflowId", row("B101")),
    ("post", "/api/communications", {"type": "message", "direction": "INBOUND", "body": "Hi"}, "workflowId", row("B101")),
    ("post", "/api/communications", {"workflowId": str(row("A101")), "type": "message", "direction": "INBOUND",
                                     "body": "Hi"}, "taskId", row("B201")),
    ("post", "/api/documents", {"documentType": "ATTACHMENT", "filename": "a.pdf"}, "workflowId", row("B101")),
    ("post", "/api/documents", {"workflowId": str(row("A101")), "documentType": "ATTACHMENT", "filename": "a.pdf"},
     "taskId", row("B201")),
    ("post", f"/api/counterparties/{row('A301')}/workflows", {}, "workflowId", row("B101")),
    ("post", "/webhooks/inbound/client-message", {"message": "Hi"}, "workflowId", row("B101")),
]
LIST_FILTERS = [("/api/tasks", "workflowId", row("B101")), ("/api/communications", "workflowId", row("B101")),
                ("/api/communications", "taskId", row("B201")), ("/api/documents", "workflowId", row("B101")),
                ("/api/documents", "taskId", row("B201")), ("/api/counterparties", "workflowId", row("B101"))]


def comparable(response, asked: uuid.UUID) -> tuple:
    """The answer with the id asked for written as <id>."""
    text = response.get_data(as_text=True).replace(str(asked), "<id>")
    body = json.loads(text) if text else None
    if isinstance(body, dict) and "error" in body:
        body["error"].pop("requestId")
    return response.status_code, body


def assert_indistinguishable(send, hidden: uuid.UUID) -> None:
    stranger = uuid.uuid4()
    hidden_answer, unknown_answer = comparable(send(hidden), hidden), comparable(send(stranger), stranger)
    assert hidden_answer == unknown_answer
    for other in HIDDEN_WORLD:
        assert other not in json.dumps(hidden_answer[1]), (other, hidden_answer)


# Besides the other client's rows: what a caller of client A may not see of client A's own.
ALSO_HIDDEN = {
    "client_user_a": {"communication_id": [row("A402")], "document_id": [row("A502")]},  # internal, working
    "client_admin_a": {"communication_id": [row("A402")], "document_id": [row("A502")]},
    "agent_a": {"workflow_id": [row("A102")]},  # its client's workflow it has no work in
}


@pytest.mark.parametrize("op", PATH_OPERATIONS, ids=str)
@pytest.mark.parametrize("caller", CALLERS)
def test_a_path_id_the_caller_may_not_see_reads_as_unknown(as_, unchanged, op, caller):
    for name in op.path_ids:
        if name not in HIDDEN_PATH_IDS:
            continue
        kwargs = {"json": op.valid_body} if op.takes_body else {}
        for hidden in [HIDDEN_PATH_IDS[name], *ALSO_HIDDEN[caller].get(name, [])]:
            assert_indistinguishable(lambda asked: getattr(as_(caller), op.method)(op.path({name: asked}), **kwargs),
                                     hidden)


@pytest.mark.parametrize("action", [*TASK_ACTIONS, "cancel"])
@pytest.mark.parametrize("caller", CALLERS)
def test_every_task_action_on_a_hidden_task_reads_as_on_an_unknown_one(as_, unchanged, action, caller):
    # The report's case: the answer named the hidden task's workflow.
    def act(asked):
        if action == "cancel":
            return as_(caller).delete(f"/api/tasks/{asked}")
        return as_(caller).post(f"/api/tasks/{asked}/actions", json={"action": action, "data": {}})

    assert_indistinguishable(act, row("B201"))


@pytest.mark.parametrize("method, path, body, field, hidden", REFERENCES, ids=[f"{r[1]} {r[3]}" for r in REFERENCES])
@pytest.mark.parametrize("caller", CALLERS)
def test_a_reference_the_caller_may_not_see_reads_as_unknown(as_, unchanged, method, path, body, field, hidden, caller):
    assert_indistinguishable(lambda asked: getattr(as_(caller), method)(path, json={**body, field: str(asked)}), hidden)


@pytest.mark.parametrize("path, field, hidden", LIST_FILTERS, ids=[f"{p} {f}" for p, f, _ in LIST_FILTERS])
@pytest.mark.parametrize("caller", CALLERS)
def test_a_list_filtered_by_a_hidden_id_reads_as_by_an_unknown_one(as_, path, field, hidden, caller):
    assert_indistinguishable(lambda asked: as_(caller).get(f"{path}?{field}={asked}"), hidden)


def test_the_reported_case(as_, unchanged):
    # DELETE /api/tasks/{id} on another client's task named the task's workflow.
    answer = as_("client_user_a").delete(f"/api/tasks/{row('B201')}")
    assert answer.status_code == 404 and answer.json["error"]["message"] == f"task {row('B201')} not found"
