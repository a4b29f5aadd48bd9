"""Standard Webhooks signatures with per-workflow keys.

The master secret (N8N_CALLBACK_SECRET) never leaves the service. Each workflow's key is the
hex text of HMAC-SHA256(master, "workflow:" + workflow_id) (64 ASCII bytes); n8n receives it in
the workflow's trigger (base64, as Standard Webhooks keys travel) and signs that workflow's
callbacks with it:

    webhook-id:        the event id (stable across retries)
    webhook-timestamp: Unix seconds
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")> (space-separated list)

`sign` is public so tests and helpers sign with exactly the code that verifies.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 5 * 60
# "workflowId": "<id>" as written in a body, read before the body is parsed: a caller's proof
# (a signature, an inbound token) is checked against the workflows a body names this way first,
# so a forged body costs an HMAC, not a parse. Ids are UUIDs; a few candidates at most.
CLAIMED_WORKFLOW_ID = re.compile(rb'"workflowId"\s*:\s*"([0-9A-Za-z-]{1,64})"')
MAX_CLAIMED = 4


class SignatureError(Exception):
    """The request is not signed as it must be; the message says why (safe to show)."""


def workflow_key(master_secret: bytes, workflow_id: str) -> bytes:
    """The signing key of one workflow: text (hex), so that n8n's Crypto node, whose HMAC secret
    is a string, signs with exactly these bytes (the exports' hot path signs there, not in a Code
    node); any byte string is a valid Standard Webhooks key."""
    return earlier_workflow_key(master_secret, workflow_id).hex().encode("ascii")


def earlier_workflow_key(master_secret: bytes, workflow_id: str) -> bytes:
    """The key of executions started before the keys became text (the same HMAC's 32 raw bytes).
    Such an execution may wait at a Wait node for days and still hold it, so callbacks signed
    with it are still accepted for its own workflow; nothing hands it out any more."""
    return hmac.new(master_secret, f"workflow:{workflow_id}".encode(), hashlib.sha256).digest()


def workflow_keys(master_secret: bytes, workflow_id: str) -> tuple[bytes, bytes]:
    """The keys a workflow's callbacks may be signed with: the current one first."""
    earlier = earlier_workflow_key(master_secret, workflow_id)
    return earlier.hex().encode("ascii"), earlier


def claimed_workflow_ids(body: bytes) -> list[str]:
    """The workflow ids `body` names as "workflowId": "...", in order, without parsing it."""
    found: list[str] = []
    for match in CLAIMED_WORKFLOW_ID.finditer(body):
        claimed = match.group(1).decode("ascii")
        if claimed not in found:
            found.append(claimed)
            if len(found) == MAX_CLAIMED:
                break
    return found


def inbound_token(master_secret: bytes, workflow_id: str) -> str:
    """The bearer token outside parties (a lender, an HOA, the mail gateway) use to deliver
    to one workflow; derived, never stored."""
    digest = hmac.new(master_secret, f"inbound:{workflow_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode_key(key: bytes) -> str:
    """How a workflow key travels to n8n (in the trigger payload)."""
    return base64.b64encode(key).decode()


def sign(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value for `body`."""
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(key: bytes, event_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, event_id, timestamp, body)}


def verify(key: bytes | tuple[bytes, ...], body: bytes, headers: Mapping[str, str], now: float | None = None) -> str:
    """Check the signature headers of `body` against a key (or any of several); return the event
    id or raise SignatureError."""
    event_id = headers.get("webhook-id") or ""
    raw_timestamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    if not event_id or not raw_timestamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(event_id) > 200:
        raise SignatureError("webhook-id is too long")
    if not event_id.isprintable():
        raise SignatureError("webhook-id must be printable text")
    now = time.time() if now is None else now
    try:
        timestamp = int(raw_timestamp)
        skew = abs(now - timestamp)
    except (ValueError, OverflowError):  # OverflowError: too many digits to compare with a float
        raise SignatureError("webhook-timestamp is not a Unix time") from None
    if skew > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is outside the five-minute tolerance")
    for one in (key,) if isinstance(key, bytes) else key:
        expected = sign(one, event_id, timestamp, body)
        for candidate in signatures.split():
            if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected.encode()):
                return event_id
    raise SignatureError("no valid signature")
