"""The console's sessions hold against a hostile caller and a misbehaving Supabase Auth:

- a refresh cookie is rotated on every use (the old one stops working; a spent one presented
  again revokes its whole family) and revoked server-side by sign-out;
- any bytes in the cookie the service reads are "not signed in" (401) or nothing to sign out,
  never a 500, and write nothing;
- any answer of Supabase Auth (not JSON, wrong JSON types, missing fields, huge, an error text
  of 2 MB, slow) is a 401, 429, 502 or 503 in the one error shape, bounded, with no cookie set.
"""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import respx

from app import create_app
from app.console import REFRESH_COOKIE
from tests.app.test_console import (ANON_KEY, SUPABASE_URL, browser, console_app, issue_code, refresh_cookie,  # noqa: F401
                                    supabase_session)
from tests.security.state import assert_refused
from tests.service_fixtures import TransactionalDatabase, make_settings

COOKIE_ENDPOINTS = ["/console/auth/refresh", "/console/auth/sign-out"]
ANSWER_LIMIT = 2000  # bytes of any refusal's body


def cookie_value(response) -> str:
    header = refresh_cookie(response)
    return header.split(";", 1)[0].split("=", 1)[1]


def with_cookie(browser, value: str):
    browser.set_cookie(REFRESH_COOKIE, value, path="/console/auth")


def signed_in(browser, db) -> str:
    response = browser.post("/console/auth/code", json={"code": issue_code(db)})
    assert response.status_code == 200, response.get_json()
    return cookie_value(response)


# ---- rotation and revocation (local sign-in) ------------------------------------------------------
def test_a_refresh_rotates_the_cookie_and_the_old_one_is_refused(browser, db):
    first = signed_in(browser, db)
    refreshed = browser.post("/console/auth/refresh", json={})
    assert refreshed.status_code == 200
    second = cookie_value(refreshed)
    assert second != first and second.startswith("l.")
    with_cookie(browser, first)
    error = assert_refused(browser.post("/console/auth/refresh", json={}), 401)
    assert error["code"] == "not_signed_in"


def test_a_spent_cookie_presented_again_revokes_the_whole_family(browser, db):
    first = signed_in(browser, db)
    second = cookie_value(browser.post("/console/auth/refresh", json={}))
    with_cookie(browser, first)  # someone else holds a copy of the first cookie
    assert browser.post("/console/auth/refresh", json={}).status_code == 401
    with_cookie(browser, second)  # and the rightful holder's current one is now refused too
    assert assert_refused(browser.post("/console/auth/refresh", json={}), 401)["code"] == "not_signed_in"


def test_sign_out_revokes_the_cookie_on_the_server(browser, db):
    cookie = signed_in(browser, db)
    refreshed = cookie_value(browser.post("/console/auth/refresh", json={}))
    out = browser.post("/console/auth/sign-out", json={})
    assert out.status_code == 200 and "Max-Age=0" in refresh_cookie(out)
    for kept in (cookie, refreshed):  # a copy kept from before sign-out mints nothing
        with_cookie(browser, kept)
        assert assert_refused(browser.post("/console/auth/refresh", json={}), 401)["code"] == "not_signed_in"


def test_only_hashes_of_refresh_tokens_are_kept(browser, db):
    cookie = signed_in(browser, db)
    stored = db.execute("select token_hash from private.console_refresh_tokens").fetchall()
    assert stored and all(cookie[2:].encode() not in bytes(r["token_hash"]) for r in stored)


@respx.mock
def test_supabase_sign_out_without_the_access_token_still_revokes(browser):
    respx.post(f"{SUPABASE_URL}/auth/v1/token", params={"grant_type": "refresh_token"}).mock(
        return_value=httpx.Response(200, json=supabase_session(refresh="refresh-2")))
    logout = respx.post(f"{SUPABASE_URL}/auth/v1/logout").mock(return_value=httpx.Response(204))
    with_cookie(browser, "s.refresh-1")
    out = browser.post("/console/auth/sign-out", json={})  # the page lost its access token (a reload)
    assert out.status_code == 200 and "Max-Age=0" in refresh_cookie(out)
    assert logout.called and logout.calls.last.request.headers["Authorization"].startswith("Bearer ey")


