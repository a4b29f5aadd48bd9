"""Fuzz the API with schemathesis: every operation, as an operator, a client user and an agent,
with valid (positive) and invalid (negative) requests, a third of them carrying text PostgreSQL
cannot store (NUL, lone surrogates) in one generated string. One command:

    python -m tests.fuzz.run_schemathesis [--examples 40] [--out tests/perf/results]

Makes a throwaway database (TEST_DATABASE_URL's server, as the test suite does), runs each case
in a rolled-back transaction, prints a table of cases per operation and every failure (server
errors, responses outside the documented schema, errors not in the one error shape), writes
schemathesis.json and schemathesis.md, and exits 1 if anything failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from app import create_app
from tests.conftest import world_database
from tests.fuzz.schemathesis_run import CALLERS, fuzz
from tests.service_fixtures import TransactionalDatabase, make_settings


def markdown(figures, seconds: float, examples: int) -> str:
    lines = [f"Schemathesis {examples} examples per operation, caller ({', '.join(CALLERS)}) and mode "
             f"(positive, negative): {figures.total} cases in {seconds:.0f} s, {figures.server_errors} server errors, "
             f"{len(figures.failures)} failures.", "",
             "| operation | cases |", "| --- | ---: |"]
    lines += [f"| `{label}` | {count} |" for label, count in sorted(figures.cases.items())]
    lines += ["", "| status | responses |", "| --- | ---: |"]
    lines += [f"| {status} | {count} |" for status, count in sorted(figures.statuses.items())]
    lines += ["", "Unicode edge cases (NUL, lone surrogates) written into a generated string: "
              + ", ".join(f"{where} {count}" for where, count in sorted(figures.unicode_edges.items())) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=40, help="cases per operation, caller and mode")
    parser.add_argument("--out", type=Path, default=Path("tests/perf/results"))
    parser.add_argument("--random", action="store_true", help="a fresh random seed instead of the fixed one")
    args = parser.parse_args(argv)

    databases = world_database("rexera_fuzz")
    url = next(databases)
    try:
        with psycopg.connect(url, row_factory=dict_row, prepare_threshold=None) as conn:
            app = create_app(make_settings(url), database=TransactionalDatabase(conn))
            app.config["TESTING"] = True

            def reset():
                conn.rollback()
                conn.execute("select 1")

            started = time.monotonic()
            figures = fuzz(app, args.examples, reset=reset, seed=None if args.random else 0)
            seconds = time.monotonic() - started
            conn.rollback()
    finally:
        databases.close()

    report = markdown(figures, seconds, args.examples)
    print(report)
    for failure in figures.failures:
        print("FAILURE", *failure[:4], "\n   ", failure[4], file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "schemathesis.md").write_text(report)
    (args.out / "schemathesis.json").write_text(json.dumps({
        "examplesPerOperationCallerMode": args.examples, "seconds": round(seconds, 1), "cases": figures.total,
        "casesPerOperation": dict(sorted(figures.cases.items())),
        "statuses": {str(k): v for k, v in sorted(figures.statuses.items())},
        "serverErrors": figures.server_errors,
        "unicodeEdgeCases": dict(sorted(figures.unicode_edges.items())),
        "failures": [dict(zip(("operation", "caller", "mode", "problem", "request"), f)) for f in figures.failures],
    }, indent=2) + "\n")
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
