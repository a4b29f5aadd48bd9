"""The activity counters behind the dashboard and SLA summaries: after any mix of changes, by
any path, they equal a direct count of the rows; each caller sums only the counters of what RLS
lets them read; concurrent changes to one client's workflows lose no update."""
from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.db.factories import make_workflow, set_task_status, start_workflow, tasks_of
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE
from tests.support import act_as, act_as_service

OPEN = "('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW')"
# The same conditions the views counted with before the counters existed, written once more
# here, independently of the triggers.
RECOUNT = f"""
select c.client_id,
       (select count(*) from public.workflows w where w.client_id = c.client_id
          and w.status in ('IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED', 'PAUSED')) as active_workflows,
       (select count(*) from public.workflows w where w.client_id = c.client_id and w.status = 'PENDING') as pending_workflows,
       (select count(*) from public.tasks t join public.workflows w on w.id = t.workflow_id
         where t.client_id = c.client_id
           and ((t.executor_type = 'HIL' and t.status in {OPEN})
                or (t.status in ('AWAITING_REVIEW', 'FAILED') and w.status not in ('COMPLETED', 'CANCELLED')))) as tasks_awaiting_hil,
       (select count(*) from public.tasks t where t.client_id = c.client_id and t.status in {OPEN}
           and t.sla_status = 'AT_RISK') as tasks_at_risk,
       (select count(*) from public.tasks t where t.client_id = c.client_id and t.status in {OPEN}
           and t.sla_status = 'BREACHED') as tasks_breached,
       (select count(*) from public.tasks t where t.client_id = c.client_id and t.status in {OPEN}
           and t.sla_due_at is not null and t.sla_status = 'ON_TIME') as clocks_on_time,
       (select count(*) from public.tasks t where t.client_id = c.client_id and t.status in {OPEN}
           and t.sla_due_at is not null and t.sla_status = 'AT_RISK') as clocks_at_risk,
       (select count(*) from public.tasks t where t.client_id = c.client_id and t.status in {OPEN}
           and t.sla_due_at is not null and t.sla_status = 'BREACHED') as clocks_breached
  from (select id as client_id from public.clients) c
"""
SUMMED = """
select c.id as client_id,
       coalesce(sum(a.active_workflows), 0) as active_workflows, coalesce(sum(a.pending_workflows), 0) as pending_workflows,
       coalesce(sum(a.tasks_awaiting_hil), 0) as tasks_awaiting_hil, coalesce(sum(a.tasks_at_risk), 0) as tasks_at_risk,
       coalesce(sum(a.tasks_breached), 0) as tasks_breached, coalesce(sum(a.clocks_on_time), 0) as clocks_on_time,
       coalesce(sum(a.clocks_at_risk), 0) as clocks_at_risk, coalesce(sum(a.clocks_breached), 0) as clocks_breached
  from public.clients c
  left join private.activity_counters a on a.client_id = c.id
 group by c.id
"""


def by_client(rows):
    return {r["client_id"]: {k: int(v) for k, v in r.items() if k != "client_id"} for r in rows}


def assert_counters_exact(conn):
    expected = by_client(conn.execute(RECOUNT).fetchall())
    assert by_client(conn.execute(SUMMED).fetchall()) == expected
    # and the per-workflow rows: one per workflow, none left for deleted ones
    orphans = conn.execute("""select count(*) as n from private.workflow_activity a
                               where not exists (select 1 from public.workflows w where w.id = a.workflow_id)""").fetchone()
    assert orphans["n"] == 0
    return expected


def test_the_world_starts_with_exact_counters(db):
    counts = assert_counters_exact(db)
    assert counts[CLIENT_A]["active_workflows"] > 0  # the world has something to count


def test_every_kind_of_change_keeps_the_counters_exact(db):
    before = assert_counters_exact(db)
    # a new workflow (PENDING), started (its plan instantiated), tasks moved through states
    workflow = make_workflow(db)
    after_insert = assert_counters_exact(db)
    assert after_insert[CLIENT_A]["pending_workflows"] == before[CLIENT_A]["pending_workflows"] + 1
    start_workflow(db, workflow["id"])
    after_start = assert_counters_exact(db)
    assert after_start[CLIENT_A]["active_workflows"] == before[CLIENT_A]["active_workflows"] + 1
    tasks = list(tasks_of(db, workflow["id"]).values())
    set_task_status(db, tasks[0]["id"], "RUNNING")
    set_task_status(db, tasks[0]["id"], "FAILED", {"error": "lender portal down"})
    failed = assert_counters_exact(db)
    assert failed[CLIENT_A]["tasks_awaiting_hil"] >= after_start[CLIENT_A]["tasks_awaiting_hil"] + 1
    # SLA status changes (what a sweep does), due dates cleared and set
    db.execute("update public.tasks set sla_status = 'BREACHED' where workflow_id = %s and status = 'PENDING'",
               (workflow["id"],))
    assert_counters_exact(db)
    db.execute("update public.tasks set sla_due_at = null where id = %s", (tasks[1]["id"],))
    assert_counters_exact(db)
    # a change that counts nothing (assignment) leaves them as they are
    db.execute("update public.tasks set assigned_to = %s where id = %s", (PEOPLE["operator"].user_id, tasks[2]["id"]))
    assert_counters_exact(db)
    # the workflow finishes: its failed task no longer waits for a person
    db.execute("select public.workflow_action(%s, 'cancel', %s)", (workflow["id"], Jsonb({"reason": "test"})))
    cancelled = assert_counters_exact(db)
    assert cancelled[CLIENT_A]["active_workflows"] == before[CLIENT_A]["active_workflows"]
    # deleting tasks, then the workflow (its tasks go with it)
    db.execute("delete from public.tasks where id = %s", (tasks[3]["id"],))
    assert_counters_exact(db)
    db.execute("delete from public.workflows where id = %s", (workflow["id"],))
    assert assert_counters_exact(db) == before


