"""Health of the service and of each dependency (no authentication, no secrets)."""
from __future__ import annotations

import datetime as dt

from flask import current_app, jsonify
from marshmallow import INCLUDE, fields

from app import duties
from app.api import Blueprint
from app.errors import ApiError
from app.schemas import CamelSchema
from app.services import health

STATUSES = ["ok", "degraded", "down"]


class ComponentHealth(CamelSchema):
    status = fields.String(required=True, metadata={"enum": STATUSES})
    latency_ms = fields.Float(metadata={"description": "how long the check took"})
    timestamp = fields.DateTime()

    class Meta:
        unknown = INCLUDE  # what each check reports of itself (schemaVersion, subscribers, ...)


class Health(CamelSchema):
    status = fields.String(required=True, metadata={"enum": STATUSES})
    checks = fields.Dict(keys=fields.String(), values=fields.String(metadata={"enum": STATUSES}), required=True,
                         metadata={"description": "one word per dependency"})
    details = fields.Dict(keys=fields.String(), values=fields.Nested(ComponentHealth), required=True)
    duties = fields.Dict(required=True, metadata={"description": "which background duties this process runs"})
    uptime_seconds = fields.Integer(required=True)
    timestamp = fields.DateTime(required=True)


blp = Blueprint("health", __name__, url_prefix="/api/health", description="Service health")
STARTED = dt.datetime.now(dt.timezone.utc)


def answer(body: dict):
    """200 when usable (ok or degraded), 503 when down, so load balancers can act on it. The body
    goes out as it is (the schemas document it; a dump would drop what they do not name)."""
    body["timestamp"] = dt.datetime.now(dt.timezone.utc).isoformat()
    response = jsonify(body)
    response.status_code = 503 if body["status"] == "down" else 200
    return response


@blp.route("")
@blp.response(200, Health, description="usable: ok or degraded")
@blp.alt_response(503, schema=Health, description="down")
def overall():
    """Overall status with one word per dependency."""
    body = health.overall(current_app)
    body["duties"] = duties.describe(current_app)
    body["uptimeSeconds"] = int((dt.datetime.now(dt.timezone.utc) - STARTED).total_seconds())
    return answer(body)


@blp.route("/<string:component>")
@blp.response(200, ComponentHealth, description="usable: ok or degraded")
@blp.alt_response(503, schema=ComponentHealth, description="down")
def component(component: str):
    """One dependency: database, workflows (n8n), agents, realtime or auth."""
    check = health.CHECKS.get(component)
    if check is None:
        raise ApiError(404, f"no health check named {component}; try one of {', '.join(health.CHECKS)}")
    return answer(health.timed(lambda: check(current_app)))
