"""SLA clocks follow tasks and workflows: start when a task becomes actionable, stop while the
workflow is paused or the task waits on the client, restart with the minutes left, end when the
task finishes. Times on the seeded calendar (Mon-Fri 09:00-17:00 America/New_York, US holidays)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, strategies as st

from tests.db import business_time_reference as ref
from tests.db.factories import make_workflow, start_workflow, tasks_of
from tests.db.test_business_time import SEEDED
from tests.sla.factories import (
    UTC, act_on_workflow, at, business_add, clock, move_task, ny, start_payoff, sweep, task, workflow_sla_status,
)

MONDAY_9 = ny(2026, 11, 30, 9, 0)


def test_the_first_step_starts_its_clock_with_the_workflow_and_thresholds_in_business_time(db):
    _, first = start_payoff(db, MONDAY_9)
    running = clock(db, first["id"])
    assert (first["sla_started_at"], first["sla_due_at"]) == (MONDAY_9, ny(2026, 11, 30, 13, 0))
    # 240 minutes: YELLOW at 144 (60 %), ORANGE at 192 (80 %), RED at 228 (95 %).
    assert (running["yellow_at"], running["orange_at"], running["red_at"], running["due_at"]) == (
        ny(2026, 11, 30, 11, 24), ny(2026, 11, 30, 12, 12), ny(2026, 11, 30, 12, 48), ny(2026, 11, 30, 13, 0))
    assert (running["alert_level"], running["next_alert_at"], running["paused_at"]) == ("GREEN", running["yellow_at"], None)


def test_a_step_waiting_on_another_has_no_clock_until_that_one_is_done(db):
    workflow, first = start_payoff(db, MONDAY_9)
    second = tasks_of(db, workflow["id"])["send_payoff_request"]
    assert clock(db, second["id"]) is None and second["sla_due_at"] is None

    move_task(db, first["id"], "RUNNING", ny(2026, 11, 30, 9, 5))
    assert clock(db, second["id"]) is None
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 15, 0))
    started = task(db, second["id"])
    assert started["sla_started_at"] == ny(2026, 11, 30, 15, 0)
    assert started["sla_due_at"] == ny(2026, 12, 1, 11, 0)  # 120 minutes Monday, 120 Tuesday
    assert clock(db, second["id"])["due_at"] == started["sla_due_at"]


def test_a_step_finished_on_time_is_on_time_and_its_clock_final(db):
    _, first = start_payoff(db, MONDAY_9)
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 12, 59))
    stopped = clock(db, first["id"])
    assert (stopped["stopped_at"], stopped["sla_status"], stopped["consumed_business_minutes"]) == (
        ny(2026, 11, 30, 12, 59), "ON_TIME", 239)
    assert stopped["next_alert_at"] is None and task(db, first["id"])["sla_status"] == "ON_TIME"


def test_a_step_finished_late_is_breached_even_before_a_sweep_saw_it(db):
    workflow, first = start_payoff(db, MONDAY_9)
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 13, 1))
    assert clock(db, first["id"])["sla_status"] == "BREACHED"
    assert task(db, first["id"])["sla_status"] == "BREACHED"
    assert workflow_sla_status(db, workflow["id"]) == "BREACHED"


def test_pausing_the_workflow_stops_the_clock_and_resuming_restarts_it_with_the_minutes_left(db):
    workflow, first = start_payoff(db, MONDAY_9)
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 11, 30, 10, 0))
    paused = clock(db, first["id"])
    assert (paused["paused_at"], paused["consumed_business_minutes"], paused["next_alert_at"]) == (
        ny(2026, 11, 30, 10, 0), 60, None)
    assert task(db, first["id"])["sla_due_at"] is None  # nothing is due while no business time passes

    # A day later the clock would be long breached; paused, nothing moves.
    sweep(db, ny(2026, 12, 1, 16, 0))
    assert clock(db, first["id"])["alert_level"] == "GREEN"

    act_on_workflow(db, workflow["id"], "resume", ny(2026, 12, 2, 9, 30))
    resumed = clock(db, first["id"])
    assert (resumed["paused_at"], resumed["resumed_at"], resumed["due_at"]) == (
        None, ny(2026, 12, 2, 9, 30), ny(2026, 12, 2, 12, 30))  # 180 minutes left
    # YELLOW at 144 used: 84 more after the 60 before the pause.
    assert resumed["yellow_at"] == ny(2026, 12, 2, 10, 54) and resumed["next_alert_at"] == resumed["yellow_at"]
    assert task(db, first["id"])["sla_due_at"] == ny(2026, 12, 2, 12, 30)


def test_waiting_on_the_client_stops_the_clock_and_waiting_on_others_does_not(db):
    workflow, first = start_payoff(db, MONDAY_9)
    move_task(db, first["id"], "RUNNING", ny(2026, 11, 30, 9, 0))
    move_task(db, first["id"], "WAITING", ny(2026, 11, 30, 10, 0), resumeUrl="http://n8n.test/w/1")
    assert clock(db, first["id"])["paused_at"] is None  # waiting on a lender: our clock runs

    move_task(db, first["id"], "RUNNING", ny(2026, 11, 30, 10, 30))
    move_task(db, first["id"], "WAITING", ny(2026, 11, 30, 11, 0), waitingOn="client")
    assert task(db, first["id"])["metadata"]["waitingOn"] == "CLIENT"
    waiting = clock(db, first["id"])
    assert (waiting["paused_at"], waiting["consumed_business_minutes"]) == (ny(2026, 11, 30, 11, 0), 120)

    move_task(db, first["id"], "RUNNING", ny(2026, 11, 30, 16, 0))
    assert "waitingOn" not in task(db, first["id"])["metadata"]
    running = clock(db, first["id"])
    assert (running["paused_at"], running["due_at"]) == (None, ny(2026, 12, 1, 10, 0))  # 60 Monday + 60 Tuesday


def test_a_task_finished_while_paused_keeps_the_minutes_it_used(db):
    workflow, first = start_payoff(db, MONDAY_9)
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 11, 30, 10, 0))
    act_on_workflow(db, workflow["id"], "cancel", ny(2026, 12, 1, 10, 0))
    stopped = clock(db, first["id"])
    assert (stopped["stopped_at"], stopped["consumed_business_minutes"], stopped["sla_status"]) == (
        ny(2026, 12, 1, 10, 0), 60, "ON_TIME")


def test_a_clock_that_ran_out_before_a_pause_stays_breached_after_it(db):
    workflow, first = start_payoff(db, MONDAY_9)
    sweep(db, ny(2026, 11, 30, 14, 0))
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 11, 30, 14, 0))
    act_on_workflow(db, workflow["id"], "resume", ny(2026, 12, 1, 9, 0))
    resumed = clock(db, first["id"])
    assert (resumed["alert_level"], resumed["due_at"], resumed["next_alert_at"]) == (
        "BREACHED", ny(2026, 11, 30, 13, 0), None)
    assert task(db, first["id"])["sla_status"] == "BREACHED"


def test_the_clock_skips_thanksgiving(db):
    # Wednesday 16:00 + 240: 60 minutes Wednesday, Thursday 2026-11-26 is a holiday, 180 Friday.
    _, first = start_payoff(db, ny(2026, 11, 25, 16, 0))
    assert first["sla_due_at"] == ny(2026, 11, 27, 12, 0)
    sweep(db, ny(2026, 11, 26, 16, 0))  # all of Thanksgiving gone: still 25 % used
    assert clock(db, first["id"])["alert_level"] == "GREEN"
    sweep(db, ny(2026, 11, 27, 10, 24))  # 60 + 84 = 144 used
    assert clock(db, first["id"])["alert_level"] == "YELLOW"


def test_pause_and_resume_across_the_fall_back_weekend_keep_wall_clock_hours(db):
    # 2026-11-01 clocks go back. Friday 15:00 EDT start, pause 16:00 EDT (60 used), resume
    # Monday 09:00 EST: 180 left, due Monday 12:00 EST = 17:00 UTC.
    workflow, first = start_payoff(db, ny(2026, 10, 30, 15, 0))
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 10, 30, 16, 0))
    act_on_workflow(db, workflow["id"], "resume", ny(2026, 11, 2, 9, 0))
    assert clock(db, first["id"])["due_at"] == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


def test_a_clock_started_before_spring_forward_is_due_in_wall_clock_hours(db):
    # Friday 2026-03-06 16:00 EST (21:00 UTC) + 240: 60 Friday, 180 Monday from 09:00 EDT.
    _, first = start_payoff(db, ny(2026, 3, 6, 16, 0))
    assert first["sla_due_at"] == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)


# ============================================================================================
# Properties (seeded calendar; the business_time tests' settings and reference model)
# ============================================================================================
MOMENTS = st.builds(
    lambda day, minute: datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=UTC),
    st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 11, 30)), st.integers(0, 24 * 60 - 1))


@SEEDED
@given(start=MOMENTS, pause_after=st.integers(0, 3 * 24 * 60), pause_for=st.integers(0, 5 * 24 * 60))
def test_a_resumed_clock_is_due_inside_business_hours_with_exactly_the_minutes_left(db, start, pause_after, pause_for):
    calendar = ref.load_calendar(db)
    with db.transaction(force_rollback=True):
        workflow, first = start_payoff(db, start)
        paused_at = start + timedelta(minutes=pause_after)
        resumed_at = paused_at + timedelta(minutes=pause_for)
        act_on_workflow(db, workflow["id"], "pause", paused_at)
        act_on_workflow(db, workflow["id"], "resume", resumed_at)
        resumed = clock(db, first["id"])
        used = ref.business_minutes_between(calendar, start, paused_at)
        assert resumed["consumed_business_minutes"] == used
        if used < 240:
            assert resumed["due_at"] == ref.add_business_minutes(calendar, resumed_at, 240 - used)
            assert ref.is_inside_business_hours(calendar, resumed["due_at"])
        assert resumed["yellow_at"] <= resumed["orange_at"] <= resumed["red_at"] <= resumed["due_at"]


@SEEDED
@given(start=MOMENTS, m1=st.integers(1, 10_000), m2=st.integers(1, 10_000))
def test_a_longer_sla_never_gives_an_earlier_due_date_or_threshold(db, start, m1, m2):
    low, high = sorted((m1, m2))
    thresholds = [db.execute("select * from private.sla_thresholds(%s, %s, 0)", (start, m)).fetchone()
                  for m in (low, high)]
    for name in ("yellow_at", "orange_at", "red_at", "due_at"):
        assert thresholds[0][name] <= thresholds[1][name]
    assert thresholds[1]["due_at"] == business_add(db, start, high)


# ============================================================================================
# Branches and injected tasks
# ============================================================================================
def test_a_step_after_alternative_branches_starts_when_the_branch_taken_is_done_and_the_other_skipped(db):
    at(db, MONDAY_9)
    workflow = make_workflow(db, "HOA_ACQUISITION")
    start_workflow(db, workflow["id"])
    tasks = tasks_of(db, workflow["id"])
    move_task(db, tasks["research_hoa_contact"]["id"], "COMPLETED", ny(2026, 11, 30, 9, 30))
    move_task(db, tasks["send_email_request"]["id"], "COMPLETED", ny(2026, 11, 30, 10, 0))
    assert clock(db, tasks["await_documents"]["id"]) is None  # the phone call may still come
    move_task(db, tasks["make_phone_call"]["id"], "SKIPPED", ny(2026, 11, 30, 10, 5))
    assert task(db, tasks["await_documents"]["id"])["sla_started_at"] == ny(2026, 11, 30, 10, 5)


def test_an_injected_task_keeps_the_clock_its_writer_planned(db):
    workflow, first = start_payoff(db, MONDAY_9)
    now = db.execute("select now() as t").fetchone()["t"]
    db.execute("""select public.apply_n8n_event('n8n', %s, 'task.injected', jsonb_build_object(
                    'workflowId', %s::text, 'task', jsonb_build_object('taskKey', 'handle_client_update',
                    'taskType', 'handle_client_update', 'agentName', 'ria')))""",
               (f"evt-{workflow['id']}", workflow["id"]))
    injected = tasks_of(db, workflow["id"])["handle_client_update"]
    running = clock(db, injected["id"])
    assert (running["started_at"], running["due_at"], running["business_minutes"]) == (
        now, injected["sla_due_at"], 30)
    assert injected["sla_due_at"] == business_add(db, now, 30)
