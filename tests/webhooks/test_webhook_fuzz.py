"""The webhooks fed random and tampered signatures, timestamps, tokens and bodies (hypothesis):
always a 4xx in the one error shape, and not one row written anywhere."""
from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from app.webhooks.signing import inbound_token, sign, signed_headers, workflow_key
from tests.db.factories import make_workflow, start_workflow
from tests.security.state import assert_refused, fingerprint
from tests.service_fixtures import CALLBACK_SECRET, ERROR_TOKEN

EXAMPLES = int(os.environ.get("FUZZ_WEBHOOK_EXAMPLES", "150"))
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
# JSON values (json.dumps of an infinite float writes Infinity, which is not JSON and is refused as such).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30)
timestamps = st.one_of(
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.integers(min_value=10**300, max_value=10**310).map(str),  # more digits than a float holds
    st.sampled_from(["", "now", "1e9", "1700000000.5", " 1700000000", "0x6553f100", "NaN", "-0"]),
    header_text)
EVENT_TYPES = ["task.started", "task.completed", "task.failed", "task.waiting", "task.skipped", "task.injected",
               "workflow.completed", "workflow.failed", "escalation"]


@pytest.fixture
def running(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    return workflow


@pytest.fixture
def nothing_written(db, running):
    """Fingerprint after the fixtures, compared once all examples ran (a refused request
    never undoes another's write, so one comparison covers them all)."""
    before = fingerprint(db)
    yield
    after = fingerprint(db)
    assert [name for name in before if before[name] != after.get(name)] == []


def completed_event(workflow_id) -> bytes:
    return json.dumps({"type": "task.completed", "timestamp": "2026-11-26T12:00:00Z",
                       "data": {"workflowId": str(workflow_id), "executionId": "exec-1",
                                "taskKey": "identify_lender_contact", "attempt": 1,
                                "output": {"lender": "First Bank"}}}).encode()


def test_the_untampered_event_is_applied(client, db, running):
    # The control for the tampering below: the same builder, unchanged, is accepted and writes.
    body = completed_event(running["id"])
    before = db.execute("select count(*) as n from public.webhook_receipts").fetchone()["n"]
    response = client.post("/webhooks/n8n", data=body, content_type="application/json", headers=signed_headers(
        workflow_key(CALLBACK_SECRET, str(running["id"])), "evt-control", body))
    assert response.status_code == 200, response.json
    assert db.execute("select count(*) as n from public.webhook_receipts").fetchone()["n"] == before + 1


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 400, "9" * 4300])
def test_a_timestamp_with_more_digits_than_a_float_holds_is_refused(client, running, nothing_written, timestamp):
    body = completed_event(running["id"])
    headers = {**signed_headers(workflow_key(CALLBACK_SECRET, str(running["id"])), "evt-long", body),
               "webhook-timestamp": timestamp}
    assert assert_refused(client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers), 401)["code"] == "invalid_signature"


@fuzz_settings
@given(body=st.one_of(st.binary(max_size=2000), json_values.map(lambda v: json.dumps(v).encode())),
       event_id=header_text, timestamp=timestamps, signature=header_text)
def test_random_callbacks_are_refused(client, running, nothing_written, body, event_id, timestamp, signature):
    headers = {"webhook-id": event_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    error = assert_refused(client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers),
                           (400, 401, 422))
    assert error["code"] in ("invalid_body", "missing_body", "invalid_signature", "unstorable_text", "validation_error")


@fuzz_settings
@given(event_type=st.sampled_from(EVENT_TYPES), data=st.dictionaries(st.text(max_size=20), json_values, max_size=6),
       event_id=header_text, timestamp=timestamps, signature=header_text)
def test_well_formed_but_unsigned_events_are_refused(client, running, nothing_written, event_type, data, event_id,
                                                     timestamp, signature):
    body = json.dumps({"type": event_type, "data": {**data, "workflowId": str(running["id"])}}).encode()
    headers = {"webhook-id": event_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    # The signature is checked on the raw bytes before anything is parsed: unsigned is 401,
    # whatever the body holds.
    error = assert_refused(client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers),
                           401)
    assert error["code"] == "invalid_signature"


def tamper_body(body: bytes, position: int, value: int) -> bytes:
    index = position % len(body)
    changed = bytes([value if value != body[index] else (value + 1) % 256])
    return body[:index] + changed + body[index + 1:]


