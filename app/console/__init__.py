"""The HIL console: the web page operators, managers and client users work in (docs/console.md).

The page is a shell (one template) and plain ES modules under static/; everything it shows it
reads through the public API and /ws with the signed-in person's access token, under the same
RLS as any other client. What this blueprint adds is sign-in:

- POST /console/auth/password: e-mail and password through Supabase Auth (proxied with the
  supabase-auth client, so the page never talks to another origin);
- POST /console/auth/code: a one-time code from a local sign-in link (scripts/local.py), only
  when CONSOLE_LOCAL_SIGN_IN=on;
- POST /console/auth/refresh and /console/auth/sign-out.

The access token is returned in the body and kept in the page's memory only; the refresh token
lives in an HttpOnly, SameSite=Strict cookie scoped to /console/auth, which script cannot read
and other sites cannot send. Every auth call must be JSON from this origin (Content-Type and
Origin checked), so a form on another site cannot post one.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import urlparse

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request, send_from_directory

from app.console import sign_in
from app.errors import ApiError
from app.inputs import json_body

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")

# No inline script or style, nothing from another origin; the socket to this host only.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self' ws: wss:",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
REFRESH_COOKIE = "rexera_console_refresh"
REFRESH_COOKIE_PATH = "/console/auth"


@bp.after_request
def secure(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/console/auth/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/", methods=["GET"])
def page():
    """The console's one page; the modules route inside it (#/queue, #/workflows/<id>, ...)."""
    settings = current_app.config["SETTINGS"]
    methods = []
    if settings.supabase_url and settings.supabase_anon_key:
        methods.append("password")
    if settings.console_local_sign_in:
        methods.append("code")
    realtime = "off" if settings.serverless else "on"
    response = current_app.make_response(render_template(
        "console/index.html", sign_in=" ".join(methods), realtime=realtime, version=asset_version()))
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/static/<path:filename>", methods=["GET"])
def static(filename):
    response = send_from_directory(STATIC, filename, max_age=0)
    if filename.endswith(".js"):
        response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    return response


def asset_version() -> str:
    """A digest of the static files, so a deploy is never served half from a stale cache."""
    cached = current_app.extensions.get("console_asset_version")
    if cached is None:
        digest = hashlib.sha256()
        for path in sorted(STATIC.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        cached = current_app.extensions["console_asset_version"] = digest.hexdigest()[:12]
    return cached


# -- sign-in ----------------------------------------------------------------------------------
def json_from_this_origin() -> dict:
    """The body of an auth call, which must be JSON sent by this origin's page."""
    origin = request.headers.get("Origin")
    if origin is not None and urlparse(origin).netloc != request.host:
        raise ApiError(403, "sign-in calls are accepted from this service's own console only", "cross_origin")
    return json_body()  # parsed and checked as every body is (app/inputs.py)


def text_field(body: dict, name: str, max_length: int = 500) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"{name} is required", "validation_error", {"json": {name: ["required"]}})
    if len(value) > max_length:
        raise ApiError(422, f"{name} is too long", "validation_error",
                       {"json": {name: [f"at most {max_length} characters"]}})
    return value


def session_response(session: sign_in.Session):
    """The access token for the page's memory; the refresh token into its cookie."""
    response = jsonify(session.public())
    response.set_cookie(REFRESH_COOKIE, session.refresh_cookie, max_age=session.refresh_max_age,
                        path=REFRESH_COOKIE_PATH, httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.route("/auth/password", methods=["POST"])
def password():
    """E-mail and password, checked by Supabase Auth."""
    body = json_from_this_origin()
    email = text_field(body, "email", 320)
    secret = text_field(body, "password", 1000)
    return session_response(sign_in.with_password(current_app, email, secret))


@bp.route("/auth/code", methods=["POST"])
def code():
    """A one-time code from a local sign-in link (CONSOLE_LOCAL_SIGN_IN=on only)."""
    if not current_app.config["SETTINGS"].console_local_sign_in:
        raise ApiError(404, "local sign-in is off on this service", "not_found")
    body = json_from_this_origin()
    return session_response(sign_in.with_code(current_app, text_field(body, "code", 200)))


@bp.route("/auth/refresh", methods=["POST"])
def refresh():
    """A fresh access token for the refresh cookie (rotated on the way)."""
    json_from_this_origin()
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise ApiError(401, "not signed in", "not_signed_in")
    try:
        return session_response(sign_in.refresh(current_app, cookie))
    except ApiError as error:
        if error.status == 401:
            response = jsonify({"error": {"code": error.code, "message": error.message, "details": error.details,
                                          "requestId": g.get("request_id")}})
            response.status_code = 401
            response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
            return response
        raise


@bp.route("/auth/sign-out", methods=["POST"])
def sign_out():
    """Ends the session: Supabase revokes its refresh tokens; the cookie is cleared."""
    json_from_this_origin()
    cookie = request.cookies.get(REFRESH_COOKIE)
    if cookie:
        sign_in.sign_out(current_app, cookie, request.headers.get("Authorization", ""))
    response = jsonify({"signedOut": True})
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.route("/", methods=["GET"])
    def root():
        from flask import redirect

        return redirect("/console/", code=302)

    limiter = app.extensions.get("limiter")
    if limiter is not None:
        from app.ratelimits import remote_address

        # Guessing passwords or codes: 20 tries a minute per client address, shared by every
        # worker and instance (app/ratelimits.py).
        limiter.limit("20/minute", key_func=remote_address, scope="console-sign-in",
                      exempt_when=lambda: not request.path.startswith(("/console/auth/password", "/console/auth/code")))(bp)
