"""Callback ingest benchmark: POST /webhooks/n8n under gunicorn (2 gthread workers) driven by wrk
with correctly signed, distinct task.started / task.completed events, next to the same database
transaction (public.apply_n8n_event) run directly by pgbench as the ceiling, in the same run.

    .venv/bin/python tests/perf/bench_callbacks.py [--duration 10] [--connections 8 32] [--workflows 6000]

Needs wrk and pgbench, and PostgreSQL at $BENCH_SERVER_URL (default the local server).
Writes tests/perf/results/callbacks.json and callbacks.md.

Every event is sent once: each wrk thread reads its own file of pre-generated request lines
(webhook-id, timestamp, signature, body), signed right before its run (the tolerance is five
minutes). Events come in chunks: the task.started of CHUNK tasks, then their task.completed, so
a task's completion is sent long after its start even with many connections in flight.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations
from app.webhooks.signing import sign, workflow_key
from tests.perf.bench_api import free_port, start_service

RESULTS = ROOT / "tests" / "perf" / "results"
MASTER = bytes(range(32))
CALLBACK_SECRET = "whsec_" + base64.b64encode(MASTER).decode()
JWT_SECRET = "bench-secret-0123456789abcdef0123456789"
CLIENT_ID = "00000000-0000-4000-8000-0000000000c1"
CHUNK = 512
WRK_THREADS = 2

SEED = """
insert into public.workflows (id, workflow_type, status, client_id, title, payload)
select gen_random_uuid(), 'PAYOFF_REQUEST', 'PENDING', %(client)s, 'Bench callbacks ' || i,
       jsonb_build_object('address', i || ' Bench St', 'loanNumber', 'L' || i)
  from generate_series(1, %(n)s) i;
"""

LUA = r"""
local threads = {}
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
local events = {}
local idx = 0
exhausted = 0
init = function(args)
  for line in io.lines(os.getenv("BENCH_EVENTS") .. "." .. tostring(tid)) do
    local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    table.insert(events, {id, ts, sig, body})
  end
end
request = function()
  idx = idx + 1
  if idx > #events then exhausted = exhausted + 1; idx = #events end
  local e = events[idx]
  return wrk.format("POST", "/webhooks/n8n", {["Content-Type"] = "application/json", ["webhook-id"] = e[1],
                    ["webhook-timestamp"] = e[2], ["webhook-signature"] = e[3]}, e[4])
end
done = function(summary, latency, requests)
  local exhausted = 0
  for _, thread in ipairs(threads) do exhausted = exhausted + (thread:get("exhausted") or 0) end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('RESULT {"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, "exhausted": %d, "p50": %.2f, "p95": %.2f, "p99": %.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status, errors, exhausted,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""

PGBENCH_SCRIPT = """select public.apply_n8n_event('n8n', e.event_id, e.event_type, e.data)
  from public.bench_events e where e.n = (select nextval('public.bench_events_seq'));
"""


def event_data(workflow_id: str, task_key: str, agent: str | None, kind: str) -> dict:
    data = {"workflowId": workflow_id, "executionId": f"bench-{workflow_id}", "taskKey": task_key, "attempt": 1}
    if agent:
        data["agentName"] = agent
    if kind == "task.started":
        data["input"] = {"workflowId": workflow_id, "taskKey": task_key}
    else:
        data["output"] = {"ok": True, "summary": f"{task_key} done"}
        data["metrics"] = {"processingTimeMs": 12, "tokensUsed": 340, "costUsd": 0.0021, "confidence": 0.93}
    return data


def ordered_events(tasks: list[tuple], tag: str) -> list[tuple[str, str, dict]]:
    """(event id, type, data): started for a chunk of tasks, then their completions, chunk by chunk."""
    out = []
    for start in range(0, len(tasks), CHUNK):
        chunk = tasks[start:start + CHUNK]
        for kind in ("task.started", "task.completed"):
            for workflow_id, task_key, agent in chunk:
                out.append((f"bench:{tag}:{workflow_id}:{task_key}:{kind}", kind,
                            event_data(workflow_id, task_key, agent, kind)))
    return out


def write_wrk_files(tasks: list[tuple], tag: str, directory: Path) -> Path:
    """One file per wrk thread (tasks split between threads), signed now."""
    prefix = directory / f"events-{tag}"
    now = int(time.time())
    for thread in range(WRK_THREADS):
        lines = []
        for event_id, kind, data in ordered_events(tasks[thread::WRK_THREADS], tag):
            body = json.dumps({"type": kind, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                               "data": data}, separators=(",", ":")).encode()
            signature = sign(workflow_key(MASTER, data["workflowId"]), event_id, now, body)
            lines.append(f"{event_id}\t{now}\t{signature}\t{body.decode()}")
        Path(f"{prefix}.{thread}").write_text("\n".join(lines) + "\n")
    return prefix


def run_wrk(base: str, prefix: Path, lua: Path, duration: int, connections: int) -> dict:
    env = {**os.environ, "BENCH_EVENTS": str(prefix)}
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
                          "-s", str(lua), base], capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    result["rps"] = round(result["requests"] / result["seconds"], 1)
    return result


