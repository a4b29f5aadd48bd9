"""The OpenAPI document is generated from the code, valid, and served with interactive docs;
schemathesis fuzzes every operation and no generated request gets a server error."""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from tests.db.world import PEOPLE
from tests.support import mint_token


def test_the_openapi_document_is_valid_and_complete(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json
    validate(spec)
    paths = set(spec["paths"])
    for expected in ["/api/workflows", "/api/workflows/{workflow_id}", "/api/workflows/{workflow_id}/actions",
                     "/api/tasks", "/api/communications", "/api/documents", "/api/counterparties", "/api/health"]:
        assert expected in paths, expected
    summaries = [op.get("summary") for path in spec["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert all(summaries), "every operation has a one-line summary from its docstring"


def test_interactive_docs_are_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()


def test_no_generated_request_gets_a_server_error(app):
    # schemathesis drives hypothesis per operation; its pytest plugin is not used (it does not
    # support this pytest), so the operations are walked here.
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    token = mint_token(PEOPLE["operator"])
    failures, cases = [], 0

    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            nonlocal cases
            cases += 1
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.query, case.body, response.text[:300]))
            elif response.status_code >= 400:
                assert set(response.json()["error"]) == {"code", "message", "details", "requestId"}

        check()
    assert failures == []
    assert cases > 100
