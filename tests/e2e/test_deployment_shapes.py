"""The same end-to-end run on both deployment shapes, against the real n8n:

- long-running: the service in one process with its threads (the e2e group's `world`, a
  dispatcher thread beside the requests' own deliveries), as under gunicorn;
- Vercel: function instances importing `wsgi` with VERCEL=1, one request at a time, frozen
  between requests, cold-started often, no thread of the service alive between requests, and
  Vercel Cron calling the tick (tests/e2e/vercel_shape.py).

Each run records who delivered every outbox row (the request that queued it, the dispatcher
thread, or a tick) and writes the figures to vercel-shape.json in pytest's temporary folder.
"""
from __future__ import annotations

import collections
import json
import os
import types

import pytest
import requests
import websocket
from psycopg import conninfo

from app.config import Settings
from tests.e2e import harness
from tests.e2e.test_workflows_e2e import deliver_statement, explain, hoa_payload, muni_payload, payoff_payload
from tests.e2e.vercel_shape import VercelShape
from tests.support import JWT_SECRET

pytestmark = pytest.mark.e2e
CRON_SECRET = "vercel-cron-secret-for-the-e2e-run"
FIGURES: dict = {}


@pytest.fixture(scope="module")
def vercel_world(e2e, simulator, tmp_path_factory):
    """A second service, in the Vercel shape, with a database of its own, on the same n8n."""
    from tests.conftest import world_database

    databases = world_database("rexera_vercel")
    parts = conninfo.conninfo_to_dict(next(databases))  # as DATABASE_URL spells it
    database_url = (f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
                    f"{parts.get('port', 5432)}/{parts['dbname']}")
    port = harness.n8n_local.free_port()
    running = e2e.settings
    env = {**os.environ, "DATABASE_URL": database_url, "SUPABASE_JWT_SECRET": JWT_SECRET,
           "N8N_BASE_URL": e2e.n8n.base_url, "N8N_API_KEY": e2e.n8n.api_key,
           "N8N_CALLBACK_SECRET": harness.callback_secret_text(running),
           "N8N_WEBHOOK_TOKEN": running.n8n_webhook_token, "N8N_ERROR_WEBHOOK_TOKEN": running.n8n_error_webhook_token,
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "AGENT_BASE_URL": simulator.base_url,
           "CRON_SECRET": CRON_SECRET, "RATE_LIMITS": "off", "DB_POOL_MIN": "0", "DB_POOL_MAX": "3", "VERCEL": "1"}
    for name in ("DISPATCHER_ENABLED", "SLA_SWEEP_INTERVAL_SECONDS", "BACKGROUND_DUTIES", "SERVICE_PLATFORM"):
        env.pop(name, None)
    shape = VercelShape(env, port, tmp_path_factory.mktemp("vercel")).start()
    service = types.SimpleNamespace(base_url=shape.base_url, settings=Settings.from_env(env))
    try:
        yield harness.World(service, simulator, e2e.n8n, database_url), shape
    finally:
        shape.stop()
        FIGURES.setdefault(e2e.n8n.version or "default", {})["vercelPlatform"] = shape.figures()
        out = tmp_path_factory.getbasetemp() / "vercel-shape.json"
        out.write_text(json.dumps(FIGURES, indent=2, default=str))
        print(f"\nvercel shape figures: {out}\n{json.dumps(FIGURES, indent=2, default=str)}")
        next(databases, None)


