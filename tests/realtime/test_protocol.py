"""WS /ws against the running service: authentication, subscriptions, events from API changes,
bad input answered in the one error shape, expiry and heartbeats."""
from __future__ import annotations

import json
import re
import time

import pytest
import requests
import websocket

from tests.db.world import CLIENT_A, PEOPLE, row
from tests.realtime.conftest import HEARTBEAT_SECONDS
from tests.service_fixtures import METRICS_HEADERS
from tests.support import mint_token

OPERATOR = PEOPLE["operator"]


def test_a_change_through_the_api_reaches_the_subscriber(service):
    sock = service.connect(OPERATOR)
    sock.subscribe("workflows")
    workflow_id = service.create_workflow(OPERATOR, CLIENT_A)
    created = sock.events_until(lambda events: any(e["workflowId"] == workflow_id for e in events))[-1]
    assert created["type"] == "workflow_status_changed" and created["status"] == "PENDING"
    assert isinstance(created["id"], int) and created["timestamp"].endswith("Z")
    assert set(created["metadata"]) >= {"totalTasks", "completedTasks", "progressPercentage", "previousStatus"}

    sock.subscribe(f"workflow:{workflow_id}")
    service.act(OPERATOR, workflow_id, "start")
    events = sock.events_until(lambda events: any(e["type"] == "task_execution_updated" for e in events)
                               and any(e.get("status") == "IN_PROGRESS" for e in events))
    started = next(e for e in events if e["type"] == "workflow_status_changed" and e["status"] == "IN_PROGRESS")
    assert started["metadata"]["previousStatus"] == "PENDING" and started["id"] > created["id"]
    task = next(e for e in events if e["type"] == "task_execution_updated")
    assert task["workflowId"] == workflow_id and task["taskId"] and task["status"]
    # One event, one delivery, though it matches both channels of this socket.
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    sock.close()


def test_the_first_message_may_carry_the_token(service):
    sock = service.connect(None)
    sock.send({"type": "auth", "token": mint_token(OPERATOR)})
    assert sock.expect("authenticated")["role"] == "hil_operator"
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


def test_a_bearer_header_on_the_handshake_authenticates_too(service):
    ws = websocket.create_connection(service.ws_base, timeout=5,
                                     header=[f"Authorization: Bearer {mint_token(OPERATOR, expires_in=600)}"])
    welcome = json.loads(ws.recv())
    assert welcome["type"] == "authenticated" and welcome["role"] == "hil_operator" and welcome["expiresAt"]
    ws.close()


@pytest.mark.parametrize("query, first_message, reason", [
    ("token=not-a-jwt", None, "not a JWT"),
    (f"token={mint_token(OPERATOR, expires_in=-60)}", None, "expired"),
    ("", {"type": "subscribe", "channel": "workflows"}, "first message must be"),
    ("", "not json", "first message must be"),
])
def test_failed_authentication_closes_with_4001(service, query, first_message, reason):
    ws = websocket.create_connection(f"{service.ws_base}?{query}", timeout=5)
    if first_message is not None:
        ws.send(first_message if isinstance(first_message, str) else json.dumps(first_message))
    error = json.loads(ws.recv())
    assert error["type"] == "error" and reason in error["message"]
    assert error["error"]["code"] == error["code"] and "requestId" in error["error"]
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 4001


def test_the_socket_closes_with_4002_when_the_token_expires(service):
    ws = websocket.create_connection(f"{service.ws_base}?token={mint_token(OPERATOR, expires_in=2)}", timeout=6)
    assert json.loads(ws.recv())["type"] == "authenticated"
    started = time.monotonic()
    messages = []
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if opcode == websocket.ABNF.OPCODE_TEXT:
            messages.append(json.loads(frame.data))
    assert int.from_bytes(frame.data[:2], "big") == 4002 and time.monotonic() - started < 5
    assert messages[-1]["code"] == "token_expired"


def test_a_fresh_token_keeps_the_socket_open_past_the_old_expiry(service):
    ws_sock = service.connect(None, f"token={mint_token(OPERATOR, expires_in=4)}", authenticate=False)
    ws_sock.expect("authenticated")
    ws_sock.send({"type": "auth", "token": mint_token(OPERATOR, expires_in=600)})
    assert ws_sock.expect("authenticated")["expiresAt"]
    assert ws_sock.quiet_events(4.5) == []  # past the first token's expiry (reading, so pings are answered)
    ws_sock.send({"type": "ping"})
    assert ws_sock.expect("pong")
    ws_sock.send({"type": "auth", "token": mint_token(PEOPLE["manager"])})
    assert ws_sock.expect("error")["code"] == "token_mismatch"
    ws_sock.close()