def test_a_workflow_completed_by_the_same_statement_that_moves_its_last_task(db):
    """Whatever order the triggers fire in, the counters end equal to the rows."""
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    for task in tasks_of(db, workflow["id"]).values():
        if task["status"] in ("PENDING", "RUNNING", "WAITING", "AWAITING_REVIEW"):
            db.execute("update public.tasks set status = 'SKIPPED' where id = %s and status = 'PENDING'", (task["id"],))
    assert_counters_exact(db)
    db.execute("select public.workflow_action(%s, 'complete')", (workflow["id"],))
    assert_counters_exact(db)


def test_rebuild_gives_what_the_triggers_kept(db):
    kept = db.execute("select * from private.activity_counters order by client_id, shard").fetchall()
    db.execute("select private.rebuild_activity_counters()")
    rebuilt = db.execute("select * from private.activity_counters order by client_id, shard").fetchall()
    nonzero = [r for r in kept if any(v for k, v in r.items() if k not in ("client_id", "shard"))]
    assert [r for r in rebuilt if any(v for k, v in r.items() if k not in ("client_id", "shard"))] == nonzero


@pytest.mark.parametrize("person, sees", [
    ("operator", None),  # every client's
    ("client_user_a", {CLIENT_A}),
    ("client_user_b", {CLIENT_B}),
    ("agent_a", set()),
])
def test_each_caller_reads_only_the_counters_of_what_they_may_read(db, person, sees):
    act_as(db, PEOPLE[person])
    clients = {r["client_id"] for r in db.execute("select distinct client_id from private.activity_counters")}
    act_as_service(db)
    every = {r["client_id"] for r in db.execute("select distinct client_id from private.activity_counters")}
    assert {CLIENT_A, CLIENT_B} <= every
    assert clients == (every if sees is None else sees)


def test_nobody_signed_in_can_write_the_counters(db):
    act_as(db, PEOPLE["operator"])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.transaction():
            db.execute("update private.activity_counters set active_workflows = 0")


def test_an_agent_counts_its_own_workflow(db):
    act_as(db, PEOPLE["agent_a"])
    mine = db.execute("select * from private.visible_activity()").fetchone()
    act_as_service(db)
    expected = db.execute(f"""
        select count(*) filter (where t.status in {OPEN} and t.sla_status = 'AT_RISK') as at_risk,
               count(*) filter (where t.status in {OPEN} and t.sla_status = 'BREACHED') as breached
          from public.tasks t where t.workflow_id = %s""", (PEOPLE["agent_a"].workflow_id,)).fetchone()
    assert (mine["tasks_at_risk"], mine["tasks_breached"]) == (expected["at_risk"], expected["breached"])
    assert mine["active_workflows"] + mine["pending_workflows"] <= 1


def test_concurrent_changes_to_one_clients_workflows_lose_no_update(database_url):
    """Eight connections each start and move their own workflow of client A at the same time
    (all in the same counter shard space); the sums still equal the rows."""
    setup = psycopg.connect(database_url, row_factory=dict_row, autocommit=True)
    ids = [make_workflow(setup)["id"] for _ in range(8)]
    barrier = threading.Barrier(len(ids))
    failures = []

    def work(workflow_id):
        try:
            with psycopg.connect(database_url, row_factory=dict_row) as conn:
                barrier.wait()
                start_workflow(conn, workflow_id)
                conn.commit()
                for task in tasks_of(conn, workflow_id).values():
                    conn.execute("update public.tasks set sla_status = 'AT_RISK' where id = %s", (task["id"],))
                    conn.commit()
                conn.execute("select public.workflow_action(%s, 'cancel', %s)", (workflow_id, Jsonb({"reason": "t"})))
                conn.commit()
        except Exception as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failures == []
        assert_counters_exact(setup)
    finally:
        setup.execute("delete from public.workflows where id = any(%s)", (ids,))
        assert_counters_exact(setup)
        setup.close()
