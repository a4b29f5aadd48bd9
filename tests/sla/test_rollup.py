"""The daily SLA rollup into sla_performance_metrics (dates in the business calendar's time
zone), run once per day, and what performance_view makes of it."""
from __future__ import annotations

from decimal import Decimal

from tests.sla.factories import act_on_workflow, move_task, ny, start_payoff

MONDAY = "2026-11-30"


def finish_first_step(db, started, finished, status="COMPLETED"):
    workflow, first = start_payoff(db, started)
    if status == "CANCELLED":
        act_on_workflow(db, workflow["id"], "cancel", finished)
    else:
        move_task(db, first["id"], status, finished)
    return first


def metrics(db, day):
    return db.execute("""select xmin::text as version, * from public.sla_performance_metrics
                          where metric_date = %s order by workflow_type""", (day,)).fetchall()


def test_a_day_is_rolled_up_per_workflow_type_from_the_tasks_finished_that_day(db):
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 10, 0))                # 60 minutes, on time
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 12, 0))                # 180, on time
    finish_first_step(db, ny(2026, 11, 27, 9, 0), ny(2026, 11, 30, 20, 0))                # late; 01:00 UTC next day
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 11, 0), "CANCELLED")   # not counted
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 12, 1, 10, 0))                 # another day
    assert db.execute("select public.sla_rollup_daily(%s) as n", (MONDAY,)).fetchone()["n"] == 1
    [row] = metrics(db, MONDAY)
    assert (row["workflow_type"], row["task_type"], row["agent_name"]) == ("PAYOFF_REQUEST", None, None)
    assert (row["tasks_total"], row["tasks_on_time"], row["tasks_breached"]) == (3, 2, 1)
    assert row["compliance_rate"] == Decimal("0.6667")
    assert row["avg_business_minutes"] == Decimal((60 + 180 + 480 + 480) / 3).quantize(Decimal("0.01"))


def test_rolling_up_a_day_again_writes_nothing(db):
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 10, 0))
    db.execute("select public.sla_rollup_daily(%s)", (MONDAY,))
    before = metrics(db, MONDAY)
    assert db.execute("select public.sla_rollup_daily(%s) as n", (MONDAY,)).fetchone()["n"] == 0
    assert metrics(db, MONDAY) == before


def test_a_later_run_corrects_a_day_in_place(db):
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 10, 0))
    db.execute("select public.sla_rollup_daily(%s)", (MONDAY,))
    finish_first_step(db, ny(2026, 11, 27, 9, 0), ny(2026, 11, 30, 15, 0))
    db.execute("select public.sla_rollup_daily(%s)", (MONDAY,))
    [row] = metrics(db, MONDAY)
    assert (row["tasks_total"], row["tasks_on_time"], row["tasks_breached"]) == (2, 1, 1)


def test_the_rollup_runs_once_per_day_for_each_finished_day_of_the_last_week(db):
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 10, 0))
    due = lambda moment: db.execute("select public.sla_rollup_due(%s) as n", (moment,)).fetchone()["n"]  # noqa: E731
    assert due(ny(2026, 11, 30, 23, 0)) == 7  # 11-23 .. 11-29: Monday itself is not over
    assert metrics(db, MONDAY) == []
    assert due(ny(2026, 12, 1, 0, 5)) == 1
    assert [r["tasks_total"] for r in metrics(db, MONDAY)] == [1]
    assert due(ny(2026, 12, 1, 16, 0)) == 0


def test_the_performance_view_reads_compliance_from_the_rollup(db):
    finish_first_step(db, ny(2026, 11, 30, 9, 0), ny(2026, 11, 30, 10, 0))
    finish_first_step(db, ny(2026, 11, 27, 9, 0), ny(2026, 11, 30, 15, 0))
    db.execute("select public.sla_rollup_daily(%s)", (MONDAY,))
    view = db.execute("select public.performance_view('week', null, 'PAYOFF_REQUEST', %s) as v",
                      (ny(2026, 12, 1, 12, 0),)).fetchone()["v"]
    assert [t["slaComplianceRate"] for t in view["workflowTypes"]] == [0.5]
