"""The scaled topology (`scripts/local.py --scale`, scripts/local_scaled.py) run for real: n8n
2.x in queue mode (main, two workers, a webhook processor; its database on PostgreSQL, Bull on
Redis), two service instances behind HAProxy, the agent simulator. What it must show: workflows
of every type complete with each trigger delivered once and each callback applied once (counted in
both databases), the work spread over both workers and both instances, /ws clients on different
instances each receiving every event, and rate limits shared through Redis."""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
import websocket
from psycopg import sql
from psycopg.rows import dict_row

from tests.conftest import server_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import demo  # noqa: E402
from app.webhooks.signing import inbound_token  # noqa: E402
from local import CLIENT_EMAIL, OPERATOR_EMAIL, free_port, tokens  # noqa: E402
from tests.realtime.test_revocation import provision  # noqa: E402
from tests.support import mint_token  # noqa: E402

pytestmark = [pytest.mark.e2e]
START_SECONDS = 600
PER_TYPE = 10  # 30 workflows across the three types
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "BLOCKED"}
SWEEP_SECONDS = 2  # each instance's SLA runner, so rounds pass quickly
WATCH_SECONDS, WATCH_QUIET_SECONDS = 2, 10  # the execution watch: lost executions found within seconds


class Scaled:
    def __init__(self, base: str, running: dict, keys: dict, database_url: str, state_dir: Path):
        self.base, self.running, self.keys, self.database_url = base, running, keys, database_url
        self.state_dir = state_dir
        self.replied: set[tuple[str, str]] = set()
        found = tokens(database_url, keys["jwtSecret"])
        self.client = {"Authorization": f"Bearer {found[CLIENT_EMAIL]}"}
        self.operator_token = found[OPERATOR_EMAIL]

    def query(self, statement: str, params=()) -> list[dict]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()

    def part_pid(self, name: str) -> int:
        """The pid of a part now (local.py rewrites running.json when it restarts one)."""
        return json.loads((self.state_dir / "running.json").read_text())["parts"][name]

    def n8n_query(self, statement: str, params=()) -> list[dict]:
        name = psycopg.conninfo.conninfo_to_dict(self.database_url)["dbname"] + "_n8n"
        url = psycopg.conninfo.make_conninfo(self.database_url, dbname=name)
        with psycopg.connect(url, row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()

    def run_workflows(self, per_type: int, timeout: float = 300) -> list[str]:
        """Create and start `per_type` workflows of each type as the demo client, answer what they
        wait for (the lender's statement, the HOA's documents), return their ids once all are final."""
        ids = self.start_workflows(per_type)
        self.drive(ids, timeout)
        return ids

    def start_workflows(self, per_type: int) -> list[str]:
        ids = []
        for _ in range(per_type):
            for workflow_type, payload in demo.payloads().items():
                created = requests.post(f"{self.base}/api/workflows", json={"type": workflow_type, "payload": payload},
                                        headers=self.client, timeout=30)
                assert created.status_code == 201, created.text
                workflow_id = created.json()["id"]
                started = requests.post(f"{self.base}/api/workflows/{workflow_id}/actions",
                                        json={"action": "start", "data": {}}, headers=self.client, timeout=30)
                assert started.status_code == 200, started.text
                ids.append(workflow_id)
        return ids

    def drive(self, ids: list[str], timeout: float, until=None) -> None:
        """Answer what the workflows wait for until all are final (or `until()` holds)."""
        secret = bytes.fromhex(self.keys["callbackSecret"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until():
                return
            rows = self.query("select status::text as status from public.workflows where id = any(%s::uuid[])", (ids,))
            if until is None and all(row["status"] in FINAL for row in rows):
                return
            waiting = self.query("select workflow_id::text as workflow_id, task_key from public.tasks"
                                 " where workflow_id = any(%s::uuid[]) and status = 'WAITING' and task_key = any(%s)",
                                 (ids, list(demo.REPLIES)))
            for row in waiting:
                key = (row["workflow_id"], row["task_key"])
                if key in self.replied:
                    continue
                kind, body = demo.REPLIES[row["task_key"]]
                try:
                    answer = requests.post(f"{self.base}/webhooks/inbound/{kind}", json=body(row["workflow_id"]),
                                           headers={"Authorization": f"Bearer {inbound_token(secret, row['workflow_id'])}"},
                                           timeout=30)
                except requests.ConnectionError:
                    continue  # an instance going down under the balancer: asked again next round
                if answer.status_code == 202:
                    self.replied.add(key)
                else:
                    assert answer.status_code in (502, 503), answer.text  # the same, answered by HAProxy
            time.sleep(0.5)
        statuses = collections.Counter(row["status"] for row in self.query(
            "select status::text as status from public.workflows where id = any(%s::uuid[])", (ids,)))
        pytest.fail(f"not every workflow finished within {timeout:g} s: {dict(statuses)}")

    def receipts(self, ids: list[str]) -> int:
        return self.query("select count(*) as n from public.webhook_receipts where source = 'n8n'"
                          " and workflow_id = any(%s::uuid[])", (ids,))[0]["n"]

    def assert_each_effect_once(self, ids: list[str], lost_allowed: bool = False) -> None:
        """Every workflow completed, every task finished once, its callbacks from its one n8n
        execution (with `lost_allowed`: also from executions n8n lost, whose callbacks end where it
        was lost)."""
        statuses = self.query("select status::text as status, count(*) as n from public.workflows"
                              " where id = any(%s::uuid[]) group by 1", (ids,))
        assert {r["status"]: r["n"] for r in statuses} == {"COMPLETED": len(ids)}
        repeated = self.query(
            "select t.task_key, e.to_status, count(*) as n from public.task_timeline_events e"
            " join public.tasks t on t.id = e.task_id where t.workflow_id = any(%s::uuid[])"
            " and e.to_status in ('COMPLETED', 'SKIPPED') group by t.id, t.task_key, e.to_status having count(*) > 1",
            (ids,))
        assert repeated == []
        open_tasks = self.query("select count(*) as n from public.tasks where workflow_id = any(%s::uuid[])"
                                " and status not in ('COMPLETED', 'SKIPPED')", (ids,))
        assert open_tasks[0]["n"] == 0
        # The n8n executions the callbacks came from (their event ids: workflow:execution:...): the
        # workflow's own, and (with `lost_allowed`) executions n8n lost, which may have been lost
        # before their first callback.
        executions = self.query(
            "select r.workflow_id, array_agg(distinct split_part(r.event_id, ':', 2)) as seen,"
            " w.n8n_execution_id as current,"
            " coalesce((select array_agg(l ->> 'executionId') from jsonb_array_elements(w.metadata -> 'lostExecutions') l),"
            " '{}') as lost"
            " from public.webhook_receipts r join public.workflows w on w.id = r.workflow_id"
            " where r.source = 'n8n' and r.workflow_id = any(%s::uuid[]) group by 1, 3, 4", (ids,))
        assert len(executions) == len(ids), executions
        for row in executions:
            assert row["current"] in row["seen"], row
            assert set(row["seen"]) <= {row["current"], *(row["lost"] if lost_allowed else [])}, row
        # Each agent's success was recorded once per task, whatever execution reported it.
        doubled = self.query("select task_id, count(*) as n from public.agent_results where success"
                             " and workflow_id = any(%s::uuid[]) group by 1 having count(*) > 1", (ids,))
        assert doubled == []


def _wait_running(state_dir: Path, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"local.py --scale exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        running_file = state_dir / "running.json"
        if running_file.exists() and "Rexera is running" in log.read_text():
            return json.loads(running_file.read_text())
        time.sleep(1)
    pytest.fail(f"local.py --scale was not up within {START_SECONDS} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    name = f"rexera_scaled_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    server = psycopg.conninfo.conninfo_to_dict(server_url())
    database_url = (f"postgresql://{server.get('user') or 'postgres'}@{server.get('host') or '127.0.0.1'}:"
                    f"{server.get('port') or 5432}/{name}")  # the service takes URLs only
    state_dir = tmp_path_factory.mktemp("scaled")
    log = state_dir / "local.log"
    port = free_port()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "scripts/local.py", "up", "--scale", "--port", str(port), "--state-dir", str(state_dir),
             "--agent-latency-ms", "20"], cwd=ROOT,
            # The tests place many orders as the one demo client, faster than a client's budget of
            # work for people allows (app/budgets.py): a larger one here, as RATE_LIMITS sets it.
            env={**os.environ, "DATABASE_URL": database_url, "SLA_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
                 "RATE_LIMITS": "client_work=1000/minute;20000/hour",
                 "N8N_WATCH_INTERVAL_SECONDS": str(WATCH_SECONDS), "N8N_WATCH_QUIET_SECONDS": str(WATCH_QUIET_SECONDS)},
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        running = _wait_running(state_dir, process, log)
        keys = json.loads((state_dir / "secrets.json").read_text())
        yield Scaled(f"http://127.0.0.1:{port}", running, keys, database_url, state_dir)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with psycopg.connect(server_url(), autocommit=True) as admin:
            for database in (name, f"{name}_n8n"):
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    assert process.returncode == 0, log.read_text()[-4000:]


@pytest.mark.timeout(1200)
def test_thirty_workflows_complete_each_trigger_and_callback_once(scaled):
    ids = scaled.run_workflows(PER_TYPE)

    statuses = scaled.query("select workflow_type::text as type, status::text as status, count(*) as n"
                            " from public.workflows where id = any(%s::uuid[]) group by 1, 2", (ids,))
    assert {(r["type"], r["status"]): r["n"] for r in statuses} == {
        (t, "COMPLETED"): PER_TYPE for t in ("PAYOFF_REQUEST", "HOA_ACQUISITION", "MUNI_LIEN_SEARCH")}
    scaled.assert_each_effect_once(ids)
    # Each trigger delivered once: one TRIGGER row per workflow, delivered at the first attempt,
    # and n8n holds exactly one execution of the type workflows per trigger.
    triggers = scaled.query("select workflow_id, status, attempts from public.n8n_dispatches"
                            " where kind = 'TRIGGER' and workflow_id = any(%s::uuid[])", (ids,))
    assert len(triggers) == len(ids) and {(r["status"], r["attempts"]) for r in triggers} == {("DELIVERED", 1)}
    executions = scaled.n8n_query(
        "select w.name, count(*) as n from execution_entity e join workflow_entity w on w.id = e.\"workflowId\""
        " group by w.name")
    by_name = {r["name"]: r["n"] for r in executions}
    assert sum(n for name, n in by_name.items() if "Error" not in name) == len(ids), by_name
    # The work was spread: both workers ran executions, both instances took callbacks.
    started = {name: (scaled.state_dir / "logs" / f"{name}.log").read_text().count("Worker started execution")
               for name in ("n8n-worker-1", "n8n-worker-2")}
    assert all(started.values()), started
    callbacks = [callbacks_served(instance, scaled.keys["metricsToken"]) for instance in scaled.running["instances"]]
    assert all(callbacks) and sum(callbacks) >= 10 * len(ids), callbacks


def callbacks_served(instance: str, metrics_token: str) -> int:
    """n8n callbacks this instance answered (its /metrics, with the deployment's METRICS_TOKEN)."""
    text = requests.get(f"{instance}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=5).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("rexera_http_request_duration_seconds_count") and 'endpoint="/webhooks/n8n' in line)


def _collect(sock: websocket.WebSocket, until: float) -> list[dict]:
    events = []
    while time.monotonic() < until:
        sock.settimeout(max(0.1, until - time.monotonic()))
        try:
            message = json.loads(sock.recv())
        except websocket.WebSocketTimeoutException:
            break
        if "id" in message:  # events; not heartbeats nor the end of the replay
            events.append(message)
            if message.get("type") == "workflow_status_changed" and message.get("status") == "COMPLETED":
                break
    return events


@pytest.mark.timeout(900)
def test_the_demo_runs_against_it_unchanged(scaled):
    """`python3 scripts/local.py demo` (the README's demo, against a system already up) through
    HAProxy: the three workflows complete."""
    result = subprocess.run([sys.executable, "scripts/local.py", "demo", "--state-dir", str(scaled.state_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "all three workflows COMPLETED" in result.stdout, result.stdout[-4000:]
    assert scaled.running["baseUrl"] == scaled.base  # the balancer's port, as the demo was given it


@pytest.mark.timeout(600)
def test_sockets_through_the_balancer_on_different_instances_each_receive_every_event(scaled):
    before = scaled.query("select coalesce(max(seq), 0) as seq from public.realtime_events")[0]["seq"]
    created = requests.post(f"{scaled.base}/api/workflows", headers=scaled.client, timeout=30,
                            json={"type": "MUNI_LIEN_SEARCH", "payload": demo.payloads()["MUNI_LIEN_SEARCH"]})
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    url = scaled.base.replace("http://", "ws://") + f"/ws?token={scaled.operator_token}"
    sockets = [websocket.create_connection(url, timeout=10) for _ in range(4)]  # round robin: two per instance
    for sock in sockets:
        assert json.loads(sock.recv())["type"] == "authenticated"
        # From before the workflow existed: its creation comes in the replay, the rest live.
        sock.send(json.dumps({"type": "subscribe", "channel": f"workflow:{workflow_id}", "since": before}))
        assert json.loads(sock.recv())["type"] == "subscribed"
    per_instance = [requests.get(f"{instance}/api/health/realtime", timeout=5).json()["subscribers"]
                    for instance in scaled.running["instances"]]
    assert all(count >= 2 for count in per_instance), per_instance
    started = requests.post(f"{scaled.base}/api/workflows/{workflow_id}/actions", headers=scaled.client,
                            json={"action": "start", "data": {}}, timeout=30)
    assert started.status_code == 200, started.text
    until = time.monotonic() + 180
    received = [_collect(sock, until) for sock in sockets]
    for sock in sockets:
        sock.close()
    stored = [r["seq"] for r in scaled.query(
        "select seq from public.realtime_events where workflow_id = %s and event_type <> 'hil_notification'"
        " order by seq", (workflow_id,))]
    assert stored and stored[-1] == max(e["id"] for e in received[0])
    for events in received:
        assert [e["id"] for e in events] == stored


@pytest.mark.timeout(300)
def test_rate_limits_are_shared_across_instances(scaled):
    """1,000 standard requests an hour per principal, whichever instance serves them: the
    1,001st is refused although each instance saw only about half."""
    person = provision(scaled.database_url, role="hil_manager")  # a budget nobody has touched (Redis outlives runs)
    token = mint_token(person, secret=scaled.keys["jwtSecret"])
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    answers = collections.Counter()
    for _ in range(1000):
        answers[session.get(f"{scaled.base}/api/workflows", params={"limit": 1}, headers=headers,
                            timeout=30).status_code] += 1
    refused = session.get(f"{scaled.base}/api/workflows", params={"limit": 1}, headers=headers, timeout=30)
    assert answers == {200: 1000}
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited", refused.text


@pytest.mark.timeout(300)
def test_two_instances_sweep_once_a_round_between_them(scaled):
    def rounds() -> int:
        return scaled.query("select rounds from private.duty_rounds where duty = 'sla_sweep'")[0]["rounds"]

    first, started = rounds(), time.monotonic()
    time.sleep(10 * SWEEP_SECONDS)
    taken, elapsed = rounds() - first, time.monotonic() - started
    # Two runners each every SWEEP_SECONDS would sweep about 20 times; a round is at least 0.9 of it.
    assert elapsed / SWEEP_SECONDS - 3 <= taken <= elapsed / (0.9 * SWEEP_SECONDS) + 1, (taken, elapsed)
    # Both instances run a sweeper (either may take a round).
    duties = [requests.get(f"{instance}/api/health", timeout=5).json()["duties"] for instance in scaled.running["instances"]]
    assert all("sweeperThread" in d["slaSweep"] for d in duties), duties


def _pid_or_none(scaled: Scaled, part: str) -> int | None:
    try:
        return scaled.part_pid(part)
    except (ValueError, KeyError):
        return None  # running.json being rewritten


def stop_and_wait_for_restart(scaled: Scaled, parts: str | list[str], how: signal.Signals, timeout: float = 180) -> None:
    """SIGKILL each part's whole process group (no goodbye), or SIGTERM its main process (a
    deploy or a scale-down: it finishes what it runs), all at once, then wait until local.py has
    started each of them again."""
    stopped = {part: scaled.part_pid(part) for part in ([parts] if isinstance(parts, str) else parts)}
    for pid in stopped.values():
        if how == signal.SIGKILL:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, how)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_pid_or_none(scaled, part) not in (pid, None) for part, pid in stopped.items()):
            return
        time.sleep(0.5)
    pytest.fail(f"{', '.join(stopped)} not started again within {timeout:g} s")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("part, how", [("service-1", signal.SIGKILL), ("n8n-worker-1", signal.SIGTERM)],
                         ids=["service instance killed", "n8n worker stopped"])
def test_a_part_stopped_mid_run_loses_and_duplicates_nothing(scaled, part, how):
    """A service instance killed outright, an n8n worker stopped as a deploy stops it (it finishes
    what it runs; workers killed outright: the next test)."""
    ids = scaled.start_workflows(3)
    # Mid-run: callbacks are flowing for these workflows.
    scaled.drive(ids, 120, until=lambda: scaled.receipts(ids) >= 25)
    stop_and_wait_for_restart(scaled, part, how)
    scaled.drive(ids, 400)
    scaled.assert_each_effect_once(ids)


@pytest.mark.timeout(1200)
def test_n8n_workers_killed_outright_lose_nothing(scaled):
    """A worker killed with SIGKILL takes its running executions with it (n8n 2.x fails such a job:
    "job stalled more than maxStalledCount", and no error workflow runs). The execution watch finds
    each one, the workflow starts again in a new execution that skips what was done, and the loss
    shows in the timeline."""
    ids = scaled.start_workflows(4)
    running = "select count(*) as n from execution_entity where status = 'running'"
    # Kill while executions run (polled every half second; runs between waits are short).
    scaled.drive(ids, 120, until=lambda: scaled.receipts(ids) >= 10 and scaled.n8n_query(running)[0]["n"] >= 2)
    # Both workers at once: whatever ran at that moment is lost, wherever Bull had put it.
    stop_and_wait_for_restart(scaled, ["n8n-worker-1", "n8n-worker-2"], signal.SIGKILL)
    scaled.drive(ids, 600)
    scaled.assert_each_effect_once(ids, lost_allowed=True)
    lost = scaled.query("select id, metadata -> 'lostExecutions' as lost from public.workflows"
                        " where id = any(%s::uuid[]) and metadata ? 'lostExecutions'", (ids,))
    assert lost, "no execution was running on the killed workers"
    # The service went on only on n8n's word: its API said error or crashed (the watch), or its
    # error workflow reported the loss. (n8n may show such an execution otherwise later: once,
    # one it had reported crashed showed waiting afterwards; the service had gone on, and any
    # callback of it is refused, so nothing above was applied twice.)
    entries = [entry for row in lost for entry in row["lost"]]
    on_n8ns_word = re.compile(r"n8n says (error|crashed)|n8n's error workflow: .*(did not finish|stalled)")
    assert all(on_n8ns_word.search(entry["reason"]) for entry in entries), entries
    stalled = scaled.n8n_query("select id::text as id, status from execution_entity where id::text = any(%s)",
                               ([entry["executionId"] for entry in entries],))
    assert len(stalled) == len(entries) and not any(row["status"] == "running" for row in stalled), stalled
    for row in lost:
        events = scaled.query("select t.task_key, e.message from public.task_timeline_events e join public.tasks t"
                              " on t.id = e.task_id where e.workflow_id = %s and e.event_type = 'execution_lost'",
                              (row["id"],))
        interrupted = sorted({key for entry in row["lost"] for key in entry["interruptedTasks"]})
        assert sorted({e["task_key"] for e in events}) == interrupted
        audit = scaled.query("select count(*) as n from public.audit_events where workflow_id = %s"
                             " and event_type = 'workflow.execution_lost'", (row["id"],))
        assert audit[0]["n"] == len(row["lost"])
