"""Schemathesis over the OpenAPI document, as several callers, in positive and negative modes.

Shared by the bounded test in tests/app/test_openapi.py and the full run of
tests/fuzz/run_schemathesis.py. Every case runs in a transaction rolled back afterwards, so
each starts from the same world; path ids are random or taken from the world, so cases reach
real rows and not only 404s.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import uuid
from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.db.world import PEOPLE, row
from app.webhooks.signing import claimed_workflow_ids, inbound_token, signed_headers, workflow_key
from tests.security.surface import PROVEN_ON_RAW_BYTES
from tests.service_fixtures import AGENT_KEY, CALLBACK_SECRET, ERROR_TOKEN
from tests.support import mint_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CALLERS = ("operator", "client_user_a", "agent_a")
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Rows of the shared test world that path ids are drawn from (most of the time, in positive
# mode), so cases reach real rows of both clients and not only 404s.
WORLD_IDS = {
    "workflow_id": [row("A101"), row("A102"), row("B101")],
    "task_id": [row("A201"), row("B201")],
    "communication_id": [row("A401"), row("A402"), row("B401")],
    "document_id": [row("A501"), row("A502"), row("B501")],
    "counterparty_id": [row("C301"), row("A301"), row("B301")],
}
ERROR_KEYS = {"code", "message", "details", "requestId"}


def caller_headers(name: str) -> dict[str, str]:
    person = PEOPLE[name]
    if person.role == "agent":
        return {"X-API-Key": AGENT_KEY, "X-Agent-Name": person.agent_name, "X-Workflow-Scope": str(person.workflow_id)}
    return {"Authorization": f"Bearer {mint_token(person)}"}


@dataclasses.dataclass
class Figures:
    """Cases and failures per operation; a failure is (operation, caller, mode, what, request)."""

    cases: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    answers: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # (operation, caller, mode, status)
    unauthenticated: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # ..., the 401's code
    unicode_edges: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: list[tuple] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


def response_json(response):
    """The body of schemathesis' response or of Werkzeug's (the machine webhooks' cases)."""
    return json.loads(response.get_data() if hasattr(response, "get_data") else response.content)


def check_error_shape(response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response_json(response)
    except ValueError:
        return "error response is not JSON"
    if not isinstance(body, dict) or set(body) != {"error"} or set(body["error"]) != ERROR_KEYS:
        return f"error response is not the one error shape: {str(body)[:200]}"
    return None


# Text PostgreSQL cannot store, written into one generated string of the body (or one query
# value) in some cases: the answer must be 422 unstorable_text, never a server error.
UNICODE_EDGES = ["\x00", "\ud800", "\udfff", "a\udc00b", "\ud83d"]


def string_leaves(value, path=()) -> list[tuple]:
    """Paths (keys and indexes) of every string in a JSON value."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in string_leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in string_leaves(item, (*path, index))]
    return []


def with_edge(value, path: tuple, edge: str):
    """`value` with the string at `path` extended by `edge` (a copy)."""
    if not path:
        return value + edge
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = with_edge(value[head], tuple(rest), edge)
    return copy


def fuzz(app, examples: int, *, callers=CALLERS, modes=MODES, reset: Callable[[], None] = lambda: None,
         seed: int | None = 0) -> Figures:
    """Run `examples` cases per operation, caller and mode; `reset` runs before each case."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    figures = Figures()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for caller in callers:
            for mode in modes:
                run_operation(app, operation, label, caller, mode, examples, figures, reset, seed)
    return figures


def send_with_edge(app, case, headers: dict, edge: str, pick: int):
    """The case sent with `edge` written into one string of its body (or a NUL into one query
    value), straight through the app (schemathesis itself cannot hold a lone surrogate); None
    when the case has no such string."""
    body, query = case.body, dict(case.query or {})
    leaves = string_leaves(body) if isinstance(body, (dict, list)) else []
    if leaves:
        body = with_edge(body, leaves[pick % len(leaves)], edge)
    elif query and edge == "\x00":
        name = sorted(query)[pick % len(query)]
        query[name] = f"{query[name]}{edge}"
    else:
        return None
    if case.path in MACHINE_WEBHOOKS:  # with the credentials its caller sends for this body
        return send_webhook(app, case, body, pick)
    data = {} if body is None or isinstance(body, NotSet) else {"data": json.dumps(body),
                                                                "content_type": "application/json"}
    return app.test_client().open(case.formatted_path, method=case.method.upper(), query_string=query,
                                  headers=headers, **data)


def proves_nobody(case, response) -> bool:
    """A machine webhook's 401 for a body that names no workflow its credentials are for (the
    edge went into the workflow's id, or there was none): the caller's proof is checked on the
    raw bytes before anything in the body is read, so that is the answer."""
    error = (response.get_json(silent=True) or {}).get("error") or {}
    if case.path not in PROVEN_ON_RAW_BYTES or response.status_code != 401:
        return False
    return error.get("code") in ("invalid_signature", "invalid_token") and getattr(response, "proven_for", None) is None


# The webhooks n8n and outside parties call authenticate with what the body names (the
# workflow's key signs a callback, the workflow's inbound token admits a statement) or with the
# error workflow's token: the fuzzer sends them as those callers would, so cases reach the data.
MACHINE_WEBHOOKS = ("/webhooks/n8n", "/webhooks/n8n/errors", "/webhooks/inbound/payoff-statement",
                    "/webhooks/inbound/hoa-documents")


def world_workflow(body, use_world: int, pick: int):
    """The body with its workflow id (workflowId, or data.workflowId) taken from the world."""
    if not use_world or not isinstance(body, dict):
        return body
    ids = WORLD_IDS["workflow_id"]
    if isinstance(body.get("workflowId"), str):
        return {**body, "workflowId": str(ids[pick % len(ids)])}
    if isinstance(body.get("data"), dict) and isinstance(body["data"].get("workflowId"), str):
        return {**body, "data": {**body["data"], "workflowId": str(ids[pick % len(ids)])}}
    return body


def named_workflow(body):
    """The workflow a webhook body names (workflowId, or data.workflowId), if any."""
    if not isinstance(body, dict):
        return None
    return body.get("workflowId") or (body["data"].get("workflowId") if isinstance(body.get("data"), dict) else None)


def send_webhook(app, case, body, pick: int):
    """A machine webhook's case with the credentials its caller would send for that body."""
    if body is None or isinstance(body, NotSet):
        data = b""
    elif isinstance(body, (bytes, bytearray)):  # negative mode: raw bytes, sent as they are
        data = bytes(body)
    else:
        data = json.dumps(body).encode()
    headers = {"Content-Type": case.media_type or "application/json"}
    named = named_workflow(body)
    # Credentials for a workflow the bytes name as the service reads them (an id that is not
    # one, a surrogate in it, names none: sent without, as nobody could sign for it).
    provable = isinstance(named, str) and named in claimed_workflow_ids(data)
    if case.path == "/webhooks/n8n" and provable:
        headers.update(signed_headers(workflow_key(CALLBACK_SECRET, named), f"evt-fuzz-{pick}-{uuid.uuid4().hex}", data))
    elif case.path == "/webhooks/n8n/errors":
        headers["X-N8N-Error-Token"] = ERROR_TOKEN
    elif provable:
        headers["Authorization"] = f"Bearer {inbound_token(CALLBACK_SECRET, named)}"
    response = app.test_client().open(case.formatted_path, method=case.method.upper(), data=data, headers=headers)
    response.proven_for = named if provable else None
    return response


def run_operation(app, operation, label, caller, mode, examples, figures, reset, seed) -> None:
    headers = caller_headers(caller)
    @given(case=operation.as_strategy(generation_mode=mode), use_world=st.integers(0, 4), pick=st.integers(0, 99),
           edge=st.one_of(st.none(), st.none(), st.sampled_from(UNICODE_EDGES)))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=seed is not None, print_blob=False)
    def check(case, use_world, pick, edge):
        if use_world and mode is GenerationMode.POSITIVE and case.path_parameters:
            case.path_parameters = {name: str(WORLD_IDS[name][pick % len(WORLD_IDS[name])]) if name in WORLD_IDS else value
                                    for name, value in case.path_parameters.items()}
        # Credentials are the caller's: schemathesis also generates the documented security headers.
        case.headers = {name: value for name, value in (case.headers or {}).items()
                        if name.lower() not in ("authorization", "x-api-key")}
        reset()
        figures.cases[label] += 1
        edged = send_with_edge(app, case, headers, edge, pick) if edge is not None else None
        figures.unicode_edges["with an edge" if edged is not None else "none"] += 1
        if edged is not None:
            figures.statuses[edged.status_code] += 1
            error = (edged.get_json(silent=True) or {}).get("error") or {}
            # A path that names no route (negative mode) is answered before any body is read.
            refused_first = edged.status_code in (404, 405) and mode is GenerationMode.NEGATIVE
            # So is a query parameter given several times (negative mode sends a list as repeats).
            refused_first |= (edged.status_code == 422 and error.get("code") == "repeated_parameter"
                              and any(isinstance(value, list) for value in (case.query or {}).values()))
            refused_first |= proves_nobody(case, edged)
            if set(error) != ERROR_KEYS or not (refused_first or (edged.status_code == 422
                                                                 and error["code"] == "unstorable_text")):
                figures.failures.append((label, caller, mode.value, f"unstorable text answered {edged.status_code} "
                                         f"{str(error)[:200]}, not 422 unstorable_text", repr(edge)))
            return
        if case.path in MACHINE_WEBHOOKS:
            response = send_webhook(app, case, world_workflow(case.body, use_world and mode is GenerationMode.POSITIVE,
                                                              pick), pick)
        else:
            response = case.call(headers=headers)
        figures.statuses[response.status_code] += 1
        figures.answers[(label, caller, mode.value, response.status_code)] += 1
        if response.status_code == 401:
            figures.unauthenticated[(label, caller, mode.value, response_json(response)["error"]["code"])] += 1
        problems = []
        shape = check_error_shape(response)
        if shape:
            problems.append(shape)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            problems.extend(getattr(failure, "title", str(failure)) for failure in group.exceptions)
        for problem in problems:
            figures.failures.append((label, caller, mode.value, problem, case.as_curl_command(headers=headers)[:600]))

    check()
