"""Delivers the n8n outbox: workflow triggers, execution stops and wait resumes.

Rows are claimed with `for update skip locked` (several dispatchers never deliver one row
twice), delivered over HTTP outside any transaction, and finished with the outcome: delivered;
failed and retried later with exponential backoff and full jitter; or dead after the last
attempt, with people notified. A circuit breaker stops hammering n8n while it is down.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable

import requests

from app.auth import Principal
from app.config import Settings
from app.db import Database
from app.webhooks.signing import encode_key, inbound_token, workflow_key

log = logging.getLogger(__name__)

# The trigger webhook path of each workflow type (the exports in n8n_workflows/ listen there).
TRIGGER_PATHS = {
    "MUNI_LIEN_SEARCH": "rexera/muni-lien-search",
    "HOA_ACQUISITION": "rexera/hoa-acquisition",
    "PAYOFF_REQUEST": "rexera/payoff-request",
}
TRIGGER_TOKEN_HEADER = "X-Rexera-Token"


# What public.tasks.resume_url holds: a reference to the secret URL (20261126002100_dispatch.sql).
RESUME_REFERENCE = "n8n-resume:"


class DeliveryError(Exception):
    """`n8n_failed`: the failure says something about n8n's health (it counts towards opening the
    circuit); an answer that only says "not yet" (a resume before the execution is parked) does not."""

    def __init__(self, message: str, retryable: bool = True, n8n_failed: bool = True):
        super().__init__(message)
        self.retryable = retryable
        self.n8n_failed = n8n_failed


@dataclasses.dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` seconds one trial passes,
    or sooner when a probe finds n8n answering again (`probe_succeeded`)."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    clock: Callable[[], float] = time.monotonic

    @property
    def allows(self) -> bool:
        return self.opened_at is None or self.clock() - self.opened_at >= self.cooldown

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.allows else "open"

    def success(self) -> bool:
        """Record a delivery; True when it ends a run of failures (n8n is back)."""
        recovered = self.failures > 0
        self.failures, self.opened_at = 0, None
        return recovered

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = self.clock()

    def probe_succeeded(self) -> None:
        """n8n answers its health check: let the next trial through now instead of after the cooldown."""
        if self.opened_at is not None:
            self.opened_at = self.clock() - self.cooldown


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0, rng: random.Random = random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))], at least one second."""
    return max(1.0, rng.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0))))


