"""gunicorn's threaded worker, answering the requests gunicorn refuses itself in the API's one
error shape.

A request gunicorn cannot parse or will not read (a malformed request line, a header over
limit_request_field_size, a URL over limit_request_line) never reaches Flask: gunicorn answers
it with an HTML page. Clients of this API read {"error": {...}} from every 4xx, so the worker
writes those answers as JSON instead, with the same status and gunicorn's reason.
"""
from __future__ import annotations

import json
import uuid

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from app.errors import STATUS_CODES


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, with the API's error body (there is no request id yet: a
    new one is made, and sent as X-Request-Id too)."""
    request_id = str(uuid.uuid4())
    body = json.dumps({"error": {"code": STATUS_CODES.get(status_int, "bad_request"), "message": mesg or reason,
                                 "details": None, "requestId": request_id}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def close_after_answer(environ: dict) -> None:
    """Have gunicorn close the connection once the answer is written (Connection: close), on
    either worker: after a body whose framing is broken (a chunk size that is not hex), nothing
    more on the connection can be read as a request. gunicorn's request is reached through its
    body reader (wsgi.input); a WSGI app cannot set the Connection header itself."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    req = getattr(reader, "req", None)
    if req is not None and hasattr(req, "must_close"):
        req.must_close = True


class ApiThreadWorker(ThreadWorker):
    """gthread, with gunicorn's own refusals written by write_error above (gunicorn calls
    util.write_error from one place, its workers' handle_error; this replaces it in the
    worker's process only)."""

    def init_process(self):
        util.write_error = write_error
        super().init_process()
