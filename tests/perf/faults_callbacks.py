"""Signed n8n callbacks under a fault: the service under gunicorn against a private PostgreSQL
cluster, senders that behave like n8n (every event has its own webhook-id; anything not answered
2xx is retried with backoff until it is), and a ledger that checks, event by event, what the
database holds afterwards.

Two faults use it (tests/perf/faults.py runs them):
  postgres_restart  `pg_ctl restart -m fast` of the cluster mid-load; the service is not restarted
  worker_kill       SIGKILL of a busy gunicorn worker, several times; gunicorn replaces it

Each sender owns whole workflows and sends, task by task in plan order, task.started then
task.completed, so a retry never overtakes an earlier event of the same workflow. The load runs
for `duration` seconds; an event already sent is retried to the end (its deadline is generous),
as n8n would.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests

from app.migrations import apply_migrations
from app.webhooks.signing import signed_headers, workflow_key
from tests.perf.bench_api import RESULTS, ROOT, free_port, start_service
from tests.realtime.cluster import PrivateCluster

MASTER = bytes(range(32, 64))
CALLBACK_SECRET = "whsec_" + base64.b64encode(MASTER).decode()
JWT_SECRET = "faults-secret-0123456789abcdef0123456789"
CLIENT_ID = "00000000-0000-4000-8000-0000000000f1"
KINDS = ("task.started", "task.completed")

SEED = (
    "insert into public.clients (id, name) values (%(client)s, 'Fault injection client')",
    """insert into public.workflows (id, workflow_type, status, client_id, title, payload)
       select gen_random_uuid(), 'PAYOFF_REQUEST', 'PENDING', %(client)s, 'Fault callbacks ' || i,
              jsonb_build_object('address', i || ' Fault St', 'loanNumber', 'F' || i)
         from generate_series(1, %(n)s) i""",
    "select public.workflow_action(id, 'start') from public.workflows where client_id = %(client)s",
)


@dataclasses.dataclass
class Event:
    event_id: str
    kind: str
    workflow_id: str
    task_id: str
    task_key: str
    agent: str | None
    attempts: int = 0
    acknowledged: bool = False
    replayed: bool = False
    answers: Counter = dataclasses.field(default_factory=Counter)  # status code or error name -> n

    def body(self) -> bytes:
        data = {"workflowId": self.workflow_id, "executionId": f"fault-{self.workflow_id}", "taskKey": self.task_key,
                "attempt": 1}
        if self.agent:
            data["agentName"] = self.agent
        if self.kind == "task.started":
            data["input"] = {"taskKey": self.task_key}
        else:
            data["output"] = {"ok": True, "summary": f"{self.task_key} done"}
            data["metrics"] = {"processingTimeMs": 12, "tokensUsed": 340, "costUsd": 0.0021, "confidence": 0.93}
        return json.dumps({"type": self.kind, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "data": data}, separators=(",", ":")).encode()


# ---- the system under test --------------------------------------------------------------------
def seed(url: str, workflows: int) -> dict[str, list[tuple[str, str, str | None]]]:
    """Started PAYOFF_REQUEST workflows; returns workflow id -> [(task id, task key, agent)] in plan order."""
    apply_migrations(url, seed=True)
    plan: dict[str, list] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SEED:
            conn.execute(statement, {"client": CLIENT_ID, "n": workflows})
        for workflow_id, task_id, task_key, agent in conn.execute(
                "select workflow_id, id, task_key, agent_name from public.tasks where client_id = %s"
                " order by workflow_id, sequence, task_key", (CLIENT_ID,)):
            plan.setdefault(str(workflow_id), []).append((str(task_id), task_key, agent))
    return plan


def service_env(url: str, workers: int) -> dict:
    return {**os.environ, "DATABASE_URL": url, "SUPABASE_JWT_SECRET": JWT_SECRET, "PORT": str(free_port()),
            "RATE_LIMITS": "off", "WEB_CONCURRENCY": str(workers), "DB_POOL_MAX": "8", "PYTHONPATH": str(ROOT),
            "N8N_CALLBACK_SECRET": CALLBACK_SECRET, "DISPATCHER_ENABLED": "off"}


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes: the master's children."""
    path = Path(f"/proc/{master}/task/{master}/children")
    return sorted(int(pid) for pid in path.read_text().split()) if path.exists() else []


