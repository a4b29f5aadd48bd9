"""Workflows through the real n8n while it or the agents fail: the system assembled as the
end-to-end harness does (tests/e2e/harness.py: the service with its dispatcher, the agent
simulator in process with zero latency, a real local n8n with the exported workflows), on a
fresh database of its own on $TEST_DATABASE_URL.

  n8n_down        n8n stopped; workflows created and started through the API during the outage;
                  n8n started again after `down_seconds`; the outbox must deliver every trigger
                  exactly once (n8n_dispatches rows, and n8n's executions per workflow from its API)
  agent_failures  every agent failing `failure_rate` of its calls with a transient 503; n8n's
                  retries carry most workflows through, the rest must end escalated (BLOCKED,
                  FAILED or AWAITING_REVIEW, as the API shows), none stuck, nothing applied twice.
                  failure_model "independent" rolls every call afresh, as a real transient fault
                  behaves; "seeded" keeps the simulator's own rolls, a pure function of the request,
                  so n8n's retry of an identical request fails again (retries cannot help there)

Workflows alternate PAYOFF_REQUEST (its payoff statement delivered through the inbound webhook
once await_statement waits) and MUNI_LIEN_SEARCH (runs to the end on its own).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

from tests.e2e import harness
from tests.perf.bench_n8n import payoff_payload, statement

TYPES = ("PAYOFF_REQUEST", "MUNI_LIEN_SEARCH")
EXPORT_OF_TYPE = {"PAYOFF_REQUEST": "payoff_request.json", "MUNI_LIEN_SEARCH": "muni_lien_search.json"}
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "BLOCKED", "AWAITING_REVIEW"}


def muni_payload() -> dict:
    return {"address": f"{harness.new_id()} Congress Avenue, Austin, TX 78701", "county": "Travis",
            "parcelNumber": f"P-{harness.new_id()}", "buyer": "Robin Castillo",
            "closingDate": (date.today() + timedelta(days=14)).isoformat(),
            "searchTypes": ["tax_liens", "utility_liens", "municipal_liens"]}


def payload_for(workflow_type: str) -> dict:
    return payoff_payload() if workflow_type == "PAYOFF_REQUEST" else muni_payload()


@contextlib.contextmanager
def running_system(progress: Callable[[str], None]) -> Iterator[tuple[harness.World, dict[str, str]]]:
    """The whole system; yields the world and workflow type -> n8n workflow id."""
    if harness.n8n_local.installed_binary() is None:
        raise SystemExit("n8n is not installed (scripts/n8n_local.py install)")
    from tests.conftest import world_database

    database = world_database("rexera_faults_n8n")
    simulator = n8n = service = None
    tmp = tempfile.TemporaryDirectory()
    try:
        database_url = next(database)
        simulator = harness.agent_simulator.AgentSimulator(
            seed=harness.SIMULATOR_SEED, agents={name: {"latency_ms": 0, "failure_rate": 0.0}
                                                 for name in harness.agent_simulator.AGENTS})
        simulator.start()
        trigger_token, error_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        progress("starting n8n ...")
        n8n = harness.N8n(harness.n8n_local.free_port(), Path(tmp.name) / "n8n")
        n8n.start()
        credential_ids = harness.create_credentials(n8n, trigger_token, error_token)
        ids = harness.import_workflows(n8n, credential_ids, harness.wait_for_exports(10))
        port = harness.n8n_local.free_port()
        settings = harness.make_settings(database_url, port, n8n.base_url, n8n.api_key, simulator.base_url,
                                         trigger_token, error_token)
        service = harness.Service(settings, port).start()
        yield harness.World(service, simulator, n8n, database_url), {t: ids[EXPORT_OF_TYPE[t]] for t in TYPES}
    finally:
        for part in (service, n8n, simulator):
            if part is not None:
                try:
                    part.stop()
                except Exception as error:  # noqa: BLE001 - keep cleaning up
                    progress(f"stopping {type(part).__name__}: {error}")
        database.close()  # drops the database
        tmp.cleanup()


def drive_to_end(world: harness.World, workflow_id: str, deadline: float) -> dict:
    """Poll the workflow through the API until it ends (delivering the payoff statement when
    await_statement waits) or `deadline` (monotonic) passes; returns the last API view."""
    delivered = False
    workflow = world.get_workflow(workflow_id)
    while time.monotonic() < deadline:
        workflow = world.get_workflow(workflow_id)
        if workflow["status"] in ENDED:
            break
        waiting = (workflow["tasksByKey"].get("await_statement") or {}).get("status") == "WAITING"
        if waiting and not delivered:
            response = world.deliver_inbound("payoff-statement", statement(workflow_id))
            delivered = response.status_code == 202
        time.sleep(0.5)
    return workflow


def executions_per_workflow(world: harness.World, n8n_ids: dict[str, str], workflow_ids: list[str]) -> Counter:
    """n8n executions whose data names each of our workflows, from n8n's public API."""
    found: Counter = Counter({workflow_id: 0 for workflow_id in workflow_ids})
    for n8n_id in n8n_ids.values():
        cursor = None
        while True:
            path = f"/api/v1/executions?workflowId={n8n_id}&includeData=true&limit=100"
            status, page = world.n8n.request("GET", path + (f"&cursor={cursor}" if cursor else ""))
            if status != 200:
                raise RuntimeError(f"n8n GET executions answered {status}: {str(page)[:300]}")
            for execution in page.get("data") or []:
                text = json.dumps(execution.get("data") or {})
                for workflow_id in workflow_ids:
                    if workflow_id in text:
                        found[workflow_id] += 1
            cursor = page.get("nextCursor")
            if not cursor:
                break
    return found


