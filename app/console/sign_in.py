"""The console's sessions: Supabase Auth (e-mail and password, refresh, sign-out) through the
supabase-auth client, and the local one-time-code sign-in (CONSOLE_LOCAL_SIGN_IN=on).

A session is an access token (for the page's memory) and a refresh cookie (HttpOnly). The
cookie says which kind it is: `s.<Supabase refresh token>` or `l.<local refresh token>`. Both are
rotated on every use and revoked by sign-out: Supabase Auth does it for its own; the local ones
are kept (as hashes) in private.console_refresh_tokens, where a spent token presented again
revokes its whole family.

Whatever a caller or Supabase Auth sends is read as untrusted: a cookie that is not of the
expected shape is "not signed in" (401), an answer from Auth of any other shape (not JSON, wrong
types, missing fields, huge) is 502, a slow one 503 after SUPABASE_AUTH_TIMEOUT_SECONDS, and Auth's
error text reaches the caller bounded (app.errors.bounded_text). Never a 500.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid

import httpx
from flask import Flask
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthError

from app.auth import Principal, mint_person_token
from app.errors import ApiError, bounded_text

log = logging.getLogger(__name__)
LOCAL_REFRESH_SECONDS = 12 * 3600
SUPABASE_REFRESH_SECONDS = 30 * 24 * 3600
# The shapes a refresh cookie's value can have: the local token (64 hex digits, made by the
# database) and a Supabase Auth refresh token (short URL-safe text). Anything else was not set
# by this service: not signed in.
LOCAL_TOKEN = re.compile(r"[0-9a-f]{64}")
SUPABASE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,512}")
ACCESS_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,8192}")
# The most of an answer from Supabase Auth the service reads (a session is a few KB).
AUTH_ANSWER_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class Session:
    access_token: str
    expires_at: int
    refresh_cookie: str
    refresh_max_age: int
    email: str | None
    role: str | None

    def public(self) -> dict:
        return {"accessToken": self.access_token, "expiresAt": self.expires_at,
                "person": {"email": self.email, "role": self.role}}


# -- Supabase Auth ------------------------------------------------------------------------------
class AuthAnswerTooLarge(Exception):
    """Supabase Auth's answer ran past AUTH_ANSWER_BYTES, or past its time."""


class BoundedStream(httpx.SyncByteStream):
    """An answer's body, read up to a size and a total time: a huge or dripping answer stops
    the read instead of holding the worker (httpx's timeouts are per read)."""

    def __init__(self, stream, limit: int, deadline: float):
        self.stream, self.limit, self.deadline = stream, limit, deadline

    def __iter__(self):
        seen = 0
        for chunk in self.stream:
            seen += len(chunk)
            if seen > self.limit:
                raise AuthAnswerTooLarge(f"more than {self.limit} bytes")
            if time.monotonic() > self.deadline:
                raise AuthAnswerTooLarge("the answer took too long to arrive")
            yield chunk

    def close(self):
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class BoundedTransport(httpx.HTTPTransport):
    """httpx's transport, every answer's body bounded (BoundedStream)."""

    def __init__(self, seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > AUTH_ANSWER_BYTES:
            response.close()
            raise AuthAnswerTooLarge(f"a body of {length} bytes")
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=BoundedStream(response.stream, AUTH_ANSWER_BYTES,
                                                   time.monotonic() + 2 * self.seconds))


def auth_http(app: Flask) -> httpx.Client:
    """The one HTTP client to Supabase Auth: short timeouts (connect and each read), bounded answers."""
    http = app.extensions.get("console_auth_http")
    if http is None:
        seconds = app.config["SETTINGS"].supabase_auth_timeout_seconds
        http = app.extensions["console_auth_http"] = httpx.Client(
            timeout=httpx.Timeout(seconds), transport=BoundedTransport(seconds))
    return http


def auth_client(app: Flask) -> SyncGoTrueClient:
    settings = app.config["SETTINGS"]
    if not (settings.supabase_url and settings.supabase_anon_key):
        raise ApiError(404, "password sign-in needs SUPABASE_URL and SUPABASE_ANON_KEY on this service", "not_found")
    return SyncGoTrueClient(url=f"{settings.supabase_url}/auth/v1", headers={"apikey": settings.supabase_anon_key},
                            auto_refresh_token=False, persist_session=False, http_client=auth_http(app))