TAMPERINGS = st.one_of(
    st.tuples(st.just("body byte"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("body appended"), st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("event id"), header_text.filter(lambda s: s != "evt-signed")),
    st.tuples(st.just("timestamp moved"), st.integers(-10**9, 10**9).filter(lambda d: d != 0)),
    st.tuples(st.just("stale, signed"), st.integers(301, 10**9), st.sampled_from([-1, 1])),
    st.tuples(st.just("signature char"), st.integers(3, 46), st.sampled_from("ABCDEFabcdef0123456789+/=")),
    st.tuples(st.just("signature version"), st.sampled_from(["v0,", "v2,", "V1,", "", "v1a,", "v1 ,"])),
    st.tuples(st.just("another workflow's key"), st.uuids()),
    st.tuples(st.just("master secret"), st.just(None)),
    st.tuples(st.just("this workflow's key, another workflow in the body"), st.uuids()),
)


@fuzz_settings
@given(tampering=TAMPERINGS)
def test_tampered_signed_events_are_refused(client, running, nothing_written, tampering):
    key = workflow_key(CALLBACK_SECRET, str(running["id"]))
    body, event_id, now = completed_event(running["id"]), "evt-signed", int(time.time())
    headers = signed_headers(key, event_id, body, now)
    kind, *args = tampering
    if kind == "body byte":
        body = tamper_body(body, *args)
    elif kind == "body appended":
        body += args[0]
    elif kind == "event id":
        headers["webhook-id"] = args[0]
    elif kind == "timestamp moved":
        headers["webhook-timestamp"] = str(now + args[0])
    elif kind == "stale, signed":
        stamp = now + args[0] * args[1]
        headers = signed_headers(key, event_id, body, stamp)
    elif kind == "signature char":
        signature = headers["webhook-signature"]
        index = args[0] % len(signature)
        if signature[index] == args[1]:
            return
        headers["webhook-signature"] = signature[:index] + args[1] + signature[index + 1:]
    elif kind == "signature version":
        headers["webhook-signature"] = args[0] + headers["webhook-signature"][3:]
    elif kind == "another workflow's key":
        headers = signed_headers(workflow_key(CALLBACK_SECRET, str(args[0])), event_id, body, now)
    elif kind == "master secret":
        headers = signed_headers(CALLBACK_SECRET, event_id, body, now)
    else:
        body = completed_event(args[0])
        headers = {**headers, "webhook-signature": sign(key, event_id, now, body)}
    error = assert_refused(client.post("/webhooks/n8n", data=body, content_type="application/json", headers=headers),
                           (400, 401))
    assert error["code"] in ("invalid_body", "invalid_signature")


@fuzz_settings
@given(token=header_text, body=st.one_of(st.binary(max_size=500), json_values.map(lambda v: json.dumps(v).encode())))
def test_random_error_reports_are_refused(client, running, nothing_written, token, body):
    response = client.post("/webhooks/n8n/errors", data=body, content_type="application/json",
                           headers={"X-N8N-Error-Token": token})
    # What no endpoint accepts is refused before the token is read (app/inputs.py).
    assert assert_refused(response)["code"] in ("invalid_token", "invalid_body", "missing_body", "unstorable_text",
                                                "validation_error")


@fuzz_settings
@given(report=st.one_of(json_values, st.fixed_dictionaries({"executionId": st.one_of(st.text(max_size=120), st.integers())},
                                                            optional={"error": json_values})))
def test_error_reports_with_the_token_for_no_execution_are_refused(client, running, nothing_written, report):
    response = client.post("/webhooks/n8n/errors", data=json.dumps(report), content_type="application/json",
                           headers={"X-N8N-Error-Token": ERROR_TOKEN})
    assert_refused(response, (400, 404, 422))


INBOUND_KINDS = ["payoff-statement", "hoa-documents"]


@fuzz_settings
@given(kind=st.sampled_from(INBOUND_KINDS), token=header_text, body=json_values,
       with_workflow=st.booleans())
def test_random_inbound_deliveries_are_refused(client, running, nothing_written, kind, token, body, with_workflow):
    if with_workflow and isinstance(body, dict):
        body = {**body, "workflowId": str(running["id"])}
    response = client.post(f"/webhooks/inbound/{kind}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert_refused(response, (400, 401, 415, 422))


@fuzz_settings
@given(kind=st.sampled_from(INBOUND_KINDS), token_of=st.one_of(st.uuids().map(str), st.just("")),
       scheme=st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]))
def test_inbound_deliveries_with_another_workflows_token_are_refused(client, running, nothing_written, kind, token_of,
                                                                     scheme):
    body = {"workflowId": str(running["id"]), "statement": {"payoffAmount": 1.5},
            "documents": [{"filename": "statement.pdf"}]}
    if kind == "hoa-documents":
        del body["statement"]
    response = client.post(f"/webhooks/inbound/{kind}", json=body,
                           headers={"Authorization": f"{scheme} {inbound_token(CALLBACK_SECRET, token_of)}"})
    assert assert_refused(response, 401)["code"] == "invalid_token"


@fuzz_settings
@given(body=json_values, token=st.one_of(header_text, st.just(None)))
def test_random_client_messages_without_a_client_token_are_refused(client, running, nothing_written, body, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = client.post("/webhooks/inbound/client-message", json=body, headers=headers)
    assert_refused(response, 401)