DUPLICATES = """
select
  (select count(*) from public.n8n_dispatches d where d.workflow_id = w.id and d.kind = 'TRIGGER') as triggers,
  (select count(*) from public.n8n_dispatches d where d.workflow_id = w.id and d.kind = 'TRIGGER'
      and d.status = 'DELIVERED') as triggers_delivered,
  (select coalesce(max(d.attempts), 0) from public.n8n_dispatches d where d.workflow_id = w.id and d.kind = 'TRIGGER')
      as trigger_attempts,
  (select count(*) from (select a.task_id from public.agent_results a where a.workflow_id = w.id and a.success
      group by a.task_id having count(*) > 1) x) as tasks_with_two_successes,
  (select count(*) from (select a.task_execution_id from public.agent_results a where a.workflow_id = w.id
      and a.task_execution_id is not null group by 1 having count(*) > 1) x) as executions_with_two_results,
  (select count(*) from (select l.task_id from public.task_timeline_events l where l.workflow_id = w.id
      and l.to_status = 'COMPLETED' group by 1 having count(*) > 1) x) as tasks_completed_twice,
  (select count(*) from (select c.task_id from public.cost_items c where c.workflow_id = w.id and c.task_id is not null
      group by 1 having count(*) > 1) x) as tasks_charged_twice,
  (select count(*) from public.agent_results a where a.workflow_id = w.id) as agent_results,
  (select count(*) from public.task_executions e where e.workflow_id = w.id) as task_executions,
  (select count(*) from public.notifications n where n.workflow_id = w.id) as notifications
  from public.workflows w where w.id = %s
"""


