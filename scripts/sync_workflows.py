"""Keep the n8n workflows of an instance (staging, production) in step with n8n_workflows/.

  sync_workflows.py push [--dry-run] [--only NAME]... [--prune [--yes]]
  sync_workflows.py pull [--only NAME]...
  sync_workflows.py diff [--only NAME]... [--patch]
  sync_workflows.py status [--only NAME]...

The instance is N8N_BASE_URL (e.g. https://rexera-staging.app.n8n.cloud) with the API key
N8N_API_KEY, both read from the environment only; the key is never printed. Workflows are
matched by name. NAME is a workflow name or an export's file name (payoff_request[.json]).

Exit codes: 0 done (diff: in step); 1 diff: repository and instance differ; 2 an error (bad
settings, a --dir without exports or with a broken one, n8n refused or answered something else
than its API's shape, or some workflows failed: the summary names what was applied and what
not); 130 interrupted. No URL's user:password@ is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.n8n.cloud import (N8nApiError, N8nClient, PlanError, RetryPolicy, Sync, base_url_problem,  # noqa: E402
                           status_table, without_userinfo)

EXPORTS_DIR = Path(__file__).resolve().parent.parent / "n8n_workflows"
EXIT_DIFFER, EXIT_ERROR = 1, 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="sync_workflows.py", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=EXPORTS_DIR, help="the exports (default: n8n_workflows/)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{push,pull,diff,status}")
    only = argparse.ArgumentParser(add_help=False)
    only.add_argument("--only", action="append", metavar="NAME", help="only this workflow (repeatable)")
    push = commands.add_parser("push", parents=[only], help="create or update the instance's workflows")
    push.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    push.add_argument("--prune", action="store_true",
                      help="also deactivate and delete managed workflows that have no export (asks first)")
    push.add_argument("--yes", action="store_true", help="prune without asking")
    commands.add_parser("pull", parents=[only], help="write the instance's workflows as normalized exports")
    diff = commands.add_parser("diff", parents=[only], help="exit 0 in step, 1 differ, 2 error")
    diff.add_argument("--patch", action="store_true", help="also print a unified diff (n8n -> repository)")
    commands.add_parser("status", parents=[only], help="table: active state, last update, drift")
    return parser


def ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run(args: argparse.Namespace, sync: Sync) -> int:
    if args.command == "push":
        if args.prune and args.only:
            raise PlanError("--prune works on the whole repository; leave out --only")
        report = sync.push(only=args.only, dry_run=args.dry_run, prune=args.prune,
                           confirm=(lambda question: True) if args.yes else ask)
        for line in report.summary("would change" if args.dry_run else "applied"):
            print(line)
        return 0 if report.ok else EXIT_ERROR
    if args.command == "pull":
        report = sync.pull(only=args.only)
        for line in report.summary("written"):
            print(line)
        return 0 if not report.failed else EXIT_ERROR
    rows = sync.drift(only=args.only)
    if args.command == "status":
        for line in status_table(rows):
            print(line)
        return 0
    differ = [row for row in rows if row["drift"]]
    for row in rows:
        print(f"{row['name']}: " + ("in step" if not row["drift"] else "differs"))
        for line in row["drift"]:
            print(f"    {line}")
        if args.patch and row.get("diff"):
            print(row["diff"], end="")
    print(f"{len(differ)} of {len(rows)} workflow(s) differ" if differ else f"all {len(rows)} workflow(s) in step")
    return EXIT_DIFFER if differ else 0


def main(argv: list[str] | None = None, *, retry: RetryPolicy | None = None) -> int:
    args = build_parser().parse_args(argv)
    base_url, api_key = os.environ.get("N8N_BASE_URL", "").strip(), os.environ.get("N8N_API_KEY", "").strip()
    missing = [name for name, value in (("N8N_BASE_URL", base_url), ("N8N_API_KEY", api_key)) if not value]
    if missing:
        print(f"sync_workflows.py: set {' and '.join(missing)} in the environment", file=sys.stderr)
        return EXIT_ERROR
    problem = base_url_problem(base_url)
    if problem:
        print(f"sync_workflows.py: N8N_BASE_URL {without_userinfo(problem)}", file=sys.stderr)
        return EXIT_ERROR
    client = N8nClient(base_url, api_key, retry=retry, say=lambda line: print(line, file=sys.stderr, flush=True))
    sync = Sync(client, args.dir, say=lambda line: print(line, flush=True))
    try:
        return run(args, sync)
    except (N8nApiError, PlanError, OSError) as error:
        print(f"sync_workflows.py: {without_userinfo(str(error)).replace(api_key, '[N8N_API_KEY]')}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sync_workflows.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
