"""The one error shape: {"error": {"code", "message", "details", "requestId"}}."""
from __future__ import annotations

import logging
import re

import psycopg
from flask import Flask, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from marshmallow import ValidationError
from psycopg import errors as pg
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Upstream text (Supabase Auth's, n8n's, an agent's error message) put into an answer: at most
# this many characters, printable only (bounded_text).
UPSTREAM_TEXT_LIMIT = 200

# HTTP status -> default machine code
STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
    409: "conflict", 413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
    417: "expectation_failed", 422: "validation_error", 429: "rate_limited", 431: "headers_too_large",
    500: "internal_error", 501: "not_implemented", 503: "unavailable",
}


class ApiError(Exception):
    """An error a caller should see: status, machine code, message and optional details."""

    def __init__(self, status: int, message: str, code: str | None = None, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details=None, headers=None):
    body = {"error": {"code": code, "message": message, "details": details,
                      "requestId": g.get("request_id")}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def bounded_text(text, limit: int = UPSTREAM_TEXT_LIMIT) -> str:
    """Text from another system as an answer may carry it: printable characters only (control
    characters, line breaks and lone surrogates dropped), at most `limit` of them, cut with an
    ellipsis. A 2 MB message from upstream becomes 200 characters, never a 2 MB answer."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    kept = "".join(c for c in text[:limit * 4] if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF)
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[:limit - 1] + "\u2026"


# Indexes whose key a caller's value can overflow (PostgreSQL's btree limit, about 2,700 bytes,
# SQLSTATE 54000), with the request field that fills each. The schemas bound these fields well
# below the limit (maxLength in the OpenAPI document); this names the field should one slip past.
INDEX_FIELDS: dict[str, str] = {
    "email_metadata_message_id_key": "email.messageId",
    "email_metadata_in_reply_to_idx": "email.inReplyTo",
    "counterparties_lower_name_idx": "name",
    "counterparties_type_name_key": "name",
    "documents_deliverable_version_key": "deliverableKey",
    "tasks_workflow_task_key": "taskKey",
    "tasks_agent_name_idx": "agentName",
    "workflows_n8n_execution_id_key": "executionId",
    "webhook_receipts_event_key": "webhook-id",
}
INDEX_NAME = re.compile(r'index "([^"]+)"')


def field_of_index_error(message: str) -> str | None:
    match = INDEX_NAME.search(message or "")
    return INDEX_FIELDS.get(match.group(1)) if match else None


def from_database_error(error: psycopg.Error) -> ApiError:
    """Map a Postgres error raised by a statement or function to what the caller did wrong."""
    message = (error.diag.message_primary or "database refused the change").strip()
    if isinstance(error, pg.InsufficientPrivilege):
        return ApiError(403, "your role may not do this", "forbidden",
                        {"reason": message} if "row-level security" not in message else None)
    if isinstance(error, pg.InvalidAuthorizationSpecification):
        return ApiError(401, message, "person_inactive")
    if isinstance(error, pg.NoDataFound):
        return ApiError(404, message, "not_found")
    if isinstance(error, pg.ObjectNotInPrerequisiteState):
        return ApiError(409, message, "invalid_state")
    if isinstance(error, pg.UniqueViolation):
        return ApiError(409, "this already exists", "duplicate", {"constraint": error.diag.constraint_name})
    if isinstance(error, pg.ForeignKeyViolation):
        return ApiError(422, "a referenced record does not exist", "invalid_reference",
                        {"constraint": error.diag.constraint_name})
    if isinstance(error, (pg.CheckViolation, pg.NotNullViolation)):
        return ApiError(422, message, "constraint_violation", {"constraint": error.diag.constraint_name})
    if isinstance(error, (pg.InvalidParameterValue, pg.InvalidTextRepresentation, pg.DatetimeFieldOverflow,
                          pg.NumericValueOutOfRange, pg.StringDataRightTruncation, pg.InvalidDatetimeFormat)):
        return ApiError(422, message, "invalid_value")
    if isinstance(error, psycopg.DataError):
        # SQLSTATE class 22 (data exceptions) and client-side refusals (a NUL in text, a moment
        # outside the range psycopg can send): always something in the caller's values.
        return ApiError(422, message if error.sqlstate else f"a value cannot be stored: {bounded_text(str(error))}",
                        "invalid_value")
    if isinstance(error, pg.ProgramLimitExceeded):
        # SQLSTATE 54000 (a value too large for an index row, too many columns or arguments):
        # the size of what the caller sent, never the database being unavailable.
        field = field_of_index_error(message)
        details = {"json": {field: ["too long to be stored"]}} if field else None
        return ApiError(422, f"{field} is too long to be stored" if field else "a value is too large to be stored",
                        "value_too_long", details)
    if isinstance(error, (pg.SerializationFailure, pg.DeadlockDetected)):
        return ApiError(409, "the change collided with another one; retry", "retry")
    if isinstance(error, pg.QueryCanceled):
        return ApiError(503, "the database took too long", "timeout")
    from app.db import OutcomeUnknown  # app.db imports this module's users

    if isinstance(error, OutcomeUnknown):
        return ApiError(503, "the connection to the database was lost while the change was committed: it may or may "
                             "not have been applied; read it back before retrying", "outcome_unknown")
    if isinstance(error, psycopg.OperationalError):
        return ApiError(503, "the database is unavailable", "unavailable")
    raise error


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.errorhandler(ValidationError)
    def handle_validation_error(error: ValidationError):
        return error_response(422, "validation_error", "the request is not valid", {"json": error.messages})

    @app.errorhandler(psycopg.Error)
    def handle_database_error(error: psycopg.Error):
        try:
            mapped = from_database_error(error)
        except psycopg.Error:
            log.exception("unexpected database error")
            return error_response(500, "internal_error", "something went wrong on our side")
        return error_response(mapped.status, mapped.code, mapped.message, mapped.details)

    @app.errorhandler(RecursionError)
    def handle_deeply_nested_body(error: RecursionError):
        # Bodies are parsed once, by app.inputs.loads, which answers a body nested too deeply
        # itself; this is the net for a deep value walked recursively after parsing.
        log.warning("refused a request body nested too deeply")
        return error_response(400, "invalid_body", "the JSON body is nested too deeply")

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        return http_error_response(error)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        if type(error).__module__ == "gunicorn.http.errors":
            return malformed_body_response(error)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side")

    # Registered first, so it runs after every other after_request hook of the app (Flask runs
    # them in reverse order): what it sets holds whatever an earlier hook or extension added.
    app.after_request(protect_response)


def malformed_body_response(error: Exception):
    """A body gunicorn could not read as framed (a chunk size that is not hex, a chunk without
    its CRLF, a bad chunk extension, the client gone mid-body): the caller's bytes, a 400 in the
    one shape, and the connection closed after it (what follows on it cannot be found)."""
    from app.server import close_after_answer  # only under gunicorn, whose error this is

    close_after_answer(request.environ)
    log.info("refused a body that is not framed as HTTP/1.1 says: %s", type(error).__name__)
    return error_response(400, "invalid_body", "the request body is not framed as HTTP/1.1 says"
                          f" ({bounded_text(type(error).__name__, 60)}): send a Content-Length or valid chunks")


# Answers that may be kept by a cache: public documents, fetched without credentials, that went
# well. Everything else (every answer to a request that carries credentials, and every error)
# is Cache-Control: no-store.
CACHEABLE_PATHS = ("/api/openapi.json", "/api/docs", "/console/static/")
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "X-API-Key", "X-N8N-Error-Token", "Webhook-Signature")
RETRY_AFTER_STATUSES = (429, 503)


def carries_credentials() -> bool:
    return any(name in request.headers for name in CREDENTIAL_HEADERS)


def protect_response(response):
    """The headers every answer gets right, whichever part wrote it:

    - Cache-Control: no-store on every answer to a request with credentials and on every error
      (a shared or browser cache never keeps a person's data or a refusal about them);
    - Retry-After only where it means something: 429 (the rate limits) and 503. flask-limiter
      adds it to every answer of a limited route; a 200 with Retry-After tells clients to wait."""
    status = response.status_code
    if status >= 400 or carries_credentials() or not (
            request.path.startswith(CACHEABLE_PATHS) or request.path in ("/", "/console/")):
        response.headers["Cache-Control"] = "no-store"
    if status not in RETRY_AFTER_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


CANONICAL_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
RESOURCE_PATH = re.compile(r"^/api/(workflows|tasks|communications|documents|counterparties)/([^/]+)(/.*)?$")
SINGULAR = {"workflows": "workflow", "tasks": "task", "communications": "communication", "documents": "document",
            "counterparties": "counterparty"}


def not_found_message() -> str:
    """What a path that matches no route got wrong: an id that is not one, or no such endpoint."""
    match = RESOURCE_PATH.match(request.path)
    if match:
        if not CANONICAL_UUID.match(match.group(2)):  # as the routes read ids (Werkzeug's uuid converter)
            return (f"{match.group(2)!r} is not a {SINGULAR[match.group(1)]} id: ids are UUIDs, "
                    "e.g. 2c1f6b5e-8d4a-4f3e-9b7a-1d2e3f4a5b6c")
    return f"no endpoint {request.method} {request.path}: the API is described at /api/docs"


def http_error_response(error: HTTPException):
    """Werkzeug and webargs errors (404 routes, 405, 413, 422 validation) in the one shape."""
    if isinstance(error, RateLimitExceeded) and error.response is not None:
        return error.response  # the 429 app.ratelimits.on_breach wrote, in the one shape
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details = data.get("errors") or data.get("messages")
    message = data.get("message") or (error.description if status != 422 else "the request is not valid")
    if status == 422 and details is not None:
        # webargs nests errors by location: {"json": {...}} or {"query": {...}}
        code = "validation_error"
    else:
        code = STATUS_CODES.get(status, "error")
    if status == 404 and not data:
        message = not_found_message()
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status >= 500:
        log.error("http %s: %s", status, error)
        message = "something went wrong on our side"
    return error_response(status, code, message, details, headers)
