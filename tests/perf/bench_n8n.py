"""Workflow throughput through the real n8n: PAYOFF_REQUEST workflows completed per minute with
zero-latency agents, next to n8n's own pace measured in the same run (n8n executing the same
workflow with its callbacks pointed at a no-op endpoint).

    .venv/bin/python tests/perf/bench_n8n.py [--duration 60] [--rounds 2] [--in-flight 4[,8...]]

Two topologies, both up for the whole run, each on a database of its own on the machine's
PostgreSQL (--topology picks one or both):
  single: as `python3 scripts/local.py` runs it (its System): the service under gunicorn with
          its dispatcher, n8n in its regular mode, the agent simulator (latency 0);
  scaled: as `python3 scripts/local.py --scale` runs it (scripts/local_scaled.py): n8n in queue
          mode (main, two workers, a webhook processor, Bull on Redis), two service instances
          behind HAProxy, the simulator.
Exports pushed by sync_workflows.py. Each of --in-flight drivers creates and starts a workflow through the API as
the demo client, waits for await_statement to be WAITING, delivers the payoff statement
(/webhooks/inbound/payoff-statement with the workflow's inbound token), waits for a final
status, and starts the next. The drivers watch PostgreSQL every --poll seconds.

n8n's own pace: the same n8n and simulator; the drivers trigger n8n's webhook directly, with
callbackUrl pointing at a tiny HTTP server answering 200 {} to every POST; on task.waiting it
posts the statement to the resume URL, and workflow.completed ends the workflow.

Every side of every topology takes its turn (--rounds windows of --duration seconds each, per
level of workflows in flight, the order turned around every other round), so that a change in
what else the machine does falls on all of them; counted: workflows
finishing inside the windows (after a warm-up workflow each way). Reported per side: workflows
per minute and per hour, wall time per workflow (p50, max), and CPU seconds per workflow in each
part (n8n's processes with their task runners, the service's, PostgreSQL, Redis, HAProxy, the
simulator, the drivers), read from /proc around each window. Writes tests/perf/results/n8n-<version>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests
from psycopg import conninfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import local  # noqa: E402  (scripts/local.py: the topologies measured)
import n8n_local  # noqa: E402
from local_scaled import ScaledSystem  # noqa: E402

from app.webhooks.signing import encode_key, inbound_token  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.perf import tools  # noqa: E402

RESULTS = ROOT / "tests" / "perf" / "results"
FINAL = harness.FINAL_WORKFLOW_STATUSES
PAYOFF_TASKS = ["identify_lender_contact", "send_payoff_request", "await_statement", "extract_payoff_data",
                "generate_invoice", "update_crm_record", "notify_client"]
DATABASE = "rexera_bench_n8n"


def payoff_payload() -> dict:
    return {"address": f"{harness.new_id()} Elm Street, Austin, TX 78701", "borrowerName": "Dana Whitfield",
            "lenderName": "First Harbor Bank", "loanNumber": f"LN-{harness.new_id()}",
            "payoffDate": (date.today() + timedelta(days=20)).isoformat(), "estimatedBalance": 250000.0}


def statement(workflow_id: str) -> dict:
    return {"workflowId": workflow_id,
            "statement": {"payoffAmount": 251234.56, "perDiem": 34.25,
                          "goodThrough": (date.today() + timedelta(days=20)).isoformat()},
            "documents": [{"filename": "payoff-statement.pdf", "contentType": "application/pdf", "sizeBytes": 48213}],
            "from": "payoffs@firstharbor.example"}


# ---- CPU by part, from /proc ------------------------------------------------------------------
def tree_cpu(table: dict, root: int) -> float:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][2]
        todo.extend(children.get(pid, []))
    return total


class CpuMeter:
    """CPU seconds of each part: process trees by root pids (n8n's processes with their task
    runners, gunicorn with its workers, HAProxy), this process alone (the drivers and the no-op
    endpoint), and PostgreSQL and Redis by command name (every database on the server: the
    topology not being measured idles meanwhile)."""

    def __init__(self, roots: dict[str, list[int]]):
        self.roots = roots

    def read(self) -> dict[str, float]:
        table = tools.processes()
        parts = {name: sum(tree_cpu(table, pid) for pid in pids) for name, pids in self.roots.items()}
        parts["drivers"] = table[os.getpid()][2]
        parts["postgresql"] = sum(cpu for _, name, cpu in table.values() if name == "postgres")
        parts["redis"] = sum(cpu for _, name, cpu in table.values() if name == "redis-server")
        return parts

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float]:
        return {name: max(0.0, after[name] - before[name]) for name in after}


# ---- the measuring loop -----------------------------------------------------------------------
def measure(run_one, in_flight: int, duration: float, stop: threading.Event) -> dict:
    """in_flight threads each calling run_one() -> final status in a loop for `duration` seconds;
    counts the workflows that finished inside the window."""
    lock = threading.Lock()
    finished: list[tuple[float, float, str]] = []
    errors: list[str] = []
    window_start = time.monotonic()
    window_end = window_start + duration

    def driver():
        while not stop.is_set() and time.monotonic() < window_end:
            began = time.monotonic()
            try:
                status = run_one()
            except Exception as error:  # noqa: BLE001 - a stuck workflow is a result, not a crash
                with lock:
                    errors.append(f"{type(error).__name__}: {str(error)[:300]}")
                continue
            with lock:
                finished.append((began, time.monotonic(), status))

    threads = [threading.Thread(target=driver, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 180)
    inside = [f for f in finished if f[1] <= window_end]
    completed = [f for f in inside if f[2] == "COMPLETED"]
    return {"window_s": duration, "completed": len(completed),
            "other_final": sorted({status for _, _, status in inside if status != "COMPLETED"}),
            "other_final_count": len(inside) - len(completed), "errors": errors[:5], "error_count": len(errors),
            "durations": [end - began for began, end, _ in completed]}


def combine(windows: list[dict], cpu: list[dict]) -> dict:
    """Several windows of one side as one result; CPU per completed workflow by part."""
    if not windows:
        return {"windows": 0}
    seconds = sum(w["window_s"] for w in windows)
    completed = sum(w["completed"] for w in windows)
    durations = sorted(d for w in windows for d in w["durations"])
    spent = {name: sum(c[name] for c in cpu) for name in cpu[0]} if cpu else {}
    return {"windows": len(windows), "window_s": seconds, "completed": completed,
            "per_minute": round(completed * 60 / seconds, 1), "per_hour": round(completed * 3600 / seconds),
            "latency_p50_s": round(statistics.median(durations), 2) if durations else None,
            "latency_max_s": round(durations[-1], 2) if durations else None,
            "other_final": sorted({s for w in windows for s in w["other_final"]}),
            "other_final_count": sum(w["other_final_count"] for w in windows),
            "errors": [e for w in windows for e in w["errors"]][:5], "error_count": sum(w["error_count"] for w in windows),
            "cpu_s_per_workflow": {name: round(value / completed, 3) for name, value in spent.items()} if completed else {},
            "cpu_busy": round(sum(spent.values()) / seconds / (os.cpu_count() or 1), 2) if spent else None}


# ---- the system: scripts/local.py's topology ---------------------------------------------------------
class SystemRunner:
    def __init__(self, base_url: str, database_url: str, client_token: str, callback_secret: bytes, poll: float):
        self.base_url, self.database_url, self.poll = base_url, database_url, poll
        self.headers = {"Authorization": f"Bearer {client_token}"}
        self.callback_secret = callback_secret
        self.local = threading.local()

    def conn(self):
        if getattr(self.local, "conn", None) is None:
            self.local.conn = psycopg.connect(self.database_url, autocommit=True)
            self.local.http = requests.Session()
        return self.local.conn

    def wait(self, sql: str, workflow_id: str, done, deadline: float = 120):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            row = self.conn().execute(sql, (workflow_id,)).fetchone()
            if done(row):
                return row
            time.sleep(self.poll)
        raise TimeoutError(f"workflow {workflow_id}: {sql.split()[1]} still {row}")

    def __call__(self) -> str:
        self.conn()
        http = self.local.http
        created = http.post(f"{self.base_url}/api/workflows", headers=self.headers, timeout=30,
                            json={"type": "PAYOFF_REQUEST", "payload": payoff_payload()})
        if created.status_code != 201:
            raise RuntimeError(f"create answered {created.status_code}: {created.text[:300]}")
        workflow_id = created.json()["id"]
        started = http.post(f"{self.base_url}/api/workflows/{workflow_id}/actions", headers=self.headers, timeout=30,
                            json={"action": "start", "data": {}})
        if started.status_code != 200:
            raise RuntimeError(f"start answered {started.status_code}: {started.text[:300]}")
        status_sql = ("select w.status, t.status from public.workflows w join public.tasks t on t.workflow_id = w.id"
                      " where w.id = %s and t.task_key = 'await_statement'")
        row = self.wait(status_sql, workflow_id, lambda r: r[1] == "WAITING" or r[0] in FINAL - {"AWAITING_REVIEW"})
        if row[1] != "WAITING":
            return row[0]
        token = inbound_token(self.callback_secret, workflow_id)
        response = http.post(f"{self.base_url}/webhooks/inbound/payoff-statement", json=statement(workflow_id),
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"statement refused: {response.status_code} {response.text[:300]}")
        row = self.wait("select status from public.workflows where id = %s", workflow_id, lambda r: r[0] in FINAL)
        return row[0]


# ---- the ceiling: n8n with a no-op callback endpoint ----------------------------------------------
class NoopEndpoint:
    """Answers 200 {} to every POST; on task.waiting posts the statement to the resume URL; records
    the end of each workflow (workflow.completed / workflow.failed / escalation)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ends: dict[str, threading.Event] = {}
        self.outcome: dict[str, str] = {}
        self.posts = 0
        self.session = requests.Session()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                endpoint.received(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def expect(self, workflow_id: str) -> threading.Event:
        with self.lock:
            self.ends[workflow_id] = threading.Event()
            return self.ends[workflow_id]

    def received(self, body: bytes) -> None:
        with self.lock:
            self.posts += 1
        try:
            envelope = json.loads(body)
            kind, data = envelope["type"], envelope["data"]
        except (ValueError, KeyError, TypeError):
            return
        workflow_id = str(data.get("workflowId"))
        if kind == "task.waiting" and data.get("resumeUrl"):
            threading.Thread(target=self.resume, args=(data["resumeUrl"], workflow_id), daemon=True).start()
        elif kind in ("workflow.completed", "workflow.failed", "escalation"):
            with self.lock:
                self.outcome.setdefault(workflow_id, {"workflow.completed": "COMPLETED"}.get(kind, kind))
                event = self.ends.get(workflow_id)
            if event is not None:
                event.set()

    def resume(self, url: str, workflow_id: str) -> None:
        # What the service forwards: {kind, data, documents} (public.receive_inbound).
        inbound = statement(workflow_id)
        body = {"kind": "payoff_statement", "data": {k: v for k, v in inbound.items() if k != "documents"},
                "documents": inbound["documents"]}
        for _ in range(100):  # the Wait node may not be registered yet when the callback arrives
            try:
                if self.session.post(url, json=body, timeout=30).status_code < 400:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CeilingRunner:
    def __init__(self, n8n_url: str, endpoint: NoopEndpoint, trigger_token: str, agent_base_url: str):
        # n8n_url: where the service reaches n8n (the main, or HAProxy's n8n port when scaled).
        self.n8n_url, self.endpoint, self.trigger_token, self.agent_base_url = n8n_url, endpoint, trigger_token, agent_base_url
        self.session = requests.Session()

    def __call__(self) -> str:
        workflow_id = str(uuid.uuid4())
        done = self.endpoint.expect(workflow_id)
        base = self.endpoint.base_url
        body = {"workflowId": workflow_id, "workflowType": "PAYOFF_REQUEST", "priority": "NORMAL",
                "payload": payoff_payload(),
                "tasks": [{"taskKey": key, "taskId": str(uuid.uuid4()), "agentName": None} for key in PAYOFF_TASKS],
                "correlationId": str(uuid.uuid4()), "callbackUrl": f"{base}/webhooks/n8n", "callbackBaseUrl": base,
                "signingKey": encode_key(secrets.token_bytes(32)), "inboundUrl": f"{base}/webhooks/inbound",
                "inboundToken": "noop", "agentBaseUrl": self.agent_base_url}
        response = self.session.post(f"{self.n8n_url}/webhook/rexera/payoff-request", json=body,
                                     headers={"X-Rexera-Token": self.trigger_token}, timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(f"n8n trigger answered {response.status_code}: {response.text[:300]}")
        if not done.wait(120):
            raise TimeoutError(f"workflow {workflow_id} did not end within 120 s")
        return self.endpoint.outcome[workflow_id]


# ---- main -----------------------------------------------------------------------------------------
def create_database(server_url: str, name: str) -> str:
    admin = conninfo.make_conninfo(server_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(conninfo.make_conninfo(server_url, dbname="postgres"), autocommit=True) as conn:
        for database in (name, f"{name}_n8n"):  # the scaled topology's n8n keeps its data beside it
            conn.execute(f'drop database if exists "{database}" with (force)')


TOPOLOGIES = {
    "single": "scripts/local.py: one n8n (regular mode), one gunicorn",
    "scaled": "scripts/local.py --scale: n8n in queue mode (main, 2 workers, a webhook processor), "
              "2 service instances behind HAProxy",
}


def start_topology(name: str, args, n8n_env: dict, state_dir: str, server_url: str):
    """Start one topology on a database of its own; returns (system, running, sides' inputs, CPU roots)."""
    os.environ["DATABASE_URL"] = create_database(server_url, f"{DATABASE}_{name}")
    namespace = argparse.Namespace(
        port=n8n_local.free_port(), state_dir=state_dir, n8n_version=args.n8n_version, n8n_port=0,
        postgres_port=0, agent_latency_ms=0, exports_dir=args.exports, n8n_env=n8n_env,
        scale=name == "scaled", instances=2, n8n_workers=2, n8n_webhooks=1, n8n_concurrency=10,
        # One client starting thousands of workflows an hour is past its own budget (500 actions
        # an hour): the benchmark measures the workflow machinery, not that limit.
        service_env={"RATE_LIMITS": "off"})
    system = ScaledSystem(namespace) if name == "scaled" else local.System(namespace)
    try:
        running = system.start()
    except BaseException:
        system.stop()
        raise
    pids = {child: process.pid for child, process, _ in system.children}
    if name == "scaled":
        parts = running["parts"]
        roots = {"n8n": [pid for part, pid in parts.items() if part.startswith("n8n-")],
                 "service": [pid for part, pid in parts.items() if part.startswith("service-")],
                 "balancer": [parts["haproxy"]], "simulator": [pids["agents"]]}
    else:
        roots = {"n8n": [system.n8n.pid], "service": [pids["service"]], "simulator": [pids["agents"]]}
    return system, running, roots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=2, help="windows per side and level, taking turns")
    parser.add_argument("--in-flight", default="4", help="workflows in flight at once; a list (4,8) measures each")
    parser.add_argument("--poll", type=float, default=0.05, help="status poll interval of the system drivers")
    parser.add_argument("--n8n-version", default="2", help="n8n line: 2 (2.41.1, what local.py runs), 1 (1.123.50)")
    parser.add_argument("--only", choices=["system", "ceiling"], help="measure one side only")
    parser.add_argument("--topology", default="single,scaled",
                        help="single (local.py), scaled (local.py --scale), or both (the default), side by side")
    parser.add_argument("--exports", type=Path, help="another folder of exports (with shared/), to compare designs")
    parser.add_argument("--n8n-env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of n8n's own for this run (e.g. N8N_EXPRESSION_ENGINE=legacy); repeatable")
    args = parser.parse_args()
    n8n_env = dict(item.split("=", 1) for item in args.n8n_env)
    levels = [int(level) for level in str(args.in_flight).split(",")]
    topologies = [name for name in TOPOLOGIES if name in args.topology.split(",")]
    if not topologies:
        print(f"--topology: one or both of {', '.join(TOPOLOGIES)}", file=sys.stderr)
        return 2
    try:
        version = n8n_local.release(args.n8n_version).version
    except n8n_local.PrerequisiteError as error:
        print(error, file=sys.stderr)
        return 2
    if n8n_local.installed_binary(version=version) is None:
        print(f"n8n {version} is not installed (scripts/n8n_local.py install --version {version})", file=sys.stderr)
        return 2

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    server_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    stop = threading.Event()
    tmp = tempfile.TemporaryDirectory()
    systems: dict[str, object] = {}
    endpoint = NoopEndpoint()
    results: list[dict] = []
    try:
        sides: dict[tuple[str, str], object] = {}
        meters: dict[str, CpuMeter] = {}
        for topology in topologies:
            print(f"starting the {topology} topology ...", flush=True)
            system, running, roots = start_topology(topology, args, n8n_env, f"{tmp.name}/{topology}", server_url)
            systems[topology] = system
            keys = system.state.secrets()
            client_token = local.tokens(running["databaseUrl"], keys["jwtSecret"])[local.CLIENT_EMAIL]
            meters[topology] = CpuMeter(roots)
            sides[(topology, "system")] = SystemRunner(running["baseUrl"], running["databaseUrl"], client_token,
                                                       bytes.fromhex(keys["callbackSecret"]), args.poll)
            sides[(topology, "ceiling")] = CeilingRunner(running["n8nUrl"], endpoint, keys["triggerToken"],
                                                         running["simulatorUrl"])
        wanted = [key for key in sides if args.only in (None, key[1])]
        for key in wanted:
            sides[key]()  # warm-up (n8n compiles, pools fill)
        for level in levels:
            windows: dict[tuple, list] = {key: [] for key in wanted}
            cpu: dict[tuple, list] = {key: [] for key in wanted}
            for round_ in range(args.rounds):
                # Every side once a round, in an order turned around every other round.
                order = wanted if round_ % 2 == 0 else list(reversed(wanted))
                for key in order:
                    topology, side = key
                    print(f"{topology} {side}: {level} in flight for {args.duration} s (round {round_ + 1}) ...",
                          flush=True)
                    before = meters[topology].read()
                    window = measure(sides[key], level, args.duration, stop)
                    cpu[key].append(CpuMeter.spent(before, meters[topology].read()))
                    windows[key].append(window)
                    print(f"  {window['completed']} completed, errors {window['error_count']}", flush=True)
            for topology in topologies:
                row = {"topology": topology, "in_flight": level,
                       "system": combine(windows.get((topology, "system"), []), cpu.get((topology, "system"), [])),
                       "ceiling_noop_callbacks": combine(windows.get((topology, "ceiling"), []),
                                                         cpu.get((topology, "ceiling"), []))}
                ceiling_pace = row["ceiling_noop_callbacks"].get("per_minute")
                row["ratio"] = (round(row["system"]["per_minute"] / ceiling_pace, 3)
                                if ceiling_pace and not args.only else None)
                p50s, p50c = row["system"].get("latency_p50_s"), row["ceiling_noop_callbacks"].get("latency_p50_s")
                row["latency_ratio"] = round(p50s / p50c, 2) if p50s and p50c else None
                results.append(row)
                print(json.dumps(row, indent=1), flush=True)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        stop.set()
        for part in (endpoint, *systems.values()):
            try:
                part.stop()
            except Exception as error:  # noqa: BLE001 - keep cleaning up
                print(f"stopping {type(part).__name__}: {error}", file=sys.stderr)
        for topology in topologies:
            drop_database(server_url, f"{DATABASE}_{topology}")
        tmp.cleanup()

    report = {"machine": f"{os.cpu_count()} cores", "n8n": version,
              "topologies": {name: TOPOLOGIES[name] for name in topologies},
              "exports": str(args.exports or "n8n_workflows"), "n8n_env": n8n_env,
              "window_s": args.duration, "rounds": args.rounds, "agent_latency_ms": 0, "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A run of other exports, n8n settings, one side or one topology only does not replace the reference figures.
    name = f"n8n-{version}" + ("-variant" if args.exports or n8n_env or args.only or len(topologies) < 2 else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    parts_shown = ("n8n", "service", "postgresql", "redis", "balancer", "simulator", "drivers")
    lines = ["| topology | in flight | path | completed | per hour | p50 s / workflow | max s | CPU s / workflow"
             " (n8n, service, PostgreSQL, Redis, HAProxy, simulator, drivers) | other final | errors |",
             "|---|---:|---|---:|---:|---:|---:|---|---:|---:|"]
    for row in results:
        for label, r in (("service + dispatcher + n8n", row["system"]),
                         ("n8n, no-op callbacks", row["ceiling_noop_callbacks"])):
            if not r["windows"]:
                continue
            cpu = r["cpu_s_per_workflow"]
            parts = ", ".join(f"{cpu.get(k, 0):.3f}" for k in parts_shown)
            lines.append(f"| {row['topology']} | {row['in_flight']} | {label} | {r['completed']} | {r['per_hour']}"
                         f" | {r['latency_p50_s']} | {r['latency_max_s']} | {parts} | {r['other_final_count']}"
                         f" | {r['error_count']} |")
    lines.append("")
    for row in results:
        lines.append(f"- {row['topology']}, {row['in_flight']} in flight: system ÷ n8n's own pace = **{row['ratio']}**,"
                     f" wall time p50 system ÷ n8n alone = **{row['latency_ratio']}**")
    by_level: dict[int, dict[str, dict]] = {}
    for row in results:
        by_level.setdefault(row["in_flight"], {})[row["topology"]] = row
    for level, rows in by_level.items():
        if {"single", "scaled"} <= rows.keys() and rows["single"]["system"].get("per_hour"):
            lines.append(f"- {level} in flight: scaled ÷ single, system = **"
                         f"{rows['scaled']['system'].get('per_hour', 0) / rows['single']['system']['per_hour']:.2f}**"
                         + (f", n8n alone = **{rows['scaled']['ceiling_noop_callbacks']['per_hour'] / rows['single']['ceiling_noop_callbacks']['per_hour']:.2f}**"
                            if rows["single"]["ceiling_noop_callbacks"].get("per_hour")
                            and rows["scaled"]["ceiling_noop_callbacks"].get("per_hour") else ""))
    lines.append(f"\n({args.rounds} windows of {args.duration} s per side, topology and level, taking turns;"
                 f" PAYOFF_REQUEST, zero-latency agents, n8n {version}; "
                 + "; ".join(f"{n}: {TOPOLOGIES[n]}" for n in topologies) + f"; {os.cpu_count()} cores)")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