# ---- any bytes in the cookie ------------------------------------------------------------------------------
def cookie_cases() -> dict[str, str]:
    """Cookie values as a WSGI server hands them over (every byte read as Latin-1)."""
    cases = {f"byte {b:#04x}": f"l.{chr(b) * 3}" for b in range(256) if chr(b) not in ";,= \t\r\n"}
    cases.update({f"s. byte {b:#04x}": f"s.{chr(b) * 3}" for b in range(0x80, 0x100, 7)})
    cases.update({
        "non-ASCII local": "l.\u00e9\u00e9\u00e9", "UTF-8 read as Latin-1": "l." + "\u00c3\u00a9" * 32,
        "64 hex, upper case": "l." + "A" * 64, "63 hex": "l." + "a" * 63, "65 hex": "l." + "a" * 65,
        "the old signed kind": "l.eyJzdWIiOiJ4In0.0000", "no kind": "abc", "empty kind": ".abc",
        "unknown kind": "x.abc", "long": "s." + "a" * 5000, "quoted": '"l.abc"', "kind only": "l.",
        "a supabase token with a dot": "s.abc.def", "NUL escaped": "l.\\x00",
    })
    return cases


COOKIES = cookie_cases()


@pytest.mark.parametrize("path", COOKIE_ENDPOINTS)
@pytest.mark.parametrize("value", COOKIES.values(), ids=COOKIES.keys())
@respx.mock(assert_all_called=False)
def test_any_bytes_in_the_refresh_cookie_are_never_a_500(browser, unchanged, path, value, respx_mock):
    respx_mock.route(host="project-ref.supabase.co").mock(return_value=httpx.Response(
        400, json={"code": "refresh_token_not_found", "msg": "Invalid Refresh Token"}))
    response = browser.post(path, json={}, environ_overrides={"HTTP_COOKIE": f"{REFRESH_COOKIE}={value}"})
    if path.endswith("sign-out"):
        assert response.status_code == 200 and "Max-Age=0" in refresh_cookie(response)
    else:
        assert assert_refused(response, 401)["code"] in ("not_signed_in", "sign_in_failed")
    assert response.headers["Cache-Control"] == "no-store"


# ---- any answer from Supabase Auth -------------------------------------------------------------------------
def session_with(**changes) -> dict:
    session = supabase_session()
    for key, value in changes.items():
        if value is KeyError:
            session.pop(key, None)
        else:
            session[key] = value
    return session


HUGE = "x" * 2_000_000
AUTH_ANSWERS = {
    "not JSON": httpx.Response(200, text="<html>gateway</html>"),
    "empty": httpx.Response(200, content=b""),
    "null": httpx.Response(200, json=None),
    "an array": httpx.Response(200, json=[1, 2]),
    "a string": httpx.Response(200, json="ok"),
    "an empty object": httpx.Response(200, json={}),
    "access_token a number": httpx.Response(200, json=session_with(access_token=12)),
    "access_token missing": httpx.Response(200, json=session_with(access_token=KeyError)),
    "access_token with spaces": httpx.Response(200, json=session_with(access_token="a b")),
    "refresh_token missing": httpx.Response(200, json=session_with(refresh_token=KeyError)),
    "refresh_token null": httpx.Response(200, json=session_with(refresh_token=None)),
    "refresh_token an object": httpx.Response(200, json=session_with(refresh_token={"a": 1})),
    "refresh_token non-ASCII": httpx.Response(200, json=session_with(refresh_token="r\u00e9fresh")),
    "expires_at text": httpx.Response(200, json=session_with(expires_at="soon")),
    "expires_in negative": httpx.Response(200, json=session_with(expires_in=-5)),
    "user a string": httpx.Response(200, json=session_with(user="someone")),
    "user missing": httpx.Response(200, json=session_with(user=KeyError)),
    "user's app_metadata a list": httpx.Response(200, json=session_with(
        user={**supabase_session()["user"], "app_metadata": [1]})),
    "huge, with a length": httpx.Response(200, json=session_with(padding=HUGE)),
    "huge, chunked": httpx.Response(200, content=iter([b'{"a": "' + b"x" * 65536] * 40 + [b'"}'])),
    "a 2 MB error text": httpx.Response(400, json={"code": "invalid_credentials", "msg": HUGE}),
    "an error text with control characters": httpx.Response(
        400, json={"code": "invalid\u0000credentials\n", "msg": "bad\r\nX-Injected: 1\u0007" + "\u202e" * 10}),
    "an error code of another type": httpx.Response(400, json={"code": {"a": 1}, "msg": ["x"]}),
    "a 400 that is not JSON": httpx.Response(400, text="<html>bad</html>"),
    "a 500 that is not JSON": httpx.Response(500, text="<html>oops</html>"),
    "a 502": httpx.Response(502, text=""),
    "a 429": httpx.Response(429, json={"msg": HUGE}),
    "a 302": httpx.Response(302, headers={"Location": "https://elsewhere.example"}),
    "a 204": httpx.Response(204),
}
UPSTREAM_FAILURES = {
    "connect refused": httpx.ConnectError("refused"),
    "read timeout": httpx.ReadTimeout("slow"),
    "connect timeout": httpx.ConnectTimeout("slow"),
    "a broken stream": httpx.RemoteProtocolError("peer closed"),
}
GRANTS = {"password": ("/console/auth/password", {"email": "operator@test.example", "password": "s3cret"}, None),
          "refresh_token": ("/console/auth/refresh", {}, "s.refresh-1")}


