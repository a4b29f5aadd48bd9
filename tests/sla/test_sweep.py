"""public.sla_sweep at controlled instants: each alert level at its threshold, once per task;
sla_status on tasks and workflows; escalation per sla_escalation_rules, once per person."""
from __future__ import annotations

import psycopg
import pytest

from tests.db.world import PEOPLE
from tests.sla.factories import (
    act_on_workflow, alert_levels, clock, make_team, move_task, ny, sla_notifications, start_payoff, sweep, task,
    workflow_sla_status,
)
from tests.support import act_as

MONDAY_9 = ny(2026, 11, 30, 9, 0)  # 240 minutes: YELLOW 11:24, ORANGE 12:12, RED 12:48, due 13:00


@pytest.mark.parametrize("moment, level, sla_status, alerts", [
    (ny(2026, 11, 30, 11, 23), "GREEN", "ON_TIME", []),
    (ny(2026, 11, 30, 11, 24), "YELLOW", "ON_TIME", ["YELLOW"]),
    (ny(2026, 11, 30, 12, 11), "YELLOW", "ON_TIME", ["YELLOW"]),
    (ny(2026, 11, 30, 12, 12), "ORANGE", "AT_RISK", ["YELLOW", "ORANGE"]),
    (ny(2026, 11, 30, 12, 48), "RED", "AT_RISK", ["YELLOW", "ORANGE", "RED"]),
    (ny(2026, 11, 30, 13, 0), "RED", "AT_RISK", ["YELLOW", "ORANGE", "RED"]),
    (ny(2026, 11, 30, 13, 0, 1), "BREACHED", "BREACHED", ["YELLOW", "ORANGE", "RED", "BREACHED"]),
])
def test_each_level_is_reached_at_its_share_of_the_sla(db, moment, level, sla_status, alerts):
    workflow, first = start_payoff(db, MONDAY_9)
    sweep(db, moment)
    assert (clock(db, first["id"])["alert_level"], clock(db, first["id"])["sla_status"]) == (level, sla_status)
    assert task(db, first["id"])["sla_status"] == sla_status
    assert workflow_sla_status(db, workflow["id"]) == sla_status
    assert alert_levels(db, first["id"]) == alerts


def test_sweeping_minute_by_minute_raises_each_level_once(db):
    _, first = start_payoff(db, MONDAY_9)
    for minute in range(9 * 60, 14 * 60, 3):
        sweep(db, ny(2026, 11, 30, minute // 60, minute % 60))
    alerts = db.execute("select alert_level, raised_at from public.sla_alerts where task_id = %s order by raised_at",
                        (first["id"],)).fetchall()
    assert [(a["alert_level"], a["raised_at"]) for a in alerts] == [
        ("YELLOW", ny(2026, 11, 30, 11, 24)), ("ORANGE", ny(2026, 11, 30, 12, 12)),
        ("RED", ny(2026, 11, 30, 12, 48)), ("BREACHED", ny(2026, 11, 30, 13, 3))]


def test_a_second_sweep_with_nothing_due_writes_nothing(db):
    _, first = start_payoff(db, MONDAY_9)
    first_pass = sweep(db, ny(2026, 11, 30, 12, 30))
    assert first_pass["alertsCreated"] >= 2
    before = db.execute("select xmin::text as v, * from public.sla_tracking where task_id = %s", (first["id"],)).fetchone()
    second_pass = sweep(db, ny(2026, 11, 30, 12, 30))
    assert {k: v for k, v in second_pass.items() if k != "sweptAt"} == {
        "levelsRaised": 0, "alertsCreated": 0, "tasksUpdated": 0, "alertsEscalated": 0, "notificationsCreated": 0}
    assert db.execute("select xmin::text as v, * from public.sla_tracking where task_id = %s", (first["id"],)).fetchone() == before


def test_a_level_never_goes_down_when_a_sweep_runs_with_an_earlier_instant(db):
    _, first = start_payoff(db, MONDAY_9)
    sweep(db, ny(2026, 11, 30, 12, 50))
    sweep(db, ny(2026, 11, 30, 10, 0))
    assert clock(db, first["id"])["alert_level"] == "RED"


def test_the_workflow_shows_its_worst_task(db):
    workflow, first = start_payoff(db, MONDAY_9)
    sweep(db, ny(2026, 11, 30, 12, 12))
    assert workflow_sla_status(db, workflow["id"]) == "AT_RISK"
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 12, 20))  # on time after all
    assert workflow_sla_status(db, workflow["id"]) == "ON_TIME"


