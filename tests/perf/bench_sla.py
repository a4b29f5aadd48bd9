"""SLA sweep benchmark: public.sla_sweep over 100,000 open tasks in a database of its own.

    .venv/bin/python tests/perf/bench_sla.py [--tasks 100000] [--keep]

Needs PostgreSQL at $BENCH_SERVER_URL (default the local server). Creates, migrates and seeds
rexera_bench_sla, drops it at the end (unless --keep), prints a table and writes
tests/perf/results/sla.json and sla.md.

The seed, in bulk (triggers off for the insert, as a data import would): 20,000 workflows of 5
open tasks each, with running SLA clocks of 30 to 3,360 business minutes started at minute
steps over the three business days before the benchmark's instant T (Wednesday 2026-12-02
15:00 New York), each workflow with a HIL owner and a manager to escalate to. Then, at T:

  catch-up          the first sweep ever: every level reached since the clocks started, with
                    alerts, task and workflow sla_status and notifications (the worst case: a
                    sweep that has not run for days);
  repeat            a second sweep at T: nothing has changed, so it should write nothing (the
                    planner still has the statistics from before the catch-up);
  repeat, analyzed  the same after `analyze`, which autovacuum runs within a minute of such a
                    change: the sweep reads only the clocks and alerts that are due (indexes);
  next min          the sweep one minute later (T + 1 min): the steady state, every minute;
  next hour         the sweep an hour after that: an hour's worth of level changes at once.

Each sweep is timed with its commit; "rows written" counts the rows of each table the sweep's
transaction inserted or updated (xmin), audit and realtime events included.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations  # noqa: E402

RESULTS = ROOT / "tests" / "perf" / "results"
T = datetime(2026, 12, 2, 15, 0, tzinfo=ZoneInfo("America/New_York"))
TASKS_PER_WORKFLOW = 5
TARGET_SECONDS = 2.0
WRITTEN_TABLES = ["public.sla_tracking", "public.sla_alerts", "public.tasks", "public.workflows", "public.notifications",
                  "public.audit_events", "public.realtime_events", "private.activity_counters",
                  "private.workflow_activity"]

SEED = """
set session_replication_role = replica;

insert into public.clients (id, name) values ('00000000-0000-4000-8000-0000000000b1', 'Bench SLA client');
insert into auth.users (id, email)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench-hil-' || i || '@bench.example'
  from generate_series(1, 21) i;
insert into public.user_profiles (id, email, user_type, role)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench-hil-' || i || '@bench.example',
       'hil_user', case when i = 21 then 'hil_manager' else 'hil_operator' end::public.user_role
  from generate_series(1, 21) i;

insert into public.workflows (id, workflow_type, status, client_id, title, hil_owner_id, manager_id, started_at)
select ('10000000-0000-4000-8000-' || lpad(w::text, 12, '0'))::uuid,
       (array['MUNI_LIEN_SEARCH', 'HOA_ACQUISITION', 'PAYOFF_REQUEST'])[1 + w %% 3]::public.workflow_type,
       'IN_PROGRESS', '00000000-0000-4000-8000-0000000000b1', 'Bench SLA ' || w,
       ('00000000-0000-4000-8000-' || lpad((1 + w %% 20)::text, 12, '0'))::uuid,
       '00000000-0000-4000-8000-000000000021', %(t)s::timestamptz - interval '3 days'
  from generate_series(1, %(workflows)s) w;

-- The distinct clocks: a start every 7 minutes over the three days before T, five SLA lengths.
create temporary table bench_clocks as
select row_number() over () as k, c.started_at, c.minutes, th.*
  from (select s as started_at, m as minutes
          from generate_series(%(t)s::timestamptz - interval '3 days', %(t)s::timestamptz - interval '1 minute',
                               interval '7 minutes') s
         cross join unnest(array[30, 240, 480, 960, 3360]) m) c
 cross join lateral private.sla_thresholds(c.started_at, c.minutes, 0) th;

insert into public.tasks (id, workflow_id, client_id, task_key, task_type, title, executor_type, status,
                          sla_minutes, sla_started_at, sla_due_at, assigned_to, started_at)
