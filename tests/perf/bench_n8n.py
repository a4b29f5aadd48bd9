"""Workflow throughput through the real n8n: PAYOFF_REQUEST workflows completed per minute with
a zero-latency agent simulator, next to the ceiling measured in the same run (n8n executing the
same workflow with its callbacks pointed at a no-op endpoint).

    .venv/bin/python tests/perf/bench_n8n.py [--duration 60] [--in-flight 4]

System: assembled like the end-to-end harness (tests/e2e/harness.py): the service with its
dispatcher on a free port, the agent simulator in process, a real local n8n (scripts/n8n_local.py)
with the exported workflows imported. Each of --in-flight drivers starts a workflow through the
API, waits for await_statement to be WAITING, delivers the payoff statement
(/webhooks/inbound/payoff-statement), waits for a final status, and starts the next.

Ceiling: the same drivers trigger n8n's webhook directly, with callbackUrl pointing at a tiny HTTP
server answering 200 {} to every POST; on task.waiting it posts the statement to the resume URL,
and workflow.completed ends the workflow.

Counted: workflows finishing inside the window (after one warm-up workflow each way).
Writes tests/perf/results/n8n.json and n8n.md.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.webhooks.signing import encode_key
from tests.e2e import harness

RESULTS = ROOT / "tests" / "perf" / "results"
FINAL = harness.FINAL_WORKFLOW_STATUSES
PAYOFF_TASKS = ["identify_lender_contact", "send_payoff_request", "await_statement", "extract_payoff_data",
                "generate_invoice", "update_crm_record", "notify_client"]


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


# ---- the measuring loop -----------------------------------------------------------------------
def measure(run_one, in_flight: int, duration: float, stop: threading.Event) -> dict:
    """in_flight threads each calling run_one() -> final status in a loop for `duration` seconds;
    counts the workflows that finished inside the window."""
    run_one()  # warm-up (n8n compiles, pools fill)
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
    durations = sorted(end - began for began, end, _ in completed)
    return {"window_s": duration, "completed": len(completed),
            "other_final": sorted({status for _, _, status in inside if status != "COMPLETED"}),
            "other_final_count": len(inside) - len(completed), "errors": errors[:5], "error_count": len(errors),
            "per_minute": round(len(completed) * 60 / duration, 1),
            "latency_p50_s": round(durations[len(durations) // 2], 2) if durations else None,
            "latency_max_s": round(durations[-1], 2) if durations else None}


# ---- the system ---------------------------------------------------------------------------------
class SystemRunner:
    def __init__(self, world: harness.World, poll: float):
        self.world, self.poll = world, poll
        self.local = threading.local()

    def conn(self):
        if getattr(self.local, "conn", None) is None:
            self.local.conn = psycopg.connect(self.world.database_url, autocommit=True)
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
        world = self.world
        workflow_id = world.start("PAYOFF_REQUEST", payoff_payload())
        status_sql = ("select w.status, t.status from public.workflows w join public.tasks t on t.workflow_id = w.id"
                      " where w.id = %s and t.task_key = 'await_statement'")
        row = self.wait(status_sql, workflow_id, lambda r: r[1] == "WAITING" or r[0] in FINAL - {"AWAITING_REVIEW"})
        if row[1] != "WAITING":
            return row[0]
        response = world.deliver_inbound("payoff-statement", statement(workflow_id))
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
    def __init__(self, n8n, endpoint: NoopEndpoint, trigger_token: str, agent_base_url: str):
        self.n8n, self.endpoint, self.trigger_token, self.agent_base_url = n8n, endpoint, trigger_token, agent_base_url
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
        response = self.session.post(f"{self.n8n.base_url}/webhook/rexera/payoff-request", json=body,
                                     headers={"X-Rexera-Token": self.trigger_token}, timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(f"n8n trigger answered {response.status_code}: {response.text[:300]}")
        if not done.wait(120):
            raise TimeoutError(f"workflow {workflow_id} did not end within 120 s")
        return self.endpoint.outcome[workflow_id]


# ---- main -----------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="measurement window per side, seconds")
    parser.add_argument("--in-flight", type=int, default=4, help="workflows in flight at once")
    parser.add_argument("--poll", type=float, default=0.05, help="status poll interval of the system drivers")
    parser.add_argument("--n8n-version", default=harness.n8n_local.N8N_VERSION,
                        help="n8n line or version: 2 (2.41.1, the default), 1 (1.123.50)")
    args = parser.parse_args()
    try:
        version = harness.n8n_local.release(args.n8n_version).version
    except harness.n8n_local.PrerequisiteError as error:
        print(error, file=sys.stderr)
        return 2
    if harness.n8n_local.installed_binary(version=version) is None:
        print(f"n8n {version} is not installed (scripts/n8n_local.py install --version {version})", file=sys.stderr)
        return 2

    from tests.conftest import world_database

    stop = threading.Event()

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    database = world_database("rexera_bench_n8n")
    simulator = n8n = service = endpoint = None
    tmp = tempfile.TemporaryDirectory()
    try:
        database_url = next(database)
        simulator = harness.agent_simulator.AgentSimulator(
            seed=harness.SIMULATOR_SEED, agents={name: {"latency_ms": 0, "failure_rate": 0.0}
                                                 for name in harness.agent_simulator.AGENTS})
        simulator.start()
        paths = harness.wait_for_exports(10)
        trigger_token, error_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        print("starting n8n ...", flush=True)
        n8n = harness.N8n(harness.n8n_local.free_port(), Path(tmp.name) / "n8n", version)
        n8n.start()
        credential_ids = harness.create_credentials(n8n, trigger_token, error_token)
        harness.import_workflows(n8n, credential_ids, paths)
        port = harness.n8n_local.free_port()
        settings = harness.make_settings(database_url, port, n8n.base_url, n8n.api_key, simulator.base_url,
                                         trigger_token, error_token)
        service = harness.Service(settings, port).start()
        world = harness.World(service, simulator, n8n, database_url)

        print(f"system: {args.in_flight} in flight for {args.duration} s ...", flush=True)
        system = measure(SystemRunner(world, args.poll), args.in_flight, args.duration, stop)
        print(f"system: {system}", flush=True)

        endpoint = NoopEndpoint()
        print(f"ceiling (no-op callbacks): {args.in_flight} in flight for {args.duration} s ...", flush=True)
        ceiling = measure(CeilingRunner(n8n, endpoint, trigger_token, simulator.base_url), args.in_flight,
                          args.duration, stop)
        print(f"ceiling: {ceiling}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        stop.set()
        for part in (service, endpoint, n8n, simulator):
            if part is not None:
                try:
                    part.stop()
                except Exception as error:  # noqa: BLE001 - keep cleaning up
                    print(f"stopping {type(part).__name__}: {error}", file=sys.stderr)
        database.close()  # drops the database
        tmp.cleanup()

    ratio = round(system["per_minute"] / ceiling["per_minute"], 3) if ceiling["per_minute"] else None
    report = {"machine": f"{os.cpu_count()} cores", "n8n": version, "in_flight": args.in_flight,
              "window_s": args.duration,
              "agent_latency_ms": 0, "system": system, "ceiling_noop_callbacks": ceiling, "ratio": ratio}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"n8n-{version}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| path | completed in window | per minute | p50 s / workflow | max s | other final | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in (("service + dispatcher + n8n", system), ("n8n, no-op callbacks (ceiling)", ceiling)):
        lines.append(f"| {label} | {r['completed']} | {r['per_minute']} | {r['latency_p50_s']} | {r['latency_max_s']}"
                     f" | {r['other_final_count']} | {r['error_count']} |")
    lines.append(f"\nsystem ÷ ceiling = **{ratio}** ({args.in_flight} PAYOFF_REQUEST workflows in flight, "
                 f"{args.duration} s window each, zero-latency agents, n8n {version}, {os.cpu_count()} cores)")
    (RESULTS / f"n8n-{version}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
