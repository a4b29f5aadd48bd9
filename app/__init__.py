"""Rexera companion backend: business layer of the dual-layer workflow system."""
from __future__ import annotations

import re
import time
import uuid

from flask import Flask, g, request

from app.config import Settings

# /api/internal/ authenticates with CRON_SECRET (app/api/internal.py), not as a person or agent.
PUBLIC_PATHS = ("/api/health", "/api/openapi.json", "/api/docs", "/metrics", "/api/internal/")
# The one webhook a person calls (with their own token), authenticated like the API.
CLIENT_MESSAGE_PATH = "/webhooks/inbound/client-message"


def create_app(settings: Settings | None = None, database=None) -> Flask:
    """Build the service. Settings come from the environment and the database is a new pool,
    unless given (tests)."""
    app = Flask(__name__)
    app.config["SETTINGS"] = settings or Settings.from_env()
    # One byte past the limit: a body sent in chunks is cut there by Werkzeug without a word, and
    # app.inputs refuses what is longer than the limit (413, as for a Content-Length over it).
    app.config["MAX_CONTENT_LENGTH"] = app.config["SETTINGS"].max_body_bytes + 1
    app.json.sort_keys = False

    from app import api, auth, db, errors, inputs, observability, ratelimits, realtime
    from app.errors import ApiError

    errors.init_app(app)
    auth.init_app(app)
    db.init_app(app, database)
    api.init_app(app)
    from app.webhooks import inbound as inbound_webhooks, n8n as n8n_webhooks

    n8n_webhooks.init_app(app)
    inbound_webhooks.init_app(app)

    @app.before_request
    def identify_request():
        g.started = time.perf_counter()  # every request is timed, those refused here included
        # The request id is the service's own, always: a caller cannot choose the id its error
        # bodies, log lines and audit rows carry (nor take another request's). A caller's own id
        # (X-Client-Request-Id, or X-Request-Id) is kept beside it when it is a plain token,
        # echoed as X-Client-Request-Id and logged as client_request_id; anything else is dropped.
        g.request_id = str(uuid.uuid4())
        for header in ("X-Client-Request-Id", "X-Request-Id"):
            given = request.headers.get(header)
            if given is not None:
                g.client_request_id = given if re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", given) else None
                break
        if (request.path.startswith("/api/") and not request.path.startswith(PUBLIC_PATHS)) \
                or request.path == CLIENT_MESSAGE_PATH:
            try:
                g.principal = auth.authenticate(app)
            except ApiError as refusal:
                if refusal.status not in (401, 403):
                    raise
                g.auth_refusal = refusal  # raised by app.ratelimits, which first meters the address

    # After identify_request: each request spends the budget of whoever it proved to be (the
    # address when nobody) before anything else is done for it, its body included.
    ratelimits.init_app(app)
    # After the budgets: refusals carry the request id, and an unauthenticated caller hears 401
    # before anything about its body.
    inputs.init_app(app)

    @app.after_request
    def tag_response(response):
        response.headers["X-Request-Id"] = g.get("request_id") or ""
        if g.get("client_request_id"):
            response.headers["X-Client-Request-Id"] = g.client_request_id
        return response

    observability.init_app(app)
    # After the rate limits, which cover the blueprints registered before them (the API's); after
    # observability, whose gauge counts the open sockets.
    realtime.init_app(app)
    from app import console
    from app.n8n import delivery

    # After the rate limits (the console's sign-in has limits of its own).
    console.init_app(app)
    delivery.init_app(app)
    if app.config["SETTINGS"].dispatcher_enabled:
        from app.n8n.dispatcher import start_in_background

        start_in_background(app)
    if app.config["SETTINGS"].sla_sweep_interval_seconds > 0:
        from app.sla import sweeper

        sweeper.start_in_background(app)
    if app.config["SETTINGS"].n8n_watch_interval_seconds > 0:
        from app.n8n import watch

        watch.start_in_background(app)
    return app