@pytest.mark.parametrize("message, code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ({"type": "dance"}, "unknown_type"),
    ({"type": "subscribe", "channel": "everything"}, "unknown_channel"),
    ({"type": "subscribe", "channel": "workflow:12345"}, "invalid_channel"),
    ({"type": "subscribe", "channel": 7}, "invalid_channel"),
    ({"type": "subscribe", "channel": "workflow:aaaaaaaa-0000-4000-8000-000000000999"}, "not_found"),
    ({"type": "subscribe", "channel": "workflows", "since": "yesterday"}, "invalid_since"),
    ({"type": "subscribe", "channel": "workflows", "since": -1}, "invalid_since"),
    ({"type": "unsubscribe", "channel": "task:aaaaaaaa-0000-4000-8000-000000000201"}, "not_subscribed"),
])
def test_bad_input_gets_one_error_and_the_socket_stays_healthy(service, message, code):
    sock = service.connect(OPERATOR)
    sock.send(message)
    error = sock.expect("error")
    assert error["code"] == code and error["message"]
    assert error["error"] == {"code": code, "message": error["message"], "details": error["error"]["details"],
                              "requestId": error["error"]["requestId"]}
    assert "Traceback" not in json.dumps(error)
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


def test_unsubscribe_stops_the_events(service):
    sock = service.connect(OPERATOR)
    sock.subscribe("workflows")
    sock.send({"type": "unsubscribe", "channel": "workflows"})
    assert sock.expect("unsubscribed")["channel"] == "workflows"
    service.create_workflow(OPERATOR, CLIENT_A)
    assert sock.quiet_events(1.0) == []
    sock.close()


def test_a_client_may_not_subscribe_to_what_it_may_not_read(service):
    sock = service.connect(PEOPLE["client_user_b"])
    for channel in (f"workflow:{row('A101')}", f"task:{row('A201')}"):
        sock.send({"type": "subscribe", "channel": channel})
        assert sock.expect("error")["code"] == "not_found"
    agent = service.connect(PEOPLE["agent_a"])
    agent.send({"type": "subscribe", "channel": "notifications"})
    assert agent.expect("error")["code"] == "forbidden"
    sock.close()
    agent.close()


def test_heartbeats_arrive_and_a_dead_client_is_dropped(service):
    # Sockets the tests before closed leave the hub a moment later: count once they have gone.
    before = service.wait_for_health(lambda h: h["subscribers"] == 0, timeout=3)["subscribers"]
    sock = service.connect(OPERATOR)
    sock.ws.settimeout(HEARTBEAT_SECONDS * 2)
    assert json.loads(sock.ws.recv())["type"] == "heartbeat"
    assert service.health()["subscribers"] == before + 1
    # A client that stops answering pings (it reads nothing) is dropped by the next ping.
    time.sleep(HEARTBEAT_SECONDS * 2.5)
    assert service.wait_for_health(lambda h: h["subscribers"] == before)["subscribers"] == before
    sock.close()


def test_open_sockets_are_counted_in_the_metrics(service):
    def gauge() -> float:
        text = requests.get(service.base + "/metrics", headers=METRICS_HEADERS, timeout=5).text
        return float(re.search(r"^rexera_websocket_connections (\S+)$", text, re.M).group(1))

    sock = service.connect(OPERATOR)
    deadline = time.monotonic() + 5
    while gauge() != service.health()["subscribers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    opened = gauge()
    assert opened == service.health()["subscribers"] and opened >= 1
    sock.close()
    assert service.wait_for_health(lambda h: h["subscribers"] == opened - 1)["subscribers"] == opened - 1
    assert gauge() == opened - 1


def test_a_message_over_16_kib_closes_with_1009(service):
    sock = service.connect(OPERATOR)
    sock.send(json.dumps({"type": "ping", "padding": "x" * 20_000}))
    sock.ws.settimeout(5)
    opcode, frame = sock.ws.recv_data_frame(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, frame = sock.ws.recv_data_frame(control_frame=True)
    assert int.from_bytes(frame.data[:2], "big") == 1009