def _bad_answer(what: str) -> ApiError:
    log.warning("Supabase Auth answered %s", what)
    return ApiError(502, "Supabase Auth gave an answer that cannot be read: try again shortly", "auth_bad_answer")


def _supabase_session(response) -> Session:
    """A session from Supabase Auth's answer, each part checked: what is missing or of another
    type is a 502, never a 500."""
    session = getattr(response, "session", None)
    if session is None:  # e.g. the address is not confirmed yet
        raise ApiError(401, "Supabase Auth gave no session for this sign-in", "sign_in_failed")
    access, refresh_token = getattr(session, "access_token", None), getattr(session, "refresh_token", None)
    if not isinstance(access, str) or not ACCESS_TOKEN.fullmatch(access):
        raise _bad_answer("a session without a usable access token")
    if not isinstance(refresh_token, str) or not SUPABASE_TOKEN.fullmatch(refresh_token):
        raise _bad_answer("a session without a usable refresh token")
    expires_at, expires_in = getattr(session, "expires_at", None), getattr(session, "expires_in", None)
    if not isinstance(expires_at, int) or isinstance(expires_at, bool) or not 0 < expires_at < 2 ** 31:
        expires_at = None
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not 0 < expires_in <= 86_400 * 366:
        expires_in = 3600
    user = getattr(session, "user", None)
    metadata = getattr(user, "app_metadata", None) if user is not None else None
    email = getattr(user, "email", None) if user is not None else None
    role = metadata.get("role") if isinstance(metadata, dict) else None
    return Session(access, int(expires_at or time.time() + expires_in), "s." + refresh_token, SUPABASE_REFRESH_SECONDS,
                   email if isinstance(email, str) else None, role if isinstance(role, str) else None)


def _auth_failure(error: AuthError, what: str) -> ApiError:
    status = getattr(error, "status", None)
    if isinstance(error, AuthApiError) and status in (400, 401, 403, 422):
        code = error.code if isinstance(error.code, str) else None
        return ApiError(401, f"{what}: {bounded_text(error.message)}", "sign_in_failed",
                        {"authCode": bounded_text(code, 60) if code else None})
    if isinstance(error, AuthApiError) and status == 429:
        return ApiError(429, "Supabase Auth is limiting sign-ins: try again shortly", "rate_limited")
    log.warning("Supabase Auth failed: %s", bounded_text(error, 500))
    return ApiError(503, "Supabase Auth could not be reached", "auth_unavailable")


def calling_auth(app: Flask, call, what: str) -> Session:
    """Run one call to Supabase Auth and read its session: every way it can fail is an answer
    in the one error shape (401 refused, 429, 502 an unreadable answer, 503 unreachable or slow)."""
    try:
        return _supabase_session(call(auth_client(app)))
    except ApiError:
        raise
    except AuthError as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, AuthAnswerTooLarge):
            raise _bad_answer(str(cause)) from None
        raise _auth_failure(error, what) from None
    except httpx.TimeoutException:
        raise ApiError(503, "Supabase Auth did not answer in time", "auth_unavailable") from None
    except httpx.HTTPError:
        raise ApiError(503, "Supabase Auth could not be reached", "auth_unavailable") from None
    except AuthAnswerTooLarge as error:
        raise _bad_answer(str(error)) from None
    except Exception as error:  # noqa: BLE001 (an answer of another shape: not JSON, wrong types, ...)
        raise _bad_answer(f"{type(error).__name__}: {bounded_text(error, 300)}") from None


def with_password(app: Flask, email: str, password: str) -> Session:
    return calling_auth(app, lambda client: client.sign_in_with_password({"email": email, "password": password}),
                        "e-mail or password not accepted")


