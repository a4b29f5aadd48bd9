"""Hostile callers against a real gunicorn started as the README starts it (gunicorn.conf.py, its
defaults: the gevent worker, two workers, budgets on and kept in PostgreSQL): one tenant, or
nobody, holding up to 1,000 connections of each kind (idle, slow headers, slow body, a chunk
announced and never sent, `Expect: 100-continue` with no body, `/ws` with and without a token)
or flooding refused requests changes nothing for another tenant: none of their calls fails and
their p99 stays within twice its baseline (or 0.25 s, whichever is larger: on a machine busy
with other tests a few milliseconds of baseline are noise). Each attack stops by itself within
60 s. The figures of each attack on both workers: tests/perf/bench_abuse.py.

Also each cap on its own: the read deadlines, connections per address, sockets per person.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import time

import psycopg
import pytest
import websocket

from tests.conftest import world_database
from tests.db.world import PEOPLE
from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import as_url, stop_service
from tests.security import abuse
from tests.support import JWT_SECRET, mint_token

pytestmark = pytest.mark.abuse
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"abuse-tests-callback-secret-0123456789").decode()
ATTACK_SECONDS = 20


def readme_env(database_url: str, port: int, **extra: str) -> dict:
    """What the README's gunicorn command sets, and nothing more (plus the callback secret, so
    the webhooks answer, as docs/deploying.md configures them)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("GUNICORN_", "WEB_CONCURRENCY", "RATE_LIMITS", "REALTIME_", "CONNECTIONS_",
                                   "REQUEST_READ", "TRUSTED_PROXIES", "REDIS_URL"))}
    return {**env, "DATABASE_URL": database_url, "SUPABASE_JWT_SECRET": JWT_SECRET, "PORT": str(port),
            "N8N_CALLBACK_SECRET": CALLBACK_SECRET, **extra}


@pytest.fixture(scope="module")
def abuse_database():
    for url in world_database("rexera_abuse"):
        yield as_url(url)


def forget_budgets(database_url: str) -> None:
    """Each attack starts with every budget fresh (the victim's calls add up across attacks)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("select private.reset_rate_limits('')")


@pytest.fixture(scope="module")
def readme_service(abuse_database):
    port = free_port()
    process, _ = start_service(readme_env(abuse_database, port), "wsgi:app", "abuse-tests-server.log")
    try:
        yield abuse.Target("127.0.0.1", port, attacker_token=mint_token(PEOPLE["client_user_a"]),
                           victim_token=mint_token(PEOPLE["client_user_b"]))
    finally:
        stop_service(process)


@pytest.fixture(scope="module")
def baseline(readme_service, abuse_database):
    forget_budgets(abuse_database)
    abuse.victim(readme_service, 2)  # warm both workers' pools
    report = abuse.victim(readme_service, 8)
    assert report.failures == [], report.failures
    return report


@pytest.mark.timeout(120)
@pytest.mark.parametrize("attack", abuse.ATTACKS)
def test_an_attack_changes_nothing_for_another_tenant(readme_service, abuse_database, baseline, attack):
    forget_budgets(abuse_database)
    started = time.monotonic()
    during, report = abuse.under_attack(readme_service, attack, connections=1000, seconds=ATTACK_SECONDS)
    assert time.monotonic() - started < 60, "the attack did not stop by itself"
    assert report.opened > 0, "the attacker never reached the server"
    assert during.failures == [], (attack, during.failures[:10])
    bound = max(2 * baseline.p99, 0.25)
    assert during.p99 <= bound, (f"{attack}: victim p99 {during.p99 * 1000:.1f} ms during, "
                                 f"baseline {baseline.p99 * 1000:.1f} ms")


# ---- each cap, on a server with small ones -----------------------------------------------------
@pytest.fixture(scope="module")
def small_caps(abuse_database):
    port = free_port()
    process, _ = start_service(readme_env(abuse_database, port, WEB_CONCURRENCY="1", CONNECTIONS_PER_ADDRESS="20",
                                          REALTIME_SOCKETS_PER_PERSON="3", REQUEST_READ_SECONDS="2"),
                               "wsgi:app", "abuse-caps-server.log")
    try:
        yield abuse.Target("127.0.0.1", port, attacker_token=mint_token(PEOPLE["client_user_a"]),
                           victim_token=mint_token(PEOPLE["client_user_b"]))
    finally:
        stop_service(process)


def connect(target: abuse.Target, source: str = abuse.ATTACKER_ADDRESS) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=10, source_address=(source, 0))
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_one_address_holds_at_most_its_connections_and_the_next_is_a_429(small_caps):
    held = [connect(small_caps) for _ in range(20)]
    try:
        time.sleep(0.3)
        extra = connect(small_caps)
        began = time.monotonic()
        answer = read_until_closed(extra, 25)
        assert time.monotonic() - began >= 4  # held a while first (app.connections.TARPIT_SECONDS, spread)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429"), answer[:200]
        error = json.loads(body)["error"]
        assert error["code"] == "rate_limited" and "at most 20" in error["message"]
        # Another address is served meanwhile.
        other = connect(small_caps, abuse.VICTIM_ADDRESS)
        other.sendall(f"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert read_until_closed(other).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    # Closed connections are counted out: the address is served again.
    time.sleep(0.5)
    again = connect(small_caps)
    again.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_until_closed(again).startswith(b"HTTP/1.1 200")


SLOW_STARTS = {
    "a body that stops": b"POST /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    "a chunk announced and never sent": b"POST /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                                        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\nab",
    "Expect: 100-continue and no body": b"POST /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                                        b"Content-Type: application/json\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n",
    "a webhook body that stops": b"POST /webhooks/n8n HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 100\r\n\r\n{",
}


@pytest.mark.parametrize("start", SLOW_STARTS)
def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(small_caps, start):
    sock = connect(small_caps)
    sock.sendall(SLOW_STARTS[start].replace(b"{token}", small_caps.attacker_token.encode()))
    began = time.monotonic()
    answer = read_until_closed(sock, 15)
    elapsed = time.monotonic() - began
    final = answer[answer.rfind(b"HTTP/1.1 "):]  # after a 100 Continue, the answer
    head, _, body = final.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert 1.5 <= elapsed < 8, elapsed  # REQUEST_READ_SECONDS=2, and closed after it


def test_slow_headers_are_dropped_within_the_keepalive(small_caps):
    sock = connect(small_caps)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    began = time.monotonic()
    for _ in range(20):  # one more header line a second: never a whole head
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
        time.sleep(1)
        if time.monotonic() - began > 15:
            break
    assert time.monotonic() - began < 10, "the server kept a head that never ended"


def ws(target: abuse.Target, token: str) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://{target.host}:{target.port}/ws?token={token}", timeout=20)


def test_one_person_holds_at_most_their_sockets_and_the_next_is_closed_with_4029(small_caps):
    held = [ws(small_caps, small_caps.attacker_token) for _ in range(3)]
    try:
        for sock in held:
            assert json.loads(sock.recv())["type"] == "authenticated"
        extra = ws(small_caps, small_caps.attacker_token)
        assert json.loads(extra.recv())["type"] == "authenticated"
        error = json.loads(extra.recv())
        assert error["type"] == "error" and error["code"] == "too_many_sockets", error
        opcode, frame = extra.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 4029
        # Another person connects meanwhile.
        other = ws(small_caps, small_caps.victim_token)
        assert json.loads(other.recv())["type"] == "authenticated"
        other.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    again = ws(small_caps, small_caps.attacker_token)  # a closed socket is counted out
    assert json.loads(again.recv())["type"] == "authenticated"
    again.close()