def stop_service(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- the senders ------------------------------------------------------------------------------
class Senders:
    """`count` threads delivering their workflows' events like n8n: retry until 2xx with
    exponential backoff and jitter (0.1 s doubling to 2 s), each event for at most `give_up` s."""

    def __init__(self, base: str, plan: dict, count: int, duration: float, give_up: float = 90.0):
        self.base, self.duration, self.give_up = base, duration, give_up
        workflows = sorted(plan)
        self.shares = [workflows[i::count] for i in range(count)]
        self.plan = plan
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self.started_at = 0.0
        self.finished_at: list[float] = []
        self.threads = [threading.Thread(target=self._run, args=(share, index), daemon=True)
                        for index, share in enumerate(self.shares)]

    def start(self) -> "Senders":
        self.started_at = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def _run(self, share: list[str], index: int) -> None:
        try:
            self._send_all(share, index)
        finally:
            with self.lock:
                self.finished_at.append(time.monotonic())

    def _send_all(self, share: list[str], index: int) -> None:
        session = requests.Session()
        rng = random.Random(index)
        for workflow_id in share:
            for task_id, task_key, agent in self.plan[workflow_id]:
                for kind in KINDS:
                    if time.monotonic() - self.started_at > self.duration:
                        return
                    event = Event(f"fault:{task_id}:{kind}", kind, workflow_id, task_id, task_key, agent)
                    with self.lock:
                        self.events.append(event)
                    if not self.deliver(session, event, rng):
                        return  # this workflow's next events would be refused; stop the sender

    def deliver(self, session: requests.Session, event: Event, rng: random.Random) -> bool:
        body = event.body()
        key = workflow_key(MASTER, event.workflow_id)
        deadline = time.monotonic() + self.give_up
        delay = 0.1
        while time.monotonic() < deadline:
            event.attempts += 1
            headers = {**signed_headers(key, event.event_id, body), "Content-Type": "application/json"}
            try:
                response = session.post(f"{self.base}/webhooks/n8n", data=body, headers=headers, timeout=10)
                event.answers[response.status_code] += 1
                if 200 <= response.status_code < 300:
                    event.acknowledged = True
                    event.replayed = response.headers.get("Webhook-Replay") == "true"
                    return True
            except requests.RequestException as error:
                event.answers[type(error).__name__] += 1
                session = requests.Session()  # a fresh connection, as after a reset
            time.sleep(rng.uniform(delay / 2, delay))
            delay = min(delay * 2, 2.0)
        return False


# ---- the ledger -------------------------------------------------------------------------------
LEDGER = """
select t.id::text as task_id, t.status::text as status,
       (select count(*) from public.webhook_receipts r where r.source = 'n8n' and r.event_id = 'fault:' || t.id || ':task.started') as started_receipts,
       (select count(*) from public.webhook_receipts r where r.source = 'n8n' and r.event_id = 'fault:' || t.id || ':task.started' and r.status_code = 200) as started_ok,
       (select count(*) from public.webhook_receipts r where r.source = 'n8n' and r.event_id = 'fault:' || t.id || ':task.completed') as completed_receipts,
       (select count(*) from public.webhook_receipts r where r.source = 'n8n' and r.event_id = 'fault:' || t.id || ':task.completed' and r.status_code = 200) as completed_ok,
       (select count(*) from public.task_executions e where e.task_id = t.id) as executions,
       (select count(*) from public.task_executions e where e.task_id = t.id and e.status = 'SUCCEEDED') as succeeded,
       (select count(*) from public.agent_results a where a.task_id = t.id) as agent_results,
       (select count(*) from public.cost_items c where c.task_id = t.id) as cost_items,
       (select count(*) from public.task_timeline_events l where l.task_id = t.id and l.to_status = 'RUNNING') as ran,
       (select count(*) from public.task_timeline_events l where l.task_id = t.id and l.to_status = 'COMPLETED') as finished
  from public.tasks t
 where t.client_id = %s
"""


def ledger(url: str, events: list[Event]) -> dict:
    """sent / acknowledged / stored / duplicated / lost, event by event, from what the database holds.

    stored: the event's receipt says 200 and all its effects are there (started: one execution
    and one RUNNING transition; completed: the task COMPLETED, its execution SUCCEEDED, one agent
    result and one cost item when an agent did it, one COMPLETED transition). duplicated: an
    effect present more than once. partial: a receipt without its effects or effects without a
    receipt (half-written). lost: sent but not stored."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.row_factory = psycopg.rows.dict_row
        rows = {r["task_id"]: r for r in conn.execute(LEDGER, (CLIENT_ID,))}
        stray = conn.execute("select count(*) as n from public.webhook_receipts where event_id like 'fault:%%'"
                             " and status_code <> 200").fetchone()["n"]
    stored = duplicated = partial = acknowledged_not_stored = 0
    sent_ids = {e.event_id for e in events}
    for event in events:
        row = rows[event.task_id]
        agent = 1 if event.agent else 0
        if event.kind == "task.started":
            receipt_ok = row["started_ok"] == 1
            effects = (row["executions"], row["ran"])
            whole, none = effects == (1, 1), effects == (0, 0)
            dup = row["executions"] > 1 or row["ran"] > 1 or row["started_receipts"] > 1
        else:
            receipt_ok = row["completed_ok"] == 1
            effects = (row["succeeded"], row["agent_results"], row["cost_items"], row["finished"])
            whole = effects == (1, agent, agent, 1) and row["status"] == "COMPLETED"
            none = effects == (0, 0, 0, 0)
            dup = row["agent_results"] > agent or row["cost_items"] > agent or row["finished"] > 1 \
                or row["completed_receipts"] > 1
        stored += receipt_ok and whole
        acknowledged_not_stored += event.acknowledged and not (receipt_ok and whole)
        duplicated += dup
        partial += (receipt_ok and not whole) or (not receipt_ok and not none)
    # Effects of events never sent (a task completed twice over, say) would be duplicates too.
    unsent_effects = sum(1 for task_id, row in rows.items()
                         if (f"fault:{task_id}:task.started" not in sent_ids and (row["executions"] or row["ran"]))
                         or (f"fault:{task_id}:task.completed" not in sent_ids and (row["agent_results"] or row["finished"])))
    acknowledged = sum(e.acknowledged for e in events)
    answers: Counter = Counter()
    for event in events:
        answers.update({str(k): v for k, v in event.answers.items()})
    return {"sent": len(events), "attempts": sum(e.attempts for e in events), "acknowledged": acknowledged,
            "acknowledged_on_retry": sum(e.acknowledged and e.attempts > 1 for e in events),
            "replayed_answers": sum(e.replayed for e in events), "stored": stored,
            "duplicated": duplicated + unsent_effects, "partial": partial,
            "lost": len(events) - stored, "acknowledged_not_stored": acknowledged_not_stored,
            "refusals_stored": stray, "answers": dict(sorted(answers.items()))}


# ---- the scenarios ----------------------------------------------------------------------------
def run_under_fault(name: str, workflows: int, senders: int, duration: float, workers: int,
                    inject: Callable[[PrivateCluster, subprocess.Popen, float], dict],
                    progress: Callable[[str], None] = print) -> dict:
    """The common frame: cluster, seed, service, load; `inject(cluster, gunicorn, started)` runs
    in this thread while the senders work and returns what it did."""
    cluster = PrivateCluster().init()
    process = None
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("create database rexera")
        url = cluster.url("rexera")
        progress(f"{name}: migrating and seeding {workflows} workflows on a private cluster ...")
        plan = seed(url, workflows)
        process, base = start_service(service_env(url, workers), "wsgi:app", f"faults-{name}-server.log")
        workers_before = worker_pids(process.pid)
        progress(f"{name}: {senders} senders for {duration:.0f} s against {base} (workers {workers_before})")
        load = Senders(base, plan, senders, duration).start()
        fault = inject(cluster, process, load.started_at)
        load.join()
        elapsed = max(load.finished_at) - load.started_at
        healthy = requests.get(f"{base}/api/health/database", timeout=10).status_code
        figures = ledger(url, load.events)
        log = (RESULTS / f"faults-{name}-server.log").read_text(errors="replace")
        figures.update({"load_seconds": round(elapsed, 1), "senders": senders, "workers": workers,
                        "workflows_seeded": workflows, "fault": fault,
                        "service": {"master_pid": process.pid, "master_alive": process.poll() is None,
                                    "workers_before": workers_before, "workers_after": worker_pids(process.pid),
                                    "health_database_after": healthy,
                                    # units of work the service itself retried on a fresh connection
                                    "reconnect_retries": log.count("retrying on a fresh connection")}})
        return figures
    finally:
        if process is not None:
            stop_service(process)
        cluster.destroy()


def restart_postgres(at: float, outage: float = 0.0, mode: str = "fast") -> Callable:
    """`pg_ctl restart -m <mode>` at `at` s (fast: connections cut, as in a failover; immediate:
    as in a crash, recovery from the WAL on start); with `outage` > 0 the cluster stays down
    that long between the shutdown and the start (past the pool's 10 s wait, requests fail)."""
    def inject(cluster: PrivateCluster, process: subprocess.Popen, started: float) -> dict:
        time.sleep(max(0.0, started + at - time.monotonic()))
        began = time.monotonic()
        if outage > 0:
            cluster._pg_ctl("stop", "-m", mode)
            time.sleep(outage)
            cluster._pg_ctl("start")
            what = f"pg_ctl stop -m {mode}, {outage:g} s down, pg_ctl start"
        else:
            cluster._pg_ctl("restart", "-m", mode)
            what = f"pg_ctl restart -m {mode}"
        return {"what": what, "at_s": round(began - started, 1), "restart_seconds": round(time.monotonic() - began, 2)}
    return inject


def kill_workers(at: float, kills: int, interval: float) -> Callable:
    def inject(cluster: PrivateCluster, process: subprocess.Popen, started: float) -> dict:
        killed = []
        rng = random.Random(7)
        for index in range(kills):
            time.sleep(max(0.0, started + at + index * interval - time.monotonic()))
            pids = worker_pids(process.pid)
            if not pids:
                continue
            victim = rng.choice(pids)
            os.kill(victim, signal.SIGKILL)
            killed.append({"pid": victim, "at_s": round(time.monotonic() - started, 1)})
        # gunicorn notices the dead worker and boots a new one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(worker_pids(process.pid)) - {k["pid"] for k in killed}) < 1:
            time.sleep(0.2)
        return {"what": "SIGKILL of a gunicorn worker", "killed": killed}
    return inject


def postgres_restart(workflows: int = 600, senders: int = 6, duration: float = 30, at: float = 10,
                     outage: float = 0.0, mode: str = "fast", progress: Callable[[str], None] = print) -> dict:
    return run_under_fault("postgres_restart", workflows, senders, duration, 2, restart_postgres(at, outage, mode),
                           progress)


def worker_kill(workflows: int = 600, senders: int = 6, duration: float = 30, at: float = 5, kills: int = 4,
                interval: float = 5, progress: Callable[[str], None] = print) -> dict:
    return run_under_fault("worker_kill", workflows, senders, duration, 2, kill_workers(at, kills, interval), progress)
