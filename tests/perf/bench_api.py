"""API benchmark: seeds 10,000 workflows, 100,000 tasks and 50 clients, runs the service under
gunicorn, and measures p50/p95/p99 with wrk for the main reads and a task action, plus the
requests per second of a read next to a Flask no-op endpoint measured in the same run.

    .venv/bin/python tests/perf/bench_api.py [--duration 10] [--connections 8]

Needs wrk (apt-get install wrk) and PostgreSQL at $BENCH_SERVER_URL (default the local server).
Writes tests/perf/results/api.json and api.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations  # noqa: E402
from tests.perf import tools  # noqa: E402
from tests.support import Person, mint_token  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
RESULTS = ROOT / "tests" / "perf" / "results"
WRK_THREADS = 2

SEED_TEMPLATE = """
set session_replication_role = replica;  -- bulk load: skip audit/event triggers, counters set directly
insert into public.clients (id, name)
select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'Bench client ' || i from generate_series(1, {clients}) i;

insert into public.workflows (id, workflow_type, status, client_id, title, payload, priority, total_tasks, completed_tasks,
                              sla_status, created_at, started_at)
select ('10000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       (array['MUNI_LIEN_SEARCH', 'HOA_ACQUISITION', 'PAYOFF_REQUEST'])[1 + i % 3]::public.workflow_type,
       (array['IN_PROGRESS', 'IN_PROGRESS', 'COMPLETED', 'PENDING', 'BLOCKED'])[1 + i % 5]::public.workflow_status,
       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % {clients}), 12, '0'))::uuid,
       'Bench workflow ' || i, jsonb_build_object('address', i || ' Bench St'),
       (array['LOW', 'NORMAL', 'HIGH', 'URGENT'])[1 + i % 4]::public.priority_level,
       case when i % 5 = 3 then 0 else 12 + i % 2 end,               -- PENDING: no tasks yet; 12 or 13 steps
       case i % 5 when 2 then 12 + i % 2 when 3 then 0 else i % 12 end,  -- COMPLETED: all done
       (array['ON_TIME', 'ON_TIME', 'AT_RISK', 'BREACHED'])[1 + i % 4]::public.sla_status,
       now() - (i || ' minutes')::interval, now() - (i || ' minutes')::interval
  from generate_series(1, {workflows}) i;

insert into public.tasks (workflow_id, client_id, task_key, task_type, title, sequence, executor_type, agent_name, status,
                          priority, sla_minutes, sla_started_at, sla_due_at, sla_status, created_at)
select w.id, w.client_id, 'step_' || s, 'step_' || s, 'Step ' || s, s,
       (case when s % 4 = 0 then 'HIL' else 'AI' end)::public.executor_type,
       (array['nina', 'mia', 'rex', 'iris', 'kosha'])[1 + s % 5],
       (case when s <= w.completed_tasks then 'COMPLETED'
             when s = w.completed_tasks + 1 then (array['RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED'])[1 + s % 4]
             else 'PENDING' end)::public.task_status,
       w.priority, 60, w.created_at, w.created_at + ((s * 60) || ' minutes')::interval,
       (array['ON_TIME', 'AT_RISK', 'ON_TIME', 'BREACHED'])[1 + s % 4]::public.sla_status, w.created_at
  from public.workflows w cross join lateral generate_series(1, w.total_tasks) s
 where w.title like 'Bench workflow %' and w.status <> 'PENDING';  -- 4 in 5 workflows, 12 or 13 steps each

