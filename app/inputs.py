"""What every request may send, checked once before any view runs.

- A request that carries a body (POST, PUT, PATCH) sends JSON: `Content-Type: application/json`
  (or `application/<something>+json`, charset UTF-8 if named), else 415; an empty body is 400;
  a body that is not JSON, or not UTF-8, is 400 saying where it broke. The parsed body is kept
  (`json_body()`), so no view parses it a second time or differently.
- A query parameter is given once: a repeated one is 422 (lists are comma-separated values of
  one parameter, as the OpenAPI document says).
- Text PostgreSQL cannot store (NUL, and lone UTF-16 surrogates that JSON escapes can spell) is
  refused with 422 naming the field, wherever it is: body fields and payload values at any
  depth, object keys, query parameters.
"""
from __future__ import annotations

import json
import re

from flask import Flask, current_app, g, request

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


def parse_json_body():
    media_type = request.mimetype
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if not JSON_MEDIA_TYPE.match(media_type) or charset not in ("utf-8", "utf8"):
        sent = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (this request sent {sent})",
                       "unsupported_media_type")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "the request has no body: send a JSON object", "missing_body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the body is not UTF-8 (byte {error.start})", "invalid_body") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                       "invalid_body") from None
    found = unstorable_path(body)
    if found is not None:
        where, problem = found
        raise ApiError(422, f"{where or 'the body'} contains {problem}, which cannot be stored", "unstorable_text",
                       {"json": {where or "_body": [f"contains {problem}"]}})
    return body


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
