"""SQL injection attempts in every filter and search parameter of every list and view, in path
ids and in JSON bodies: refused as invalid, or taken literally (free text), never executed,
nothing written."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.db.world import CLIENT_A, row
from tests.security.state import assert_refused, fingerprint

INJECTIONS = [
    "' or '1'='1",
    "' or 1=1--",
    "1) or (1=1",
    "'; drop table public.workflows;--",
    "x'; update public.workflows set status='COMPLETED';--",
    "' union select id, email from auth.users--",
    "PENDING' or status is not null--",
    "$$; delete from public.tasks; $$",
    "'||(select pg_sleep(3))||'",
    "%' or '%'='",
    '" or ""="',
    "\\'; select 1; --",
    "aaaaaaaa-0000-4000-8000-000000000101' or '1'='1",
    "PENDING,IN_PROGRESS' or '1'='1",
]

LIST_PARAMETERS = {
    "/api/workflows": ["clientId", "hilId", "status", "type", "createdAfter", "createdBefore", "include", "cursor",
                       "limit", "offset"],
    "/api/tasks": ["workflowId", "executorId", "agentName", "status", "slaStatus", "executorType", "include", "cursor",
                   "limit", "offset"],
    "/api/communications": ["workflowId", "taskId", "type", "status", "direction", "isClientVisible", "cursor",
                            "limit", "offset"],
    "/api/documents": ["workflowId", "taskId", "documentType", "status", "tag", "cursor", "limit", "offset"],
    "/api/counterparties": ["type", "search", "workflowId", "cursor", "limit", "offset"],
    "/api/views/dashboard": ["hilId", "timeframe"],
    "/api/views/performance": ["timeframe", "agentName", "workflowType"],
    "/api/views/sla": ["limit"],
    "/api/views/notifications": ["unreadOnly", "type", "priority", "limit", "offset"],
    f"/api/workflows/{row('A101')}": ["include"],
    f"/api/tasks/{row('A201')}": ["include"],
}
# Free text, matched literally: an injection is a search that finds nothing.
FREE_TEXT = {("/api/counterparties", "search")}
CASES = [(path, name) for path, names in LIST_PARAMETERS.items() for name in names]


@pytest.fixture
def world_before(db):
    return fingerprint(db)


@pytest.mark.parametrize("path, name", CASES, ids=[f"{p}?{n}" for p, n in CASES])
def test_injection_in_a_query_parameter_is_refused_or_literal(as_, db, world_before, path, name):
    for caller in ("operator", "client_user_a"):
        for value in INJECTIONS:
            response = as_(caller).get(path, query_string={name: value})
            if (path, name) in FREE_TEXT:
                assert response.status_code == 200, (value, response.json)
                assert response.json["totalCount"] == 0 and response.json["counterparties"] == []
            else:
                error = assert_refused(response, (400, 422))
                assert error["code"] in ("validation_error", "invalid_cursor"), (value, error)
    assert fingerprint(db) == world_before


def test_a_search_is_matched_literally_not_as_a_pattern(as_, db):
    # '%' and '_' are LIKE wildcards: a search for them alone must not match every name.
    for value in ("%", "_", "%%", "\\", "'"):
        response = as_("operator").get("/api/counterparties", query_string={"search": value})
        assert response.status_code == 200 and response.json["totalCount"] == 0, value
    listed = as_("operator").get("/api/counterparties", query_string={"search": "Unlinked Lender"})
    assert listed.status_code == 200 and listed.json["totalCount"] == 1


PATHS_WITH_IDS = ["/api/workflows/{}", "/api/workflows/{}/actions", "/api/tasks/{}", "/api/tasks/{}/actions",
                  "/api/communications/{}", "/api/documents/{}", "/api/counterparties/{}",
                  "/api/counterparties/{}/workflows", f"/api/counterparties/{row('C301')}/workflows/{{}}",
                  "/api/health/{}"]


@pytest.mark.parametrize("template", PATHS_WITH_IDS)
def test_injection_in_a_path_id_is_a_404(as_, db, world_before, template):
    for value in INJECTIONS:
        path = template.format(quote(value, safe=""))
        for method in ("get", "post", "patch", "delete"):
            response = getattr(as_("operator"), method)(path, json={"action": "cancel"})
            assert_refused(response, (404, 405))
    assert fingerprint(db) == world_before


INJECTED = "<injected>"
BODIES = [
    ("post", "/api/workflows", {"type": "PAYOFF_REQUEST", "clientId": INJECTED, "payload": {}}),
    ("post", "/api/workflows", {"type": INJECTED, "clientId": str(CLIENT_A), "payload": {}}),
    ("post", "/api/workflows", {"type": "PAYOFF_REQUEST", "clientId": str(CLIENT_A), "priority": INJECTED,
                                "payload": {"address": "1 Main St", "borrowerName": "Pat", "lenderName": "Bank",
                                            "loanNumber": "1", "payoffDate": "2026-12-15"}}),
    ("post", "/api/workflows", {"type": "PAYOFF_REQUEST", "clientId": str(CLIENT_A),
                                "payload": {"address": "1 Main St", "borrowerName": "Pat", "lenderName": "Bank",
                                            "loanNumber": "1", "payoffDate": INJECTED}}),
    ("patch", f"/api/workflows/{row('A101')}", {"hilId": INJECTED}),
    ("patch", f"/api/workflows/{row('A101')}", {"priority": INJECTED}),
    ("post", f"/api/workflows/{row('A101')}/actions", {"action": INJECTED}),
    ("post", f"/api/tasks/{row('A201')}/actions", {"action": INJECTED}),
    ("post", f"/api/tasks/{row('A201')}/actions", {"action": "assign", "data": {"userId": INJECTED}}),
    ("patch", f"/api/tasks/{row('A201')}", {"priority": INJECTED}),
    ("post", "/api/tasks", {"workflowId": INJECTED, "taskType": "x", "title": "x"}),
    ("post", "/api/communications", {"workflowId": INJECTED, "type": "email", "direction": "OUTBOUND"}),
    ("post", "/api/documents", {"workflowId": INJECTED, "filename": "a.pdf", "documentType": "other"}),
    ("post", "/api/counterparties", {"type": INJECTED, "name": "Bank"}),
    ("post", f"/api/counterparties/{row('C301')}/workflows", {"workflowId": INJECTED}),
    ("post", "/api/views/notifications/read", {"ids": [INJECTED]}),
]


@pytest.mark.parametrize("method, path, template", BODIES, ids=[f"{m} {p} {sorted(t)}" for m, p, t in BODIES])
def test_injection_in_an_id_or_enum_field_of_a_body_is_refused(as_, db, world_before, method, path, template):
    for value in INJECTIONS:
        body = json.loads(json.dumps(template).replace(INJECTED, json.dumps(value)[1:-1]))
        response = getattr(as_("operator"), method)(path, json=body)
        assert_refused(response, (400, 404, 422))
    assert fingerprint(db) == world_before


def test_injection_in_free_text_is_stored_literally_and_runs_nothing(as_, db):
    before = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    for value in INJECTIONS:
        response = as_("operator").patch(f"/api/workflows/{row('A101')}", json={"title": value})
        assert response.status_code == 200 and response.json["title"] == value
        stored = db.execute("select title from public.workflows where id = %s", (row("A101"),)).fetchone()["title"]
        assert stored == value
    statuses = db.execute("select count(*) filter (where status = 'COMPLETED') as done, count(*) as n "
                          "from public.workflows").fetchone()
    assert statuses == {"done": 0, "n": before}
    assert db.execute("select count(*) as n from public.tasks").fetchone()["n"] > 0
