"""Runs public.sla_sweep and public.sla_rollup_due: once (scripts/sla_sweep.py) or every
SLA_SWEEP_INTERVAL_SECONDS in a background thread of the service.

Every instance of the service starts a runner, each on its own timer: the first to ask in a
round takes it (private.claim_duty_round) and sweeps, the others skip until the round has
passed; a transaction advisory lock keeps two sweeps from overlapping (the SQL is safe to run
concurrently anyway, so both only save the work).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from app.auth import Principal
from app.db import Database

log = logging.getLogger(__name__)

# The key public.sla_sweep itself takes (20261126002400_sla_engine.sql): a runner holding it
# may call the sweep, which takes it again (advisory locks are re-entrant in one session).
SWEEP_LOCK_KEY = 7_302_115_006
PRINCIPAL = Principal.service("sla-sweeper")


def sweep(conn, now: datetime | None = None, wait: bool = False, every: float | None = None) -> dict | None:
    """One sweep and the daily rollup in the connection's current transaction, as the service.
    Returns the sweep's summary plus `rollupDays`, or None when another runner holds the lock
    and `wait` is false, or (`every`: a runner's interval in seconds) when another runner
    already took this round."""
    if wait:
        conn.execute("select pg_advisory_xact_lock(%s)", (SWEEP_LOCK_KEY,))
    elif not conn.execute("select pg_try_advisory_xact_lock(%s) as got", (SWEEP_LOCK_KEY,)).fetchone()["got"]:
        return None
    if every is not None and not conn.execute(
            "select coalesce(private.claim_duty_round('sla_sweep', make_interval(secs => %s)), false) as mine",
            (every,)).fetchone()["mine"]:
        return None
    summary = conn.execute("select public.sla_sweep(coalesce(%s, now())) as s", (now,)).fetchone()["s"]
    days = conn.execute("select public.sla_rollup_due(coalesce(%s, now())) as d", (now,)).fetchone()["d"]
    return {**summary, "rollupDays": days}


def sweep_once(database: Database, now: datetime | None = None, wait: bool = False,
               every: float | None = None) -> dict | None:
    """sweep() in a transaction of its own from the pool."""
    return database.run(PRINCIPAL, lambda conn: sweep(conn, now, wait, every))


def run_forever(database: Database, stop: threading.Event, interval: float) -> None:
    """Sweep every `interval` seconds until `stop` is set; a failed round is logged and the
    next one tried (a database restart must not end the runner)."""
    while not stop.is_set():
        try:
            summary = sweep_once(database, every=interval)
            if summary is None:
                log.debug("SLA sweep skipped: another runner took this round")
            elif summary["levelsRaised"] or summary["notificationsCreated"] or summary["rollupDays"]:
                log.info("SLA sweep: %s", summary)
        except Exception:
            log.exception("SLA sweep failed")
        stop.wait(interval)


def start_in_background(app) -> threading.Event:
    """Started by the app factory when SLA_SWEEP_INTERVAL_SECONDS > 0: one thread per process."""
    stop = threading.Event()
    interval = app.config["SETTINGS"].sla_sweep_interval_seconds
    thread = threading.Thread(target=run_forever, args=(app.extensions["database"], stop, interval),
                              name="sla-sweeper", daemon=True)
    thread.start()
    app.extensions["sla_sweeper"] = (stop, thread)
    return stop
