"""WebSocket benchmark: 1,000 concurrent subscribers on /ws while 200 events per second are
committed; commit-to-receive latency (p50/p95/p99) next to raw LISTEN/NOTIFY latency measured in
the same run, and the server's memory per idle connection.

    .venv/bin/python tests/perf/bench_ws.py [--subscribers 1000] [--dashboards 10] [--rate 200] [--duration 20]

Subscribers: `--dashboards` HIL operators on `workflows` (they receive every event) and the
rest client users, each on `workflow:<id>` of one of their client's workflows (they receive that
workflow's events). Each commit changes one workflow (round robin), so every event reaches its
workflow's watcher and every dashboard. Latency is taken from the moment the committing
transaction's COMMIT returned to the moment a client (in this process) read the event.

Needs PostgreSQL at $BENCH_SERVER_URL (default the local server). The clients use the
`websockets` package, which comes with the pinned `realtime` client. Writes tests/perf/results/ws.json
and ws.md, and prints the table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests
from psycopg import sql
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.migrations import apply_migrations  # noqa: E402
from tests.perf.bench_api import RESULTS, free_port, start_service  # noqa: E402
from tests.support import Person, mint_token  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
CLIENTS = 50

SEED = """
set session_replication_role = replica;  -- bulk load without audit and event triggers
insert into public.clients (id, name)
select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'Bench client ' || i from generate_series(1, {clients}) i;
insert into auth.users (id, email)
select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, 'user' || i || '@bench.example' from generate_series(1, {clients}) i;
insert into public.user_profiles (id, email, user_type, role, client_id)
select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, 'user' || i || '@bench.example', 'client_user', 'client_user',
       ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid from generate_series(1, {clients}) i;
insert into public.workflows (id, workflow_type, status, client_id, title, payload, total_tasks)
select ('10000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'PAYOFF_REQUEST', 'IN_PROGRESS',
       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % {clients}), 12, '0'))::uuid, 'Bench workflow ' || i, '{{}}', 0
  from generate_series(1, {workflows}) i;
