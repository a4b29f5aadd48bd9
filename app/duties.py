"""What the service does besides answering requests, and where each duty runs.

| duty | long-running host (gunicorn) | serverless host (Vercel) |
|---|---|---|
| outbox: a request's own rows | right after its commit | right after its commit |
| outbox: retries | dispatcher thread (DISPATCHER_ENABLED) and the tick | the tick |
| SLA sweep and rollup | sweeper thread (SLA_SWEEP_INTERVAL_SECONDS), pg_cron where installed | the tick, pg_cron where installed |
| execution watch (lost n8n executions) | watch thread (N8N_WATCH_INTERVAL_SECONDS) | the tick |
| realtime events pruning | the /ws listener (REALTIME_PRUNE_INTERVAL_SECONDS) | the tick |
| realtime /ws | served | 501 realtime_unavailable |

The tick (`tick`, behind GET or POST /api/internal/tick) does one round of every periodic duty
and is safe to run from several callers at once: outbox rows are claimed with skip locked, the
sweep takes turns on an advisory lock, pruning deletes what is old whoever runs it.
"""
from __future__ import annotations

import logging
import time

from flask import Flask

from app.auth import Principal
from app.n8n.dispatcher import Dispatcher
from app.n8n.watch import ExecutionWatch

log = logging.getLogger(__name__)

# The outbox gets at most this long per tick; Vercel's function limit (vercel.json maxDuration)
# must leave room for it plus the sweep.
TICK_OUTBOX_BUDGET_SECONDS = 20.0


def describe(app: Flask) -> dict:
    """Which duty runs where in this process (for /api/health)."""
    settings = app.config["SETTINGS"]
    threads = settings.background_duties
    tick = "tick" if settings.cron_secret else None
    return {
        "platform": settings.platform,
        "backgroundThreads": threads,
        "outbox": [d for d in ("afterCommit" if settings.deliver_inline else None,
                               "dispatcherThread" if "dispatcher" in app.extensions else None, tick) if d],
        "slaSweep": [d for d in ("sweeperThread" if "sla_sweeper" in app.extensions else None, tick) if d],
        "executionWatch": [d for d in ("watchThread" if "n8n_watch" in app.extensions else None,
                                       tick if settings.n8n_api_key else None) if d],
        "eventPruning": [d for d in ("realtimeListener" if threads and settings.realtime_prune_interval_seconds else None,
                                     tick) if d],
        "realtime": "websocket" if threads else "unavailable",
    }


def tick(app: Flask, outbox_budget_seconds: float = TICK_OUTBOX_BUDGET_SECONDS) -> dict:
    """One round of every periodic duty; each is tried whatever happened to the others.
    Returns {"ok": bool, "outbox": ..., "slaSweep": ..., "executionWatch": ..., "eventPruning": ...,
    "durationMs": ...}."""
    from app.sla import sweeper

    settings = app.config["SETTINGS"]
    database = app.extensions["database"]
    started = time.monotonic()
    result: dict = {"ok": True}

    def duty(name: str, work) -> None:
        try:
            result[name] = work()
        except Exception as error:  # reported, and the next duty still runs
            log.exception("tick: %s failed", name)
            result["ok"] = False
            result[name] = {"error": type(error).__name__}

    shared = app.extensions["n8n_dispatcher"]
    outbox = Dispatcher(database, settings, session=shared.session, breaker=shared.breaker, by="tick")
    duty("outbox", lambda: outbox.drain(outbox_budget_seconds).as_dict())

    def sweep():
        summary = sweeper.sweep_once(database)
        return {"skipped": "another runner holds the sweep"} if summary is None else summary

    duty("slaSweep", sweep)
    duty("executionWatch", lambda: ExecutionWatch(database, settings, session=shared.session,
                                                  metrics=app.extensions.get("metrics")).check())
    duty("eventPruning", lambda: {"deleted": database.run(Principal.service("tick"), lambda conn: conn.execute(
        "select public.prune_realtime_events(make_interval(hours => %s)) as n",
        (settings.realtime_retention_hours,)).fetchone()["n"])})
    result["durationMs"] = round((time.monotonic() - started) * 1000, 1)
    log.info("tick", extra={"ok": result["ok"], "outbox": result.get("outbox"), "duration_ms": result["durationMs"]})
    return result
