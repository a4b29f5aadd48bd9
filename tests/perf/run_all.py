"""Every benchmark from one entry point, then one summary with plots.

    .venv/bin/python tests/perf/run_all.py [--quick] [--only api reads callbacks ws sla n8n faults console abuse]

Runs, one after the other (each on its own database, dropped afterwards):
  api        tests/perf/bench_api.py        the REST API at 10,000 workflows / 100,000 tasks, read vs no-op
  reads      tests/perf/bench_reads.py      dashboard, list with include=, SLA view at 100,000 / 1,000,000 / 500
  callbacks  tests/perf/bench_callbacks.py  signed n8n callbacks at saturation vs pgbench (the ceiling)
  ws         tests/perf/bench_ws.py         1,000 WebSocket subscribers at 200 events/s vs raw LISTEN/NOTIFY
  sla        tests/perf/bench_sla.py        an SLA sweep over 100,000 open tasks
  n8n        tests/perf/bench_n8n.py        workflows through the whole system vs n8n alone (the ceiling)
  faults     tests/perf/faults.py all       PostgreSQL restarted, workers killed, n8n down, agents failing
  console    tests/perf/bench_console.py    the console's queue in headless Chromium at 10,000 open workflows
  abuse      tests/perf/bench_abuse.py      another tenant's latency while one address attacks, both workers
--quick shortens every run (smaller data, shorter windows) to check the scripts, not to quote.
Writes tests/perf/results/summary.md (every table, the machine and its load) and PNG plots.
Needs wrk and pgbench: installed with apt-get where this runs as root on Debian, otherwise it
stops and says how to install them (Debian: apt-get install wrk postgresql-client); for n8n, the
local n8n (scripts/n8n_local.py install).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "perf" / "results"

BENCHMARKS = {
    # name: (script, full arguments, quick arguments, the results file stem)
    "api": ("bench_api.py", ["--duration", "10"], ["--duration", "3"], "api"),
    "reads": ("bench_reads.py", [], ["--workflows", "5000", "--clients", "50", "--duration", "3", "--iterations", "30"],
              "reads"),
    "callbacks": ("bench_callbacks.py", ["--duration", "10"], ["--duration", "3", "--rounds", "1", "--connections", "8",
                                                              "--workflows", "1500", "--breakdown-events", "20"],
                  "callbacks"),
    "ws": ("bench_ws.py", [], ["--subscribers", "100", "--rate", "50", "--duration", "5"], "ws"),
    "sla": ("bench_sla.py", [], ["--tasks", "10000"], "sla"),
    "n8n": ("bench_n8n.py", ["--duration", "45", "--in-flight", "2,4,8"], ["--duration", "10", "--rounds", "1"],
            "n8n-[0-9]*[0-9]"),
    "faults": ("faults.py", ["all"], ["all", "--duration", "15", "--down-seconds", "20"], "faults_*"),
    "console": ("bench_console.py", [], ["--workflows", "2000", "--loads", "3", "--changes", "40"], "console"),
    "abuse": ("bench_abuse.py", [], ["--seconds", "8", "--connections", "200",
                                     "--attacks", "slow body,/ws with a token,forged callbacks"], "abuse"),
}


def run(name: str, quick: bool) -> dict:
    script, full, short, _ = BENCHMARKS[name]
    command = [sys.executable, str(ROOT / "tests" / "perf" / script), *(short if quick else full)]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)
    return {"status": done.returncode, "seconds": round(time.perf_counter() - started, 1)}


def plot(summary_lines: list[str]) -> list[str]:
    """PNG plots where a picture says more than the table; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        summary_lines.append("\n(matplotlib is not installed: no plots)")
        return []
    written = []

    reads = RESULTS / "reads.json"
    if reads.exists():
        data = json.loads(reads.read_text())["results"]
        labels = list(data)
        figure, axis = plt.subplots(figsize=(9, 4))
        width = 0.13
        for index, (source, percentile) in enumerate((("http", "p50"), ("http", "p95"), ("http", "p99"),
                                                      ("sql", "p50"), ("sql", "p95"), ("sql", "p99"))):
            axis.bar([i + (index - 2.5) * width for i in range(len(labels))],
                     [data[label][source][percentile] for label in labels], width,
                     label=f"{'HTTP' if source == 'http' else 'SQL alone'} {percentile}")
        axis.axhline(50, color="red", linewidth=0.8, linestyle="--", label="target p95 50 ms")
        axis.set_xticks(range(len(labels)), [label.split(" (")[0] for label in labels], fontsize=8)
        axis.set_ylabel("ms")
        axis.set_title("Reads at scale: through HTTP vs the same SQL alone")
        axis.legend(fontsize=7, ncol=2)
        figure.tight_layout()
        figure.savefig(RESULTS / "reads.png", dpi=110)
        written.append("reads.png")

    callbacks = RESULTS / "callbacks.json"
    if callbacks.exists():
        data = json.loads(callbacks.read_text())["results"]
        connections = sorted(data, key=int)
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot([int(c) for c in connections], [data[c]["ingest_rps"] for c in connections], marker="o",
                  label="service (HTTP, signed) req/s")
        axis.plot([int(c) for c in connections], [data[c]["pgbench_tps"] for c in connections], marker="s",
                  label="apply_n8n_event in pgbench, tps")
        if all("floor_tps" in data[c] for c in connections):
            axis.plot([int(c) for c in connections], [data[c]["floor_tps"] for c in connections], marker="^",
                      label="floor transaction in pgbench, tps")
        axis.set_xlabel("concurrent connections")
        axis.set_ylabel("callbacks per second")
        axis.set_title("Callback ingest, the database function and the floor")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(RESULTS / "callbacks.png", dpi=110)
        written.append("callbacks.png")

    for n8n in sorted(RESULTS.glob("n8n-[0-9]*[0-9].json")):
        report = json.loads(n8n.read_text())
        rows = report.get("results") or []
        if not rows:
            continue
        figure, axis = plt.subplots(figsize=(6.5, 4.2))
        for topology, style in (("single", "-"), ("scaled", "--")):
            mine = [row for row in rows if row.get("topology", "single") == topology]
            if not mine:
                continue
            levels = [row["in_flight"] for row in mine]
            for key, label, marker in (("system", "service + dispatcher + n8n", "o"),
                                       ("ceiling_noop_callbacks", "n8n alone (no-op callbacks)", "s")):
                if any(row[key].get("per_hour") for row in mine):
                    axis.plot(levels, [row[key].get("per_hour", 0) for row in mine], style, marker=marker,
                              label=f"{topology}: {label}")
        axis.set_xlabel("workflows in flight")
        axis.set_ylabel("payoff workflows per hour")
        axis.set_title(f"Workflows end to end, n8n {report.get('n8n')}")
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(RESULTS / f"{n8n.stem}.png", dpi=110)
        written.append(f"{n8n.stem}.png")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.perf import tools

    if not tools.require("wrk", "pgbench", "psql"):
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    outcomes = {name: run(name, args.quick) for name in args.only}
    lines = [f"# Benchmarks{' (quick run: not for quoting)' if args.quick else ''}", "",
             f"{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    for name, outcome in outcomes.items():
        stem = BENCHMARKS[name][3]
        tables = sorted(RESULTS.glob(f"{stem}.md"))
        lines.append(f"## {name} ({outcome['seconds']} s, exit {outcome['status']})\n")
        if outcome["status"] != 0 or not tables:
            lines.append("(no result)\n")
        for table in tables:
            lines.append(table.read_text())
    for png in plot(lines):
        lines.append(f"![{png}]({png})")
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"summary: {RESULTS / 'summary.md'}")
    return 0 if all(outcome["status"] == 0 for outcome in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