def receipts(url: str, tag: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("select status_code, count(*) from public.webhook_receipts where event_id like %s"
                            " group by 1 order by 1", (f"bench:{tag}:%",)).fetchall()
    return {str(code): n for code, n in rows}


def run_pgbench(url: str, tasks: list[tuple], tag: str, duration: int, clients: int, directory: Path) -> dict:
    events = ordered_events(tasks, tag)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop table if exists public.bench_events; drop sequence if exists public.bench_events_seq")
        conn.execute("create table public.bench_events (n bigint primary key, event_id text, event_type text, data jsonb)")
        conn.execute("create sequence public.bench_events_seq")
        with conn.cursor().copy("copy public.bench_events (n, event_id, event_type, data) from stdin") as copy:
            for n, (event_id, kind, data) in enumerate(events, 1):
                copy.write_row((n, event_id, kind, json.dumps(data)))
        conn.execute("analyze public.bench_events")
    script = directory / "apply.sql"
    script.write_text(PGBENCH_SCRIPT)
    out = subprocess.run(["pgbench", "-n", "-f", str(script), "-c", str(clients), "-j", str(min(clients, 2)),
                          "-T", str(duration), url], capture_output=True, text=True, check=True).stdout
    tps = float(out.split("tps = ", 1)[1].split()[0])
    latency = float(out.split("latency average = ", 1)[1].split()[0])
    with psycopg.connect(url, autocommit=True) as conn:
        used = conn.execute("select last_value from public.bench_events_seq").fetchone()[0]
    got = receipts(url, tag)
    return {"tps": round(tps, 1), "latency_avg_ms": latency, "events_available": len(events), "events_taken": used,
            "exhausted": used > len(events), "receipts": got}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workflows", type=int, default=6000,
                        help="PAYOFF_REQUEST workflows to seed (7 tasks each, 2 events per task)")
    parser.add_argument("--prepare-threshold", default="none")
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            print(f"{tool} is needed", file=sys.stderr)
            return 2

    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_callbacks"
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    gunicorn = None
    tmp = tempfile.TemporaryDirectory()
    directory = Path(tmp.name)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        print(f"migrating and seeding {args.workflows} PAYOFF_REQUEST workflows ...", flush=True)
        started = time.perf_counter()
        apply_migrations(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("insert into public.clients (id, name) values (%s, 'Bench callbacks client')", (CLIENT_ID,))
            conn.execute(SEED, {"client": CLIENT_ID, "n": args.workflows})
            conn.execute("select public.workflow_action(id, 'start') from public.workflows where client_id = %s",
                         (CLIENT_ID,))
            conn.execute("analyze")
            pool = [(str(w), k, a) for w, k, a in conn.execute(
                """select t.workflow_id, t.task_key, t.agent_name from public.tasks t
                    where t.client_id = %s and t.status = 'PENDING'
                    order by t.sequence, t.workflow_id""", (CLIENT_ID,))]
            counts = conn.execute("select count(distinct workflow_id), count(*) from public.tasks where client_id = %s",
                                  (CLIENT_ID,)).fetchone()
        print(f"seeded in {time.perf_counter() - started:.1f} s: {counts[0]} workflows, {counts[1]} tasks", flush=True)

        # Split the task pool: a warm-up, then for each connection count a wrk share and a pgbench share.
        runs = len(args.connections)
        warm = min(1000, len(pool) // 20)
        share = (len(pool) - warm) // (2 * runs)
        shares = [pool[warm + i * share: warm + (i + 1) * share] for i in range(2 * runs)]
        print(f"{len(pool)} tasks: {share} per measurement ({2 * share} events)", flush=True)

        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "SUPABASE_JWT_SECRET": JWT_SECRET, "PORT": str(port),
               "RATE_LIMITS": "off", "WEB_CONCURRENCY": str(args.workers), "DB_POOL_MAX": "8",
               "PYTHONPATH": str(ROOT), "N8N_CALLBACK_SECRET": CALLBACK_SECRET, "DISPATCHER_ENABLED": "off",
               "DB_PREPARE_THRESHOLD": args.prepare_threshold}
        gunicorn, base = start_service(env, "wsgi:app", "callbacks-server.log")
        lua = directory / "callbacks.lua"
        lua.write_text(LUA)

        prefix = write_wrk_files(pool[:warm], "warm", directory)
        warmup = run_wrk(base, prefix, lua, 2, args.connections[0])
        print(f"warm-up: {warmup}", flush=True)

        rows = {}
        for index, connections in enumerate(args.connections):
            tag = f"wrk{connections}"
            prefix = write_wrk_files(shares[2 * index], tag, directory)  # signed right before the run
            result = run_wrk(base, prefix, lua, args.duration, connections)
            time.sleep(0.5)  # let requests in flight when wrk stopped finish
            result["receipts"] = receipts(url, tag)
            result["acknowledged"] = result["requests"] - result["non2xx"]
            result["events_available"] = 2 * len(shares[2 * index])
            print(f"ingest, {connections} connections: {result}", flush=True)
            ceiling = run_pgbench(url, shares[2 * index + 1], f"pg{connections}", args.duration, connections,
                                  directory)
            print(f"pgbench, {connections} clients: {ceiling}", flush=True)
            rows[connections] = {"ingest": result, "pgbench": ceiling,
                                 "ratio": round(result["rps"] / ceiling["tps"], 3)}
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        tmp.cleanup()

    report = {"machine": f"{os.cpu_count()} cores", "workers": args.workers, "duration_s": args.duration,
              "prepare_threshold": args.prepare_threshold, "seeded": {"workflows": counts[0], "tasks": counts[1]},
              "results": {str(c): r for c, r in rows.items()}}
    (RESULTS / "callbacks.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [("| connections | ingest req/s | p50 ms | p95 ms | p99 ms | non-2xx | acknowledged | receipts (status: n)"
              " | pgbench tps | ingest ÷ pgbench |"),
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for connections, r in rows.items():
        i, p = r["ingest"], r["pgbench"]
        got = ", ".join(f"{k}: {v}" for k, v in i["receipts"].items())
        lines.append(f"| {connections} | {i['rps']:.0f} | {i['p50']:.1f} | {i['p95']:.1f} | {i['p99']:.1f} | {i['non2xx']}"
                     f" | {i['acknowledged']} | {got} | {p['tps']:.0f} | **{r['ratio']}** |")
    lines.append(f"\n{os.cpu_count()} cores, {args.workers} gunicorn gthread workers, {args.duration} s per run;"
                 " pgbench runs public.apply_n8n_event directly (same clients as connections) on fresh events."
                 " Receipts may exceed acknowledged by the requests in flight when wrk stopped.")
    (RESULTS / "callbacks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
