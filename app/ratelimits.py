"""Rate limits per principal, shared across instances through Redis when REDIS_URL is set:
standard endpoints 1,000/hour, views 2,000/hour, actions 500/hour."""
from __future__ import annotations

import time

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RequestLimit

from app.errors import error_response

LIMITS = {"standard": "1000/hour", "views": "2000/hour", "actions": "500/hour"}


def category(endpoint: str | None = None) -> str:
    endpoint = endpoint or request.endpoint or ""
    if endpoint.startswith("views."):
        return "views"
    if endpoint.endswith("Actions"):
        return "actions"
    return "standard"


def principal_key() -> str:
    principal = g.get("principal")
    return principal.actor_id if principal is not None else f"ip:{request.remote_addr}"


def limit_for_request() -> str:
    """The limit of this request's category (app.config["RATE_LIMITS"] may override)."""
    return {**LIMITS, **current_app.config.get("RATE_LIMITS", {})}[category()]


def on_breach(limit: RequestLimit):
    reset_in = max(1, int(limit.reset_at - time.time()))
    return error_response(429, "rate_limited",
                          f"too many {category()} requests: the limit is {limit.limit}; retry in {reset_in} s",
                          {"limit": str(limit.limit), "retryAfterSeconds": reset_in},
                          {"Retry-After": str(reset_in)})


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    limiter = Limiter(
        key_func=principal_key,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        strategy="moving-window",
        headers_enabled=True,
        enabled=settings.rate_limits_enabled,
        on_breach=on_breach,
        key_prefix="rexera",
        swallow_errors=True,  # a Redis outage must not take the API down; limits pause meanwhile
    )
    shared = limiter.shared_limit(limit_for_request, scope=lambda endpoint: category(endpoint))
    api = app.extensions["api"]
    for blueprint in api._app.blueprints.values():
        if blueprint.name not in ("api-docs", "health", "internal"):
            shared(blueprint)
    app.extensions["limiter"] = limiter
