"""Callback ingest benchmark: POST /webhooks/n8n under gunicorn (2 gthread workers) driven by wrk
with correctly signed, distinct task.started / task.completed events, next to the same database
transaction (public.apply_n8n_event) run directly by pgbench, and next to the floor: the least a
durable, idempotent, audited, announced task change costs in PostgreSQL (../shared/perf/
callback_floor*.{sql,pgbench}, loaded into a database of its own). The three take turns in
rounds (same clients, same duration) so that what else the machine does falls on all three; a
ratio is the median of the rounds' ratios. Then the per-event cost breakdown
(tests/perf/callback_costs.py) on the same database.

    .venv/bin/python tests/perf/bench_callbacks.py [--duration 10] [--rounds 3] [--connections 8 32]
                                                   [--workflows 6000] [--floor-dir DIR]

Needs wrk and pgbench (installed with apt-get where it can, else it says how), and PostgreSQL at
$BENCH_SERVER_URL (default the local server). Without the floor's files (--floor-dir, default
../shared/perf next to the checkout) the floor is left out and said so.
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
import signal
import statistics
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
from tests.perf import callback_costs, tools
from tests.perf.callback_costs import event_data
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

DEFAULT_FLOOR_DIR = ROOT.parent / "shared" / "perf"

PGBENCH_SCRIPT = """select public.apply_n8n_event('n8n', e.event_id, e.event_type, e.data)
  from public.bench_events e where e.n = (select nextval('public.bench_events_seq'));
