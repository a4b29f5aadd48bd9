"""What every request may send (app/inputs.py), as properties over every operation of the
OpenAPI document and every webhook: JSON bodies only (415 otherwise, 400 when empty or not
JSON), each query parameter once (422), and text PostgreSQL cannot store (NUL, lone
surrogates) refused with 422 naming the field wherever it sits. Refused means nothing written.
"""
from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from tests.db.world import row
from tests.security.state import assert_refused
from tests.security.surface import (BODY_OPERATIONS, OPERATIONS, PROVEN_ON_RAW_BYTES, QUERY_OPERATIONS,
                                    machine_credentials)

# A body every endpoint would at least parse; only its content type or form is wrong.
SOME_JSON = json.dumps({"ids": [str(row("A701"))], "action": "cancel"}).encode()
NOT_JSON_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None,
                  "application/xml", "application/json; charset=latin-1", "application/jsonx", "json"]
UNSTORABLE = {"NUL": "\x00", "lone high surrogate": "\ud800", "lone low surrogate": "\udfff",
              "NUL inside text": "before\x00after", "surrogate inside text": "a\udc00b"}


def send(as_, op, *, data: bytes = b"", content_type: str | None = "application/json", query: str = ""):
    """As an operator, with the credentials a machine webhook's caller sends for `data`."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    headers.update(machine_credentials(op.template, data))
    path = op.path() + (f"?{query}" if query else "")
    return getattr(as_("operator"), op.method)(path, data=data, headers=headers)


def naming_the_workflow(op, body, field: str):
    """On the webhooks that check their caller's proof on the raw bytes, `body` also names the
    workflow the credentials are for (first, so a list's indexes move by one)."""
    if op.template not in PROVEN_ON_RAW_BYTES:
        return body, field
    claim = {"workflowId": str(row("A101"))}
    if isinstance(body, list):
        return [claim, *body], re.sub(r"^\[(\d+)\]", lambda m: f"[{int(m.group(1)) + 1}]", field)
    return {**claim, **body}, field


def names_no_workflow(op, data: bytes) -> bool:
    """A body the webhook cannot check its caller's proof against: refused 401 before parsing."""
    return op.template in PROVEN_ON_RAW_BYTES and b'"workflowId"' not in data


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
@pytest.mark.parametrize("content_type", NOT_JSON_TYPES)
def test_a_body_of_another_content_type_is_a_415(as_, unchanged, op, content_type):
    error = assert_refused(send(as_, op, data=SOME_JSON, content_type=content_type), 415)
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
@pytest.mark.parametrize("body", [b"", b"   \r\n\t "], ids=["empty", "whitespace"])
def test_a_missing_body_is_a_400(as_, unchanged, op, body):
    error = assert_refused(send(as_, op, data=body), 400)
    assert error["code"] == "missing_body"


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
@pytest.mark.parametrize("body, says", [(b'{"title": "x",}', "line 1, column 15"), (b"not json", "line 1, column 1"),
                                        (b'{"title": "\xff"}', "not UTF-8"), (b'{"a": 1} {"b": 2}', "Extra data")])
def test_a_body_that_is_not_json_is_a_400_saying_where(as_, unchanged, op, body, says):
    if names_no_workflow(op, body):
        assert assert_refused(send(as_, op, data=body), 401)["code"] in ("invalid_signature", "invalid_token")
        return
    error = assert_refused(send(as_, op, data=body), 400)
    assert error["code"] == "invalid_body" and says in error["message"], error["message"]


def placements(text: str) -> list[tuple[object, str]]:
    """Bodies holding `text` in each kind of place, with the field path the answer must name."""
    return [({"title": text}, "title"),
            ({"payload": {"address": {"line1": text}}}, "payload.address.line1"),
            ({"data": {"items": [1, "ok", text]}}, "data.items[2]"),
            ([{"ok": True}, {"note": text}], "[1].note"),
            ({"data": {f"key{text}": 1}}, f"data.key{text.encode('unicode_escape').decode()} (a key)")]


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=str)
@pytest.mark.parametrize("kind", UNSTORABLE)
def test_unstorable_text_anywhere_in_a_body_is_a_422_naming_the_field(as_, unchanged, op, kind):
    for body, field in placements(UNSTORABLE[kind]):
        body, field = naming_the_workflow(op, body, field)
        # json.dumps writes NUL and surrogates as \u escapes: valid JSON a client can send.
        error = assert_refused(send(as_, op, data=json.dumps(body).encode()), 422)
        assert error["code"] == "unstorable_text", (body, error)
        assert list(error["details"]["json"]) == [field] and field in error["message"], (field, error)


