"""Abuse benchmark: another tenant's REST latency before and during each attack of
tests/security/abuse.py (one address holding up to 1,000 connections of each kind, or flooding
refused requests), on each gunicorn worker, started as the README starts it.

    .venv/bin/python tests/perf/bench_abuse.py [--seconds 20] [--connections 1000] [--workers gevent,thread]

The victim (client B's user, from 127.0.0.1) calls GET /api/workflows?limit=5 eight times a
second on a new connection each; the attacker (client A's user, or nobody, from 127.0.0.2). The
baseline is measured on the same server just before each attack. Writes
tests/perf/results/abuse.json and abuse.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.conftest import world_database  # noqa: E402
from tests.db.world import PEOPLE  # noqa: E402
from tests.perf.bench_api import RESULTS, free_port, start_service  # noqa: E402
from tests.realtime.conftest import as_url, stop_service  # noqa: E402
from tests.security import abuse  # noqa: E402
from tests.security.test_abuse import readme_env  # noqa: E402
from tests.support import mint_token  # noqa: E402

BASELINE_SECONDS = 6


def measure(worker: str, database_url: str, attacks: list[str], seconds: float, connections: int) -> list[dict]:
    port = free_port()
    process, _ = start_service(readme_env(database_url, port, GUNICORN_WORKER=worker), "wsgi:app",
                               f"abuse-bench-{worker}.log")
    target = abuse.Target("127.0.0.1", port, attacker_token=mint_token(PEOPLE["client_user_a"]),
                          victim_token=mint_token(PEOPLE["client_user_b"]))
    rows = []
    try:
        abuse.victim(target, 2)  # warm up
        for name in attacks:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("select private.reset_rate_limits('')")
            before = abuse.victim(target, BASELINE_SECONDS)
            during, report = abuse.under_attack(target, name, connections=connections, seconds=seconds)
            row = {"worker": worker, "attack": name,
                   "before": {"p50": before.p50, "p99": before.p99, "calls": len(before.latencies),
                              "failed": len(before.failures)},
                   "during": {"p50": during.p50, "p99": during.p99, "calls": len(during.latencies),
                              "failed": len(during.failures), "failures": sorted(set(during.failures))},
                   "p99Ratio": during.p99 / before.p99 if before.p99 else None,
                   "attacker": {"opened": report.opened, "refusedAtOnce": report.refused_at_once,
                                "closedByServer": report.closed_by_server}}
            rows.append(row)
            print(f"{worker:6} {name:28} p50 {before.p50 * 1000:7.1f} -> {during.p50 * 1000:8.1f} ms   "
                  f"p99 {before.p99 * 1000:7.1f} -> {during.p99 * 1000:8.1f} ms   x{row['p99Ratio']:.2f}   "
                  f"failed {len(during.failures)}/{len(during.latencies)}   opened {report.opened}", flush=True)
    finally:
        stop_service(process)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [f"# Abuse: another tenant's latency before and during each attack ({args.connections} connections, "
             f"{args.seconds:g} s each)", "",
             "| worker | attack | p50 before | p50 during | p99 before | p99 during | p99 ÷ before | failed | attacker's connections |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        b, d = row["before"], row["during"]
        lines.append(f"| {row['worker']} | {row['attack']} | {b['p50'] * 1000:.1f} ms | {d['p50'] * 1000:.1f} ms | "
                     f"{b['p99'] * 1000:.1f} ms | {d['p99'] * 1000:.1f} ms | {row['p99Ratio']:.2f} | "
                     f"{d['failed']} of {d['calls']} | {row['attacker']['opened']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="each attack's length (at most 60)")
    parser.add_argument("--connections", type=int, default=1000, help="connections each attack holds (at most 1,000)")
    parser.add_argument("--workers", default="gevent,thread", help="GUNICORN_WORKER values, comma-separated")
    parser.add_argument("--attacks", default=",".join(abuse.ATTACKS), help="which attacks, comma-separated")
    args = parser.parse_args()
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = set(attacks) - set(abuse.ATTACKS)
    if unknown:
        parser.error(f"unknown attacks {sorted(unknown)}; choose from {abuse.ATTACKS}")
    rows = []
    for url in world_database("rexera_abuse_bench"):
        for worker in [w.strip() for w in args.workers.split(",") if w.strip()]:
            rows += measure(worker, as_url(url), attacks, args.seconds, args.connections)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "abuse.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "abuse.md").write_text(markdown(rows, args))
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
