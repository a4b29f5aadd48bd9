"""Standard Webhooks signatures with per-workflow keys."""
from __future__ import annotations

import base64
import time

import pytest

from app.webhooks.signing import SignatureError, encode_key, sign, signed_headers, verify, workflow_key

MASTER = b"m" * 32
KEY = workflow_key(MASTER, "wf-1")
BODY = b'{"type": "task.started", "data": {"workflowId": "wf-1"}}'


def test_keys_differ_per_workflow_and_never_equal_the_master():
    assert len(KEY) == 64 and KEY != MASTER
    assert workflow_key(MASTER, "wf-2") != KEY
    assert base64.b64decode(encode_key(KEY)) == KEY


def test_a_signed_body_verifies_and_returns_the_event_id():
    assert verify(KEY, BODY, signed_headers(KEY, "evt-1", BODY)) == "evt-1"


def test_any_of_several_signatures_may_match():
    headers = signed_headers(KEY, "evt-1", BODY)
    headers["webhook-signature"] = "v1,bm90LWl0 " + headers["webhook-signature"]
    assert verify(KEY, BODY, headers) == "evt-1"


@pytest.mark.parametrize("tamper, reason", [
    (lambda h, b: (h, b + b" "), "no valid signature"),
    (lambda h, b: ({**h, "webhook-id": "evt-2"}, b), "no valid signature"),
    (lambda h, b: ({**h, "webhook-signature": sign(workflow_key(MASTER, "wf-2"), "evt-1", int(h["webhook-timestamp"]), b)}, b),
     "no valid signature"),
    (lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b), "no valid signature"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
    (lambda h, b: ({**h, "webhook-timestamp": "yesterday"}, b), "Unix time"),
])
def test_tampered_requests_are_refused(tamper, reason):
    headers, body = tamper(signed_headers(KEY, "evt-1", BODY), BODY)
    with pytest.raises(SignatureError, match=reason):
        verify(KEY, body, headers)


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86400])
def test_stale_and_future_timestamps_are_refused_both_ways(skew):
    now = time.time()
    headers = signed_headers(KEY, "evt-1", BODY, timestamp=int(now + skew))
    with pytest.raises(SignatureError, match="tolerance"):
        verify(KEY, BODY, headers, now=now)


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_timestamps_within_five_minutes_pass(skew):
    now = time.time()
    assert verify(KEY, BODY, signed_headers(KEY, "evt-1", BODY, timestamp=int(now + skew)), now=now) == "evt-1"


@pytest.mark.parametrize("event_id", ["evt\x00one", "evt\none", "evt\x7f", "\u2028"])
def test_an_event_id_that_cannot_be_stored_is_refused_even_when_signed(event_id):
    # The id becomes a receipt's key: text PostgreSQL cannot store never reaches it.
    with pytest.raises(SignatureError, match="printable"):
        verify(KEY, BODY, signed_headers(KEY, event_id, BODY))


def test_a_workflow_key_is_text_that_n8ns_crypto_node_can_hold():
    # The Crypto node's HMAC secret is a string: the key's bytes must be that string's UTF-8.
    key = workflow_key(MASTER, "wf-1")
    assert len(key) == 64 and key.decode("ascii") == key.decode("utf-8") and int(key, 16) >= 0
    assert base64.b64decode(encode_key(key)).decode() == key.decode()  # what base64Decode() gives n8n


def test_callbacks_of_executions_holding_the_earlier_key_still_verify_for_their_own_workflow():
    from app.webhooks.signing import earlier_workflow_key, workflow_keys

    body = b'{"type":"task.started"}'
    earlier = earlier_workflow_key(MASTER, "wf-1")
    assert len(earlier) == 32 and earlier != workflow_key(MASTER, "wf-1")
    headers = signed_headers(earlier, "evt-old", body)
    assert verify(workflow_keys(MASTER, "wf-1"), body, headers) == "evt-old"
    with pytest.raises(SignatureError):
        verify(workflow_keys(MASTER, "wf-2"), body, headers)
    with pytest.raises(SignatureError):
        verify(workflow_key(MASTER, "wf-1"), body, headers)  # the current key alone does not take it