@dataclasses.dataclass
class DispatchReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0  # rows waiting out a backoff, made due when n8n answered again
    skipped_open_circuit: bool = False

    def add(self, other: "DispatchReport") -> None:
        for field in ("claimed", "delivered", "retried", "dead", "released"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.skipped_open_circuit = other.skipped_open_circuit

    def as_dict(self) -> dict:
        return {"claimed": self.claimed, "delivered": self.delivered, "retried": self.retried, "dead": self.dead,
                "released": self.released, "circuit": "open" if self.skipped_open_circuit else "closed"}


class Dispatcher:
    """`by` names who delivers (dispatcher, request, tick, script): kept with each delivered
    row's response as deliveredBy."""

    PROBE_INTERVAL_SECONDS = 1.0

    def __init__(self, database: Database, settings: Settings, session: requests.Session | None = None,
                 breaker: CircuitBreaker | None = None, timeout: float = 10.0, by: str = "dispatcher"):
        self.database = database
        self.settings = settings
        self.session = session or requests.Session()
        self.breaker = breaker or CircuitBreaker()
        self.timeout = timeout
        self.by = by
        self.principal = Principal.service("dispatcher")
        self._next_probe = 0.0

    # ---- one pass ---------------------------------------------------------------------------
    def dispatch_due(self, limit: int = 10) -> DispatchReport:
        report = DispatchReport()
        if not self.breaker.allows:
            released = self.probe()
            if released is None:
                report.skipped_open_circuit = True
                return report
            report.released += released
        # Half-open: a single trial delivery.
        limit = 1 if self.breaker.state == "half-open" else limit
        rows = self.database.run(self.principal, lambda conn: conn.execute(
            "select * from public.claim_n8n_dispatches(%s)", (limit,)).fetchall())
        self._deliver_rows(rows, report)
        return report

    def deliver_now(self, dispatch_ids: list, timeout: float) -> DispatchReport:
        """Deliver these rows (just queued by the caller's committed transaction) with at most
        `timeout` seconds per call to n8n. Rows another dispatcher holds, or that n8n refuses,
        stay in the outbox for the next pass or tick; nothing is tried while the circuit is open."""
        report = DispatchReport()
        if not dispatch_ids:
            return report
        if not self.breaker.allows:
            report.skipped_open_circuit = True
            return report
        rows = self.database.run(self.principal, lambda conn: conn.execute(
            "select * from public.claim_n8n_dispatches(%s, %s, %s)",
            (len(dispatch_ids), 120, list(dispatch_ids))).fetchall())
        self._deliver_rows(rows, report, timeout)
        return report

    def drain(self, budget_seconds: float, limit: int = 10) -> DispatchReport:
        """Passes until nothing is due, the circuit opens or `budget_seconds` run out (the tick)."""
        report = DispatchReport()
        ends = time.monotonic() + budget_seconds
        while time.monotonic() < ends:
            one = self.dispatch_due(limit)
            report.add(one)
            if one.claimed == 0 or one.skipped_open_circuit:
                break
        return report

    def probe(self) -> int | None:
        """While the circuit is open, ask n8n's health check (at most once a second). Once it
        answers, the rows waiting out their backoff are due and the trial delivery goes at once,
        rather than after the cooldown and the backoff: returns how many rows were released, or
        None while n8n is still down (or not asked yet)."""
        if not self.settings.n8n_base_url or time.monotonic() < self._next_probe:
            return None
        self._next_probe = time.monotonic() + self.PROBE_INTERVAL_SECONDS
        try:
            healthy = self.session.get(f"{self.settings.n8n_base_url}/healthz", timeout=2.0).status_code == 200
        except requests.RequestException:
            healthy = False
        if not healthy:
            return None
        self.breaker.probe_succeeded()
        return self.release()

    def _deliver_rows(self, rows: list[dict], report: DispatchReport, timeout: float | None = None) -> None:
        report.claimed += len(rows)
        for row in rows:
            outcome, recovered = self._deliver_and_record(row, timeout)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if recovered:
                report.released += self.release()

    def release(self) -> int:
        """Make every row waiting out a backoff due now (n8n answered after failing)."""
        released = self.database.run(self.principal, lambda conn: conn.execute(
            "select public.release_n8n_dispatches() as n").fetchone()["n"])
        if released:
            log.info("n8n answers again: %s queued deliveries released from their backoff", released)
        return released

    def _deliver_and_record(self, row: dict, timeout: float | None = None) -> tuple[str, bool]:
        """The outcome (delivered, retried or dead), and whether this delivery ended a run of failures."""
        try:
            response = self.deliver(row, timeout)
        except DeliveryError as error:
            if error.n8n_failed:
                self.breaker.failure()
            retry_at = time.time() + backoff_seconds(row["attempts"]) if error.retryable else None
            status = self._finish(row, False, str(error), None, retry_at)
            log.warning("n8n %s for workflow %s failed (attempt %s): %s -> %s", row["kind"], row["workflow_id"],
                        row["attempts"], error, status)
            return ("dead" if status == "DEAD" else "retried"), False
        recovered = self.breaker.success()
        self._finish(row, True, None, {**response, "deliveredBy": self.by}, None)
        return "delivered", recovered

    def _finish(self, row, delivered: bool, error: str | None, response: dict | None, retry_at: float | None) -> str:
        from psycopg.types.json import Jsonb

        return self.database.run(self.principal, lambda conn: conn.execute(
            "select public.finish_n8n_dispatch(%s, %s, %s, %s, to_timestamp(%s)) as status",
            (row["id"], delivered, error, Jsonb(response) if response is not None else None, retry_at)).fetchone()["status"])

    # ---- HTTP -------------------------------------------------------------------------------
    def deliver(self, row: dict, timeout: float | None = None) -> dict:
        kind = row["kind"]
        handler = {"TRIGGER": self._trigger, "CANCEL": self._stop, "RESUME": self._resume}.get(kind)
        if handler is None:
            raise DeliveryError(f"unknown dispatch kind {kind}", retryable=False)
        return handler(row, min(timeout, self.timeout) if timeout else self.timeout)

    def _trigger(self, row: dict, timeout: float) -> dict:
        settings = self.settings
        if not settings.n8n_base_url or settings.n8n_callback_secret is None:
            raise DeliveryError("N8N_BASE_URL and N8N_CALLBACK_SECRET must be set to start workflows")
        payload = dict(row["payload"])
        workflow_id = str(row["workflow_id"])
        payload.update({
            "correlationId": str(row["correlation_id"]),
            "callbackUrl": f"{settings.public_base_url}/webhooks/n8n",
            "callbackBaseUrl": settings.public_base_url,
            "signingKey": encode_key(workflow_key(settings.n8n_callback_secret, workflow_id)),
            # For messages that ask a counterparty to send documents back to this workflow.
            "inboundUrl": f"{settings.public_base_url}/webhooks/inbound",
            "inboundToken": inbound_token(settings.n8n_callback_secret, workflow_id),
        })
        if settings.agent_base_url:
            payload["agentBaseUrl"] = settings.agent_base_url
        path = TRIGGER_PATHS.get(payload.get("workflowType"))
        if path is None:
            raise DeliveryError(f"no n8n workflow for type {payload.get('workflowType')}", retryable=False)
        headers = {TRIGGER_TOKEN_HEADER: settings.n8n_webhook_token} if settings.n8n_webhook_token else {}
        # n8n answers 404 while it is starting (webhooks not registered yet) or while the
        # workflow is being re-activated: worth retrying, unlike other refusals.
        return self._post(f"{settings.n8n_base_url}/webhook/{path}", payload, headers, timeout, retry_statuses=(404,))

    # How long a resume keeps asking while n8n answers 409 "running already", and the pauses.
    PARK_WAIT_SECONDS = 5.0
    PARK_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)

    def _resume(self, row: dict, timeout: float) -> dict:
        """POST to the Wait node's resume URL (a secret on n8n 2.x: it carries a signature, and is
        never logged).

        409 "running already": the wait was announced (task.waiting) a moment before n8n parked
        the execution at its Wait node, and an answer that comes at once (an instant inbound
        message, a person pressing resume right away) arrives in that moment. n8n gives no signal
        when the execution is parked, so the resume asks again after short pauses (10 ms growing
        to 200 ms, for up to PARK_WAIT_SECONDS): it goes through a few milliseconds after the
        execution can take it, within the same attempt, rather than a backoff of a second or more
        later. Those answers are not n8n failing: they never count towards the circuit. 409
        "finished already" (2.x): nothing is waiting any more, and retrying cannot change that."""
        url = row["payload"].get("resumeUrl")
        task_id = row["payload"].get("taskId")
        if url and url.startswith(RESUME_REFERENCE) and task_id:
            # The URL itself is kept where no request role can read it (the reference names it).
            url = self.database.run(self.principal, lambda conn: conn.execute(
                "select private.n8n_resume_url(%s) as url", (task_id,)).fetchone()["url"])
        if not url:
            raise DeliveryError("no URL to deliver to", retryable=False)
        body = row["payload"].get("body") or {}
        gives_up = time.monotonic() + min(self.PARK_WAIT_SECONDS, timeout)
        not_parked = 0
        while True:
            try:
                response = self.session.post(url, json=body, timeout=timeout)
            except requests.RequestException as error:
                raise DeliveryError(f"n8n unreachable: {type(error).__name__}") from None
            if response.status_code != 409:
                break
            if "finished" in response.text.lower():
                raise DeliveryError("n8n answered 409: the execution has finished already", retryable=False)
            pause = self.PARK_PAUSES[min(not_parked, len(self.PARK_PAUSES) - 1)]
            not_parked += 1
            if time.monotonic() + pause > gives_up:
                raise DeliveryError(f"n8n answered 409 {not_parked} times: {response.text[:200]}", n8n_failed=False)
            time.sleep(pause)
        self._raise_for_status(response)
        if task_id:  # a resume URL works once: forget it
            self.database.run(self.principal, lambda conn: conn.execute(
                "select private.n8n_resume_url(%s, %s)", (task_id, url)))
        answer = {"resumed": True, "status": response.status_code}
        if not_parked:
            answer["notParkedYet"] = not_parked  # 409 "running already" answers before this one
        return answer

    def _stop(self, row: dict, timeout: float) -> dict:
        """Stop the execution: n8n 2.x's POST /executions/{id}/stop; where that does not exist
        (1.x has no stop in its public API), deleting the execution is what ends it. A workflow
        waiting for an outside event (most long-lived executions) then never resumes; one still
        running has its remaining callbacks refused, since the workflow is cancelled."""
        execution_id = row["payload"].get("executionId")
        if not execution_id:
            return {"stopped": False, "reason": "n8n never reported an execution id"}
        if not self.settings.n8n_base_url or not self.settings.n8n_api_key:
            raise DeliveryError("N8N_BASE_URL and N8N_API_KEY must be set to stop executions")
        url = f"{self.settings.n8n_base_url}/api/v1/executions/{execution_id}"
        headers = {"X-N8N-API-KEY": self.settings.n8n_api_key}
        try:
            response = self.session.post(f"{url}/stop", headers=headers, timeout=timeout)
            if response.status_code < 300:
                return {"stopped": True, "how": "stop"}
            if response.status_code in (404, 405):  # no stop operation (1.x), or no such execution
                response = self.session.delete(url, headers=headers, timeout=timeout)
        except requests.RequestException as error:
            raise DeliveryError(f"n8n unreachable: {type(error).__name__}") from None
        if response.status_code == 404:
            return {"stopped": False, "reason": "n8n no longer has the execution"}
        if response.status_code in (400, 409):
            return {"stopped": False, "reason": f"n8n did not stop it ({response.status_code}): {response.text[:200]}"}
        self._raise_for_status(response)
        return {"stopped": True, "how": "delete"}

    def _post(self, url: str | None, payload: dict, headers: dict, timeout: float,
              retry_statuses: tuple[int, ...] = ()) -> dict:
        if not url:
            raise DeliveryError("no URL to deliver to", retryable=False)
        try:
            response = self.session.post(url, json=payload, headers=headers, timeout=timeout)
        except requests.RequestException as error:
            raise DeliveryError(f"n8n unreachable: {type(error).__name__}") from None
        self._raise_for_status(response, retry_statuses)
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:500]}
        return body if isinstance(body, dict) else {"body": body}

    @staticmethod
    def _raise_for_status(response: requests.Response, retry_statuses: tuple[int, ...] = ()) -> None:
        if response.status_code < 400:
            return
        # 4xx other than 408/429 will not get better by retrying (bad token, gone).
        retryable = response.status_code >= 500 or response.status_code in (408, 429, *retry_statuses)
        raise DeliveryError(f"n8n answered {response.status_code}: {response.text[:300]}", retryable=retryable)

    # ---- running ----------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Deliver until `stop` is set: right after each insert into the outbox (LISTEN), and at
        least every `interval` seconds (retries coming due, lost notifications)."""
        listener = OutboxListener(self.database, self.settings.realtime_database_url)
        try:
            while not stop.is_set():
                try:
                    report = self.dispatch_due()
                    busy = report.claimed > 0 and not report.skipped_open_circuit
                except Exception:  # keep dispatching whatever one pass hit (database restart...)
                    log.exception("dispatch pass failed")
                    busy = False
                if not busy:
                    listener.wait(interval)
        finally:
            listener.close()


class OutboxListener:
    """A LISTEN on the outbox channel; degrades to plain sleeping when it cannot connect."""

    CHANNEL = "rexera_dispatch"

    def __init__(self, database: Database, direct_url: str | None = None):
        # LISTEN needs a session: REALTIME_DATABASE_URL (direct) where DATABASE_URL is a
        # transaction pooler, which would take the LISTEN and never deliver a notification.
        self.conninfo = direct_url or (database.pool.conninfo if hasattr(database, "pool") else None)
        self.conn = None

    def _connect(self):
        import psycopg

        if self.conn is None and self.conninfo:
            try:
                self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                self.conn.execute(f"listen {self.CHANNEL}")
            except psycopg.Error:
                self.conn = None
        return self.conn

    def wait(self, timeout: float) -> bool:
        """True when woken by a notification, False after `timeout` seconds."""
        conn = self._connect()
        if conn is None:
            time.sleep(timeout)
            return False
        try:
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception:  # the connection died (database restart): reconnect next time
            self.close()
            time.sleep(min(timeout, 1.0))
            return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def start_in_background(app) -> threading.Event:
    """Started by the app factory when DISPATCHER_ENABLED is set: one thread per process."""
    stop = threading.Event()
    # The same circuit breaker and HTTP session as the request threads' deliveries (app.n8n.delivery).
    shared = app.extensions.get("n8n_dispatcher")
    dispatcher = Dispatcher(app.extensions["database"], app.config["SETTINGS"],
                            session=shared.session if shared else None, breaker=shared.breaker if shared else None)
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), name="n8n-dispatcher", daemon=True)
    thread.start()
    app.extensions["dispatcher"] = (dispatcher, stop, thread)
    return stop
