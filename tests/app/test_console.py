"""The console's page, assets and sign-in (app/console/): what a browser is served, the local
one-time-code sign-in (off unless turned on), and e-mail and password sign-in through Supabase
Auth, whose API is stood in for with respx (it cannot run here)."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import httpx
import jwt
import pytest
import respx

from app import create_app
from app.config import ConfigError, Settings
from app.console import CONTENT_SECURITY_POLICY, REFRESH_COOKIE, STATIC
from tests.db.world import PEOPLE
from tests.service_fixtures import TransactionalDatabase, make_settings
from tests.support import JWT_SECRET, mint_token

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "app" / "console" / "templates" / "console" / "index.html"
SUPABASE_URL = "https://project-ref.supabase.co"
ANON_KEY = "anon-key-for-tests"
AUTH_ENDPOINTS = ["/console/auth/password", "/console/auth/code", "/console/auth/refresh", "/console/auth/sign-out"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def console_app(_session_connection, db):
    """The service with both sign-ins on: local codes and Supabase Auth (stood in for)."""
    application = create_app(make_settings("postgresql://unused/unused", console_local_sign_in=True,
                                           supabase_url=SUPABASE_URL, supabase_anon_key=ANON_KEY,
                                           jwt_issuer=None),
                             database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    yield application
    http = application.extensions.get("console_auth_http")
    if http is not None:
        http.close()


@pytest.fixture
def browser(console_app):
    return console_app.test_client()


def issue_code(db, email="operator@test.example", ttl=300) -> str:
    return db.execute("select public.issue_console_sign_in_code(%s, %s) as code", (email, ttl)).fetchone()["code"]


def refresh_cookie(response) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(REFRESH_COOKIE + "="):
            return header
    return None


# ---- the page and its files ----------------------------------------------------------------------
def test_the_page_is_served_with_a_strict_policy_and_no_inline_script(client):
    response = client.get("/console/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'self'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts == [""]  # one module, loaded from a file
    assert not re.search(r"\son[a-z]+\s*=", page) and "style=" not in page
    assert client.get("/").headers["Location"].endswith("/console/")


def test_local_sign_in_is_off_unless_turned_on(client, db):
    """The session app is configured as by default: no local sign-in, no code accepted."""
    code = issue_code(db)
    response = client.post("/console/auth/code", json={"code": code})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert refresh_cookie(response) is None
    assert db.execute("select used_at from private.console_sign_in_codes").fetchone()["used_at"] is None
    assert Settings.from_env({"DATABASE_URL": "postgresql://x/y", "SUPABASE_JWT_SECRET": JWT_SECRET}).console_local_sign_in \
        is False
    assert 'data-sign-in=""' in client.get("/console/").get_data(as_text=True)


@pytest.mark.parametrize("env, problem", [
    ({"CONSOLE_LOCAL_SIGN_IN": "yes please"}, "CONSOLE_LOCAL_SIGN_IN must be on or off"),
    ({"CONSOLE_LOCAL_SIGN_IN": "on", "SUPABASE_JWT_SECRET": None, "SUPABASE_URL": SUPABASE_URL},
     "CONSOLE_LOCAL_SIGN_IN=on mints HS256 tokens"),
])
def test_local_sign_in_settings_are_checked_at_start(env, problem):
    base = {"DATABASE_URL": "postgresql://x/y", "SUPABASE_JWT_SECRET": JWT_SECRET}
    merged = {k: v for k, v in {**base, **env}.items() if v is not None}
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Settings.from_env(merged)


def test_every_file_of_the_console_is_local_small_and_writes_text_only(client):
    files = [path for path in STATIC.rglob("*") if path.is_file()]
    scripts = [path for path in files if path.suffix == ".js"]
    assert scripts and sum(path.stat().st_size for path in scripts) < 200 * 1024
    for path in files + [TEMPLATE]:
        text = path.read_text()
        # Nothing from another origin: no CDN at run time.
        for url in re.findall(r"https?://[^\s'\"`)]+", text):
            assert urlparse(url).hostname in (None, "www.w3.org"), (path.name, url)  # the SVG namespace only
        # Values go into the page as text: no HTML parsing of data anywhere.
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "setAttribute('on", 'setAttribute("on'):
            assert sink not in text, (path.name, sink)
    for path in scripts:
        relative = path.relative_to(STATIC).as_posix()
        response = client.get(f"/console/static/{relative}")
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/javascript")
        # Every module it imports is there.
        for imported in re.findall(r"from '(\.[^']+)'", path.read_text()):
            assert (path.parent / imported).resolve().is_file(), (relative, imported)
    assert client.get("/console/static/../../config.py").status_code == 404


# ---- local sign-in -------------------------------------------------------------------------------------
def test_a_code_signs_the_person_in_once(browser, db, console_app):
    code = issue_code(db)
    assert len(code) >= 60
    stored = db.execute("select code_hash, user_id from private.console_sign_in_codes").fetchall()
    assert [r["user_id"] for r in stored] == [PEOPLE["operator"].user_id]
    assert code.encode() not in bytes(stored[0]["code_hash"])  # only its hash is kept

    response = browser.post("/console/auth/code", json={"code": code})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    claims = jwt.decode(body["accessToken"], JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == str(PEOPLE["operator"].user_id) and claims["role"] == "authenticated"
    assert body["expiresAt"] == claims["exp"] and body["person"]["email"] == "operator@test.example"
    cookie = refresh_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/auth" in cookie
    assert body["accessToken"] not in cookie and "Cache-Control" in response.headers
    # The token works on the API like any other.
    listed = browser.get("/api/workflows", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert listed.status_code == 200
    # The same code again: refused, and nothing more is issued.
    again = browser.post("/console/auth/code", json={"code": code})
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "sign_in_failed"
    assert refresh_cookie(again) is None


@pytest.mark.parametrize("case", ["expired", "unknown", "deactivated", "empty", "not text", "too long"])
def test_a_code_that_is_not_good_signs_nobody_in(browser, db, case):
    code = issue_code(db)
    expected = 401
    if case == "expired":
        db.execute("update private.console_sign_in_codes set expires_at = now() - interval '1 second'")
    elif case == "unknown":
        code = code[:-1] + ("0" if code[-1] != "0" else "1")
    elif case == "deactivated":
        db.execute("update public.user_profiles set is_active = false where id = %s", (PEOPLE["operator"].user_id,))
    elif case == "empty":
        code, expected = "", 422
    elif case == "not text":
        code, expected = 12345, 422
    elif case == "too long":
        code, expected = "x" * 201, 422
    response = browser.post("/console/auth/code", json={"code": code})
    assert response.status_code == expected, response.get_json()
    assert set(response.get_json()["error"]) == {"code", "message", "details", "requestId"}
    assert refresh_cookie(response) is None


def test_a_code_is_issued_only_for_a_known_person_and_a_short_time(db):
    assert issue_code(db, "nobody@test.example") is None
    for ttl in (0, 9, 86401):
        with pytest.raises(Exception, match="between 10 seconds and a day"), db.transaction():
            issue_code(db, ttl=ttl)
    for role in ("anon", "authenticated"):
        with pytest.raises(Exception, match="permission denied"), db.transaction():
            db.execute(f"set local role {role}")
            issue_code(db)


def test_the_refresh_cookie_gives_a_new_token_and_a_tampered_one_nothing(browser, db):
    signed_in = browser.post("/console/auth/code", json={"code": issue_code(db)})
    refreshed = browser.post("/console/auth/refresh", json={})
    assert refreshed.status_code == 200
    assert refreshed.get_json()["person"] == signed_in.get_json()["person"]
    assert refresh_cookie(refreshed) is not None
    browser.set_cookie(REFRESH_COOKIE, "l.eyJzdWIiOiJ4In0.0000", path="/console/auth")
    tampered = browser.post("/console/auth/refresh", json={})
    assert tampered.status_code == 401 and "Max-Age=0" in refresh_cookie(tampered)
    assert browser.post("/console/auth/refresh", json={}).status_code == 401  # the cookie is gone


def test_a_refresh_after_deactivation_is_refused(browser, db):
    browser.post("/console/auth/code", json={"code": issue_code(db)})
    db.execute("update public.user_profiles set is_active = false where id = %s", (PEOPLE["operator"].user_id,))
    response = browser.post("/console/auth/refresh", json={})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "person_inactive"


@pytest.mark.parametrize("path", AUTH_ENDPOINTS)
def test_every_sign_in_call_must_be_json_from_this_origin(browser, db, path):
    """A form on another site can post neither a cross-origin request nor a form body."""
    cross = browser.post(path, json={"code": "x", "email": "a@b.c", "password": "p"},
                         headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.get_json()["error"]["code"] == "cross_origin"
    form = browser.post(path, data={"code": "x", "email": "a@b.c", "password": "p"})
    assert form.status_code == 415 and form.get_json()["error"]["code"] == "unsupported_media_type"
    not_object = browser.post(path, data="[1]", headers=JSON)
    assert not_object.status_code == 422 and not_object.get_json()["error"]["details"] == {"json": {"_schema": ["send a JSON object"]}}
    for response in (cross, form, not_object):
        assert refresh_cookie(response) is None
    assert db.execute("select count(*) as n from private.console_sign_in_codes").fetchone()["n"] == 0


# ---- Supabase Auth --------------------------------------------------------------------------------------
def supabase_session(person: str = "operator", refresh: str = "refresh-1") -> dict:
    """A session as Supabase Auth's /token answers it."""
    token = mint_token(PEOPLE[person])
    claims = jwt.decode(token, options={"verify_signature": False})
    return {"access_token": token, "token_type": "bearer", "expires_in": 3600, "expires_at": claims["exp"],
            "refresh_token": refresh,
            "user": {"id": claims["sub"], "aud": "authenticated", "role": "authenticated",
                     "email": "operator@test.example", "app_metadata": claims["app_metadata"], "user_metadata": {},
                     "created_at": "2026-01-01T00:00:00Z"}}


