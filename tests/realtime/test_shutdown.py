"""A restart (SIGTERM to gunicorn, as a deploy sends) closes every open socket with 1001 at
once, so clients reconnect and resume, and the worker does not wait out its graceful timeout."""
from __future__ import annotations

import os
import signal
import time

import pytest
import websocket

from tests.db.world import PEOPLE, row
from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import WORKERS, Service, service_env, stop_service

GRACEFUL_TIMEOUT_SECONDS = 20  # gunicorn.conf.py


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # exited, not yet reaped


def close_code(sock, timeout: float) -> int | str:
    sock.ws.settimeout(timeout)
    try:
        while True:
            opcode, frame = sock.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(frame.data[:2], "big")
    except websocket.WebSocketTimeoutException:
        return "still open"
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return "cut"


@pytest.mark.parametrize("worker", WORKERS)
def test_sigterm_closes_open_sockets_with_1001_and_the_server_stops_promptly(realtime_database, worker):
    process, base = start_service(service_env(realtime_database, free_port(), GUNICORN_WORKER=worker), "wsgi:app",
                                  f"realtime-shutdown-{worker}.log")
    service = Service(base, realtime_database, process)
    try:
        sockets = [service.connect(PEOPLE["operator"]), service.connect(PEOPLE["client_user_a"])]
        sockets[0].subscribe("workflows")
        sockets[1].subscribe(f"workflow:{row('A101')}")
        workers = children(process.pid)
        assert workers
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert [close_code(sock, 10) for sock in sockets] == [1001, 1001]
        # The workers stop once their sockets are closed, well before the graceful timeout.
        while any(alive(pid) for pid in workers) and time.monotonic() - started < GRACEFUL_TIMEOUT_SECONDS:
            time.sleep(0.1)
        assert time.monotonic() - started < GRACEFUL_TIMEOUT_SECONDS / 2
        process.wait(timeout=GRACEFUL_TIMEOUT_SECONDS * 2)
    finally:
        if process.poll() is None:
            stop_service(process)