set session_replication_role = origin;
analyze;
"""
COMMIT_SEQ = "select currval(pg_get_serial_sequence('public.realtime_events', 'seq'))"


def workflow_id(i: int) -> uuid.UUID:
    return uuid.UUID(f"10000000-0000-4000-8000-{i:012x}")


def client_person(i: int) -> Person:
    """The client user of the client that owns workflow i."""
    c = 1 + i % CLIENTS
    return Person(f"user{c}", "client_user", user_id=uuid.UUID(f"00000000-0000-4000-9000-{c:012x}"),
                  client_id=uuid.UUID(f"00000000-0000-4000-8000-{c:012x}"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

    return {"n": len(ordered), "p50": pick(50), "p95": pick(95), "p99": pick(99), "max": round(ordered[-1], 2),
            "mean": round(statistics.fmean(ordered), 2)}


class Run:
    """Shared timing tables (seq -> perf_counter seconds)."""

    def __init__(self):
        self.committed: dict[int, float] = {}
        self.notified: dict[int, float] = {}
        self.watcher_received: dict[int, float] = {}
        self.dashboard_received: list[tuple[int, float]] = []
        self.stop = threading.Event()


def raw_listener(url: str, run: Run, ready: threading.Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("listen rexera_events")
        ready.set()
        while not run.stop.is_set():
            for note in conn.notifies(timeout=0.5):
                run.notified[int(note.payload)] = time.perf_counter()


def committer(url: str, run: Run, workflows: int, rate: float, duration: float, offset: int, stride: int) -> None:
    """Commits at `rate` per second on its own connection: workflows offset, offset+stride, ..."""
    interval = 1.0 / rate
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        i = 0
        while time.perf_counter() - started < duration:
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with conn.transaction():
                conn.execute("update public.workflows set total_tasks = total_tasks + 1 where id = %s",
                             (workflow_id(1 + (offset + i * stride) % workflows),))
                seq = conn.execute(COMMIT_SEQ).fetchone()[0]
            run.committed[seq] = time.perf_counter()
            i += 1


async def subscriber(url: str, channel: str, run: Run, watcher: bool, ready: asyncio.Event, opened: list) -> None:
    async with connect(url, max_queue=None, ping_interval=None, open_timeout=60) as ws:
        assert json.loads(await ws.recv())["type"] == "authenticated"
        await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        opened.append(1)
        if len(opened) >= ready.target:  # type: ignore[attr-defined]
            ready.set()
        async for raw in ws:
            now = time.perf_counter()
            message = json.loads(raw)
            if "id" not in message:
                continue
            if watcher:
                run.watcher_received[message["id"]] = now
            else:
                run.dashboard_received.append((message["id"], now))
            if run.stop.is_set():
                return


async def open_all(base_ws: str, args, run: Run, operator: Person) -> tuple[list[asyncio.Task], asyncio.Event, list]:
    ready = asyncio.Event()
    ready.target = args.subscribers  # type: ignore[attr-defined]
    opened: list = []
    tasks = []
    watchers = args.subscribers - args.dashboards
    tokens = {}
    for i in range(1, watchers + 1):
        person = client_person(i)
        token = tokens.setdefault(person.name, mint_token(person, secret=SECRET, expires_in=7200))
        tasks.append(asyncio.create_task(subscriber(f"{base_ws}?token={token}", f"workflow:{workflow_id(i)}", run,
                                                    True, ready, opened)))
        if i % 50 == 0:
            await asyncio.sleep(0.05)  # a steady connect rate, not a SYN flood
    operator_token = mint_token(operator, secret=SECRET, expires_in=7200)
    for _ in range(args.dashboards):
        tasks.append(asyncio.create_task(subscriber(f"{base_ws}?token={operator_token}", "workflows", run, False,
                                                    ready, opened)))
    return tasks, ready, opened


async def measure(base: str, url: str, args, master_pid: int) -> dict:
    run = Run()
    operator = Person("bench-operator", "hil_operator", user_id=args.operator_id)
    base_ws = base.replace("http://", "ws://") + "/ws"
    # One socket first, so the listener, its thread and the route's imports are in the baseline.
    async with connect(f"{base_ws}?token={mint_token(operator, secret=SECRET)}") as warm:
        await warm.recv()
    await asyncio.sleep(1.0)
    worker = worker_pid(master_pid)
    baseline = rss_kib(worker)

    tasks, ready, opened = await open_all(base_ws, args, run, operator)
    try:
        await asyncio.wait_for(ready.wait(), timeout=180)
    except asyncio.TimeoutError:
        raise SystemExit(f"only {len(opened)} of {args.subscribers} subscribers connected")
    await asyncio.sleep(2.0)
    idle = rss_kib(worker)
    threads = int(next(line.split()[1] for line in Path(f"/proc/{worker}/status").read_text().splitlines()
                       if line.startswith("Threads:")))
    print(f"{len(opened)} subscribers connected; worker RSS {baseline} KiB -> {idle} KiB, {threads} threads",
          flush=True)

    listener_ready = threading.Event()
    listener = threading.Thread(target=raw_listener, args=(url, run, listener_ready), daemon=True)
    listener.start()
    listener_ready.wait(10)
    writers = [threading.Thread(target=committer, args=(url, run, args.subscribers - args.dashboards,
                                                        args.rate / args.writers, args.duration, n, args.writers))
               for n in range(args.writers)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(2.0)  # stragglers
    run.stop.set()
    health = requests.get(f"{base}/api/health/realtime", timeout=5).json()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    committed = run.committed
    watcher_ms = [(run.watcher_received[s] - t) * 1000 for s, t in committed.items() if s in run.watcher_received]
    dashboard_ms = [(at - committed[s]) * 1000 for s, at in run.dashboard_received if s in committed]
    notify_ms = [(run.notified[s] - t) * 1000 for s, t in committed.items() if s in run.notified]
    return {
        "subscribers": len(opened), "dashboards": args.dashboards, "rate_target": args.rate,
        "events_committed": len(committed), "commit_rate": round(len(committed) / elapsed, 1),
        "deliveries_expected": len(committed) * (1 + args.dashboards),
        "deliveries_received": len(watcher_ms) + len(dashboard_ms),
        "latency_ms": {"ws: workflow watcher": percentiles(watcher_ms),
                       "ws: HIL dashboard (all events)": percentiles(dashboard_ms),
                       "raw LISTEN/NOTIFY": percentiles(notify_ms)},
        "memory": {"worker_rss_baseline_kib": baseline, "worker_rss_idle_kib": idle,
                   "per_idle_connection_kib": round((idle - baseline) / max(1, len(opened)), 1),
                   "worker_threads": threads},
        "server_health": health,
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--dashboards", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="events committed per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of committing")
    parser.add_argument("--writers", type=int, default=4, help="committing connections sharing the rate")
    parser.add_argument("--worker", choices=["thread", "gevent"], default="gevent",
                        help="gunicorn worker (GUNICORN_WORKER): a thread or a greenlet per socket")
    args = parser.parse_args()
    args.operator_id = uuid.uuid4()

    server = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "rexera_bench_ws"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    print("migrating and seeding ...", flush=True)
    apply_migrations(url, seed=True)
    watchers = args.subscribers - args.dashboards
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED.format(clients=CLIENTS, workflows=watchers))
        conn.execute("insert into auth.users (id, email) values (%s, 'bench-operator@example.com')", (args.operator_id,))
        conn.execute("insert into public.user_profiles (id, email, user_type, role) values "
                     "(%s, 'bench-operator@example.com', 'hil_user', 'hil_operator')", (args.operator_id,))

    env = {**os.environ, "DATABASE_URL": url, "SUPABASE_JWT_SECRET": SECRET, "PORT": str(free_port()),
           "RATE_LIMITS": "off", "WEB_CONCURRENCY": "1", "DB_POOL_MAX": "8", "PYTHONPATH": str(ROOT),
           "REALTIME_SOCKETS_PER_WORKER": str(args.subscribers + 100), "GUNICORN_WORKER": args.worker,
           # every subscriber is one operator on one address here
           "REALTIME_SOCKETS_PER_PERSON": str(args.subscribers + 100), "CONNECTIONS_PER_ADDRESS": "0"}
    gunicorn, base = start_service(env, "wsgi:app", "ws-server.log")
    try:
        report = asyncio.run(measure(base, url, args, gunicorn.pid))
    finally:
        gunicorn.send_signal(signal.SIGQUIT)
        gunicorn.wait(timeout=30)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    report["machine"] = f"{os.cpu_count()} cores"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ws.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"{report['subscribers']} subscribers ({report['dashboards']} HIL dashboards on `workflows`), "
             f"{report['commit_rate']} events/s committed for {args.duration:g} s on {report['machine']}; "
             f"{report['deliveries_received']} of {report['deliveries_expected']} deliveries received; "
             f"load average {report['load_average_1min']['before']} -> {report['load_average_1min']['after']}",
             "", "| commit to receive | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for label, figures in report["latency_ms"].items():
        lines.append(f"| {label} | {figures.get('n', 0)} | {figures.get('p50', '-')} | {figures.get('p95', '-')} | "
                     f"{figures.get('p99', '-')} | {figures.get('max', '-')} |")
    memory = report["memory"]
    lines += ["", f"memory per idle connection: {memory['per_idle_connection_kib']} KiB "
              f"(worker RSS {memory['worker_rss_baseline_kib']} -> {memory['worker_rss_idle_kib']} KiB, "
              f"{memory['worker_threads']} threads)"]
    (RESULTS / "ws.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
