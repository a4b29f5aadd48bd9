"""The service as an outside tester sees it: every operation of the OpenAPI document (the
webhooks included), with their path ids filled from the test world.

Properties over "every endpoint" iterate these, so an endpoint added later is covered without
touching the tests.
"""
from __future__ import annotations

import dataclasses
import re

from tests.db.world import CLIENT_A, row

# Path parameters filled with client A's rows (visible to client A's people and HIL people).
WORLD_PATH_IDS = {
    "workflow_id": row("A101"), "task_id": row("A201"), "communication_id": row("A401"),
    "document_id": row("A501"), "counterparty_id": row("A301"), "component": "database",
}
# Client B's twin of each (what client A's people may not see).
HIDDEN_PATH_IDS = {
    "workflow_id": row("B101"), "task_id": row("B201"), "communication_id": row("B401"),
    "document_id": row("B501"), "counterparty_id": row("B301"),
}
# A body each operation accepts (for client A's workflow A101), so that what a test varies is the
# only thing that can be wrong. Webhooks that authenticate otherwise have none here.
VALID_BODIES = {
    "POST /api/workflows": {"type": "PAYOFF_REQUEST", "clientId": str(CLIENT_A), "payload": {
        "address": "1 Main St", "borrowerName": "Pat Doe", "lenderName": "First Bank", "loanNumber": "123",
        "payoffDate": "2026-12-15"}},
    "PATCH /api/workflows/{workflow_id}": {"title": "Renamed"},
    "POST /api/workflows/{workflow_id}/actions": {"action": "cancel"},
    "POST /api/tasks": {"workflowId": str(row("A101")), "taskType": "extra_check", "title": "Extra check"},
    "PATCH /api/tasks/{task_id}": {"title": "Renamed"},
    "POST /api/tasks/{task_id}/actions": {"action": "escalate", "data": {"reason": "stuck"}},
    "POST /api/communications": {"workflowId": str(row("A101")), "type": "message", "direction": "INBOUND",
                                 "body": "Hello"},
    "POST /api/documents": {"workflowId": str(row("A101")), "documentType": "ATTACHMENT", "filename": "a.pdf"},
    "POST /api/counterparties": {"type": "lender", "name": "Another Bank"},
    "POST /api/counterparties/{counterparty_id}/workflows": {"workflowId": str(row("A102"))},
    "PATCH /api/counterparties/{counterparty_id}/workflows/{workflow_id}": {"status": "CONTACTED"},
    "POST /api/views/notifications/read": {"all": True},
    "POST /webhooks/inbound/client-message": {"workflowId": str(row("A101")), "message": "Hello"},
}
WEBHOOKS = ["/webhooks/n8n", "/webhooks/n8n/errors", "/webhooks/inbound/payoff-statement",
            "/webhooks/inbound/hoa-documents", "/webhooks/inbound/client-message"]
# Webhooks whose caller proves itself on the raw bytes, before they are parsed: a signature or
# an inbound token for the workflow the body names ("workflowId": "..."). A body that names no
# workflow proves nothing there (401), whatever else is wrong with it.
PROVEN_ON_RAW_BYTES = ("/webhooks/n8n", "/webhooks/inbound/payoff-statement", "/webhooks/inbound/hoa-documents")
PUBLIC_PREFIXES = ("/api/health", "/api/openapi.json", "/api/docs")
# Called by schedulers with CRON_SECRET, never by a person or an agent (tests/app/test_tick.py).
MACHINE_PREFIXES = ("/api/internal/",)


def machine_credentials(path: str, body: bytes, workflow_id=None) -> dict:
    """The credentials the machine caller of a webhook sends with `body` (for `workflow_id`, by
    default the workflow A101): n8n's signature, the error workflow's token, an outside party's
    inbound token. None for the other paths."""
    from app.webhooks.signing import inbound_token, signed_headers, workflow_key
    from tests.service_fixtures import CALLBACK_SECRET, ERROR_TOKEN

    named = str(workflow_id or row("A101"))
    if path == "/webhooks/n8n":
        return signed_headers(workflow_key(CALLBACK_SECRET, named), f"evt-{len(body)}-{hash(body)}", body)
    if path == "/webhooks/n8n/errors":
        return {"X-N8N-Error-Token": ERROR_TOKEN}
    if path in PROVEN_ON_RAW_BYTES:
        return {"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, named)}"}
    return {}


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str  # lower case, as the test client's methods
    template: str  # /api/workflows/{workflow_id}
    takes_body: bool
    query: tuple[str, ...]

    def path(self, ids: dict | None = None) -> str:
        values = {**WORLD_PATH_IDS, **(ids or {})}
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), self.template)

    @property
    def public(self) -> bool:
        return self.template.startswith(PUBLIC_PREFIXES)

    @property
    def path_ids(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.template)

    @property
    def valid_body(self) -> dict | None:
        return VALID_BODIES.get(str(self))

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template}"


def operations(app, *, webhooks: bool = True) -> list[Operation]:
    """Every operation of the OpenAPI document, in document order (without the webhooks if asked)."""
    spec = app.extensions["api"].spec.to_dict()
    found = []
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            query = tuple(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")
            found.append(Operation(method, template, "requestBody" in operation, query))
    documented = {op.template for op in found}
    assert set(WEBHOOKS) <= documented, "every webhook is in the OpenAPI document (app/webhooks/openapi.py)"
    if not webhooks:
        found = [op for op in found if not op.template.startswith("/webhooks/")]
    return found


def openapi_operations() -> list[Operation]:
    """The operations, read from an app built without a database (for parametrize ids)."""
    from app import create_app
    from tests.service_fixtures import make_settings

    class NoDatabase:
        observe = None

        def open(self, wait=False):
            pass

    return operations(create_app(make_settings("postgresql://unused/unused"), database=NoDatabase()))


OPERATIONS = openapi_operations()
BODY_OPERATIONS = [op for op in OPERATIONS if op.takes_body]
QUERY_OPERATIONS = [op for op in OPERATIONS if op.query]
PERSON_OPERATIONS = [op for op in OPERATIONS if not op.public
                     and not op.template.startswith(("/webhooks/", *MACHINE_PREFIXES))] + \
    [op for op in OPERATIONS if op.template == "/webhooks/inbound/client-message"]
