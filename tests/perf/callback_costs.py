"""Per-event cost breakdown of public.apply_n8n_event: for each event type, the SQL time of every
statement it runs (nested ones included: triggers, called functions), read from auto_explain in
one warm session, so a change to the callback path can see what each part costs.

    .venv/bin/python tests/perf/callback_costs.py [--events 200] [--workflows 400]

Used by bench_callbacks.py on its own database; run alone it creates, seeds and drops one
(PostgreSQL at $BENCH_SERVER_URL). Times are inclusive (a statement's time contains what it
calls) and measured with auto_explain's own clock, without per-node timing.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations  # noqa: E402

CLIENT_ID = "00000000-0000-4000-8000-0000000000c2"
DURATION = re.compile(r"duration: ([0-9.]+) ms\s+plan:\s*(.*)", re.S)
SERVICE_CLAIMS = json.dumps({"role": "service_role"})
SEED = """
insert into public.workflows (id, workflow_type, status, client_id, title, payload)
select gen_random_uuid(), 'PAYOFF_REQUEST', 'PENDING', %(client)s, 'Cost breakdown ' || i,
       jsonb_build_object('address', i || ' Cost St', 'loanNumber', 'C' || i)
  from generate_series(1, %(n)s) i;
"""


def seed(url: str, workflows: int) -> list[tuple[str, str, str | None]]:
    """Started PAYOFF_REQUEST workflows; their AI tasks as (workflow id, task key, agent)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.clients (id, name) values (%s, 'Cost breakdown client')"
                     " on conflict do nothing", (CLIENT_ID,))
        conn.execute(SEED, {"client": CLIENT_ID, "n": workflows})
        conn.execute("select public.workflow_action(id, 'start') from public.workflows"
                     " where client_id = %s and status = 'PENDING'", (CLIENT_ID,))
        conn.execute("analyze")
        return [(str(w), k, a) for w, k, a in conn.execute(
            """select t.workflow_id, t.task_key, t.agent_name from public.tasks t
                where t.client_id = %s and t.status = 'PENDING' and t.agent_name is not null
                order by t.sequence, t.workflow_id""", (CLIENT_ID,))]


def event_data(workflow_id: str, task_key: str, agent: str | None, kind: str) -> dict:
    """The data of an n8n event of `kind` for one task, as the workflows send it (also
    bench_callbacks.py's events)."""
    data = {"workflowId": workflow_id, "executionId": f"bench-{workflow_id}", "taskKey": task_key, "attempt": 1}
    if agent:
        data["agentName"] = agent
    if kind == "task.started":
        data["input"] = {"workflowId": workflow_id, "taskKey": task_key}
    elif kind == "task.completed":
        data["output"] = {"ok": True, "summary": f"{task_key} done"}
        data["metrics"] = {"processingTimeMs": 12, "tokensUsed": 340, "costUsd": 0.0021, "confidence": 0.93}
    elif kind == "task.failed":
        data.update(error="bench failure", errorCode="BENCH", retryable=True)
    elif kind == "task.waiting":
        data.update(resumeUrl=f"http://127.0.0.1:9/webhook-waiting/{workflow_id}", waitingOn="LENDER")
    return data


def plan(tasks: list[tuple], per_type: int) -> list[tuple[str, list[tuple[str, str, dict]]]]:
    """Groups of (type, [(event id, type, data)]): started then completed on one set of tasks,
    started then waiting on a second, started then failed (retryable) on a third."""
    groups = []
    sets = [tasks[i * per_type:(i + 1) * per_type] for i in range(3)]
    for name, chosen, follow in (("completed", sets[0], "task.completed"), ("waiting", sets[1], "task.waiting"),
                                 ("failed", sets[2], "task.failed")):
        for kind in ("task.started", follow):
            if kind == "task.started" and name != "completed":
                groups.append(("", [(f"cost:{name}:{w}:{k}:{kind}", kind, event_data(w, k, a, kind))
                                    for w, k, a in chosen]))  # setup, not measured
                continue
            groups.append((kind, [(f"cost:{name}:{w}:{k}:{kind}", kind, event_data(w, k, a, kind))
                                  for w, k, a in chosen]))
    return groups


def measure(url: str, groups: list[tuple[str, list]]) -> dict:
    """{type: {"events": n, "mean_ms": ..., "statements": [{"query", "calls_per_event", "ms_per_event"}]}}."""
    report = {}
    with psycopg.connect(url, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("load 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                        "auto_explain.log_analyze = off", "auto_explain.log_format = json",
                        "auto_explain.log_level = notice", "client_min_messages = notice"):
            conn.execute(f"set {setting}")
        for kind, events in groups:
            totals: dict[str, list[float]] = defaultdict(list)
            wall = []
            for event_id, etype, data in events:
                notices.clear()
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute("select set_config('role', 'service_role', true),"
                                 " set_config('request.jwt.claims', %s, true)", (SERVICE_CLAIMS,))
                    conn.execute("select public.apply_n8n_event('n8n', %s, %s, %s)", (event_id, etype, json.dumps(data)))
                wall.append((time.perf_counter() - started) * 1000)
                if not kind:
                    continue
                for message in notices:
                    found = DURATION.match(message)
                    if not found:
                        continue
                    try:
                        query = json.loads(found.group(2))["Query Text"]
                    except (ValueError, KeyError):
                        continue
                    totals[" ".join(query.split())].append(float(found.group(1)))
            if not kind:
                continue
            n = len(events)
            rows = [{"query": q, "calls_per_event": round(len(ms) / n, 2), "ms_per_event": round(sum(ms) / n, 4)}
                    for q, ms in totals.items() if not q.startswith("select set_config(")]
            rows.sort(key=lambda r: -r["ms_per_event"])
            top = next((r for r in rows if r["query"].startswith("select public.apply_n8n_event(")), None)
            report[kind] = {"events": n, "mean_ms": top["ms_per_event"] if top else None,
                            "wall_ms_median": round(statistics.median(wall), 3), "statements": rows}
    return report


def render(report: dict, limit: int = 12) -> str:
    lines = []
    for kind, r in report.items():
        lines.append(f"\n### {kind}: {r['mean_ms']:.3f} ms per event in SQL ({r['events']} events, one warm session)\n")
        lines.append("| ms per event (inclusive) | calls per event | statement |")
        lines.append("|---:|---:|---|")
        for row in r["statements"][:limit]:
            text = row["query"] if len(row["query"]) <= 110 else row["query"][:107] + "..."
            text = text.replace("|", "\\|")
            lines.append(f"| {row['ms_per_event']:.3f} | {row['calls_per_event']:g} | `{text}` |")
    return "\n".join(lines) + "\n"


def breakdown(url: str, tasks: list[tuple], per_type: int) -> dict:
    return measure(url, plan(tasks, per_type))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200, help="events measured per type")
    parser.add_argument("--workflows", type=int, default=400)
    args = parser.parse_args()
    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_costs"
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        apply_migrations(url, seed=True)
        tasks = seed(url, args.workflows)
        if len(tasks) < 3 * args.events:
            print(f"only {len(tasks)} agent tasks for {3 * args.events} events: raise --workflows", file=sys.stderr)
            return 2
        report = breakdown(url, tasks, args.events)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    print(render(report, limit=40))
    return 0


if __name__ == "__main__":
    sys.exit(main())
