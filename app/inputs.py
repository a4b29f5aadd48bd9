"""What every request may send, checked once before any view runs.

- A request that carries a body (POST, PUT, PATCH) sends JSON: `Content-Type: application/json`
  (or `application/<something>+json`, charset UTF-8 if named), else 415; an empty body is 400;
  a body over the limit is 413, with a Content-Length or sent in chunks; a body that is not
  JSON, or not UTF-8, is 400 saying where it broke. JSON here is the standard's (`loads`):
  NaN and Infinity are not JSON, and a number no double or integer here can hold (1e999, an
  integer of more than 4,300 digits) is refused as well, 400 saying which. Every body is a JSON
  object: an array, a string, a number or null is 422. The parsed body is kept (`json_body()`),
  so no view parses it a second time or differently.
- A query parameter is given once: a repeated one is 422 (lists are comma-separated values of
  one parameter, as the OpenAPI document says).
- Text PostgreSQL cannot store (NUL, and lone UTF-16 surrogates that JSON escapes can spell) is
  refused with 422 naming the field, wherever it is: body fields and payload values at any
  depth, object keys, query parameters.
"""
from __future__ import annotations

import json
import re
import time

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import ApiError

BODY_METHODS = ("POST", "PUT", "PATCH")
JSON_MEDIA_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
# NUL and the surrogate range: neither can be stored in PostgreSQL text or jsonb.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_body():
    """The request's parsed JSON body (None for a request without one)."""
    return g.get("json_body")


def has_json_body() -> bool:
    return "json_body" in g


def check_request() -> None:
    """Refuse, before any view runs, what no endpoint accepts (see the module's docstring)."""
    if request.routing_exception is not None:
        return  # no such route or method: that is the answer
    check_query_parameters()
    view = current_app.view_functions.get(request.endpoint)
    if request.method in BODY_METHODS and not getattr(view, "takes_no_body", False):
        g.json_body = parse_json_body()


def takes_no_body(view):
    """A POST that reads no body (the tick): whatever comes with it is ignored, not checked."""
    view.takes_no_body = True
    return view


def check_query_parameters() -> None:
    for name, values in request.args.lists():
        if len(values) > 1:
            raise ApiError(422, f"the query parameter {name!r} is given {len(values)} times; give it once "
                                "(a list is one comma-separated value)", "repeated_parameter",
                           {"query": {name: ["given more than once"]}})
        problem = unstorable(name) or unstorable(values[0])
        if problem:
            raise ApiError(422, f"the query parameter {name!r} contains {problem}", "unstorable_text",
                           {"query": {name: [f"contains {problem}"]}})


class NotJson(ValueError):
    """Text that is not JSON this service takes; the message says where or why."""


def _refuse_constant(name: str):
    raise NotJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NotJson(f"the number {text[:40]}{'…' if len(text) > 40 else ''} is out of range")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        raise NotJson(f"an integer of {len(text.lstrip('-'))} digits is too long") from None


def loads(text: str):
    """Parse JSON the one way every input of the service is parsed (request bodies, /ws
    messages): the standard's JSON and numbers this service can hold, or NotJson saying why."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise NotJson(f"{error.msg} at line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise NotJson("it is nested too deeply") from None


def parse_json_body():
    media_type = request.mimetype
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if not JSON_MEDIA_TYPE.match(media_type) or charset not in ("utf-8", "utf8"):
        sent = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (this request sent {sent})",
                       "unsupported_media_type")
    limit = current_app.config["SETTINGS"].max_body_bytes
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # a Content-Length over the limit, said before reading
        raw = None
    if raw is None or len(raw) > limit:  # sent in chunks: the stream stops one byte past the limit (app/__init__.py)
        drain_unread_body()
        raise ApiError(413, f"the body is larger than {limit} bytes", "payload_too_large")
    if not raw.strip():
        raise ApiError(400, "the request has no body: send a JSON object", "missing_body")
    try:
        body = loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the body is not UTF-8 (byte {error.start})", "invalid_body") from None
    except NotJson as error:
        raise ApiError(400, f"the body is not valid JSON: {error}", "invalid_body") from None
    found = unstorable_path(body)
    if found is not None:
        where, problem = found
        raise ApiError(422, f"{where or 'the body'} contains {problem}, which cannot be stored", "unstorable_text",
                       {"json": {where or "_body": [f"contains {problem}"]}})
    if not isinstance(body, dict):  # every body the service takes is an object
        raise ApiError(422, f"the body must be a JSON object, not {JSON_KINDS[type(body)]}", "validation_error",
                       {"json": {"_schema": ["send a JSON object"]}})
    return body


JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


DRAIN_BYTES = 16_000_000
DRAIN_SECONDS = 5.0


def drain_unread_body() -> None:
    """Read and drop what is left of a refused body (at most DRAIN_BYTES, for DRAIN_SECONDS),
    so the client reads the 413 instead of a connection reset: a server that closes a socket
    with unread input makes the kernel reset it, dropping the answer in flight."""
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    deadline = time.monotonic() + DRAIN_SECONDS
    left = DRAIN_BYTES
    try:
        while left > 0 and time.monotonic() < deadline:
            piece = stream.read(min(65536, left))
            if not piece:
                return
            left -= len(piece)
    except Exception:  # noqa: BLE001 (a client gone or a broken chunk: nothing left to spare it)
        return


def unstorable(text: str) -> str | None:
    """What in `text` cannot be stored, in words, or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate (\\u%04x)" % ord(found.group())


def unstorable_path(value) -> tuple[str, str] | None:
    """The first (field path, problem) of text in `value` that cannot be stored; keys count.
    Iterative: a body as deep as the parser allows is walked without recursion."""
    pending = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                return path, problem
        elif isinstance(item, dict):
            for key in item:
                problem = unstorable(key)
                if problem:
                    shown = key.encode("unicode_escape").decode()
                    return f"{path + '.' if path else ''}{shown} (a key)", problem
            pending.extend((f"{path}.{key}" if path else key, child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", child) for index, child in reversed(list(enumerate(item))))
    return None


def init_app(app: Flask) -> None:
    app.before_request(check_request)