# -- local ------------------------------------------------------------------------------------
def _local_session(app: Flask, user_id: uuid.UUID, refresh_token: str, refresh_expires: int) -> Session:
    """An access token for a person who still counts, claims as Supabase Auth issues them, and
    the cookie for the family's next refresh token."""
    settings = app.config["SETTINGS"]
    database = app.extensions["database"]
    row = database.single(Principal.service("console-sign-in"), """
        select u.id, u.email, u.raw_app_meta_data as app_metadata, p.is_active as person_active,
               coalesce(c.is_active, true) as client_active
          from auth.users u
          left join public.user_profiles p on p.id = u.id
          left join public.clients c on c.id = p.client_id
         where u.id = %s""", (user_id,))
    if row is None or not row["person_active"] or not row["client_active"]:
        raise ApiError(401, "this person can no longer sign in", "person_inactive")
    now = int(time.time())
    token, claims = mint_person_token(settings.supabase_jwt_secret, row["id"], row["email"], row["app_metadata"],
                                      expires_in=settings.console_local_token_seconds, issuer=settings.jwt_issuer)
    return Session(token, claims["exp"], "l." + refresh_token, max(refresh_expires - now, 0), row["email"],
                   (row["app_metadata"] or {}).get("role"))


def with_code(app: Flask, code: str) -> Session:
    database = app.extensions["database"]
    principal = Principal.service("console-sign-in")
    row = database.single(principal, "select public.redeem_console_sign_in_code(%s) as user_id", (code,), writes=True)
    if row is None or row["user_id"] is None:
        raise ApiError(401, "this sign-in link is not valid: it was used already, it expired, or it never existed;"
                            " print a new one with: python3 scripts/local.py links", "sign_in_failed")
    issued = database.single(principal, "select public.issue_console_refresh_token(%s, %s) as token",
                             (row["user_id"], LOCAL_REFRESH_SECONDS), writes=True)
    return _local_session(app, row["user_id"], issued["token"], int(time.time()) + LOCAL_REFRESH_SECONDS)


def _local_refresh(app: Flask, token: str) -> Session:
    """Spend a local refresh token for the next of its family (a spent one revokes the family)."""
    database = app.extensions["database"]
    row = database.single(Principal.service("console-sign-in"),
                          "select user_id, token, extract(epoch from expires_at)::bigint as expires"
                          " from public.rotate_console_refresh_token(%s)", (token,), writes=True)
    if row is None or row["user_id"] is None:
        raise ApiError(401, "the session ended: sign in again", "not_signed_in")
    return _local_session(app, row["user_id"], row["token"], int(row["expires"]))


# -- both -------------------------------------------------------------------------------------
def read_cookie(cookie) -> tuple[str, str] | None:
    """(kind, token) of a refresh cookie of a shape this service sets; None for anything else
    (any byte a caller can put in a cookie)."""
    if not isinstance(cookie, str) or len(cookie) > 600:
        return None
    kind, _, value = cookie.partition(".")
    if kind == "l" and LOCAL_TOKEN.fullmatch(value):
        return kind, value
    if kind == "s" and SUPABASE_TOKEN.fullmatch(value):
        return kind, value
    return None


def refresh(app: Flask, cookie: str) -> Session:
    read = read_cookie(cookie)
    if read is not None and read[0] == "l" and app.config["SETTINGS"].console_local_sign_in:
        return _local_refresh(app, read[1])
    if read is not None and read[0] == "s":
        return calling_auth(app, lambda client: client.refresh_session(read[1]), "the session ended")
    raise ApiError(401, "the session ended: sign in again", "not_signed_in")


def sign_out(app: Flask, cookie: str, authorization: str) -> None:
    """Revoke the session server-side, whatever the caller does with its cookie afterwards.
    Local: the refresh token's family. Supabase: the session's refresh tokens, with its access
    token (the page's, or one the refresh cookie gets for the purpose)."""
    read = read_cookie(cookie)
    if read is None:
        return
    kind, value = read
    if kind == "l":
        app.extensions["database"].single(Principal.service("console-sign-in"),
                                          "select public.revoke_console_refresh_token(%s)", (value,), writes=True)
        return
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    try:
        if scheme.lower() != "bearer" or not ACCESS_TOKEN.fullmatch(token):
            token = calling_auth(app, lambda client: client.refresh_session(value), "the session ended").access_token
        auth_client(app).admin.sign_out(token, "local")
    except (AuthError, httpx.HTTPError, ApiError, AuthAnswerTooLarge) as error:
        log.info("Supabase sign-out did not go through (%s); the cookie is cleared anyway", bounded_text(error))
