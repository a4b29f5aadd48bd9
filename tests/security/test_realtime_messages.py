"""WS /ws: a message nested too deeply to parse is answered like any other bad JSON, before and
after authentication, and the service keeps serving."""
from __future__ import annotations

import json

import websocket

from tests.db.world import PEOPLE
from tests.realtime.conftest import realtime_database, service  # noqa: F401 (fixtures)

DEEP = "[" * 6000 + "]" * 6000  # 12 KB, within the 16 KiB message limit


def test_a_deeply_nested_message_is_invalid_json_and_the_socket_stays_healthy(service):  # noqa: F811
    sock = service.connect(PEOPLE["operator"])
    sock.send(DEEP)
    error = sock.expect("error")
    assert error["code"] == "invalid_json" and error["error"]["code"] == "invalid_json"
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


def test_a_deeply_nested_first_message_fails_authentication_with_4001(service):  # noqa: F811
    ws = websocket.create_connection(service.ws_base, timeout=5)
    ws.send(DEEP)
    error = json.loads(ws.recv())
    assert error["type"] == "error" and error["code"] == "missing_credentials"
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 4001
