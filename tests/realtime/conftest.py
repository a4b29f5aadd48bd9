"""Realtime test bed: a committed world database (the server is another process, so nothing
can hide in a rolled-back transaction), the service under gunicorn on a free port, and real
WebSocket clients."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
import uuid

import psycopg
import pytest
import requests
import websocket
from psycopg.rows import dict_row

from tests.conftest import world_database
from tests.db.world import PEOPLE
from tests.perf.bench_api import ROOT, free_port, start_service
from tests.service_fixtures import AGENT_KEY, METRICS_TOKEN
from tests.support import JWT_SECRET, Person, mint_token

HEARTBEAT_SECONDS = 2
QUEUE_SIZE = 200
SEND_TIMEOUT_SECONDS = 5
PAYOFF = {"address": "1 Main St", "borrowerName": "Pat Doe", "lenderName": "First Bank", "loanNumber": "123",
          "payoffDate": "2026-12-15"}


def as_url(conninfo: str) -> str:
    """postgresql://... for a libpq conninfo string (the service accepts only URLs)."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    return (f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
            f"{parts.get('port', 5432)}/{parts['dbname']}")


def service_env(database_url: str, port: int, **extra: str) -> dict:
    return {**os.environ, "DATABASE_URL": database_url, "SUPABASE_JWT_SECRET": JWT_SECRET, "PORT": str(port),
            "AGENT_API_KEYS": f"*={AGENT_KEY}", "RATE_LIMITS": "off", "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "64", "REALTIME_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "REALTIME_QUEUE_SIZE": str(QUEUE_SIZE), "REALTIME_SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT_SECONDS),
            # Many sockets per person and per address here (the suite measures fan-out); the caps
            # themselves are tested in tests/security/test_abuse.py.
            "REALTIME_SOCKETS_PER_PERSON": "100000", "CONNECTIONS_PER_ADDRESS": "0",
            "METRICS_TOKEN": METRICS_TOKEN, "PYTHONPATH": str(ROOT), **extra}


@dataclasses.dataclass
class Service:
    """The running service: REST calls and WebSocket connections as one of the world's people."""

    base: str
    database_url: str
    process: subprocess.Popen

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"

    def headers(self, person: Person) -> dict:
        if person.role == "agent":
            return {"X-API-Key": AGENT_KEY, "X-Agent-Name": person.agent_name,
                    "X-Workflow-Scope": str(person.workflow_id)}
        return {"Authorization": f"Bearer {mint_token(person)}"}

    def api(self, person: Person, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers(person), timeout=10, **kwargs)

    def connect(self, person: Person | None, query: str = "", authenticate: bool = True, **options) -> "Socket":
        """A socket for `person`: a token in the URL, or the agent headers on the handshake."""
        params = []
        header = []
        if person is not None and person.role == "agent":
            header = [f"{k}: {v}" for k, v in self.headers(person).items()]
        elif person is not None:
            params.append(f"token={mint_token(person)}")
        if query:
            params.append(query)
        url = self.ws_base + ("?" + "&".join(params) if params else "")
        sock = Socket(websocket.create_connection(url, timeout=10, header=header, **options))
        if authenticate and person is not None:
            assert sock.expect("authenticated")["type"] == "authenticated"
        return sock

    def health(self) -> dict:
        return requests.get(self.base + "/api/health/realtime", timeout=5).json()

    def wait_for_health(self, condition, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.health()
            if condition(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.1)

    def create_workflow(self, person: Person, client_id: uuid.UUID) -> str:
        response = self.api(person, "POST", "/api/workflows",
                            json={"type": "PAYOFF_REQUEST", "clientId": str(client_id), "payload": PAYOFF})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def act(self, person: Person, workflow_id: str, action: str) -> dict:
        response = self.api(person, "POST", f"/api/workflows/{workflow_id}/actions", json={"action": action})
        assert response.status_code == 200, response.text
        return response.json()


class Socket:
    """A real WebSocket client speaking the /ws protocol."""

    def __init__(self, ws: websocket.WebSocket):
        self.ws = ws

    def send(self, message) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def receive(self, timeout: float = 5.0) -> dict | None:
        """The next message other than a heartbeat, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.ws.settimeout(remaining)
            try:
                opcode, raw = self.ws.recv_data(control_frame=True)  # pings are answered inside
            except websocket.WebSocketTimeoutException:
                return None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else None
                raise AssertionError(f"the server closed the socket with code {code}: {raw[2:].decode(errors='replace')}")
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            message = json.loads(raw)
            if message.get("type") != "heartbeat":
                return message

    def expect(self, message_type: str, timeout: float = 5.0) -> dict:
        message = self.receive(timeout)
        assert message is not None and message["type"] == message_type, message
        return message

    def subscribe(self, channel: str, **extra) -> dict:
        self.send({"type": "subscribe", "channel": channel, **extra})
        return self.expect("subscribed")

    def events_until(self, done, timeout: float = 10.0) -> list[dict]:
        """Events (messages with an id) until done(events) holds or `timeout` passes."""
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        while not done(events):
            message = self.receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                break
            if "id" in message:
                events.append(message)
        return events

    def quiet_events(self, seconds: float) -> list[dict]:
        """Every event arriving within `seconds` (to show that nothing more comes)."""
        return self.events_until(lambda events: False, timeout=seconds)

    def close(self) -> None:
        try:
            self.ws.close()
        except OSError:
            pass


def stop_service(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGQUIT)  # quick shutdown: open sockets need not drain
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def event_seqs(database_url: str, where: str, params=()) -> list[int]:
    """The stream as the database holds it (service path)."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return [r["seq"] for r in conn.execute(f"select seq from public.realtime_events where {where} order by seq",
                                               params)]


@pytest.fixture(scope="session")
def realtime_database():
    for url in world_database("rexera_realtime"):
        yield as_url(url)


WORKERS = ["thread", "gevent"]  # GUNICORN_WORKER: a thread or a greenlet per socket


@pytest.fixture(scope="session", params=WORKERS)
def service(realtime_database, request):
    """The service on each kind of gunicorn worker: every test using it runs on both."""
    process, base = start_service(service_env(realtime_database, free_port(), GUNICORN_WORKER=request.param),
                                  "wsgi:app", f"realtime-tests-server-{request.param}.log")
    try:
        yield Service(base, realtime_database, process)
    finally:
        stop_service(process)


@pytest.fixture
def people():
    return PEOPLE