def answer_copy(answer: httpx.Response) -> httpx.Response:
    if answer.is_stream_consumed or not hasattr(answer, "_content"):
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=iter([b'{"a": "' + b"x" * 65536] * 40 + [b'"}']))
    return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def assert_bounded_refusal(response, statuses=(401, 429, 502, 503)):
    assert response.status_code in statuses, (response.status_code, response.data[:300])
    error = assert_refused(response) if response.status_code < 500 else response.get_json()["error"]
    assert set(error) == {"code", "message", "details", "requestId"}
    assert len(response.data) < ANSWER_LIMIT, len(response.data)
    assert all(c.isprintable() for c in error["message"]), error["message"]
    assert refresh_cookie(response) is None or "Max-Age=0" in refresh_cookie(response)
    assert response.headers["Cache-Control"] == "no-store"
    return error


@pytest.mark.parametrize("grant", GRANTS, ids=GRANTS.keys())
@pytest.mark.parametrize("answer", AUTH_ANSWERS.values(), ids=AUTH_ANSWERS.keys())
@respx.mock
def test_any_answer_of_supabase_auth_is_an_answer_in_the_error_shape(browser, unchanged, grant, answer):
    path, body, cookie = GRANTS[grant]
    respx.post(f"{SUPABASE_URL}/auth/v1/token", params={"grant_type": grant}).mock(
        side_effect=lambda request: answer_copy(answer))
    if cookie:
        with_cookie(browser, cookie)
    assert_bounded_refusal(browser.post(path, json=body))


@pytest.mark.parametrize("grant", GRANTS, ids=GRANTS.keys())
@pytest.mark.parametrize("failure", UPSTREAM_FAILURES.values(), ids=UPSTREAM_FAILURES.keys())
@respx.mock
def test_supabase_auth_unreachable_or_slow_is_a_503(browser, unchanged, grant, failure):
    path, body, cookie = GRANTS[grant]
    respx.post(f"{SUPABASE_URL}/auth/v1/token").mock(side_effect=failure)
    if cookie:
        with_cookie(browser, cookie)
    error = assert_bounded_refusal(browser.post(path, json=body), (503,))
    assert error["code"] == "auth_unavailable"


@respx.mock
@pytest.mark.parametrize("size, status", [(100_000, 401), (2_000_000, 502)], ids=["100 KB", "2 MB"])
def test_a_long_error_text_from_auth_reaches_the_caller_bounded(browser, size, status):
    """A long message is cut to 200 printable characters; an answer past 256 KB is not read."""
    respx.post(f"{SUPABASE_URL}/auth/v1/token").mock(return_value=httpx.Response(
        400, json={"code": "invalid_credentials", "msg": "Invalid login credentials " + "x" * size}))
    response = browser.post("/console/auth/password", json={"email": "operator@test.example", "password": "x"})
    error = assert_bounded_refusal(response, (status,))
    assert len(error["message"]) <= 250
    if status == 401:
        assert error["code"] == "sign_in_failed" and "Invalid login credentials" in error["message"]


@pytest.fixture
def silent_auth():
    """A Supabase Auth that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_slow_supabase_auth_holds_a_request_for_the_timeout_only(_session_connection, db, silent_auth):
    application = create_app(make_settings("postgresql://unused/unused", supabase_url=silent_auth,
                                           supabase_anon_key=ANON_KEY, jwt_issuer=None,
                                           supabase_auth_timeout_seconds=1.0),
                             database=TransactionalDatabase(_session_connection))
    try:
        started = time.monotonic()
        response = application.test_client().post("/console/auth/password",
                                                  json={"email": "operator@test.example", "password": "x"})
        assert time.monotonic() - started < 3
        assert_bounded_refusal(response, (503,))
    finally:
        application.extensions["console_auth_http"].close()


def test_the_auth_client_waits_five_seconds_by_default(console_app):
    from app.console.sign_in import auth_http

    timeout = auth_http(console_app).timeout
    assert (timeout.connect, timeout.read, timeout.write) == (5.0, 5.0, 5.0)
