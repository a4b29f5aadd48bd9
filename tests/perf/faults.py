"""Fault injection: callbacks and workflows while parts of the system fail, with the figures
sent, acknowledged, stored, duplicated and lost (duplicated and lost must be 0).

    .venv/bin/python tests/perf/faults.py postgres_restart | worker_kill | n8n_down | agent_failures | all
        [--senders 6] [--duration 30] [--workflows N] [--outage-seconds 0]
        [--shutdown-mode fast|immediate] [--kills 4] [--down-seconds 60]

postgres_restart  signed callbacks at load; the private cluster restarted with pg_ctl -m fast mid-load
worker_kill       signed callbacks at load; a busy gunicorn worker SIGKILLed several times
n8n_down          the real n8n stopped while workflows are created and started, back after --down-seconds
agent_failures    the agent simulator failing 30 % of calls (transient 503s; --failure-model)

The callback scenarios need the PostgreSQL 15 server binaries (a private cluster; the shared
server is never restarted); the n8n ones need n8n (scripts/n8n_local.py install) and PostgreSQL at
$TEST_DATABASE_URL. Each writes tests/perf/results/faults_<scenario>.json and .md and prints the
table; the exit code is 1 when anything was duplicated or lost (timings are reported, not judged).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.perf import faults_callbacks  # noqa: E402

RESULTS = ROOT / "tests" / "perf" / "results"
SCENARIOS = ("postgres_restart", "worker_kill", "n8n_down", "agent_failures")


CATCH_UP_SECONDS = 5  # n8n_down: every queued trigger delivered this soon after n8n answers again


def verdict(figures: dict) -> bool:
    """Nothing duplicated, nothing lost. How soon the outbox caught up after n8n came back is a
    figure, reported against its target in the table (it depends on how busy the machine is)."""
    return figures["duplicated"] == 0 and figures["lost"] == 0


def markdown(name: str, figures: dict) -> str:
    if "workflows" in figures:  # the n8n scenarios
        from tests.perf import faults_n8n

        return faults_n8n.markdown(name, figures)
    fault = figures["fault"]
    if name == "postgres_restart":
        what = (f"`{fault['what']}` at {fault['at_s']} s (took {fault['restart_seconds']} s); gunicorn master"
                f" and workers unchanged: {figures['service']['workers_before'] == figures['service']['workers_after']};"
                f" units of work the service retried on a fresh connection: {figures['service']['reconnect_retries']}")
    else:
        what = (f"{len(fault['killed'])} workers SIGKILLed at " + ", ".join(f"{k['at_s']} s" for k in fault["killed"])
                + f"; workers before {figures['service']['workers_before']}, after {figures['service']['workers_after']}")
    lines = ["| sent | acknowledged | stored | duplicated | lost | half-written | attempts | acknowledged on a retry"
             " | replayed answers |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {figures['sent']} | {figures['acknowledged']} | {figures['stored']} | **{figures['duplicated']}**"
             f" | **{figures['lost']}** | {figures['partial']} | {figures['attempts']}"
             f" | {figures['acknowledged_on_retry']} | {figures['replayed_answers']} |",
             "",
             f"{what}. {figures['senders']} senders for {figures['load_seconds']} s, {figures['workers']} gunicorn"
             f" workers, {os.cpu_count()} cores; answers: "
             + ", ".join(f"{k}: {v}" for k, v in figures["answers"].items()) + "."]
    return "\n".join(lines) + "\n"


def run(name: str, args) -> dict:
    if name == "postgres_restart":
        return faults_callbacks.postgres_restart(workflows=args.workflows or 600, senders=args.senders,
                                                 duration=args.duration, at=args.duration / 3,
                                                 outage=args.outage_seconds, mode=args.shutdown_mode)
    if name == "worker_kill":
        return faults_callbacks.worker_kill(workflows=args.workflows or 600, senders=args.senders,
                                            duration=args.duration, at=args.duration / 6, kills=args.kills,
                                            interval=args.duration * 2 / 3 / args.kills)
    from tests.perf import faults_n8n

    if name == "n8n_down":
        return faults_n8n.n8n_down(workflows=args.workflows or 6, down_seconds=args.down_seconds)
    return faults_n8n.agent_failures(workflows=args.workflows or 12, failure_rate=args.failure_rate,
                                     failure_model=args.failure_model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--senders", type=int, default=6, help="concurrent callback senders")
    parser.add_argument("--duration", type=float, default=30, help="seconds of callback load")
    parser.add_argument("--workflows", type=int, default=None,
                        help="workflows seeded (callbacks, default 600) or started (n8n scenarios)")
    parser.add_argument("--outage-seconds", type=float, default=0,
                        help="postgres_restart: keep the cluster down this long between stop and start (0: restart)")
    parser.add_argument("--shutdown-mode", choices=("fast", "immediate"), default="fast",
                        help="postgres_restart: pg_ctl's shutdown mode (immediate: as in a crash)")
    parser.add_argument("--kills", type=int, default=4, help="worker_kill: workers killed, spread over the load")
    parser.add_argument("--down-seconds", type=float, default=60, help="n8n_down: how long n8n stays down")
    parser.add_argument("--failure-rate", type=float, default=0.3, help="agent_failures: share of failing calls")
    parser.add_argument("--failure-model", choices=("independent", "seeded"), default="independent",
                        help="agent_failures: a fresh roll per call, or the simulator's seeded roll per request")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in SCENARIOS if args.scenario == "all" else (args.scenario,):
        figures = run(name, args)
        (RESULTS / f"faults_{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        table = markdown(name, figures)
        (RESULTS / f"faults_{name}.md").write_text(table)
        print(f"\n{name}\n{table}", flush=True)
        ok = ok and verdict(figures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