"""


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


def pgbench_tps(url: str, script: Path, duration: int, clients: int) -> tuple[float, float]:
    """(tps, average latency in ms) of `script` run by pgbench."""
    out = subprocess.run(["pgbench", "-n", "-f", str(script), "-c", str(clients), "-j", str(min(clients, 2)),
                          "-T", str(duration), url], capture_output=True, text=True, check=True).stdout
    return float(out.split("tps = ", 1)[1].split()[0]), float(out.split("latency average = ", 1)[1].split()[0])


def load_floor(server: str, floor_dir: Path) -> str | None:
    """The floor's database, created and loaded from floor_dir; None when its files are absent."""
    setup, script = floor_dir / "callback_floor_setup.sql", floor_dir / "callback_floor.pgbench"
    if not (setup.exists() and script.exists()):
        return None
    url = f"{server.rsplit('/', 1)[0]}/rexera_bench_floor"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute("drop database if exists rexera_bench_floor with (force)")
        admin.execute("create database rexera_bench_floor")
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(setup), url], check=True,
                   capture_output=True)
    return url


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
    tps, latency = pgbench_tps(url, script, duration, clients)
    with psycopg.connect(url, autocommit=True) as conn:
        used = conn.execute("select last_value from public.bench_events_seq").fetchone()[0]
    got = receipts(url, tag)
    return {"tps": round(tps, 1), "latency_avg_ms": latency, "events_available": len(events), "events_taken": used,
            "exhausted": used > len(events), "receipts": got}


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ingest, pgbench and floor per connection count")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workflows", type=int, default=6000,
                        help="PAYOFF_REQUEST workflows to seed (7 tasks each, 2 events per task)")
    parser.add_argument("--breakdown-events", type=int, default=200, help="events per type in the cost breakdown")
    parser.add_argument("--floor-dir", type=Path, default=Path(os.environ.get("BENCH_FLOOR_DIR", DEFAULT_FLOOR_DIR)))
    parser.add_argument("--prepare-threshold", default="none")
    args = parser.parse_args()
    if not tools.require("wrk", "pgbench", "psql"):
        return 2

    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_callbacks"
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    gunicorn = None
    floor_url = None
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
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")  # measure on settled pages, as the floor does
            pool = [(str(w), k, a) for w, k, a in conn.execute(
                """select t.workflow_id, t.task_key, t.agent_name from public.tasks t
                    where t.client_id = %s and t.status = 'PENDING'
                    order by t.sequence, t.workflow_id""", (CLIENT_ID,))]
            counts = conn.execute("select count(distinct workflow_id), count(*) from public.tasks where client_id = %s",
                                  (CLIENT_ID,)).fetchone()
        print(f"seeded in {time.perf_counter() - started:.1f} s: {counts[0]} workflows, {counts[1]} tasks", flush=True)

        floor_url = load_floor(server, args.floor_dir)
        print(f"floor: {'loaded from ' + str(args.floor_dir) if floor_url else 'not found in ' + str(args.floor_dir)}",
              flush=True)
        floor_script = args.floor_dir / "callback_floor.pgbench"

        # Split the task pool: the breakdown's agent tasks, a warm-up, then per run a wrk share and
        # a pgbench share (each event is sent once).
        agent_tasks = [t for t in pool if t[2]]
        reserved = agent_tasks[-3 * args.breakdown_events:]
        taken = set(reserved)
        pool = [t for t in pool if t not in taken]
        runs = len(args.connections) * args.rounds
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
        index = 0
        for connections in args.connections:
            rounds = []
            for number in range(args.rounds):
                tag = f"wrk{connections}r{number}"
                prefix = write_wrk_files(shares[index], tag, directory)  # signed right before the run
                ingest = run_wrk(base, prefix, lua, args.duration, connections)
                time.sleep(0.5)  # let requests in flight when wrk stopped finish
                ingest["receipts"] = receipts(url, tag)
                ingest["acknowledged"] = ingest["requests"] - ingest["non2xx"]
                ingest["events_available"] = 2 * len(shares[index])
                apply = run_pgbench(url, shares[index + 1], f"pg{connections}r{number}", args.duration, connections,
                                    directory)
                index += 2
                one = {"ingest": ingest, "pgbench": apply}
                if floor_url:
                    tps, latency = pgbench_tps(floor_url, floor_script, args.duration, connections)
                    one["floor"] = {"tps": round(tps, 1), "latency_avg_ms": latency}
                print(f"{connections} connections, round {number + 1}: ingest {ingest['rps']} req/s"
                      f" (non-2xx {ingest['non2xx']}), apply_n8n_event {apply['tps']} tps"
                      + (f", floor {one['floor']['tps']} tps" if floor_url else ""), flush=True)
                rounds.append(one)
            row = {"rounds": rounds,
                   "ingest_rps": median([r["ingest"]["rps"] for r in rounds]),
                   "pgbench_tps": median([r["pgbench"]["tps"] for r in rounds]),
                   "ingest_over_pgbench": round(median([r["ingest"]["rps"] / r["pgbench"]["tps"] for r in rounds]), 3)}
            if floor_url:
                row["floor_tps"] = median([r["floor"]["tps"] for r in rounds])
                row["ingest_over_floor"] = round(median([r["ingest"]["rps"] / r["floor"]["tps"] for r in rounds]), 3)
                row["pgbench_over_floor"] = round(median([r["pgbench"]["tps"] / r["floor"]["tps"] for r in rounds]), 3)
            rows[connections] = row

        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        gunicorn = None
        print("per-event cost breakdown ...", flush=True)
        costs = callback_costs.breakdown(url, reserved, args.breakdown_events)
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
            admin.execute("drop database if exists rexera_bench_floor with (force)")
        tmp.cleanup()

    report = {"machine": f"{os.cpu_count()} cores", "workers": args.workers, "duration_s": args.duration,
              "rounds": args.rounds, "prepare_threshold": args.prepare_threshold,
              "floor": str(args.floor_dir) if floor_url else None,
              "seeded": {"workflows": counts[0], "tasks": counts[1]},
              "results": {str(c): r for c, r in rows.items()}, "costs": costs}
    (RESULTS / "callbacks.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [("| connections | ingest req/s | p50 ms | p99 ms | non-2xx | apply_n8n_event tps (pgbench) | floor tps"
              " | ingest ÷ floor | apply ÷ floor | ingest ÷ apply |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for connections, r in rows.items():
        p50 = median([x["ingest"]["p50"] for x in r["rounds"]])
        p99 = median([x["ingest"]["p99"] for x in r["rounds"]])
        non2xx = sum(x["ingest"]["non2xx"] for x in r["rounds"])
        floor = f"{r['floor_tps']:.0f}" if floor_url else "-"
        lines.append(f"| {connections} | {r['ingest_rps']:.0f} | {p50:.1f} | {p99:.1f} | {non2xx} | {r['pgbench_tps']:.0f}"
                     f" | {floor} | **{r.get('ingest_over_floor', '-')}** | **{r.get('pgbench_over_floor', '-')}**"
                     f" | {r['ingest_over_pgbench']} |")
    lines.append(f"\n{os.cpu_count()} cores, {args.workers} gunicorn gthread workers; {args.rounds} rounds of"
                 f" {args.duration} s per connection count, ingest, pgbench and floor taking turns (figures are the"
                 " rounds' medians, ratios the median of the rounds' ratios). pgbench runs public.apply_n8n_event"
                 " directly on fresh events; the floor is ../shared/perf/callback_floor.pgbench on its own database"
                 + ("" if floor_url else " (not run: its files were not found)") + ".")
    lines.append("\n## Per-event cost breakdown\n")
    lines.append("SQL time of each statement `public.apply_n8n_event` runs, nested ones included (triggers, called"
                 " functions), per event of each type; inclusive (a statement's time contains what it calls), from"
                 " auto_explain in one warm session (tests/perf/callback_costs.py).")
    lines.append(callback_costs.render(costs))
    (RESULTS / "callbacks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