insert into public.documents (workflow_id, document_type, filename, is_client_visible)
select id, 'WORKING', 'bench.pdf', true from public.workflows where title like 'Bench workflow %';
set session_replication_role = origin;
select private.rebuild_activity_counters();  -- the counters the skipped triggers would have kept
"""


def seed_sql(workflows: int = 10_000, clients: int = 50) -> str:
    """The bulk load: `clients` clients, `workflows` workflows (one in five PENDING, without
    tasks; the others with 12 or 13 tasks each, so 10,000 workflows give 100,000 tasks), one
    document per workflow."""
    return SEED_TEMPLATE.replace("{workflows}", str(workflows)).replace("{clients}", str(clients))


SEED = seed_sql()

# POSTs (the task action): each wrk thread takes its own share of the paths, and the body
# changes with every pass over them, so every request changes something (assigning a task to
# the person it is assigned to already is a no-op the database answers without writing).
LUA = """
local paths = {}
local bodies = {}
local idx = 0
local threads = 0
setup = function(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end
init = function(args)
  local body = os.getenv("BENCH_BODY")
  method = body and "POST" or "GET"
  local count = tonumber(os.getenv("BENCH_THREADS"))
  local n = 0
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if method == "GET" or n % count == thread_id then table.insert(paths, line) end
    n = n + 1
  end
  if body then for line in io.lines(body) do table.insert(bodies, line) end end
end
request = function()
  local path = paths[(idx % #paths) + 1]
  local pass = math.floor(idx / #paths)
  idx = idx + 1
  local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"), ["Content-Type"] = "application/json"}
  if method == "POST" then return wrk.format("POST", path, headers, bodies[(pass % #bodies) + 1]) end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('RESULT {"requests": %d, "seconds": %.3f, "errors": %d, "p50": %.2f, "p95": %.2f, "p99": %.2f}\\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(env: dict, target: str, log_name: str) -> tuple[subprocess.Popen, str]:
    """gunicorn serving `target` with gunicorn.conf.py on env["PORT"]; returns the process and
    its base URL once /api/health/database answers."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = open(RESULTS / log_name, "w")  # noqa: SIM115 (the server writes it for its whole life)
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", target],
                               cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{env['PORT']}"
    for _ in range(100):
        try:
            if requests.get(f"{base}/api/health/database", timeout=1).status_code == 200:
                return process, base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the service did not come up; see {RESULTS / log_name}")


def wrk(base: str, paths: list[str], token: str, duration: int, connections: int, bodies: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script, path_file = Path(tmp, "bench.lua"), Path(tmp, "paths")
        script.write_text(LUA)
        path_file.write_text("\n".join(paths) + "\n")
        env = {**os.environ, "BENCH_PATHS": str(path_file), "BENCH_TOKEN": token, "BENCH_THREADS": str(WRK_THREADS)}
        if bodies:
            Path(tmp, "bodies").write_text("\n".join(bodies) + "\n")
            env["BENCH_BODY"] = str(Path(tmp, "bodies"))
        out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), base],
                             capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    result["rps"] = round(result["requests"] / result["seconds"], 1)
    return result


def cpu_seconds(master_pid: int, url: str) -> tuple[float, float]:
    """CPU seconds used so far by the service (gunicorn's master and workers) and by the
    PostgreSQL backends serving it (every backend on the benchmark database but this one)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    service = sum(tools.process_cpu_seconds(pid) for pid in [master_pid, *map(int, children)])
    with psycopg.connect(url, autocommit=True) as conn:
        backends = [r[0] for r in conn.execute(
            "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()")]
    return service, sum(tools.process_cpu_seconds(pid) for pid in backends)


def combined(runs: list[dict]) -> dict:
    """Several wrk runs of one scenario as one row: requests per second over all of them, and
    the percentiles of the median run."""
    requests_, seconds = sum(r["requests"] for r in runs), sum(r["seconds"] for r in runs)
    middle = sorted(runs, key=lambda r: r["p95"])[len(runs) // 2]
    return {"requests": requests_, "seconds": round(seconds, 3), "errors": sum(r["errors"] for r in runs),
            "p50": middle["p50"], "p95": middle["p95"], "p99": middle["p99"], "rps": round(requests_ / seconds, 1),
            "cpu_service_ms": statistics.median(r["cpu_service_ms"] for r in runs),
            "cpu_db_ms": statistics.median(r["cpu_db_ms"] for r in runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of read, no-op, floor and bare taking turns")
    parser.add_argument("--round-seconds", type=int, default=4)
    parser.add_argument("--ratio-only", action="store_true", help="only the read / no-op / floor / bare rounds")
    parser.add_argument("--prepare-threshold", default="none",
                        help="DB_PREPARE_THRESHOLD for the service (none: as behind Supabase's transaction pooler)")
    parser.add_argument("--seed-only", action="store_true",
                        help="migrate and seed the benchmark database, print its URL and keep it (for EXPLAIN)")
    args = parser.parse_args()
    if not args.seed_only and not tools.require("wrk"):
        return 2

    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_api"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    print("migrating and seeding 10,000 workflows / 100,000 tasks / 50 clients ...", flush=True)
    started = time.perf_counter()
    apply_migrations(url, seed=True)
    operator_id, colleague_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)
        conn.execute("vacuum analyze")  # as autovacuum leaves a table at rest (visibility map set)
        for person, email in ((operator_id, "bench-operator@example.com"), (colleague_id, "bench-colleague@example.com")):
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (person, email))
            conn.execute("""insert into public.user_profiles (id, email, user_type, role)
                            values (%s, %s, 'hil_user', 'hil_operator')""", (person, email))
        workflow_ids = [r[0] for r in conn.execute(
            "select id from public.workflows where title like 'Bench workflow %%' order by random() limit 500")]
        task_ids = [r[0] for r in conn.execute(
            """select t.id from public.tasks t join public.workflows w on w.id = t.workflow_id
                where t.status in ('RUNNING', 'WAITING', 'AWAITING_REVIEW') and w.status = 'IN_PROGRESS'
                order by random() limit 500""")]
        counts = conn.execute("select (select count(*) from public.workflows), (select count(*) from public.tasks),"
                              " (select count(*) from public.clients)").fetchone()
    print(f"seeded in {time.perf_counter() - started:.1f} s: {counts[0]} workflows, {counts[1]} tasks, {counts[2]} clients")
    if args.seed_only:
        print(f"kept: {url} (operator {operator_id})")
        return 0

    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SUPABASE_JWT_SECRET": SECRET, "PORT": str(port), "RATE_LIMITS": "off",
           "WEB_CONCURRENCY": str(args.workers), "DB_POOL_MAX": "8", "PYTHONPATH": str(ROOT),
           "DB_PREPARE_THRESHOLD": args.prepare_threshold}
    gunicorn, base = start_service(env, "tests.perf.bench_wsgi:app", "api-server.log")
    try:
        token = mint_token(Person("bench", "hil_operator", user_id=operator_id), secret=SECRET, expires_in=7200)
        scenarios = {
            "list workflows (status+type filter, 50/page)": [
                "/api/workflows?status=IN_PROGRESS&type=PAYOFF_REQUEST&limit=50"],
            "get workflow include=tasks,documents": [f"/api/workflows/{w}?include=tasks,documents" for w in workflow_ids],
            "dashboard view": ["/api/views/dashboard?timeframe=today"],
            "SLA view": ["/api/views/sla?limit=100"],
        }
        rows = {}
        for label, paths in ({} if args.ratio_only else scenarios).items():
            wrk(base, paths, token, 2, args.connections)  # warm up
            rows[label] = wrk(base, paths, token, args.duration, args.connections)
            print(f"{label}: {rows[label]}", flush=True)
        if not args.ratio_only:
            bodies = [json.dumps({"action": "assign", "data": {"assigneeId": str(person)}})
                      for person in (operator_id, colleague_id)]
            action_paths = [f"/api/tasks/{t}/actions" for t in task_ids]
            rows["task action (assign)"] = wrk(base, action_paths, token, args.duration, args.connections, bodies)
            with psycopg.connect(url) as conn:  # every answered action changed something
                rows["task action (assign)"]["changed"] = conn.execute(
                    "select count(*) from public.audit_events where event_type = 'task.assign'").fetchone()[0]
            print(f"task action: {rows['task action (assign)']}", flush=True)
        # The ratio's three runs take turns in short rounds (the order rotating), so a change in
        # what else the shared machine is doing falls on all of them alike; the ratio reported is
        # the median of the rounds' ratios.
        ratio_paths = {"read": [f"/api/workflows/{w}" for w in workflow_ids], "noop": ["/bench/noop"],
                       "floor": ["/api/bench/floor"], "bare": ["/bench/bare"]}
        runs = {name: [] for name in ratio_paths}
        for number in range(args.rounds):
            turn = number % len(ratio_paths)
            order = list(ratio_paths)[turn:] + list(ratio_paths)[:turn]
            for name in order:
                before = cpu_seconds(gunicorn.pid, url)
                run = wrk(base, ratio_paths[name], token, args.round_seconds, args.connections)
                after = cpu_seconds(gunicorn.pid, url)
                run["cpu_service_ms"] = round((after[0] - before[0]) * 1000 / max(run["requests"], 1), 3)
                run["cpu_db_ms"] = round((after[1] - before[1]) * 1000 / max(run["requests"], 1), 3)
                runs[name].append(run)
            print(f"round {number + 1}: " + ", ".join(f"{name} {runs[name][-1]['rps']:.0f} req/s" for name in ratio_paths),
                  flush=True)
        rows["read: get workflow"] = combined(runs["read"])
        rows["baseline: Flask no-op"] = combined(runs["noop"])
        rows["floor: authenticated `select 1`"] = combined(runs["floor"])
        rows["bare: pooled `select 1`, no caller"] = combined(runs["bare"])
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    # Each round's req/s of read, floor and bare over that round's no-op, and their medians.
    to_noop = {name: [round(r["rps"] / n["rps"], 3) for r, n in zip(runs[name], runs["noop"])]
               for name in ("read", "floor", "bare")}
    round_ratios, floor_ratios, bare_ratios = to_noop["read"], to_noop["floor"], to_noop["bare"]
    ratio, floor_ratio, bare_ratio = (statistics.median(to_noop[name]) for name in ("read", "floor", "bare"))
    report = {"machine": f"{os.cpu_count()} cores", "workers": args.workers, "connections": args.connections,
              "prepare_threshold": args.prepare_threshold,
              "duration_s": args.duration, "data": {"workflows": counts[0], "tasks": counts[1], "clients": counts[2]},
              "results": rows, "read_to_noop_rps_ratio": ratio, "floor_to_noop_rps_ratio": floor_ratio,
              "bare_to_noop_rps_ratio": bare_ratio,
              "rounds": {"seconds": args.round_seconds, "read_to_noop": round_ratios, "floor_to_noop": floor_ratios,
                         "bare_to_noop": bare_ratios}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| scenario | p50 ms | p95 ms | p99 ms | req/s | errors |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['p50']:.1f} | {v['p95']:.1f} | {v['p99']:.1f} | {v['rps']:.0f} | {v['errors']} |" for k, v in rows.items()]
    lines.append("\nCPU per request (median of the rounds; the service's processes, then PostgreSQL's backends): "
                 + "; ".join(f"{label.split(':')[0]} {rows[label]['cpu_service_ms']:.2f} + {rows[label]['cpu_db_ms']:.2f} ms"
                             for label in rows if "cpu_service_ms" in rows[label]) + ".")
    lines.append(f"\nread req/s ÷ no-op req/s = **{ratio}**, the median of {args.rounds} rounds of {args.round_seconds} s"
                 f" taking turns ({', '.join(map(str, round_ratios))}; {args.connections} connections, {args.workers} workers,"
                 f" prepared statements: {args.prepare_threshold}); the floor (authenticate, one round trip, `select 1`)"
                 f" ÷ no-op = {floor_ratio} ({', '.join(map(str, floor_ratios))}); bare (a pooled `select 1`, no caller,"
                 f" no transaction) ÷ no-op = {bare_ratio} ({', '.join(map(str, bare_ratios))}). Their rows above: all"
                 " rounds together (req/s) and the median round's percentiles.")
    (RESULTS / "api.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
