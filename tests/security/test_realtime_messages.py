"""WS /ws: a message nested too deeply to parse, or holding what JSON does not define (NaN,
Infinity) or no number here can hold (1e999, an integer of 5,000 digits), is answered like any
other bad JSON, before and after authentication, and the service keeps serving. So are a since
that is no event id, a token that cannot be read or expires past the year 9999, a token already
expired, and a message over 16 KiB counted in bytes."""
from __future__ import annotations

import json
import urllib.parse

import pytest
import requests
import websocket

from tests.db.world import PEOPLE
from tests.realtime.conftest import realtime_database, service  # noqa: F401 (fixtures)
from tests.support import mint_token

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


# ---- What an outside tester sent: each answered as the docs say, never a server error -------
def close_code(ws: websocket.WebSocket) -> int:
    """The close code the server sends next (messages before it are skipped; none within 5 s
    between frames fails the test)."""
    ws.settimeout(5)
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


def first_message_then_close(service, first: str) -> tuple[dict, int]:  # noqa: F811
    ws = websocket.create_connection(service.ws_base, timeout=5)
    ws.send(first)
    answer = json.loads(ws.recv())
    return answer, close_code(ws)


BAD_SINCE = {"superscript two": "²", "Arabic-Indic one": "١", "4400 digits": "9" * 4400, "20 digits": "9" * 20,
             "fullwidth digits": "１２", "signed": "+5", "spaced": " 5"}


@pytest.mark.parametrize("since", BAD_SINCE.values(), ids=BAD_SINCE.keys())
def test_a_since_that_is_not_an_event_id_is_invalid_since_wherever_it_is_given(service, since):  # noqa: F811
    sock = service.connect(PEOPLE["client_user_a"])
    sock.send({"type": "subscribe", "channel": "workflows", "since": since})
    assert sock.expect("error")["code"] == "invalid_since"
    assert sock.subscribe("workflows")["channel"] == "workflows"  # the socket is healthy
    sock.close()
    # (A URL holds about 4 KB: the longest since goes there cut to 3,000 digits.)
    on_the_url = service.connect(PEOPLE["client_user_a"], query="since=" + urllib.parse.quote(since[:3000]),
                                 authenticate=False)
    assert on_the_url.expect("error")["code"] == "invalid_since"
    assert on_the_url.expect("authenticated")["type"] == "authenticated"
    on_the_url.close()


UNREADABLE_TOKENS = {"a lone surrogate": '{"type": "auth", "token": "\\ud800"}',
                     "a surrogate inside": '{"type": "auth", "token": "eyJ\\udc00.x.y"}'}


@pytest.mark.parametrize("first", UNREADABLE_TOKENS.values(), ids=UNREADABLE_TOKENS.keys())
def test_a_token_that_cannot_be_read_fails_authentication_and_a_refresh_with_it_is_refused(service, first):  # noqa: F811
    answer, code = first_message_then_close(service, first)
    assert (answer["code"], code) == ("invalid_token", 4001), answer
    sock = service.connect(PEOPLE["operator"])
    sock.send(first)
    assert sock.expect("error")["code"] == "invalid_token"
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


@pytest.mark.parametrize("exp", [1e20, 253_402_300_800, 2 ** 63], ids=["1e20", "year 10000", "2**63"])
def test_a_token_that_expires_after_the_year_9999_is_refused_by_the_socket_and_the_api(service, exp):  # noqa: F811
    token = mint_token(PEOPLE["operator"], exp=exp)
    answer, code = first_message_then_close(service, json.dumps({"type": "auth", "token": token}))
    assert (answer["code"], code) == ("invalid_token", 4001), answer
    response = requests.get(service.base + "/api/workflows", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


def test_a_token_past_its_exp_is_refused_at_once_not_authenticated_and_then_closed(service):  # noqa: F811
    # PyJWT allows a few seconds of clock skew; a socket refuses what has expired by its clock.
    token = mint_token(PEOPLE["operator"], expires_in=-2)
    answer, code = first_message_then_close(service, json.dumps({"type": "auth", "token": token}))
    assert (answer["type"], answer["code"], code) == ("error", "token_expired", 4001), answer
    sock = service.connect(PEOPLE["operator"])
    sock.send({"type": "auth", "token": token})
    assert sock.expect("error")["code"] == "token_expired"
    assert sock.subscribe("workflows")["channel"] == "workflows"
    sock.close()


@pytest.mark.parametrize("character", ["😀", "é", "x"], ids=["4 bytes", "2 bytes", "1 byte"])
def test_a_message_over_16_kib_is_closed_with_1009_counting_bytes(service, character):  # noqa: F811
    size = len(character.encode())
    sock = service.connect(PEOPLE["operator"])
    fits = json.dumps({"type": "ping", "pad": character * ((16_384 - 40) // size)}, ensure_ascii=False)
    assert len(fits.encode()) <= 16_384
    sock.send(fits)
    assert sock.expect("pong")["type"] == "pong"
    sock.send(json.dumps({"type": "ping", "pad": character * (16_400 // size)}, ensure_ascii=False))
    assert close_code(sock.ws) == 1009