@pytest.mark.parametrize("op", QUERY_OPERATIONS, ids=str)
def test_every_query_parameter_given_twice_is_a_422(as_, unchanged, op):
    for name in op.query:
        for first, second in [("1", "1"), ("1", "abc"), ("abc", "1")]:
            query = urllib.parse.urlencode([(name, first), (name, second)])
            error = assert_refused(send(as_, op, query=query), 422)
            assert error["code"] == "repeated_parameter" and error["details"] == {"query": {name: ["given more than once"]}}


def test_the_websocket_endpoint_refuses_repeated_parameters_too(client, unchanged):
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version": "13"}
    error = assert_refused(client.get("/ws?token=a&token=b", headers=handshake), 422)
    assert error["code"] == "repeated_parameter"


@pytest.mark.parametrize("op", QUERY_OPERATIONS, ids=str)
def test_a_nul_in_any_query_parameter_is_a_422_naming_it(as_, unchanged, op):
    for name in op.query:
        error = assert_refused(send(as_, op, query=f"{name}=a%00b"), 422)
        assert error["code"] == "unstorable_text" and error["details"] == {"query": {name: ["contains a NUL character"]}}


@pytest.mark.parametrize("op", QUERY_OPERATIONS, ids=str)
def test_undecodable_bytes_in_a_query_are_never_a_server_error(as_, op):
    # An encoded lone surrogate (and other invalid UTF-8) decodes to U+FFFD: refused or read, never a 500.
    for name in op.query:
        response = send(as_, op, query=f"{name}=%ED%A0%80%FF")
        assert response.status_code < 500, (name, response.json)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.method == "get"], ids=str)
def test_a_get_without_a_body_is_not_asked_for_one(as_, op):
    response = send(as_, op, content_type=None)
    assert response.status_code not in (400, 415), response.json


# ---------------------------------------------------------------------------------------------
# Text that can be stored is stored exactly as sent
# ---------------------------------------------------------------------------------------------
STORABLE = ["emoji 🏠🔑", "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "right-to-left שלום", "combining é", "line\u2028separator",
            "noncharacter \ufffe\uffff", "control \x01\x1f", "paired surrogates written as escapes \U0001f600"]


@pytest.mark.parametrize("text", STORABLE)
def test_text_that_can_be_stored_is_stored_exactly(as_, db, text):
    response = as_("operator").patch(f"/api/workflows/{row('A101')}", json={"title": text[:200]})
    assert response.status_code == 200, response.json
    assert response.json["title"] == text[:200]
    stored = db.execute("select title from public.workflows where id = %s", (row("A101"),)).fetchone()["title"]
    assert stored == text[:200]


def test_a_user_agent_with_control_characters_is_audited_without_them(as_, db):
    response = as_("operator").patch(f"/api/workflows/{row('A101')}", json={"title": "audited"},
                                     headers={"User-Agent": "agent\x00with\x07controls"})
    assert response.status_code == 200
    audited = db.execute("select user_agent from public.audit_events where request_id = %s",
                         (response.headers["X-Request-Id"],)).fetchone()
    assert audited["user_agent"] == "agentwithcontrols"
