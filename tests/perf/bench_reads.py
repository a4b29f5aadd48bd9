"""Reads at scale: 100,000 workflows, 1,000,000 tasks and 500 clients. p50/p95/p99 under gunicorn
(wrk) of the dashboard view, the workflow list with include= and the SLA view, next to the same
SQL timed directly on one connection (no HTTP, no Python), with the plans PostgreSQL chose
(EXPLAIN ANALYZE of every statement, nested ones included) and the indexes they used.

    .venv/bin/python tests/perf/bench_reads.py [--workflows 100000] [--clients 500] [--duration 10]

Needs wrk (apt-get install wrk) and PostgreSQL at $BENCH_SERVER_URL (default the local server).
Writes tests/perf/results/reads.json, reads.md and reads_explain.txt. Seeding a million tasks
takes a few minutes; --keep leaves the database for another run (--reuse).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations  # noqa: E402
from app.services.workflows import workflow_page_statement  # noqa: E402
from tests.perf.bench_api import RESULTS, SECRET, free_port, seed_sql, start_service, wrk  # noqa: E402
from tests.support import Person, mint_token  # noqa: E402

NAME = "rexera_bench_reads"
LIST_ARGS = {"limit": 50, "offset": 0, "include": ["tasks", "documents"]}
SCENARIOS = {
    # label: (path, the SQL the endpoint runs)
    "dashboard view": ("/api/views/dashboard?timeframe=today",
                       ("select public.dashboard_view(%s, %s)::text as view", (None, "today"))),
    "list workflows include=tasks,documents (50/page)": ("/api/workflows?include=tasks,documents&limit=50",
                                                          workflow_page_statement(LIST_ARGS)),
    "SLA view": ("/api/views/sla?limit=100", ("select public.sla_view(now(), %s)::text as view", (100,))),
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def act_as(conn: psycopg.Connection, claims: dict) -> None:
    conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                 (json.dumps(claims),))


def time_sql(url: str, claims: dict, query, params, iterations: int) -> dict:
    """The statement alone: one connection, the caller's role and claims, `iterations` runs."""
    timings = []
    with psycopg.connect(url, row_factory=dict_row, options="-c timezone=UTC") as conn:
        conn.execute("begin")
        act_as(conn, claims)
        for _ in range(5):  # warm the caches and the plan cache
            conn.execute(query, params).fetchall()
        for _ in range(iterations):
            started = time.perf_counter()
            conn.execute(query, params).fetchall()
            timings.append((time.perf_counter() - started) * 1000)
        conn.execute("rollback")
    return {"runs": iterations, "p50": round(percentile(timings, 50), 2), "p95": round(percentile(timings, 95), 2),
            "p99": round(percentile(timings, 99), 2), "mean": round(statistics.fmean(timings), 2)}


def explain(url: str, claims: dict, query, params) -> str:
    """EXPLAIN ANALYZE of the statement and of every statement the view functions run inside
    (auto_explain, nested statements included), as the caller."""
    plans: list[str] = []
    with psycopg.connect(url, options="-c timezone=UTC") as conn:
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        conn.execute("load 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                        "auto_explain.log_analyze = on", "auto_explain.log_buffers = on",
                        "auto_explain.log_timing = off", "auto_explain.log_level = notice",
                        "client_min_messages = notice"):
            conn.execute(f"set {setting}")
        conn.execute("begin")
        act_as(conn, claims)
        conn.execute(query, params).fetchall()
        conn.execute("rollback")
    return "\n\n".join(plan for plan in plans if "Query Text" in plan)


