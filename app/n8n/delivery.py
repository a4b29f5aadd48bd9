"""Delivery of the n8n outbox from within the service: by the request that queued a row, right
after its commit, and by the background dispatcher where a process may keep threads.

A view whose committed transaction queued outbox rows names them (`after_commit`); once the
response is ready, and before it is sent, they are delivered with a short timeout
(INLINE_DELIVERY_TIMEOUT_SECONDS). On a serverless host nothing runs after the answer, so this
is where a workflow start reaches n8n; elsewhere it saves the dispatcher's wake-up. Whatever is
not delivered (n8n down, slow, refusing) stays in the outbox, and the dispatcher thread or the
tick (app/duties.py) retries it. One Dispatcher per process, shared by the request threads and
the background thread, so they share one view of n8n's health (the circuit breaker).
"""
from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, current_app, g, has_request_context

from app.n8n.dispatcher import Dispatcher

log = logging.getLogger(__name__)


def dispatcher(app: Flask) -> Dispatcher:
    return app.extensions["n8n_dispatcher"]


def after_commit(dispatch_id=None, workflow_id=None) -> None:
    """The current request's committed transaction queued this outbox row (or, when the id is
    not known, some row of this workflow): deliver it once the response is ready."""
    if not has_request_context() or not (dispatch_id or workflow_id):
        return
    g.setdefault("queued_dispatches", []).append((dispatch_id, workflow_id))


def deliver_queued(response):
    queued = g.pop("queued_dispatches", None)
    settings = current_app.config["SETTINGS"]
    if not queued or not settings.deliver_inline or response.status_code >= 400:
        return response
    try:
        ids = resolve(current_app, queued)
        if ids:
            started = time.monotonic()
            report = dispatcher(current_app).deliver_now(ids, settings.inline_delivery_timeout_seconds)
            log.info("delivered after commit", extra={
                "dispatches": len(ids), "delivered": report.delivered, "retried": report.retried,
                "circuit_open": report.skipped_open_circuit,
                "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    except Exception:  # the outbox row stays the truth: the dispatcher or the tick delivers it
        log.exception("delivery after commit failed; the outbox keeps the rows for the next pass")
    return response


def resolve(app: Flask, queued: list[tuple]) -> list[uuid.UUID]:
    """Dispatch ids, looking up the due rows of the workflows named without one."""
    ids = [dispatch_id for dispatch_id, _ in queued if dispatch_id]
    workflows = [workflow_id for dispatch_id, workflow_id in queued if not dispatch_id and workflow_id]
    if workflows:
        engine = dispatcher(app)
        rows = engine.database.run(engine.principal, lambda conn: conn.execute(
            """select id from public.n8n_dispatches
                where workflow_id = any(%s::uuid[]) and status = 'PENDING' and next_attempt_at <= now()""",
            ([str(w) for w in workflows],)).fetchall())
        ids.extend(row["id"] for row in rows)
    return list(dict.fromkeys(ids))


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["n8n_dispatcher"] = Dispatcher(app.extensions["database"], settings, by="request",
                                                  timeout=max(settings.inline_delivery_timeout_seconds, 10.0))
    app.after_request(deliver_queued)