def tally(world: harness.World, n8n_ids: dict[str, str], views: dict[str, dict], started: list[str]) -> dict:
    """completed / escalated / lost and duplicated, per workflow, from the API, the database and n8n."""
    executions = executions_per_workflow(world, n8n_ids, started)
    statuses = Counter(view["status"] for view in views.values())
    rows = {workflow_id: world.query(DUPLICATES, (workflow_id,))[0] for workflow_id in started}
    duplicated = {
        "triggers_queued_twice": sum(r["triggers"] > 1 for r in rows.values()),
        "n8n_executions_beyond_one": sum(max(0, n - 1) for n in executions.values()),
        "tasks_with_two_successful_results": sum(r["tasks_with_two_successes"] for r in rows.values()),
        "executions_with_two_results": sum(r["executions_with_two_results"] for r in rows.values()),
        "tasks_completed_twice": sum(r["tasks_completed_twice"] for r in rows.values()),
        "tasks_charged_twice": sum(r["tasks_charged_twice"] for r in rows.values()),
    }
    not_ended = [w for w, view in views.items() if view["status"] not in ENDED]
    # An escalation people can act on: the API shows the failed step, and someone was notified.
    escalated = [w for w, view in views.items() if view["status"] in ENDED - {"COMPLETED"}]
    explained = [w for w in escalated if rows[w]["notifications"] > 0 and any(
        task["status"] in ("FAILED", "AWAITING_REVIEW") for task in views[w].get("tasks") or [])]
    never_ran = [w for w in started if executions[w] == 0 or rows[w]["triggers_delivered"] != 1]
    return {
        "started": len(started), "completed": statuses.get("COMPLETED", 0),
        "escalated": {s: n for s, n in statuses.items() if s in ENDED - {"COMPLETED"}},
        "escalated_with_failed_step_and_notification": len(explained),
        "not_ended": len(not_ended), "never_ran": len(never_ran),
        "lost": len(set(not_ended) | set(never_ran)),
        "duplicated": sum(duplicated.values()), "duplicated_by_kind": duplicated,
        "triggers": {"rows": sum(r["triggers"] for r in rows.values()),
                     "delivered": sum(r["triggers_delivered"] for r in rows.values()),
                     "retried": sum(r["trigger_attempts"] > 1 for r in rows.values()),
                     "max_attempts": max((r["trigger_attempts"] for r in rows.values()), default=0)},
        "n8n_executions": sum(executions.values()),
        "agent_results": sum(r["agent_results"] for r in rows.values()),
        "task_executions": sum(r["task_executions"] for r in rows.values()),
        "statuses": dict(statuses),
        "stuck": {w: harness.World.describe(views[w]) for w in not_ended},
    }


def n8n_down(workflows: int = 6, down_seconds: float = 60, progress: Callable[[str], None] = print) -> dict:
    with running_system(progress) as (world, n8n_ids):
        progress(f"n8n_down: stopping n8n for {down_seconds:g} s; {workflows} workflows start meanwhile")
        world.n8n.stop()
        down_at = time.monotonic()
        started: list[str] = []
        for index in range(workflows):  # spread over the first half of the outage
            time.sleep(max(0.0, down_at + index * down_seconds / (2 * workflows) - time.monotonic()))
            started.append(world.start(TYPES[index % 2], payload_for(TYPES[index % 2])))
        time.sleep(max(0.0, down_at + down_seconds - time.monotonic()))
        start_at = time.monotonic()
        world.n8n.start()
        back_at, back_wall = time.monotonic(), time.time()
        progress(f"n8n_down: n8n answering again {back_at - down_at:.0f} s after it stopped; waiting for the"
                 " workflows to end")
        deadline = back_at + 180
        views = {w: drive_to_end(world, w, deadline) for w in started}
        ended_within = round(time.monotonic() - back_at, 1)
        # Catch-up: from n8n answering again to the last queued trigger delivered.
        last = world.query("""select extract(epoch from max(delivered_at)) as at from public.n8n_dispatches
                              where kind = 'TRIGGER' and workflow_id = any(%s::uuid[])""", (started,))[0]["at"]
        figures = tally(world, n8n_ids, views, started)
        figures["seconds_from_n8n_back_to_all_triggers_delivered"] = \
            round(float(last) - back_wall, 1) if last is not None else None
        figures.update({"scenario": "n8n_down", "workflows": workflows, "stopped_seconds": round(start_at - down_at, 1),
                        "down_seconds": round(back_at - down_at, 1),
                        "seconds_from_n8n_back_to_all_ended": ended_within})
        return figures


@contextlib.contextmanager
def independent_failures(seed: int) -> Iterator[None]:
    """The simulator deciding each call's failure with a fresh draw (its answers otherwise unchanged)."""
    module = harness.agent_simulator
    seeded, rng, lock = module.fails, random.Random(seed), threading.Lock()

    def fails(seed, agent, task_type, workflow_id, retry_count, payload, failure_rate) -> bool:
        with lock:
            return failure_rate > 0 and rng.random() < failure_rate

    module.fails = fails
    try:
        yield
    finally:
        module.fails = seeded


