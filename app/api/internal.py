"""The tick: one round of the periodic duties (app/duties.py), for schedulers.

Vercel Cron calls it with GET and `Authorization: Bearer $CRON_SECRET`; pg_cron (through
pg_net), a systemd timer or any other scheduler may POST the same. Without CRON_SECRET set on
the service the tick is off (403): a deployment that never meant to expose it does not.
"""
from __future__ import annotations

import hmac

from flask import current_app, request

from app import duties
from app.api import Blueprint
from app.errors import ApiError
from app.inputs import takes_no_body

blp = Blueprint("internal", __name__, url_prefix="/api/internal", description="Scheduled duties")
SECURITY = [{"cronSecret": []}]


def check_cron_secret() -> None:
    secret = current_app.config["SETTINGS"].cron_secret
    if secret is None:
        raise ApiError(403, "the tick is off on this deployment: set CRON_SECRET to turn it on", "tick_disabled")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), secret.encode()):
        from app.ratelimits import refuse_unproven

        raise refuse_unproven(ApiError(401, "send Authorization: Bearer <CRON_SECRET>", "invalid_token"))


def run():
    check_cron_secret()
    result = duties.tick(current_app)
    # 503 when a duty could not run (the database down, say): a scheduler that watches
    # statuses sees it; the next tick tries again either way.
    return result, 200 if result["ok"] else 503


@blp.route("/tick", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200)
@takes_no_body
def tick_post():
    """One round of the periodic duties.

    Due outbox retries (at most 20 s), the SLA sweep and rollup, pruning of old realtime events. Idempotent; safe from several schedulers at once.
    503 when a duty failed (the body says which)."""
    return run()


@blp.route("/tick", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200)
def tick_get():
    """The same, as Vercel Cron calls it.

    GET with Authorization: Bearer $CRON_SECRET."""
    return run()
