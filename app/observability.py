"""Structured JSON logs, one log line per request, and Prometheus metrics at /metrics."""
from __future__ import annotations

import hmac
import json
import logging
import sys
import time

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.auth import Principal

log = logging.getLogger("rexera.requests")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RequestIdFilter(logging.Filter):
    """Every line logged while a request is served carries that request's id (the error a view
    raised, a warning of the database layer, a WebSocket session's failure), as request_id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None and has_request_context():
            record.request_id = g.get("request_id")
        return True


def json_log_handler(stream=None) -> logging.Handler:
    """The service's log handler: JSON lines, each carrying the request id where there is one."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    root.handlers[:] = [json_log_handler()]
    root.setLevel(level)


class Metrics:
    """The seed's application and business metrics."""

    def __init__(self, app: Flask):
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram("rexera_http_request_duration_seconds", "API response time",
                                         ["method", "endpoint", "status"], registry=r,
                                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.request_errors = Counter("rexera_http_errors_total", "API errors (4xx and 5xx)",
                                      ["method", "endpoint", "status"], registry=r)
        self.db_time = Histogram("rexera_db_transaction_duration_seconds", "Time spent in database transactions",
                                 registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
        self.websocket_connections = Gauge("rexera_websocket_connections", "Open WebSocket connections", registry=r)
        self.lost_executions = Counter("rexera_n8n_executions_lost_total",
                                       "n8n executions lost with their worker, found by this process's execution watch,"
                                       " by what followed (recovered: started again; blocked: handed to a person)",
                                       ["outcome"], registry=r)
        r.register(BusinessCollector(app))


class BusinessCollector:
    """Read at scrape time: pool usage, workflows and tasks by status, agent performance over the
    last hour, SLA violations. One query, through the service path, cached for 10 seconds."""

    QUERY = """
    select
      (select coalesce(jsonb_object_agg(status, n), '{}') from (select status, count(*) n from public.workflows group by 1) s) as workflows,
      (select coalesce(jsonb_object_agg(status, n), '{}') from (select status, count(*) n from public.tasks group by 1) s) as tasks,
      (select coalesce(jsonb_object_agg(agent_name, jsonb_build_object(
          'avg_ms', avg_ms, 'success', success)), '{}')
         from (select agent_name, avg(processing_time_ms) avg_ms, avg(case when success then 1.0 else 0.0 end) success
                 from public.agent_results where created_at > now() - interval '1 hour' group by 1) a) as agents,
      (select count(*) from public.tasks where sla_status = 'BREACHED'
          and status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW')) as sla_breached
    """

    def __init__(self, app: Flask):
        self.app = app
        self.cached: tuple[float, dict] | None = None

    def snapshot(self) -> dict:
        if self.cached and time.monotonic() - self.cached[0] < 10:
            return self.cached[1]
        database = self.app.extensions["database"]
        with database.transaction(Principal.service("metrics")) as conn:
            row = conn.execute(self.QUERY).fetchone()
        self.cached = (time.monotonic(), row)
        return row

    def collect(self):
        database = self.app.extensions["database"]
        pool = getattr(database, "pool", None)
        if pool is not None:
            stats = pool.get_stats()
            usage = GaugeMetricFamily("rexera_db_pool_connections", "Database pool connections", labels=["state"])
            usage.add_metric(["size"], stats.get("pool_size", 0))
            usage.add_metric(["available"], stats.get("pool_available", 0))
            usage.add_metric(["waiting_requests"], stats.get("requests_waiting", 0))
            yield usage
        try:
            data = self.snapshot()
        except Exception:  # a scrape must not fail because the database is down
            logging.getLogger(__name__).warning("metrics: business figures unavailable", exc_info=True)
            return
        workflows = GaugeMetricFamily("rexera_workflows", "Workflows by status", labels=["status"])
        for status, count in data["workflows"].items():
            workflows.add_metric([status], count)
        yield workflows
        tasks = GaugeMetricFamily("rexera_tasks", "Tasks by status", labels=["status"])
        for status, count in data["tasks"].items():
            tasks.add_metric([status], count)
        yield tasks
        response = GaugeMetricFamily("rexera_agent_response_ms", "Agent mean processing time, last hour", labels=["agent"])
        success = GaugeMetricFamily("rexera_agent_success_rate", "Agent success rate, last hour", labels=["agent"])
        for agent, figures in data["agents"].items():
            response.add_metric([agent], float(figures["avg_ms"] or 0))
            success.add_metric([agent], float(figures["success"] or 0))
        yield response
        yield success
        yield GaugeMetricFamily("rexera_sla_breached_open_tasks", "Open tasks past their SLA", value=data["sla_breached"])


def init_app(app: Flask) -> None:
    metrics = Metrics(app)
    app.extensions["metrics"] = metrics
    app.extensions["database"].observe = metrics.db_time.observe

    @app.before_request
    def start_timer():
        g.setdefault("started", time.perf_counter())

    @app.after_request
    def record(response):
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        labels = (request.method, endpoint, str(response.status_code))
        metrics.request_latency.labels(*labels).observe(elapsed)
        if response.status_code >= 400:
            metrics.request_errors.labels(*labels).inc()
        principal = g.get("principal")
        log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "request_id": g.get("request_id"), "client_request_id": g.get("client_request_id"),
            "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
            "endpoint": endpoint, "actor": principal.actor_id if principal else None})
        return response

    @app.get("/metrics")
    def prometheus_metrics():
        check_metrics_token(app.config["SETTINGS"].metrics_token)
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def check_metrics_token(expected: str | None) -> None:
    """/metrics shows every tenant's volumes: only for a scraper holding METRICS_TOKEN (sent as
    Authorization: Bearer, compared in constant time). Without the setting there is no
    /metrics (404, as for any unknown path); a missing or wrong token is 401."""
    from app.errors import ApiError

    if not expected:
        raise ApiError(404, "no endpoint GET /metrics: set METRICS_TOKEN to serve it (docs/deploying.md)", "not_found")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode()) \
            or scheme.lower() != "bearer":
        raise ApiError(401, "send Authorization: Bearer <METRICS_TOKEN>", "invalid_token",
                       headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