def agent_failures(workflows: int = 12, failure_rate: float = 0.3, in_flight: int = 4,
                   failure_model: str = "independent", progress: Callable[[str], None] = print) -> dict:
    model = independent_failures(harness.SIMULATOR_SEED) if failure_model == "independent" else contextlib.nullcontext()
    with running_system(progress) as (world, n8n_ids), model:
        world.simulator.configure(failure_mode="transient", agents={
            name: {"failure_rate": failure_rate} for name in harness.agent_simulator.AGENTS})
        world.simulator.reset()
        progress(f"agent_failures: every agent failing {failure_rate:.0%} of calls; {workflows} workflows,"
                 f" {in_flight} in flight")
        lock = threading.Lock()
        started: list[str] = []
        views: dict[str, dict] = {}
        queue = list(range(workflows))

        def driver():
            while True:
                with lock:
                    if not queue:
                        return
                    index = queue.pop(0)
                workflow_id = world.start(TYPES[index % 2], payload_for(TYPES[index % 2]))
                with lock:
                    started.append(workflow_id)
                view = drive_to_end(world, workflow_id, time.monotonic() + 240)
                with lock:
                    views[workflow_id] = view

        began = time.monotonic()
        threads = [threading.Thread(target=driver, daemon=True) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        calls = world.simulator.stats()["totals"]
        figures = tally(world, n8n_ids, views, started)
        figures.update({"scenario": "agent_failures", "workflows": workflows, "failure_rate": failure_rate,
                        "failure_model": failure_model,
                        "in_flight": in_flight, "seconds": round(time.monotonic() - began, 1),
                        "agent_calls": calls["calls"], "agent_calls_failed": calls["failed"]})
        return figures


def markdown(name: str, figures: dict) -> str:
    escalated = ", ".join(f"{s} {n}" for s, n in sorted(figures["escalated"].items())) or "0"
    lines = ["| workflows started | completed | escalated (API status) | lost | duplicated | triggers queued / delivered"
             " | n8n executions |",
             "|---:|---:|---|---:|---:|---|---:|",
             f"| {figures['started']} | {figures['completed']} | {escalated} | **{figures['lost']}**"
             f" | **{figures['duplicated']}** | {figures['triggers']['rows']} / {figures['triggers']['delivered']}"
             f" | {figures['n8n_executions']} |", ""]
    if name == "n8n_down":
        from tests.perf.faults import CATCH_UP_SECONDS

        caught_up = figures["seconds_from_n8n_back_to_all_triggers_delivered"]
        lines.append(f"n8n stopped for {figures['stopped_seconds']} s (unreachable {figures['down_seconds']} s with its"
                     " start-up) while the workflows were created and started; the outbox retried"
                     f" {figures['triggers']['retried']} triggers (at most {figures['triggers']['max_attempts']}"
                     " attempts; the others waited in the outbox behind the open circuit breaker); every queued"
                     f" trigger delivered {caught_up} s after n8n was back (target: {CATCH_UP_SECONDS} s:"
                     f" {'met' if caught_up is not None and caught_up <= CATCH_UP_SECONDS else 'not met'}); all ended"
                     f" {figures['seconds_from_n8n_back_to_all_ended']} s after.")
    else:
        lines.append(f"Agents failing {figures['failure_rate']:.0%} of calls with a transient 503"
                     f" ({figures['failure_model']} rolls):"
                     f" {figures['escalated_with_failed_step_and_notification']} escalated workflows show the failed"
                     " step through the API and notified people;"
                     f" {figures['agent_calls_failed']} of {figures['agent_calls']} agent calls failed;"
                     f" {figures['in_flight']} workflows in flight, {figures['seconds']} s.")
    lines.append("Duplicated counts triggers queued twice, n8n executions beyond one per workflow, tasks with two"
                 " successful agent results, task executions with two results, tasks completed or charged twice: "
                 + ", ".join(f"{k} {v}" for k, v in figures["duplicated_by_kind"].items())
                 + f". Zero-latency simulated agents, {os.cpu_count()} cores.")
    return "\n".join(lines) + "\n"