@respx.mock
def test_password_sign_in_goes_through_supabase_auth(browser):
    route = respx.post(f"{SUPABASE_URL}/auth/v1/token", params={"grant_type": "password"}).mock(
        return_value=httpx.Response(200, json=supabase_session()))
    response = browser.post("/console/auth/password", json={"email": "operator@test.example", "password": "s3cret"})
    assert response.status_code == 200, response.get_json()
    sent = route.calls.last.request
    assert sent.headers["apikey"] == ANON_KEY
    assert httpx.Response(200, content=sent.content).json()["email"] == "operator@test.example"
    body = response.get_json()
    assert body["person"] == {"email": "operator@test.example", "role": "hil_operator"}
    assert "refresh-1" not in response.get_data(as_text=True)  # the refresh token stays in the cookie
    assert refresh_cookie(response).startswith(f"{REFRESH_COOKIE}=s.refresh-1;")
    assert browser.get("/api/workflows", headers={"Authorization": f"Bearer {body['accessToken']}"}).status_code == 200


@respx.mock
@pytest.mark.parametrize("status, auth_body, expected, code", [
    (400, {"code": "invalid_credentials", "msg": "Invalid login credentials"}, 401, "sign_in_failed"),
    (422, {"code": "email_not_confirmed", "msg": "Email not confirmed"}, 401, "sign_in_failed"),
    (429, {"code": "over_request_rate_limit", "msg": "too many"}, 429, "rate_limited"),
    (500, {"msg": "boom"}, 503, "auth_unavailable"),
])
def test_password_sign_in_failures_are_clear(browser, status, auth_body, expected, code):
    respx.post(f"{SUPABASE_URL}/auth/v1/token").mock(return_value=httpx.Response(status, json=auth_body))
    response = browser.post("/console/auth/password", json={"email": "operator@test.example", "password": "wrong"})
    assert response.status_code == expected and response.get_json()["error"]["code"] == code
    assert refresh_cookie(response) is None


