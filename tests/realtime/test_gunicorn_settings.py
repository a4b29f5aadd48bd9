"""gunicorn.conf.py as a deploy runs it: the control socket only where one is asked for, so two
services on one machine never share gunicorn's default path."""
from __future__ import annotations

import base64

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.perf.bench_api import ROOT, free_port, start_service
from tests.realtime.conftest import WORKERS, service_env, stop_service


def test_no_control_socket_unless_asked_and_then_at_the_path_given(realtime_database, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    asked = tmp_path / "rexera.ctl"
    plain, _ = start_service(service_env(realtime_database, free_port(), HOME=str(home)), "wsgi:app",
                             "gunicorn-settings-plain.log")
    try:
        with_socket, _ = start_service(service_env(realtime_database, free_port(), HOME=str(home),
                                                   GUNICORN_CONTROL_SOCKET=str(asked)), "wsgi:app",
                                       "gunicorn-settings-socket.log")
        try:
            assert stat.S_ISSOCK(asked.stat().st_mode)
            # gunicorn's default path, shared by every instance on the machine, is left alone.
            assert not Path(home, ".gunicorn").exists()
        finally:
            stop_service(with_socket)
    finally:
        stop_service(plain)
    assert not asked.exists()


def raw_request(base: str, data: bytes, *, then_close: bool = False) -> tuple[str, dict, bytes]:
    """Send bytes as they are (no client library would send these) and read the answer
    (then_close: the client ends its half of the connection once it has sent them)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}, body


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"GET /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 10_000 + b"\r\n\r\n",
     "431 Request Header Fields Too Large", "headers_too_large"),
    (b"GET /api/workflows?q=" + b"a" * 6_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "414 URI Too Long", "uri_too_long"),
    (b"GET /api/workflows HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n",
     "431 Request Header Fields Too Large", "headers_too_large"),
    (b"BROKEN\r\n\r\n", "400 Bad Request", "bad_request"),
    (b"GET /api/workflows HTTP/9.9\r\nHost: x\r\n\r\n", "400 Bad Request", "bad_request"),
], ids=["a 10 KB header", "a 6 KB URL", "120 headers", "no request line", "an unknown HTTP version"])
def test_what_gunicorn_refuses_itself_is_answered_in_the_error_shape(gunicorn_service, request_bytes, status, code):
    line, headers, body = raw_request(gunicorn_service, request_bytes)
    assert line == f"HTTP/1.1 {status}"
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"] and error["requestId"] == headers["x-request-id"]
    assert set(error) == {"code", "message", "details", "requestId"}


def with_length(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def chunked(path: str, body: bytes, piece: int = 65536) -> bytes:
    """A POST whose body comes in chunks, with no Content-Length (as a streaming client sends)."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n" \
           "Connection: close\r\n\r\n"
    pieces = [body[i:i + piece] for i in range(0, len(body), piece)]
    return head.encode() + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


MAX_BODY = 1_000_000  # Settings.max_body_bytes
# Endpoints that read the body before asking who calls: the answer shows what the body got.
BODY_FIRST = ["/webhooks/inbound/payoff-statement", "/webhooks/inbound/hoa-documents", "/console/auth/code"]


@pytest.mark.parametrize("path", BODY_FIRST)
@pytest.mark.parametrize("size", [MAX_BODY + 1, MAX_BODY + 100, 3 * MAX_BODY], ids=["limit+1", "limit+100", "3 MB"])
@pytest.mark.parametrize("framing", [chunked, with_length], ids=["chunked", "Content-Length"])
def test_a_body_over_the_limit_is_a_413_the_client_reads_however_it_is_sent(gunicorn_service, path, size, framing):
    # The client sends it all before reading: the answer must reach it, not a connection reset.
    body = b'{"workflowId": "' + b"x" * (size - 18) + b'"}'
    assert len(body) == size
    line, headers, answer = raw_request(gunicorn_service, framing(path, body))
    assert line.startswith("HTTP/1.1 413 "), (line, answer[:300])
    assert json.loads(answer)["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", BODY_FIRST)
def test_a_chunked_body_at_the_limit_is_read_whole(gunicorn_service, path):
    # Valid JSON of exactly the limit: read to its end and parsed, so the answer is about what
    # it says (a missing credential, a wrong field), never that it is too large or cut short.
    body = b'{"workflowId": "' + b"x" * (MAX_BODY - 18) + b'"}'
    assert len(body) == MAX_BODY
    line, _, answer = raw_request(gunicorn_service, chunked(path, body))
    status = int(line.split()[1])
    assert status in (401, 403, 404, 422), (line, answer[:300])
    assert json.loads(answer)["error"]["code"] not in ("payload_too_large", "invalid_body")


def framed(path: str, chunks: bytes) -> bytes:
    """A POST whose chunked body is `chunks` as they are (the framing under test)."""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode() + chunks


# Every way a chunked body's framing can be broken that a client controls.
BROKEN_CHUNKS = {
    "a size that is not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "a negative size": b"-2\r\n{}\r\n0\r\n\r\n",
    "a size with a sign": b"+2\r\n{}\r\n0\r\n\r\n",
    "a size of 40 digits, then the end": b"1" * 40 + b"\r\n{}\r\n0\r\n\r\n",
    "a size larger than what comes, then the end": b"ffff\r\n{}\r\n",
    "a size with spaces inside": b"1 1\r\n{}\r\n0\r\n\r\n",
    "an empty size": b"\r\n{}\r\n0\r\n\r\n",
    "non-ASCII digits": "\u0662\r\n{}\r\n0\r\n\r\n".encode(),
    "a chunk longer than its size": b"1\r\n{}\r\n0\r\n\r\n",
    "a chunk without its CRLF": b"2\r\n{}XX0\r\n\r\n",
    "a bare LF after the size": b"2\n{}\r\n0\r\n\r\n",
    "a bad chunk extension": b"2;\x00=1\r\n{}\r\n0\r\n\r\n",
    "a trailer that is not a header": b"2\r\n{}\r\n0\r\nnot a header\r\n\r\n",
}


@pytest.mark.parametrize("path", BODY_FIRST)
@pytest.mark.parametrize("chunks", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS.keys())
def test_a_broken_chunked_body_is_a_400_in_the_error_shape_never_a_500(gunicorn_service, path, chunks):
    line, headers, answer = raw_request(gunicorn_service, framed(path, chunks), then_close=True)
    status = int(line.split()[1])
    # Refused as framed (400), or, where the framing still reads as a body, about what it says.
    assert status in (400, 401, 403, 404, 413, 422), (line, answer[:300])
    error = json.loads(answer[:int(headers["content-length"])])["error"]
    assert set(error) == {"code", "message", "details", "requestId"}
    assert error["requestId"] == headers["x-request-id"]
    if status == 400:
        assert error["code"] in ("invalid_body", "bad_request", "missing_body"), error


@pytest.fixture(scope="module", params=WORKERS)
def gunicorn_service(realtime_database, request):
    """On each kind of worker: both answer gunicorn's refusals in the error shape."""
    # The webhooks configured, so that a body they read whole is answered for what it says.
    secret = "whsec_" + base64.b64encode(b"gunicorn-settings-callback-secret!!").decode()
    process, base = start_service(service_env(realtime_database, free_port(), GUNICORN_WORKER=request.param,
                                              N8N_CALLBACK_SECRET=secret),
                                  "wsgi:app", f"gunicorn-refusals-{request.param}.log")
    try:
        yield base
    finally:
        stop_service(process)


@pytest.mark.parametrize("args, exit_code", [
    (["-c", "gunicorn.conf.py", "wsgi:app"], 2),  # checked in the master, before binding or forking
    # Without it, the workers exit with gunicorn's "app failed to load" (4), which stops the
    # master (gunicorn 27 then exits 1 with a traceback of its own).
    (["-c", "/dev/null", "--workers", "2", "wsgi:app"], None),
], ids=["with gunicorn.conf.py", "without it"])
@pytest.mark.parametrize("environment, says", [
    ({}, "DATABASE_URL is required"),
    ({"DATABASE_URL": "postgresql://x@127.0.0.1/x", "SUPABASE_JWT_SECRET": "s" * 40, "N8N_CALLBACK_SECRET": "plain"},
     "N8N_CALLBACK_SECRET"),
], ids=["nothing set", "a malformed secret"])
def test_a_bad_configuration_stops_gunicorn_once_with_the_message(args, exit_code, environment, says):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "PYTHONPATH": str(ROOT), **environment}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code if exit_code else result.returncode != 0, result.stderr[-2000:]
    assert says in result.stderr
    # Stopped at once: no worker booted again and again (the report saw 40 restarts in 12 s).
    assert result.stderr.count("Booting worker") <= 2 and time.monotonic() - started < 30
    if exit_code is None:
        assert "exited with code 4" in result.stderr
    else:
        assert "Booting worker" not in result.stderr and "Listening at" not in result.stderr
        assert "Traceback" not in result.stderr


def test_the_gevent_worker_gets_a_psycopg_that_waits_cooperatively():
    """gunicorn's master imports gunicorn.conf.py, runs its checks and loads the worker class
    before forking; psycopg chooses at its import whether to wait through the (patched) select
    module. Imported there, it would block a gevent worker's whole loop on every wait."""
    code = ("import os, sys, runpy; os.environ['GUNICORN_WORKER'] = 'gevent'; conf = runpy.run_path('gunicorn.conf.py');"
            " import app.server_gevent;"
            " from app.config import ConfigError, Settings\n"
            "try: Settings.from_env()\nexcept ConfigError: pass\n"
            "print(conf['worker_class'], sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    assert result.stdout.split() == ["app.server_gevent.ApiGeventWorker", "[]"], result.stdout + result.stderr


def test_an_unknown_gunicorn_worker_stops_gunicorn_with_the_choices():
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "GUNICORN_WORKER": "eventlet"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "GUNICORN_WORKER must be one of thread, gevent, not 'eventlet'" in result.stderr
