"""Headers every answer gets right, as properties over every operation of the OpenAPI document
(the webhooks included) and every kind of caller:

- Cache-Control: no-store on every answer to a request with credentials and on every error;
- Retry-After only on a 429 or 503 (flask-limiter adds it to every answer of a limited route);
- X-Request-Id is the service's own id (a UUID), never the caller's; a caller's id is kept only
  as X-Client-Request-Id when it is a plain token, and the audit trail records the service's id.
"""
from __future__ import annotations

import uuid

import pytest

from app import create_app
from tests.db.world import row
from tests.security.surface import OPERATIONS
from tests.service_fixtures import Caller, TransactionalDatabase, make_settings

CALLERS = ["nobody", "client_user_a", "operator", "agent_a"]


def call(client, caller: str, op, headers: dict | None = None):
    """The operation with a body it accepts (or a small one), as `caller`."""
    kwargs = {"json": op.valid_body if op.valid_body is not None else {"probe": 1}} if op.takes_body else {}
    if caller == "nobody":
        return getattr(client, op.method)(op.path(), headers=headers or {}, **kwargs)
    return getattr(Caller(client, caller), op.method)(op.path(), headers=headers or {}, **kwargs)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_authenticated_answers_and_errors_are_never_stored(client, op, caller):
    response = call(client, caller, op)
    if caller != "nobody" or response.status_code >= 400 or not op.public:
        assert response.headers.get("Cache-Control") == "no-store", (response.status_code, dict(response.headers))


@pytest.mark.parametrize("path", ["/console/auth/refresh", "/console/auth/sign-out", "/console/auth/code",
                                  "/console/auth/password", "/metrics", "/api/no-such-thing", "/webhooks/nothing"])
def test_the_console_sign_in_and_every_other_path_are_never_stored(client, path):
    response = client.post(path, json={}, headers={"Cookie": "rexera_console_refresh=l.x"})
    assert response.headers.get("Cache-Control") == "no-store", (path, response.status_code)


@pytest.fixture
def limited(_session_connection, db):
    """The service with its rate limits on, as deployed."""
    application = create_app(make_settings("postgresql://unused/unused", rate_limits_enabled=True,
                                           console_local_sign_in=True),
                             database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    return application.test_client()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_retry_after_comes_only_with_a_429_or_503(limited, op, caller):
    response = call(limited, caller, op)
    if response.status_code not in (429, 503):
        assert "Retry-After" not in response.headers, (response.status_code, dict(response.headers))


def test_a_429_still_says_when_to_retry(limited):
    responses = [limited.post("/console/auth/code", json={"code": f"guess-{n}"}) for n in range(21)]
    assert [r.status_code for r in responses[:20]] == [401] * 20
    assert all("Retry-After" not in r.headers for r in responses[:20])
    assert responses[20].status_code == 429 and int(responses[20].headers["Retry-After"]) > 0


def is_service_id(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    except ValueError:
        return False


CALLER_IDS = {
    "a plain token": ("client-42.a:b_c", True),
    "any printable text": ("<img src=x> ' or 1=1 --", False),
    "past 64 characters": ("a" * 65, False),
    "non-ASCII": ("r\u00e9quete-1", False),
    "empty": ("", False),
}


@pytest.mark.parametrize("given", CALLER_IDS.values(), ids=CALLER_IDS.keys())
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_the_request_id_is_always_the_services_own(client, op, given):
    value, kept = given
    for header in ("X-Request-Id", "X-Client-Request-Id"):
        response = call(client, "operator", op, headers={header: value})
        request_id = response.headers["X-Request-Id"]
        assert is_service_id(request_id) and request_id != value
        if response.status_code >= 400:
            assert response.get_json()["error"]["requestId"] == request_id
        assert response.headers.get("X-Client-Request-Id") == (value if kept else None)


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_another_requests_id_is_never_taken(client, op):
    earlier = client.get("/api/health").headers["X-Request-Id"]
    response = call(client, "operator", op, headers={"X-Request-Id": earlier})
    assert is_service_id(response.headers["X-Request-Id"]) and response.headers["X-Request-Id"] != earlier
    if response.status_code >= 400:
        assert response.get_json()["error"]["requestId"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("given", ["forged-request-id", "audit-row-of-someone-else"])
def test_the_audit_trail_records_the_services_request_id(as_, db, given):
    earlier = as_("operator").get("/api/workflows").headers["X-Request-Id"]
    for header_value in (given, earlier):
        response = as_("operator").patch(f"/api/workflows/{row('A101')}", json={"title": f"Renamed {header_value}"},
                                         headers={"X-Request-Id": header_value})
        assert response.status_code == 200, response.get_json()
        request_id = response.headers["X-Request-Id"]
        recorded = db.execute("select request_id from public.audit_events where request_id in (%s, %s, %s)",
                              (request_id, header_value, earlier)).fetchall()
        assert recorded and {r["request_id"] for r in recorded} == {request_id}
