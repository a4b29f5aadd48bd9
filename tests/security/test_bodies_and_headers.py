"""Oversized bodies (413), bodies nested too deeply to parse (400, no recursion error), numbers
JSON does not define or no number here can hold (400), bodies that are not objects (422) and
oversized headers: refused in the one error shape, nothing written, on every endpoint that
takes a body (the API's, the webhooks', the console's sign-in)."""
from __future__ import annotations

import io
import json

import pytest

from app.webhooks.signing import inbound_token, signed_headers, workflow_key
from tests.db.world import row
from tests.security.state import assert_refused
from tests.service_fixtures import AGENT_KEY, CALLBACK_SECRET, ERROR_TOKEN

MAX_BODY = 1_000_000  # Settings.max_body_bytes
A101, A201, C301 = row("A101"), row("A201"), row("C301")
JSON_ENDPOINTS = [
    ("post", "/api/workflows"), ("patch", f"/api/workflows/{A101}"), ("post", f"/api/workflows/{A101}/actions"),
    ("post", "/api/tasks"), ("patch", f"/api/tasks/{A201}"), ("post", f"/api/tasks/{A201}/actions"),
    ("post", "/api/communications"), ("post", "/api/documents"), ("post", "/api/counterparties"),
    ("post", f"/api/counterparties/{C301}/workflows"), ("patch", f"/api/counterparties/{C301}/workflows/{A101}"),
    ("post", "/api/views/notifications/read"),
    ("post", "/webhooks/n8n"), ("post", "/webhooks/n8n/errors"), ("post", "/webhooks/inbound/payoff-statement"),
    ("post", "/webhooks/inbound/hoa-documents"), ("post", "/webhooks/inbound/client-message"),
    ("post", "/console/auth/password"), ("post", "/console/auth/code"), ("post", "/console/auth/refresh"),
    ("post", "/console/auth/sign-out"),
]
IDS = [f"{m} {p}" for m, p in JSON_ENDPOINTS]


# Where the caller proves itself on the raw bytes (a signature or token for the workflow the
# body names), before the body is parsed: a body that names no workflow proves nothing (401).
PROVEN_ON_RAW_BYTES = {"/webhooks/n8n", "/webhooks/inbound/payoff-statement", "/webhooks/inbound/hoa-documents"}


def credentials(path: str, body: bytes = b"") -> dict:
    """Every credential a path could want, so the body is what gets refused."""
    headers = {"X-N8N-Error-Token": ERROR_TOKEN, "Content-Type": "application/json"}
    if path.startswith("/webhooks/inbound/") and path in PROVEN_ON_RAW_BYTES:
        headers["Authorization"] = f"Bearer {inbound_token(CALLBACK_SECRET, str(A101))}"
    if path == "/webhooks/n8n":
        headers.update(signed_headers(workflow_key(CALLBACK_SECRET, str(A101)), "evt-body", body))
    return headers


def naming_the_workflow(path: str, body: bytes) -> bytes:
    """`body` of the same kind (object, array) that also names the workflow whose credentials
    come with it, on the paths that check those on the raw bytes; other paths' bodies as they are."""
    if path not in PROVEN_ON_RAW_BYTES:
        return body
    claim = b'"workflowId": "' + str(A101).encode() + b'"'
    stripped = body.lstrip()
    rest = stripped[1:]
    if stripped.startswith(b"{"):
        return b"{" + claim + (b"" if rest.lstrip().startswith(b"}") else b", ") + rest
    if stripped.startswith(b"["):
        return b"[{" + claim + b"}" + (b"" if rest.lstrip().startswith(b"]") else b", ") + rest
    return body


def nested(depth: int, opening: bytes = b'{"a":', closing: bytes = b"}") -> bytes:
    return opening * depth + b"1" + closing * depth


