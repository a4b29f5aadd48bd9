"""The console's sessions: Supabase Auth (e-mail and password, refresh, sign-out) through the
supabase-auth client, and the local one-time-code sign-in (CONSOLE_LOCAL_SIGN_IN=on).

A session is an access token (for the page's memory) and a refresh cookie (HttpOnly). The
cookie says which kind it is: `s.<Supabase refresh token>` or `l.<signed local refresh>`.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import time
import uuid

import httpx
from flask import Flask
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthError

from app.auth import Principal, mint_person_token
from app.errors import ApiError

log = logging.getLogger(__name__)
LOCAL_REFRESH_SECONDS = 12 * 3600
SUPABASE_REFRESH_SECONDS = 30 * 24 * 3600


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
def auth_client(app: Flask) -> SyncGoTrueClient:
    settings = app.config["SETTINGS"]
    if not (settings.supabase_url and settings.supabase_anon_key):
        raise ApiError(404, "password sign-in needs SUPABASE_URL and SUPABASE_ANON_KEY on this service", "not_found")
    http = app.extensions.get("console_auth_http")
    if http is None:
        http = app.extensions["console_auth_http"] = httpx.Client(timeout=10)
    return SyncGoTrueClient(url=f"{settings.supabase_url}/auth/v1", headers={"apikey": settings.supabase_anon_key},
                            auto_refresh_token=False, persist_session=False, http_client=http)


def _supabase_session(response) -> Session:
    session = response.session
    if session is None:  # e.g. the address is not confirmed yet
        raise ApiError(401, "Supabase Auth gave no session for this sign-in", "sign_in_failed")
    metadata = session.user.app_metadata if session.user else {}
    return Session(session.access_token, int(session.expires_at or time.time() + (session.expires_in or 3600)),
                   "s." + session.refresh_token, SUPABASE_REFRESH_SECONDS,
                   session.user.email if session.user else None, (metadata or {}).get("role"))


def _auth_failure(error: AuthError, what: str) -> ApiError:
    status = getattr(error, "status", None)
    if isinstance(error, AuthApiError) and status in (400, 401, 403, 422):
        return ApiError(401, f"{what}: {error.message}", "sign_in_failed", {"authCode": error.code})
    if isinstance(error, AuthApiError) and status == 429:
        return ApiError(429, "Supabase Auth is limiting sign-ins: try again shortly", "rate_limited")
    log.warning("Supabase Auth failed: %s", error)
    return ApiError(503, "Supabase Auth could not be reached", "auth_unavailable")


def with_password(app: Flask, email: str, password: str) -> Session:
    try:
        return _supabase_session(auth_client(app).sign_in_with_password({"email": email, "password": password}))
    except AuthError as error:
        raise _auth_failure(error, "e-mail or password not accepted") from None
    except httpx.HTTPError:
        raise ApiError(503, "Supabase Auth could not be reached", "auth_unavailable") from None


# -- local ------------------------------------------------------------------------------------
def _local_secret(app: Flask) -> bytes:
    secret = app.config["SETTINGS"].supabase_jwt_secret
    return hashlib.sha256(b"console-refresh:" + secret.encode()).digest()


def _sign(app: Flask, payload: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    mac = hmac.new(_local_secret(app), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _unsign(app: Flask, value: str) -> dict | None:
    body, _, mac = value.rpartition(".")
    if not body or not hmac.compare_digest(mac, hmac.new(_local_secret(app), body.encode(), hashlib.sha256).hexdigest()):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) and payload.get("exp", 0) > time.time() else None


def _local_session(app: Flask, user_id: uuid.UUID, refresh_expires: int | None = None) -> Session:
    """An access token for a person who still counts, claims as Supabase Auth issues them."""
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
    refresh_exp = refresh_expires or now + LOCAL_REFRESH_SECONDS
    cookie = "l." + _sign(app, {"sub": str(row["id"]), "exp": refresh_exp})
    return Session(token, claims["exp"], cookie, max(refresh_exp - now, 0), row["email"],
                   (row["app_metadata"] or {}).get("role"))


def with_code(app: Flask, code: str) -> Session:
    database = app.extensions["database"]
    row = database.single(Principal.service("console-sign-in"),
                          "select public.redeem_console_sign_in_code(%s) as user_id", (code,), writes=True)
    if row is None or row["user_id"] is None:
        raise ApiError(401, "this sign-in link is not valid: it was used already, it expired, or it never existed;"
                            " print a new one with: python3 scripts/local.py links", "sign_in_failed")
    return _local_session(app, row["user_id"])


# -- both -------------------------------------------------------------------------------------
def refresh(app: Flask, cookie: str) -> Session:
    kind, _, value = cookie.partition(".")
    if kind == "l" and app.config["SETTINGS"].console_local_sign_in:
        payload = _unsign(app, value)
        if payload is None:
            raise ApiError(401, "the session ended: sign in again", "not_signed_in")
        return _local_session(app, uuid.UUID(payload["sub"]), refresh_expires=int(payload["exp"]))
    if kind == "s":
        try:
            return _supabase_session(auth_client(app).refresh_session(value))
        except AuthError as error:
            raise _auth_failure(error, "the session ended") from None
        except httpx.HTTPError:
            raise ApiError(503, "Supabase Auth could not be reached", "auth_unavailable") from None
    raise ApiError(401, "the session ended: sign in again", "not_signed_in")


def sign_out(app: Flask, cookie: str, authorization: str) -> None:
    """Supabase: revoke the session's refresh tokens (with its access token); local: nothing
    to revoke beyond the cookie, which the caller clears."""
    kind, _, _value = cookie.partition(".")
    scheme, _, token = authorization.partition(" ")
    if kind == "s" and scheme.lower() == "bearer" and token:
        try:
            auth_client(app).admin.sign_out(token.strip(), "local")
        except (AuthError, httpx.HTTPError, ApiError) as error:
            log.info("Supabase sign-out did not go through (%s); the cookie is cleared anyway", error)