def run_the_demo_workflows(world) -> dict:
    """The demo's three workflows to COMPLETED, statement and documents delivered by webhook.
    Returns who delivered each outbox row, by kind."""
    ids = {"PAYOFF_REQUEST": world.start("PAYOFF_REQUEST", payoff_payload()),
           "HOA_ACQUISITION": world.start("HOA_ACQUISITION", hoa_payload(communicationPreference="email")),
           "MUNI_LIEN_SEARCH": world.start("MUNI_LIEN_SEARCH", muni_payload())}
    payoff = world.wait_task(ids["PAYOFF_REQUEST"], "await_statement", {"WAITING"}, deadline=120)
    assert payoff["tasksByKey"]["await_statement"]["status"] == "WAITING", explain(world, payoff)
    assert deliver_statement(world, ids["PAYOFF_REQUEST"])["forwarded"] is True
    hoa = world.wait_task(ids["HOA_ACQUISITION"], "await_documents", {"WAITING"}, deadline=120)
    assert hoa["tasksByKey"]["await_documents"]["status"] == "WAITING", explain(world, hoa)
    answer = world.deliver_inbound("hoa-documents", {
        "workflowId": ids["HOA_ACQUISITION"], "from": "manager@lakeview-hoa.example",
        "documents": [{"filename": "bylaws.pdf", "contentType": "application/pdf", "sizeBytes": 120400}]})
    assert answer.status_code == 202, answer.text
    for workflow_type, workflow_id in ids.items():
        workflow = world.wait_final(workflow_id, deadline=180)
        assert workflow["status"] == "COMPLETED", (workflow_type, explain(world, workflow))
    rows = world.query("""select kind, status, response ->> 'deliveredBy' as by from public.n8n_dispatches
                          where workflow_id = any(%s::uuid[])""", ([str(i) for i in ids.values()],))
    assert {row["status"] for row in rows} == {"DELIVERED"}, rows
    assert collections.Counter(row["kind"] for row in rows) == {"TRIGGER": 3, "RESUME": 2}
    return {"workflowsCompleted": len(ids),
            "deliveredBy": {f"{kind} by {by}": n for (kind, by), n in sorted(collections.Counter(
                (row["kind"], row["by"]) for row in rows).items())}}


@pytest.mark.parametrize("shape", ["long-running", "vercel"])
def test_the_demo_workflows_complete_on_each_shape(request, shape, e2e):
    if shape == "long-running":
        world = request.getfixturevalue("world")
        allowed = {"request", "dispatcher"}
    else:
        world, _ = request.getfixturevalue("vercel_world")
        allowed = {"request", "tick"}  # no dispatcher thread lives there
    figures = run_the_demo_workflows(world)
    FIGURES.setdefault(world.n8n.version or "default", {})[shape] = figures
    deliverers = {label.split(" by ")[1] for label in figures["deliveredBy"]}
    assert deliverers <= allowed, figures


def test_on_vercel_a_trigger_that_failed_while_n8n_was_down_is_delivered_by_a_later_tick(vercel_world, e2e):
    world, shape = vercel_world
    e2e.n8n.stop()
    try:
        workflow_id = world.start("PAYOFF_REQUEST", payoff_payload())
        row = world.query("select status, attempts, last_error, response from public.n8n_dispatches"
                          " where workflow_id = %s and kind = 'TRIGGER'", (workflow_id,))[0]
        # The request tried at once, failed, answered anyway; the row waits in the outbox.
        assert (row["status"], row["attempts"]) == ("FAILED", 1) and "unreachable" in row["last_error"], row
    finally:
        e2e.n8n.start()
    workflow = world.wait_task(workflow_id, "await_statement", {"WAITING"}, deadline=120)
    assert workflow["tasksByKey"]["await_statement"]["status"] == "WAITING", explain(world, workflow)
    row = world.query("select status, attempts, response ->> 'deliveredBy' as by from public.n8n_dispatches"
                      " where workflow_id = %s and kind = 'TRIGGER'", (workflow_id,))[0]
    assert row["status"] == "DELIVERED" and row["by"] == "tick" and row["attempts"] >= 2, row
    FIGURES.setdefault(world.n8n.version or "default", {})["vercelAfterOutage"] = {
        "triggerAttempts": row["attempts"], "deliveredBy": row["by"]}
    deliver_statement(world, workflow_id)
    assert world.wait_final(workflow_id, deadline=120)["status"] == "COMPLETED"


def test_on_vercel_ws_says_at_once_that_there_is_no_websocket(vercel_world, e2e):
    world, _ = vercel_world
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(world.service.base_url.replace("http", "ws") + "/ws", timeout=10)
    assert refused.value.status_code == 501
    answer = requests.get(world.service.base_url + "/ws", timeout=10)
    assert answer.status_code == 501 and answer.json()["error"]["code"] == "realtime_unavailable"
    health = requests.get(world.service.base_url + "/api/health", timeout=10).json()
    assert health["duties"]["platform"] == "vercel" and health["duties"]["realtime"] == "unavailable"
    assert health["duties"]["outbox"] == ["afterCommit", "tick"]