select ('20000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       ('10000000-0000-4000-8000-' || lpad((1 + (n - 1) / %(per)s)::text, 12, '0'))::uuid,
       '00000000-0000-4000-8000-0000000000b1', 'bench_step_' || ((n - 1) %% %(per)s), 'bench_step',
       'Bench step ' || n, case when n %% 4 = 0 then 'HIL' else 'AI' end::public.executor_type,
       (array['PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW'])[1 + n %% 4]::public.task_status,
       c.minutes, c.started_at, c.due_at,
       case when n %% 2 = 0 then ('00000000-0000-4000-8000-' || lpad((1 + n %% 20)::text, 12, '0'))::uuid end,
       c.started_at
  from generate_series(1, %(tasks)s) n
  join bench_clocks c on c.k = 1 + (n * 7919) %% (select count(*) from bench_clocks);

insert into public.sla_tracking (task_id, workflow_id, client_id, business_minutes, started_at, resumed_at, due_at,
                                 yellow_at, orange_at, red_at, next_alert_at)
select t.id, t.workflow_id, t.client_id, c.minutes, c.started_at, c.started_at, c.due_at,
       c.yellow_at, c.orange_at, c.red_at, c.yellow_at
  from public.tasks t
  join bench_clocks c on c.started_at = t.sla_started_at and c.minutes = t.sla_minutes
 where t.client_id = '00000000-0000-4000-8000-0000000000b1';

set session_replication_role = origin;
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_sla"
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    load_at_start = round(os.getloadavg()[0], 2)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        print(f"migrating and seeding {args.tasks} open tasks ...", flush=True)
        started = time.perf_counter()
        apply_migrations(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            # Several statements with parameters: bound client-side.
            psycopg.ClientCursor(conn).execute(SEED, {
                "t": T, "per": TASKS_PER_WORKFLOW, "workflows": -(-args.tasks // TASKS_PER_WORKFLOW),
                "tasks": args.tasks})
            conn.execute("analyze")
            clocks = conn.execute("select count(*) from public.sla_tracking where next_alert_at is not null").fetchone()[0]
        seed_seconds = time.perf_counter() - started
        print(f"seeded in {seed_seconds:.1f} s: {clocks} running clocks", flush=True)

        runs = [("catch-up", T), ("repeat", T), ("analyze", None), ("repeat, analyzed", T),
                ("next min", T + timedelta(minutes=1)), ("next hour", T + timedelta(minutes=61))]
        rows = []
        for label, moment in runs:
            if moment is None:  # what autovacuum does within a minute of the catch-up's million rows
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("analyze")
                continue
            result = timed_sweep(url, moment)
            rows.append({"run": label, "at": moment.isoformat(), **result})
            print(f"{label}: {result['seconds']:.3f} s, {result['summary']}, written {result['written']}", flush=True)
    finally:
        if not args.keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    # The machine is shared: the load average says how much the figures were slowed down.
    report = {"tasks": args.tasks, "runningClocks": clocks, "seedSeconds": round(seed_seconds, 1),
              "targetSeconds": TARGET_SECONDS, "cpus": os.cpu_count(),
              "loadAverage1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)}, "runs": rows}
    table = render(report)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sla.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / "sla.md").write_text(table + "\n")
    return 0


def timed_sweep(url: str, moment: datetime) -> dict:
    """One sweep timed from the call to its commit; then, in the same transaction before the
    commit, the rows it wrote per table (counted by xmin, outside the timing)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        xid = conn.execute("select txid_current()::text as x").fetchone()["x"]
        began = time.perf_counter()
        summary = conn.execute("select public.sla_sweep(%s) as s", (moment,)).fetchone()["s"]
        swept = time.perf_counter() - began
        written = {table: conn.execute(
            sql.SQL("select count(*) as n from {} where xmin::text = %s").format(sql.Identifier(*table.split("."))),
            (xid,)).fetchone()["n"] for table in WRITTEN_TABLES}
        began = time.perf_counter()
        conn.commit()
        committed = time.perf_counter() - began
    return {"seconds": round(swept + committed, 3), "summary": summary, "written": written}


def render(report: dict) -> str:
    header = ("| run | instant | seconds | levels raised | alerts | tasks updated | notifications | rows written |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|")
    lines = [f"SLA sweep over {report['tasks']:,} open tasks ({report['runningClocks']:,} running clocks); "
             f"target < {report['targetSeconds']} s; {report['cpus']} CPUs, 1-minute load average "
             f"{report['loadAverage1m']['start']} at the start, {report['loadAverage1m']['end']} at the end", "", header]
    for row in report["runs"]:
        s = row["summary"]
        lines.append(f"| {row['run']} | {row['at']} | {row['seconds']:.3f} | {s['levelsRaised']} | {s['alertsCreated']} | "
                     f"{s['tasksUpdated']} | {s['notificationsCreated']} | {sum(row['written'].values())} |")
    lines.append("")
    lines.append("rows written per table: " + "; ".join(
        f"{row['run']}: " + ", ".join(f"{k} {v}" for k, v in row["written"].items() if v) for row in report["runs"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
