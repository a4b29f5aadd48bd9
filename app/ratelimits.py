"""Rate limits, shared across instances through Redis when REDIS_URL is set.

The API's endpoints, per principal: standard endpoints 1,000/hour, views 2,000/hour, actions
500/hour. The webhooks (n8n's callbacks and error reports, outside parties' inbound messages)
are machine traffic authenticated per request (a signature, a token): a request that
authenticates never counts, since one n8n sends every workflow's callbacks from one address (a
workflow makes 15 to 40 of them) and a per-address budget would cap the business at a few
dozen workflows an hour. What counts is refusals: 300 refused requests (401, 403) an hour per
address, after which that address is answered 429 until the hour has moved on."""
from __future__ import annotations

import time

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RequestLimit

from app.errors import error_response

LIMITS = {"standard": "1000/hour", "views": "2000/hour", "actions": "500/hour", "webhook_refusals": "300/hour"}
WEBHOOK_PREFIX = "/webhooks/"
REFUSED = (401, 403)


def category(endpoint: str | None = None) -> str:
    endpoint = endpoint or request.endpoint or ""
    if endpoint.split(".", 1)[0] in current_app.extensions.get("webhook_blueprints", ()):
        return "webhook_refusals"
    if endpoint.startswith("console."):
        return "console sign-in"  # its own limit (app/console), not one of LIMITS
    if endpoint.startswith("views."):
        return "views"
    if endpoint.endswith("Actions"):
        return "actions"
    return "standard"


def principal_key() -> str:
    principal = g.get("principal")
    return principal.actor_id if principal is not None else remote_address()


def limit_for_request() -> str:
    """The limit of this request's category (app.config["RATE_LIMITS"] may override)."""
    return {**LIMITS, **current_app.config.get("RATE_LIMITS", {})}[category()]


def on_breach(limit: RequestLimit):
    reset_in = max(1, int(limit.reset_at - time.time()))
    what = "refused webhook requests from this address" if category() == "webhook_refusals" else f"{category()} requests"
    return error_response(429, "rate_limited",
                          f"too many {what}: the limit is {limit.limit}; retry in {reset_in} s",
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
        key_prefix=key_prefix(settings.database_url),
        swallow_errors=True,  # a Redis outage must not take the API down; limits pause meanwhile
    )
    shared = limiter.shared_limit(limit_for_request, scope=lambda endpoint: category(endpoint))
    refusals = limiter.shared_limit(limit_for_request, scope="webhook_refusals", key_func=remote_address,
                                    deduct_when=lambda response: response.status_code in REFUSED)
    webhooks = set()
    for blueprint in app.blueprints.values():
        if blueprint.name in ("api-docs", "health", "internal"):
            continue
        if (blueprint.url_prefix or "").startswith(WEBHOOK_PREFIX):
            webhooks.add(blueprint.name)
            refusals(blueprint)
        else:
            shared(blueprint)
    app.extensions["webhook_blueprints"] = frozenset(webhooks)
    app.extensions["limiter"] = limiter


def key_prefix(database_url: str) -> str:
    """The budgets' keys in Redis, by the database the deployment runs on: deployments sharing a
    Redis (staging and production, several local systems) never spend each other's budgets."""
    from psycopg import conninfo

    try:
        name = conninfo.conninfo_to_dict(database_url).get("dbname") or "postgres"
    except Exception:  # noqa: BLE001 - the settings validated the URL; any name will do
        name = "postgres"
    return f"rexera:{name}"


def remote_address() -> str:
    return f"ip:{request.remote_addr}"