@respx.mock
def test_supabase_auth_unreachable_is_a_503(browser):
    respx.post(f"{SUPABASE_URL}/auth/v1/token").mock(side_effect=httpx.ConnectError("refused"))
    response = browser.post("/console/auth/password", json={"email": "operator@test.example", "password": "x"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "auth_unavailable"


@respx.mock
def test_a_supabase_session_is_refreshed_and_signed_out(browser):
    respx.post(f"{SUPABASE_URL}/auth/v1/token", params={"grant_type": "password"}).mock(
        return_value=httpx.Response(200, json=supabase_session(refresh="refresh-1")))
    refreshing = respx.post(f"{SUPABASE_URL}/auth/v1/token", params={"grant_type": "refresh_token"}).mock(
        return_value=httpx.Response(200, json=supabase_session(refresh="refresh-2")))
    logout = respx.post(f"{SUPABASE_URL}/auth/v1/logout").mock(return_value=httpx.Response(204))
    signed_in = browser.post("/console/auth/password", json={"email": "operator@test.example", "password": "s3cret"})
    refreshed = browser.post("/console/auth/refresh", json={})
    assert refreshed.status_code == 200
    assert httpx.Response(200, content=refreshing.calls.last.request.content).json() == {"refresh_token": "refresh-1"}
    assert refresh_cookie(refreshed).startswith(f"{REFRESH_COOKIE}=s.refresh-2;")  # rotated
    token = refreshed.get_json()["accessToken"]
    out = browser.post("/console/auth/sign-out", json={}, headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 200 and "Max-Age=0" in refresh_cookie(out)
    assert logout.calls.last.request.headers["Authorization"] == f"Bearer {token}"
    assert browser.post("/console/auth/refresh", json={}).status_code == 401
    assert signed_in.status_code == 200


@respx.mock
def test_a_refresh_token_supabase_no_longer_accepts_ends_the_session(browser):
    browser.set_cookie(REFRESH_COOKIE, "s.revoked", path="/console/auth")
    respx.post(f"{SUPABASE_URL}/auth/v1/token").mock(return_value=httpx.Response(
        400, json={"code": "refresh_token_not_found", "msg": "Invalid Refresh Token"}))
    response = browser.post("/console/auth/refresh", json={})
    assert response.status_code == 401 and "Max-Age=0" in refresh_cookie(response)


def test_password_sign_in_is_off_without_the_supabase_settings(client):
    response = client.post("/console/auth/password", json={"email": "a@b.example", "password": "x"})
    assert response.status_code == 404 and "SUPABASE_ANON_KEY" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("body, field", [({}, "email"), ({"email": "a@b.example"}, "password"),
                                         ({"email": "a@b.example", "password": ""}, "password"),
                                         ({"email": ["a"], "password": "x"}, "email")])
def test_password_sign_in_names_what_is_missing(browser, body, field):
    response = browser.post("/console/auth/password", json=body)
    assert response.status_code == 422 and field in response.get_json()["error"]["details"]["json"]


def test_sign_in_tries_are_limited_per_address(_session_connection, db):
    application = create_app(make_settings("postgresql://unused/unused", console_local_sign_in=True,
                                           rate_limits_enabled=True),
                             database=TransactionalDatabase(_session_connection))
    browser = application.test_client()
    responses = [browser.post("/console/auth/code", json={"code": f"guess-{n}"}) for n in range(21)]
    answers = [response.status_code for response in responses]
    assert answers[:20] == [401] * 20 and answers[20] == 429
    refused = responses[20].get_json()["error"]
    assert refused["code"] == "rate_limited" and refused["message"].startswith("too many console sign-in requests")
    assert answers[20] == 429 and browser.get("/console/").status_code == 200  # the page itself is not limited
