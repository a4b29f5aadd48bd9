"""The OpenAPI document is generated from the code, valid, and served with interactive docs;
schemathesis fuzzes every operation and no generated request gets a server error."""
from __future__ import annotations

import os

import pytest

from openapi_spec_validator import validate

from tests.fuzz.schemathesis_run import fuzz
from tests.security.surface import PROVEN_ON_RAW_BYTES


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


def test_error_responses_document_the_one_error_shape(client):
    spec = client.get("/api/openapi.json").json
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    assert set(spec["components"]["schemas"]["ErrorFields"]["properties"]) == {"code", "message", "details", "requestId"}
    defaults = [op["responses"]["default"] for path in spec["paths"].values() for op in path.values()
                if isinstance(op, dict) and "responses" in op]
    assert defaults and all(d == {"$ref": "#/components/responses/DEFAULT_ERROR"} for d in defaults)
    assert spec["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}


def test_no_generated_request_gets_a_server_error_or_breaks_the_schema(app, db):
    # A bounded run of the fuzzer of tests/fuzz/run_schemathesis.py (which runs thousands):
    # every operation as an operator, a client user and an agent, valid and invalid requests.
    db.execute("savepoint fuzz_case")
    figures = fuzz(app, int(os.environ.get("FUZZ_EXAMPLES", "6")),
                   reset=lambda: db.execute("rollback to savepoint fuzz_case"))
    assert figures.failures == [], "\n".join(" | ".join(map(str, failure))[:500] for failure in figures.failures)
    assert figures.server_errors == 0
    assert figures.total >= 31 * 3 * 2 * 5
    # Authenticated cases reach the data, not only the front door.
    assert figures.statuses[200] > figures.total // 10
    # Every case carries its caller's credentials (the machine webhooks' too: signed, or the
    # token the body's workflow or the error workflow has), except the negative cases where
    # schemathesis leaves them out on purpose, which are refused for that alone, and the negative
    # bodies of the webhooks that check their caller's proof on the raw bytes: a body that names
    # no workflow (or an id that is not one) proves nothing, and is refused before it is read.
    refused = {key for key in figures.unauthenticated
               if not (key[2] == "negative" and key[3] == "missing_credentials")
               and not (key[2] == "negative" and key[0].split(" ", 1)[1] in PROVEN_ON_RAW_BYTES
                        and key[3] in ("invalid_signature", "invalid_token"))}
    assert refused == set()


def test_the_security_schemes_tell_callers_how_to_authenticate(client):
    schemes = client.get("/api/openapi.json").json["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and "app_metadata" in schemes["bearerAuth"]["description"]
    assert schemes["agentKey"]["name"] == "X-API-Key"
    assert "X-Agent-Name" in schemes["agentKey"]["description"] and "X-Workflow-Scope" in schemes["agentKey"]["description"]


def test_the_interactive_docs_load_nothing_from_another_host(client):
    import re

    page = client.get("/api/docs")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', text) if a != "data:,"]
    assert assets and all(a.startswith("/api/docs/") for a in assets), assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.data) > 300, asset
    assert client.get("/api/docs/assets/../../openapi.json").status_code == 404
    # No inline script, and a policy that allows none.
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S) == ["", "", ""]
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert 'data-spec-url="/api/openapi.json"' in text


KEYWORDS_OF = {"string": {"maxLength", "minLength", "pattern"}, "array": {"maxItems", "minItems", "uniqueItems"},
               "object": {"maxProperties", "minProperties"}, "number": {"maximum", "minimum", "exclusiveMaximum",
                                                                       "exclusiveMinimum", "multipleOf"}}
KEYWORDS_OF["integer"] = KEYWORDS_OF["number"]


def schemas_in(node, where="#"):
    """Every schema object of the document with where it is (a walk of the whole tree)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield where, node
        for key, child in node.items():
            yield from schemas_in(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from schemas_in(child, f"{where}/{index}")


def test_every_limit_in_the_document_applies_to_the_type_it_is_on(client):
    # JSON Schema ignores a keyword on a value of another type (maxLength on an object says
    # nothing), so a limit written on the wrong type is a limit the document does not tell.
    spec = client.get("/api/openapi.json").json
    misplaced = []
    for where, schema in schemas_in(spec):
        foreign = {k for kind, keywords in KEYWORDS_OF.items() if kind != schema["type"] for k in keywords}
        foreign -= KEYWORDS_OF.get(schema["type"], set())
        misplaced += [f"{where}: {k} on {schema['type']}" for k in sorted(foreign & set(schema))]
    assert misplaced == []
    address = spec["components"]["schemas"]["CounterpartyCreate"]["properties"]["address"]
    assert address["maxProperties"] == 20


DOCUMENTED_READS = ["/api/views/dashboard", "/api/views/performance", "/api/views/sla", "/api/views/notifications",
                    "/api/views/dashboard?timeframe=month", "/api/views/notifications?unreadOnly=true", "/api/health",
                    *(f"/api/health/{component}" for component in ("database", "workflows", "agents", "realtime", "auth"))]


@pytest.mark.parametrize("person", ["operator", "manager", "client_user_a", "client_admin_a", "agent_a"])
def test_every_view_and_health_check_answers_as_the_document_says(client, as_, person):
    # Every read answers a body its documented schema accepts, for every kind of caller (what a
    # client reads of a view differs: empty team and agents, no costs).
    from openapi_schema_validator import OAS30Validator

    spec = client.get("/api/openapi.json").json
    for path in DOCUMENTED_READS:
        response = as_(person).get(path)
        assert response.status_code in (200, 503), (path, response.json)
        template = "/api/health/{component}" if path.startswith("/api/health/") else path.split("?")[0]
        answers = spec["paths"][template]["get"]["responses"]
        schema = answers[str(response.status_code)]["content"]["application/json"]["schema"]
        assert schema != {}, f"{path}: the document says nothing of what it answers"
        OAS30Validator({**schema, "components": spec["components"]}).validate(response.json)  # #/components refs resolve
