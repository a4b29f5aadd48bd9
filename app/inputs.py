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
- A body arrives within REQUEST_READ_SECONDS (10) of the request's start, however it is sent
  (slowly, in chunks announcing more than ever comes, after `Expect: 100-continue`), else 408
  and the connection is closed: a caller cannot hold a worker's connection by sending slowly.
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
    """The request's parsed JSON body (None for a request without one). For a view that checks
    its caller's signature on the raw bytes first (verified_before_parsing), parsed at the first
    call, after that check."""
    if "json_body" not in g and g.get("raw_body") is not None:
        g.json_body = parse_body(g.pop("raw_body"))
    return g.get("json_body")


def has_json_body() -> bool:
    return "json_body" in g or g.get("raw_body") is not None


def check_request() -> None:
    """Refuse, before any view runs, what no endpoint accepts (see the module's docstring)."""
    if request.routing_exception is not None:
        return  # no such route or method: that is the answer
    check_query_parameters()
    view = current_app.view_functions.get(request.endpoint)
    if request.method in BODY_METHODS:
        bound_body_reads(current_app.config["SETTINGS"].request_read_seconds)
        if getattr(view, "verified_before_parsing", False):
            g.raw_body = read_body()
        elif not getattr(view, "takes_no_body", False):
            g.json_body = parse_json_body()


class BodyTimeout(Exception):
    """The body did not arrive by its deadline."""


class DeadlineInput:
    """The request's input stream, every read of which ends by one deadline: a read waits on
    the socket at most the time left (gunicorn gives the WSGI app its socket)."""

    def __init__(self, stream, sock, deadline: float):
        self.stream = stream
        self.sock = sock
        self.deadline = deadline

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BodyTimeout()
        self.sock.settimeout(left)

    def read(self, *args):
        self._arm()
        try:
            return self.stream.read(*args)
        except TimeoutError:
            raise BodyTimeout() from None

    def readline(self, *args):
        self._arm()
        try:
            return self.stream.readline(*args)
        except TimeoutError:
            raise BodyTimeout() from None

    def __iter__(self):
        return iter(self.readline, b"")

    def disarm(self) -> None:
        """Back to the socket's own blocking mode (the connection may carry another request)."""
        try:
            self.sock.settimeout(None)
        except OSError:
            pass


def bound_body_reads(seconds: float) -> None:
    """Reads of this request's body end `seconds` from now (under gunicorn; the test client and
    other servers give no socket, and need none)."""
    environ = request.environ
    sock = environ.get("gunicorn.socket")
    stream = environ.get("wsgi.input")
    if sock is None or stream is None or isinstance(stream, DeadlineInput):
        return
    bounded = DeadlineInput(stream, sock, time.monotonic() + seconds)
    environ["wsgi.input"] = bounded
    g.body_deadline = bounded


def body_timed_out(seconds: float):
    """The 408 of a body that did not arrive in time; the connection closes after it (what is
    left unread of the body cannot be told from a next request)."""
    from app.server import close_after_answer

    close_after_answer(request.environ)
    return ApiError(408, f"the body did not arrive within {seconds} s of the request; send it at once",
                    "request_timeout")


def verified_before_parsing(view):
    """A view whose caller proves itself on the raw bytes (a signature, a token bound to the
    body): the body is read and its size checked here, and parsed only when the view asks
    (json_body()), after the proof; a forged body costs no parse."""
    view.verified_before_parsing = True
    return view


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
    return parse_body(read_body())


def read_body() -> bytes:
    """The request's body as sent, once it is known to be JSON by its media type and within the
    size limit, read within the read deadline; not yet parsed."""
    media_type = request.mimetype
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if not JSON_MEDIA_TYPE.match(media_type) or charset not in ("utf-8", "utf8"):
        sent = request.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (this request sent {sent})",
                       "unsupported_media_type")
    settings = current_app.config["SETTINGS"]
    limit = settings.max_body_bytes
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # a Content-Length over the limit, said before reading
        raw = None
    except BodyTimeout:
        raise body_timed_out(settings.request_read_seconds) from None
    if raw is None or len(raw) > limit:  # sent in chunks: the stream stops one byte past the limit (app/__init__.py)
        drain_unread_body()
        raise ApiError(413, f"the body is larger than {limit} bytes", "payload_too_large")
    if not raw.strip():
        raise ApiError(400, "the request has no body: send a JSON object", "missing_body")
    return raw


def parse_body(raw: bytes):
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
    except Exception:  # noqa: BLE001 (a client gone, a broken chunk, the read deadline: nothing left to spare it)
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


def disarm_body_deadline(_error=None) -> None:
    bounded = g.pop("body_deadline", None)
    if bounded is not None:
        bounded.disarm()


def init_app(app: Flask) -> None:
    app.before_request(check_request)
    app.teardown_request(disarm_body_deadline)
