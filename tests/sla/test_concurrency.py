"""Sweeps from several sessions at once (real connections, threads, committed data in the SLA
tests' own database): no alert or notification twice."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import psycopg
from psycopg.rows import dict_row

from app.db import Database
from app.sla.sweeper import SWEEP_LOCK_KEY, sweep_once
from tests.sla.factories import sla_notifications

NOW = datetime.now(timezone.utc)


def sweep_in_threads(url: str, count: int, moment) -> list[dict]:
    """`count` sweeps at `moment`, each on its own connection, released together."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            barrier.wait()
            results[i] = conn.execute("select public.sla_sweep(%s) as s", (moment,)).fetchone()["s"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_sweeps_create_each_alert_and_notification_once(own_database, late_task):
    results = sweep_in_threads(own_database, 4, NOW)
    with psycopg.connect(own_database, row_factory=dict_row) as conn:
        levels = conn.execute("select alert_level, count(*) as n from public.sla_alerts where task_id = %s"
                              " group by alert_level order by alert_level", (late_task["id"],)).fetchall()
        assert [(r["alert_level"], r["n"]) for r in levels] == [
            ("YELLOW", 1), ("ORANGE", 1), ("RED", 1), ("BREACHED", 1)]
        notified = sla_notifications(conn, late_task["id"])
        assert len(notified) == len(set(notified)) == 1 + 3 + 1  # assignee; assignee, owner, manager; manager
    # Exactly one sweep did the work; the others found it done.
    assert sorted(r["levelsRaised"] > 0 for r in results).count(True) == 1


def test_the_runner_skips_a_round_while_another_runner_sweeps(own_database, late_task):
    database = Database(own_database, min_size=1, max_size=1)
    database.open(wait=True)
    try:
        with psycopg.connect(own_database) as holder:
            holder.execute("select pg_advisory_xact_lock(%s)", (SWEEP_LOCK_KEY,))
            assert sweep_once(database, NOW) is None
        summary = sweep_once(database, NOW)
    finally:
        database.close()
    assert summary["levelsRaised"] >= 1 and "rollupDays" in summary
    with psycopg.connect(own_database, row_factory=dict_row) as conn:
        assert conn.execute("select count(*) as n from public.sla_alerts where task_id = %s",
                            (late_task["id"],)).fetchone()["n"] == 4


def test_a_task_finished_while_a_sweep_waits_for_it_gets_no_alert(own_database, late_task):
    """The sweep waits for the task's lock, then sees the stopped clock and leaves it alone."""
    finisher = psycopg.connect(own_database, row_factory=dict_row)
    results: list = []
    try:
        finisher.execute("select public.transition_task(%s, 'COMPLETED', '{}')", (late_task["id"],))
        sweeper = threading.Thread(target=lambda: results.extend(sweep_in_threads(own_database, 1, NOW)))
        sweeper.start()
        with psycopg.connect(own_database, autocommit=True) as observer:
            deadline = time.monotonic() + 30  # waits for the sweep to block; not a timing assertion
            while time.monotonic() < deadline and not observer.execute(
                    "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%%sla_sweep%%'"
            ).fetchone():
                time.sleep(0.05)
        finisher.commit()
        sweeper.join(30)
    finally:
        finisher.close()
    assert results and results[0] is not None
    with psycopg.connect(own_database, row_factory=dict_row) as conn:
        assert conn.execute("select count(*) as n from public.sla_alerts where task_id = %s",
                            (late_task["id"],)).fetchone()["n"] == 0
        assert conn.execute("select sla_status from public.tasks where id = %s",
                            (late_task["id"],)).fetchone()["sla_status"] == "BREACHED"