def indexes_used(plan_text: str) -> dict:
    used = sorted(set(re.findall(r"Index (?:Only )?Scan(?: Backward)? using (\w+)", plan_text))
                  | set(re.findall(r"Bitmap Index Scan on (\w+)", plan_text)))
    sequential = sorted(set(re.findall(r"Seq Scan on (\w+)", plan_text)))
    return {"indexes": used, "sequential_scans": sequential}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=200, help="runs of each statement timed directly")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    args = parser.parse_args()

    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = f"{server.rsplit('/', 1)[0]}/{NAME}"
    if not args.reuse:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(NAME)))
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(NAME)))
        print(f"migrating and seeding {args.workflows:,} workflows / {args.clients} clients ...", flush=True)
        started = time.perf_counter()
        apply_migrations(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(seed_sql(args.workflows, args.clients))
            conn.execute("vacuum analyze")
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        counts = conn.execute("select (select count(*) from public.workflows), (select count(*) from public.tasks),"
                              " (select count(*) from public.clients)").fetchone()
        operator_id = conn.execute("select id from auth.users where email = 'bench-reads@example.com'").fetchone()
        if operator_id is None:
            operator_id = (uuid.uuid4(),)
            conn.execute("insert into auth.users (id, email) values (%s, 'bench-reads@example.com')", operator_id)
            conn.execute("""insert into public.user_profiles (id, email, user_type, role)
                            values (%s, 'bench-reads@example.com', 'hil_user', 'hil_operator')""", operator_id)
    operator = Person("bench", "hil_operator", user_id=operator_id[0])
    print(f"data: {counts[0]:,} workflows, {counts[1]:,} tasks, {counts[2]} clients", flush=True)

    rows, plans = {}, []
    for label, (_, (query, params)) in SCENARIOS.items():
        rows[label] = {"sql": time_sql(url, operator.claims, query, params, args.iterations)}
        plan = explain(url, operator.claims, query, params)
        rows[label]["plan"] = indexes_used(plan)
        plans.append(f"==== {label} ====\n{plan}")

    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SUPABASE_JWT_SECRET": SECRET, "PORT": str(port), "RATE_LIMITS": "off",
           "WEB_CONCURRENCY": "2", "DB_POOL_MAX": "8", "PYTHONPATH": str(ROOT)}
    gunicorn, base = start_service(env, "tests.perf.bench_wsgi:app", "reads-server.log")
    try:
        token = mint_token(operator, secret=SECRET, expires_in=7200)
        for label, (path, _) in SCENARIOS.items():
            wrk(base, [path], token, 2, args.connections)  # warm up
            rows[label]["http"] = wrk(base, [path], token, args.duration, args.connections)
            print(f"{label}: http {rows[label]['http']}, sql {rows[label]['sql']}", flush=True)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        if not args.keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(NAME)))

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine": f"{os.cpu_count()} cores", "load_average": os.getloadavg(), "connections": args.connections,
              "duration_s": args.duration, "data": {"workflows": counts[0], "tasks": counts[1], "clients": counts[2]},
              "results": rows}
    (RESULTS / "reads.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / "reads_explain.txt").write_text("\n\n".join(plans) + "\n")
    lines = ["| read | HTTP p50 ms | p95 ms | p99 ms | req/s | SQL alone p50 ms | p95 ms | p99 ms | indexes used | seq scans |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for label, row in rows.items():
        http, direct, plan = row["http"], row["sql"], row["plan"]
        lines.append(f"| {label} | {http['p50']:.1f} | {http['p95']:.1f} | {http['p99']:.1f} | {http['rps']:.0f} | "
                     f"{direct['p50']:.1f} | {direct['p95']:.1f} | {direct['p99']:.1f} | "
                     f"{', '.join(plan['indexes'])} | {', '.join(plan['sequential_scans']) or 'none'} |")
    lines.append(f"\n{counts[0]:,} workflows, {counts[1]:,} tasks, {counts[2]} clients; gunicorn 2 gthread workers, "
                 f"wrk {args.connections} connections, {args.duration} s; SQL alone: {args.iterations} runs on one "
                 f"connection as the same operator; load average {os.getloadavg()[0]:.1f}")
    (RESULTS / "reads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