@pytest.mark.parametrize("method, path", JSON_ENDPOINTS, ids=IDS)
def test_an_oversized_body_is_a_413(as_, unchanged, method, path):
    body = b'{"title": "' + b"x" * MAX_BODY + b'"}'
    response = getattr(as_("operator"), method)(path, data=body, headers=credentials(path, body))
    assert assert_refused(response, 413)["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/api/workflows", "/webhooks/n8n", "/webhooks/inbound/payoff-statement"])
def test_an_oversized_chunked_body_is_a_413(as_, unchanged, path):
    # No Content-Length: the limit applies while reading (gunicorn marks the input terminated).
    body = b'{"title": "' + b"x" * (MAX_BODY + 10) + b'"}'
    response = as_("operator").post(path, input_stream=io.BytesIO(body), headers=credentials(path, body),
                                    environ_overrides={"wsgi.input_terminated": True})
    assert assert_refused(response, 413)["code"] == "payload_too_large"


@pytest.mark.parametrize("method, path", JSON_ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("body", [nested(100_000), nested(100_000, b"[", b"]"), nested(2_000), nested(5_000, b'[{"a":', b"}]")],
                         ids=["objects 100000", "arrays 100000", "objects 2000", "mixed 10000"])
def test_a_deeply_nested_body_is_a_400(as_, unchanged, method, path, body):
    body = naming_the_workflow(path, body)
    response = getattr(as_("operator"), method)(path, data=body, headers=credentials(path, body))
    error = assert_refused(response, 400)
    assert error["code"] == "invalid_body" and "nested" in error["message"]


BIG_INTEGER = "9" * 4301  # one digit more than Python reads into an int by default
NUMBERS_NOT_HELD = {
    "NaN": ("NaN", "NaN is not a JSON value"), "Infinity": ("Infinity", "Infinity is not a JSON value"),
    "-Infinity": ("-Infinity", "-Infinity is not a JSON value"),
    "1e999": ("1e999", "out of range"), "-1e999": ("-1e999", "out of range"), "1.5E+400": ("1.5E+400", "out of range"),
    "integer of 4301 digits": (BIG_INTEGER, "4301 digits is too long"),
    "negative integer of 4301 digits": ("-" + BIG_INTEGER, "4301 digits is too long"),
}


@pytest.mark.parametrize("method, path", JSON_ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("kind", NUMBERS_NOT_HELD)
def test_a_number_json_does_not_define_or_nothing_here_holds_is_a_400(as_, unchanged, method, path, kind):
    number, says = NUMBERS_NOT_HELD[kind]
    for body in (f'{{"metadata": {{"x": {number}}}}}', f'{{"a": [1, {number}]}}', f'{{"title": "t", "n": {number}}}'):
        data = naming_the_workflow(path, body.encode())
        response = getattr(as_("operator"), method)(path, data=data, headers=credentials(path, data))
        error = assert_refused(response, 400)
        assert error["code"] == "invalid_body" and says in error["message"], (body[:80], error)


NOT_OBJECTS = {"array": b"[]", "array of an object": b'[{"title": "x"}]', "string": b'"x"', "number": b"1",
               "null": b"null", "true": b"true"}


@pytest.mark.parametrize("method, path", JSON_ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("kind", NOT_OBJECTS)
def test_a_body_that_is_not_a_json_object_is_a_422(as_, unchanged, method, path, kind):
    body = naming_the_workflow(path, NOT_OBJECTS[kind])
    response = getattr(as_("operator"), method)(path, data=body, headers=credentials(path, body))
    if path in PROVEN_ON_RAW_BYTES and not body.lstrip().startswith((b"{", b"[")):
        # A string, number, true or null cannot name the workflow its credentials are for.
        assert assert_refused(response, 401)["code"] in ("invalid_signature", "invalid_token")
        return
    error = assert_refused(response, 422)
    assert error["code"] == "validation_error" and "JSON object" in error["message"]
    assert error["details"] == {"json": {"_schema": ["send a JSON object"]}}


def test_large_and_precise_numbers_within_reach_are_stored_as_sent(as_, db):
    # JSON numbers PostgreSQL's jsonb holds: a 4300-digit integer, 1e308, tiny and negative ones.
    big = int("9" * 4300)
    body = '{"metadata": {"big": %s, "large": 1e308, "tiny": 5e-324, "negative": -12345678901234567890}}' % ("9" * 4300)
    response = as_("operator").patch(f"/api/workflows/{A101}", data=body, content_type="application/json")
    assert response.status_code == 200, response.json
    stored = db.execute("select metadata->'big' as big, metadata->'large' as large, metadata->'negative' as negative"
                        " from public.workflows where id = %s", (A101,)).fetchone()
    assert stored["big"] == big and stored["large"] == 10**308 and stored["negative"] == -12345678901234567890


def test_a_nested_body_within_the_parsers_reach_is_handled_normally(as_, db):
    # 500 levels parse; metadata is free-form, so it is stored as sent.
    metadata = json.loads(nested(500))
    response = as_("operator").patch(f"/api/workflows/{A101}", json={"metadata": metadata})
    assert response.status_code == 200
    depth = db.execute("select metadata #> %s as leaf from public.workflows where id = %s",
                       (["a"] * 500, A101)).fetchone()["leaf"]
    assert depth == 1


BIG = "x" * 65536
OVERSIZED_CREDENTIALS = [
    {"Authorization": "Bearer " + BIG},
    {"Authorization": "Bearer " + ".".join([BIG] * 3)},
    {"X-API-Key": BIG, "X-Agent-Name": "nina", "X-Workflow-Scope": str(A101)},
    {"X-API-Key": AGENT_KEY, "X-Agent-Name": BIG, "X-Workflow-Scope": str(A101)},
    {"X-API-Key": AGENT_KEY, "X-Agent-Name": "nina", "X-Workflow-Scope": BIG},
]


@pytest.mark.parametrize("headers", OVERSIZED_CREDENTIALS, ids=["token", "three-part token", "agent key", "agent name",
                                                                "workflow scope"])
def test_oversized_credentials_are_a_401(client, unchanged, headers):
    assert_refused(client.get("/api/workflows", headers=headers), 401)
    assert_refused(client.post(f"/api/workflows/{A101}/actions", json={"action": "cancel"}, headers=headers), 401)


def test_oversized_webhook_headers_are_refused(client, unchanged):
    body = json.dumps({"type": "task.started", "data": {"workflowId": str(A101)}}).encode()
    good = signed_headers(workflow_key(CALLBACK_SECRET, str(A101)), "evt-big", body)
    for name, value in [("webhook-id", BIG), ("webhook-timestamp", "9" * 65536), ("webhook-timestamp", BIG),
                        ("webhook-signature", " ".join(["v1," + "A" * 44] * 2000))]:
        response = client.post("/webhooks/n8n", data=body, content_type="application/json", headers={**good, name: value})
        assert assert_refused(response, 401)["code"] == "invalid_signature", name
    response = client.post("/webhooks/n8n/errors", json={"executionId": "x"}, headers={"X-N8N-Error-Token": BIG})
    assert_refused(response, 401)
    response = client.post("/webhooks/inbound/payoff-statement", json={"workflowId": str(A101), "statement": {}},
                           headers={"Authorization": "Bearer " + BIG})
    assert_refused(response, 401)


def test_an_oversized_request_id_is_replaced_not_echoed(as_):
    response = as_("operator").get("/api/workflows", headers={"X-Request-Id": BIG})
    assert response.status_code == 200
    assert 0 < len(response.headers["X-Request-Id"]) <= 100
    refused = as_("operator").get("/api/workflows?status=NOPE", headers={"X-Request-Id": BIG})
    assert assert_refused(refused, 422)["requestId"] == refused.headers["X-Request-Id"] != BIG


def test_many_headers_do_not_change_who_is_calling(client, unchanged):
    headers = {f"X-Filler-{i}": "y" * 100 for i in range(500)}
    assert_refused(client.get("/api/workflows", headers=headers), 401)
