"""The execution watch: a workflow whose n8n execution was lost goes on in a new execution.

n8n loses an execution when the worker running it dies outright (killed, out of memory, its
host gone): n8n 2.x gives the job no second try and its error workflow does not run, so no
callback would ever come. Each round, the watch takes the workflows that are in progress,
quiet for N8N_WATCH_QUIET_SECONDS and not waiting on anyone (public.n8n_executions_to_check),
asks n8n's API about each one's execution, and for an execution that ended in error (or that
n8n no longer knows) while its workflow is still in progress, calls
public.recover_lost_execution: the workflow is started again in a new execution that skips the
steps already done (docs/reliability.md#lost-executions).

Every instance of the service runs the watch on its own timer; the first to ask in a round
takes it (private.claim_duty_round), and the recovery itself holds the workflow's row lock and
checks the execution is still the workflow's, so two watchers never start a workflow twice.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

import requests

from app.auth import Principal
from app.config import Settings
from app.db import Database

log = logging.getLogger(__name__)

PRINCIPAL = Principal.service("n8n-watch")
# What n8n's API says of an execution that no longer runs and did not finish its work. A
# workflow whose execution ended "success" or "canceled" while still in progress is left to
# its SLA clock: n8n finished what it was given, or a person stopped it.
LOST = frozenset({"error", "crashed"})
ROUND_LIMIT = 50  # workflows asked about per round
# How n8n words the loss of an execution with its worker, when it reports one to the error
# workflow: a crashed execution (2.x, found when a worker's heartbeat stops) and a stalled job.
LOST_WORDS = ("workflow did not finish, possible out-of-memory issue", "job stalled more than maxstalledcount")


def lost_in_words(message: str) -> bool:
    """Whether n8n's error message says the execution was lost rather than failed."""
    message = message.lower()
    return any(words in message for words in LOST_WORDS)


@dataclasses.dataclass
class Round:
    checked: int = 0
    lost: int = 0
    recovered: int = 0
    blocked: int = 0
    unreachable: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class ExecutionWatch:
    def __init__(self, database: Database, settings: Settings, session: requests.Session | None = None,
                 timeout: float = 10.0, metrics=None):
        self.database = database
        self.settings = settings
        self.session = session or requests.Session()
        self.timeout = timeout
        self.metrics = metrics  # app.observability.Metrics: counts what followed each loss

    def execution_state(self, execution_id: str) -> tuple[str, str] | None:
        """(status, reason) as n8n's API tells it; "missing" when n8n has no such execution;
        None when n8n could not be asked (tried again next round)."""
        url = f"{self.settings.n8n_base_url}/api/v1/executions/{execution_id}"
        try:
            response = self.session.get(url, headers={"X-N8N-API-KEY": self.settings.n8n_api_key or ""},
                                        timeout=self.timeout)
        except requests.RequestException as error:
            log.warning("execution watch: n8n unreachable for execution %s: %s", execution_id, type(error).__name__)
            return None
        if response.status_code == 404:
            return "missing", "n8n has no such execution (missing)"
        if response.status_code != 200:
            log.warning("execution watch: n8n answered %s for execution %s", response.status_code, execution_id)
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            log.warning("execution watch: n8n's answer about execution %s is not an execution", execution_id)
            return None
        status = str(body.get("status") or ("success" if body.get("finished") else "running"))
        stopped = body.get("stoppedAt")
        return status, f"n8n says {status}" + (f" since {stopped}" if stopped else "")

    def check(self, every: float | None = None) -> dict | None:
        """One round. With `every` (a runner's interval in seconds), None when another runner
        already took this round."""
        settings = self.settings
        if not settings.n8n_base_url or not settings.n8n_api_key:
            return {"skipped": "N8N_BASE_URL and N8N_API_KEY are needed to ask n8n"}

        def candidates(conn):
            if every is not None and not conn.execute(
                    "select coalesce(private.claim_duty_round('n8n_watch', make_interval(secs => %s)), false) as mine",
                    (every,)).fetchone()["mine"]:
                return None
            return conn.execute("select workflow_id, execution_id from public.n8n_executions_to_check("
                                "make_interval(secs => %s), %s)",
                                (settings.n8n_watch_quiet_seconds, ROUND_LIMIT)).fetchall()

        rows = self.database.run(PRINCIPAL, candidates)
        if rows is None:
            return None
        summary = Round()
        for row in rows:
            summary.checked += 1
            state = self.execution_state(row["execution_id"])
            if state is None:
                summary.unreachable += 1
                continue
            status, reason = state
            if status not in LOST and status != "missing":
                continue
            summary.lost += 1
            result = self.database.run(PRINCIPAL, lambda conn: conn.execute(
                "select public.recover_lost_execution(%s, %s, %s) as r",
                (row["workflow_id"], row["execution_id"], reason)).fetchone()["r"])
            outcome = "recovered" if result.get("recovered") else "blocked" if result.get("blocked") else None
            if outcome and self.metrics is not None:
                self.metrics.lost_executions.labels(outcome).inc()
            if result.get("recovered"):
                summary.recovered += 1
                log.warning("execution watch: n8n lost execution %s of workflow %s (%s); started again, skipping %s",
                            row["execution_id"], row["workflow_id"], reason, ", ".join(result.get("done") or []) or "nothing")
            elif result.get("blocked"):
                summary.blocked += 1
                log.error("execution watch: n8n lost workflow %s %s times; handed to a person",
                          row["workflow_id"], result.get("losses"))
        return summary.as_dict()


def run_forever(watch: ExecutionWatch, stop: threading.Event, interval: float) -> None:
    """A round every `interval` seconds until `stop` is set; a failed round is logged and the
    next one tried. The triggers a round queues wake the dispatchers (the outbox's NOTIFY)."""
    while not stop.is_set():
        try:
            watch.check(every=interval)
        except Exception:
            log.exception("execution watch failed")
        stop.wait(interval)


def start_in_background(app) -> threading.Event:
    """Started by the app factory when N8N_WATCH_INTERVAL_SECONDS > 0: one thread per process."""
    settings = app.config["SETTINGS"]
    stop = threading.Event()
    watch = ExecutionWatch(app.extensions["database"], settings, metrics=app.extensions.get("metrics"))
    thread = threading.Thread(target=run_forever, args=(watch, stop, settings.n8n_watch_interval_seconds),
                              name="n8n-watch", daemon=True)
    thread.start()
    app.extensions["n8n_watch"] = (stop, thread)
    return stop
