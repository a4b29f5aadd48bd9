"""Health of the service and of each dependency (no authentication, no secrets)."""
from __future__ import annotations

import datetime as dt

from flask import current_app

from app import duties
from app.api import Blueprint
from app.errors import ApiError
from app.services import health

blp = Blueprint("health", __name__, url_prefix="/api/health", description="Service health")
STARTED = dt.datetime.now(dt.timezone.utc)


def answer(body: dict):
    """200 when usable (ok or degraded), 503 when down, so load balancers can act on it."""
    body["timestamp"] = dt.datetime.now(dt.timezone.utc).isoformat()
    return body, 503 if body["status"] == "down" else 200


@blp.route("")
@blp.response(200)
def overall():
    """Overall status with one word per dependency."""
    body = health.overall(current_app)
    body["duties"] = duties.describe(current_app)
    body["uptimeSeconds"] = int((dt.datetime.now(dt.timezone.utc) - STARTED).total_seconds())
    return answer(body)


@blp.route("/<string:component>")
@blp.response(200)
def component(component: str):
    """One dependency: database, workflows (n8n), agents, realtime or auth."""
    check = health.CHECKS.get(component)
    if check is None:
        raise ApiError(404, f"no health check named {component}; try one of {', '.join(health.CHECKS)}")
    return answer(health.timed(lambda: check(current_app)))