def test_a_finished_task_is_not_swept_and_its_alerts_are_resolved(db):
    _, first = start_payoff(db, MONDAY_9)
    sweep(db, ny(2026, 11, 30, 11, 30))
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 11, 40))
    sweep(db, ny(2026, 11, 30, 16, 0))
    assert alert_levels(db, first["id"]) == ["YELLOW"]
    assert db.execute("select resolved_at from public.sla_alerts where task_id = %s",
                      (first["id"],)).fetchone()["resolved_at"] == ny(2026, 11, 30, 11, 40)


# ============================================================================================
# Escalation
# ============================================================================================
def test_escalation_tells_the_assignee_at_orange_the_team_at_red_and_the_manager_at_breached(db):
    team = make_team(db)
    workflow, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"], manager_id=team["manager"])
    db.execute("update public.tasks set assigned_to = %s where id = %s", (team["assignee"], first["id"]))

    sweep(db, ny(2026, 11, 30, 11, 30))
    assert sla_notifications(db, first["id"]) == []  # YELLOW has no rule
    sweep(db, ny(2026, 11, 30, 12, 12))
    assert sla_notifications(db, first["id"]) == [(team["assignee"], "ORANGE", "ASSIGNEE")]
    sweep(db, ny(2026, 11, 30, 12, 48))
    assert sla_notifications(db, first["id"]) == sorted([
        (team["assignee"], "ORANGE", "ASSIGNEE"),
        (team["assignee"], "RED", "TEAM"), (team["owner"], "RED", "TEAM"), (team["manager"], "RED", "TEAM")])
    sweep(db, ny(2026, 11, 30, 13, 1))
    breached = [n for n in sla_notifications(db, first["id"]) if n[1] == "BREACHED"]
    assert breached == [(team["manager"], "BREACHED", "MANAGER")]

    stored = db.execute("""select priority, title, action_required, workflow_id from public.notifications
                            where task_id = %s and data ->> 'alertLevel' = 'BREACHED'""", (first["id"],)).fetchone()
    assert (stored["priority"], stored["action_required"], stored["workflow_id"]) == ("URGENT", True, workflow["id"])
    assert stored["title"].startswith("SLA BREACHED")


def test_each_notification_is_created_once_however_often_the_sweep_runs(db):
    team = make_team(db)
    _, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"], manager_id=team["manager"])
    for _ in range(3):
        sweep(db, ny(2026, 11, 30, 13, 30))
    sweep(db, ny(2026, 11, 30, 15, 0))
    notified = sla_notifications(db, first["id"])
    assert len(notified) == len(set(notified)) == 1 + 2 + 1  # owner (no assignee); owner and manager; manager
    assert alert_levels(db, first["id"]) == ["YELLOW", "ORANGE", "RED", "BREACHED"]


def test_without_an_assignee_or_owner_the_workflows_managers_are_told(db):
    team = make_team(db)
    _, first = start_payoff(db, MONDAY_9, manager_id=team["manager"])
    sweep(db, ny(2026, 11, 30, 12, 12))
    assert sla_notifications(db, first["id"]) == [(team["manager"], "ORANGE", "ASSIGNEE")]


def test_a_rule_with_a_delay_fires_that_long_after_the_level_is_raised(db):
    db.execute("update public.sla_escalation_rules set delay_minutes = 30 where alert_level = 'RED'")
    team = make_team(db)
    _, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"], manager_id=team["manager"])
    sweep(db, ny(2026, 11, 30, 12, 48))
    red = lambda: [n for n in sla_notifications(db, first["id"]) if n[1] == "RED"]  # noqa: E731
    assert red() == []
    assert db.execute("select escalation_due_at from public.sla_alerts where task_id = %s and alert_level = 'RED'",
                      (first["id"],)).fetchone()["escalation_due_at"] == ny(2026, 11, 30, 13, 18)
    sweep(db, ny(2026, 11, 30, 13, 17))
    assert red() == []
    sweep(db, ny(2026, 11, 30, 13, 18))
    assert red() == sorted([(team["owner"], "RED", "TEAM"), (team["manager"], "RED", "TEAM")])
    assert db.execute("select escalation_due_at from public.sla_alerts where task_id = %s and alert_level = 'RED'",
                      (first["id"],)).fetchone()["escalation_due_at"] is None


