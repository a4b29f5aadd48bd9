"""WS /ws: a message nested too deeply to parse, or holding what JSON does not define (NaN,
Infinity) or no number here can hold (1e999, an integer of 5,000 digits), is answered like any
other bad JSON, before and after authentication, and the service keeps serving."""
from __future__ import annotations

import json

import websocket

from tests.db.world import PEOPLE
from tests.realtime.conftest import realtime_database, service  # noqa: F401 (fixtures)

import pytest

DEEP = "[" * 6000 + "]" * 6000  # 12 KB, within the 16 KiB message limit
NOT_JSON_HERE = {
    "nested 6000 deep": DEEP,
    "NaN": '{"type": "subscribe", "channel": "workflows", "since": NaN}',
    "Infinity": '{"type": "subscribe", "channel": "workflows", "since": Infinity}',
    "-Infinity": '{"type": "ping", "x": -Infinity}',
    "1e999": '{"type": "subscribe", "channel": "workflows", "since": 1e999}',
    "an integer of 5000 digits": '{"type": "subscribe", "channel": "workflows", "since": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("message", NOT_JSON_HERE.values(), ids=NOT_JSON_HERE.keys())
def test_a_message_that_is_not_json_here_is_invalid_json_and_the_socket_stays_healthy(service, message):  # noqa: F811
    sock = service.connect(PEOPLE["operator"])
    sock.send(message)
    error = sock.expect("error")
    assert error["code"] == "invalid_json" and error["error"]["code"] == "invalid_json", error
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


@pytest.mark.parametrize("message", NOT_JSON_HERE.values(), ids=NOT_JSON_HERE.keys())
def test_a_first_message_that_is_not_json_here_fails_authentication_with_4001(service, message):  # noqa: F811
    ws = websocket.create_connection(service.ws_base, timeout=5)
    ws.send(message)
    error = json.loads(ws.recv())
    assert error["type"] == "error" and error["code"] == "missing_credentials"
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 4001