def test_a_delayed_escalation_is_dropped_when_the_task_finishes_first(db):
    db.execute("update public.sla_escalation_rules set delay_minutes = 30 where alert_level = 'RED'")
    team = make_team(db)
    _, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"], manager_id=team["manager"])
    sweep(db, ny(2026, 11, 30, 12, 48))
    move_task(db, first["id"], "COMPLETED", ny(2026, 11, 30, 12, 55))
    sweep(db, ny(2026, 11, 30, 14, 0))
    assert [n for n in sla_notifications(db, first["id"]) if n[1] == "RED"] == []


def test_a_paused_clock_escalates_only_after_it_resumes(db):
    db.execute("update public.sla_escalation_rules set delay_minutes = 30 where alert_level = 'ORANGE'")
    team = make_team(db)
    workflow, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"], manager_id=team["manager"])
    sweep(db, ny(2026, 11, 30, 12, 12))
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 11, 30, 12, 15))
    sweep(db, ny(2026, 11, 30, 13, 0))
    assert sla_notifications(db, first["id"]) == []
    act_on_workflow(db, workflow["id"], "resume", ny(2026, 12, 1, 9, 0))
    sweep(db, ny(2026, 12, 1, 9, 1))
    assert sla_notifications(db, first["id"]) == [(team["owner"], "ORANGE", "ASSIGNEE")]


def test_a_rule_for_another_workflow_type_does_not_apply(db):
    db.execute("update public.sla_escalation_rules set workflow_type = 'HOA_ACQUISITION' where alert_level = 'ORANGE'")
    team = make_team(db)
    _, first = start_payoff(db, MONDAY_9, hil_owner_id=team["owner"])
    sweep(db, ny(2026, 11, 30, 12, 12))
    assert sla_notifications(db, first["id"]) == []


# ============================================================================================
# Who may sweep
# ============================================================================================
@pytest.mark.parametrize("call", ["public.sla_sweep(now())", "public.sla_rollup_due(now())",
                                  "public.sla_rollup_daily(current_date)"])
@pytest.mark.parametrize("person", ["anon", "operator", "manager", "client_user_a", "agent_a"])
def test_only_the_service_may_sweep_and_roll_up(db, person, call):
    act_as(db, PEOPLE[person])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.transaction():
            db.execute(f"select {call}")


def test_the_service_role_may_sweep(db):
    db.execute("select set_config('role', 'service_role', true),"
               " set_config('request.jwt.claims', '{\"role\": \"service_role\"}', true)")
    assert db.execute("select public.sla_sweep(now()) ? 'levelsRaised' as ok").fetchone()["ok"]


# ============================================================================================
# What the SLA view shows of it
# ============================================================================================
def test_the_sla_view_shows_the_swept_status_the_alerts_and_the_business_minutes_left(db):
    workflow, first = start_payoff(db, MONDAY_9)
    sweep(db, ny(2026, 11, 30, 12, 12))
    view = db.execute("select public.sla_view(p_now => %s, p_limit => 500) as v",
                      (ny(2026, 11, 30, 12, 12),)).fetchone()["v"]
    [item] = [t for t in view["tracking"] if t["taskId"] == str(first["id"])]
    assert (item["slaStatus"], item["businessMinutesRemaining"]) == ("AT_RISK", 48)
    assert {a["alertLevel"] for a in view["alerts"] if a["taskId"] == str(first["id"])} == {"YELLOW", "ORANGE"}


def test_a_paused_task_leaves_the_sla_list_until_its_clock_runs_again(db):
    workflow, first = start_payoff(db, MONDAY_9)
    act_on_workflow(db, workflow["id"], "pause", ny(2026, 11, 30, 10, 0))
    listed = lambda moment: [t["taskId"] for t in db.execute(  # noqa: E731
        "select public.sla_view(p_now => %s, p_limit => 500) as v", (moment,)).fetchone()["v"]["tracking"]]
    assert str(first["id"]) not in listed(ny(2026, 11, 30, 11, 0))
    act_on_workflow(db, workflow["id"], "resume", ny(2026, 11, 30, 11, 0))
    assert str(first["id"]) in listed(ny(2026, 11, 30, 11, 0))
