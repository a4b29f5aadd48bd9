"""Health endpoints: no authentication, no secrets, a status per dependency."""
from __future__ import annotations

import responses

from app import create_app
from tests.service_fixtures import METRICS_HEADERS, TransactionalDatabase, make_settings
from tests.support import terminate_backends


def test_overall_health_needs_no_token_and_names_each_dependency(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json
    assert set(body["checks"]) == {"database", "workflows", "agents", "realtime", "auth"}
    assert body["checks"]["database"] == "ok" and body["checks"]["auth"] == "ok"
    assert body["status"] == "degraded"  # n8n is not configured in this test and realtime is not running
    assert "secret" not in response.get_data(as_text=True).lower()


def test_database_health_reports_the_schema_version(client):
    body = client.get("/api/health/database").json
    assert body["status"] == "ok" and body["schemaVersion"].startswith("2026") and body["latencyMs"] >= 0


@responses.activate
def test_n8n_health_follows_its_healthz(db, database_url):
    app = create_app(make_settings(database_url, n8n_base_url="http://n8n.test"), database=TransactionalDatabase(db))
    responses.get("http://n8n.test/healthz", json={"status": "ok"})
    assert app.test_client().get("/api/health/workflows").json["status"] == "ok"
    responses.replace(responses.GET, "http://n8n.test/healthz", status=502)
    assert app.test_client().get("/api/health/workflows").json["status"] == "down"


def test_a_down_database_makes_the_service_down(database_url):
    app = create_app(make_settings("postgresql://postgres@127.0.0.1:1/nowhere"))
    response = app.test_client().get("/api/health")
    assert response.status_code == 503 and response.json["status"] == "down"
    assert response.json["checks"]["database"] == "down"
    app.extensions["database"].close()


def test_unknown_component_is_404_in_the_error_shape(client):
    response = client.get("/api/health/kitchen-sink")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_metrics_expose_request_and_business_figures(as_, client):
    as_("operator").get("/api/workflows")
    text = client.get("/metrics", headers=METRICS_HEADERS).get_data(as_text=True)
    assert 'rexera_http_request_duration_seconds_count{endpoint="/api/workflows",method="GET",status="200"}' in text
    assert 'rexera_workflows{status="IN_PROGRESS"}' in text
    assert "rexera_db_transaction_duration_seconds_count" in text


def test_the_service_works_with_prepared_statements(database_url):
    """DB_PREPARE_THRESHOLD=0 (direct connections): every statement prepared, still answering."""
    app = create_app(make_settings(database_url, db_prepare_threshold=0))
    try:
        client = app.test_client()
        assert client.get("/api/health/database").json["status"] == "ok"
        from tests.service_fixtures import Caller

        for _ in range(3):
            assert Caller(client, "operator").get("/api/workflows").status_code == 200
    finally:
        app.extensions["database"].close()


def test_database_health_is_ok_when_pooled_connections_died_with_a_restart(database_url, db):
    """Connections left over from before a database restart are not the database being down."""
    app = create_app(make_settings(database_url, db_pool_min=2, db_pool_max=2))
    database = app.extensions["database"]
    try:
        database.pool.wait(timeout=10)
        with database.pool.connection() as a, database.pool.connection() as b:
            pids = [conn.execute("select pg_backend_pid() as pid").fetchone()["pid"] for conn in (a, b)]
        terminate_backends(db, pids)
        response = app.test_client().get("/api/health/database")
        assert response.status_code == 200 and response.json["status"] == "ok", response.json
    finally:
        database.close()


def test_health_says_which_duties_run_where(database_url, db):
    from app import create_app
    from tests.service_fixtures import TransactionalDatabase, make_settings

    server = create_app(make_settings(database_url, deliver_inline=True, cron_secret="c" * 32),
                        database=TransactionalDatabase(db))
    vercel = create_app(make_settings(database_url, platform="vercel", background_duties=False, deliver_inline=True,
                                      cron_secret="c" * 32), database=TransactionalDatabase(db))
    duties = {name: a.test_client().get("/api/health").get_json()["duties"] for name, a in
              (("server", server), ("vercel", vercel))}
    assert duties["server"] == {"platform": "server", "backgroundThreads": True, "outbox": ["afterCommit", "tick"],
                                "slaSweep": ["tick"], "executionWatch": [], "eventPruning": ["realtimeListener", "tick"],
                                "realtime": "websocket"}
    assert duties["vercel"] == {"platform": "vercel", "backgroundThreads": False, "outbox": ["afterCommit", "tick"],
                                "slaSweep": ["tick"], "executionWatch": [], "eventPruning": ["tick"],
                                "realtime": "unavailable"}
    realtime = vercel.test_client().get("/api/health/realtime").get_json()
    assert realtime["status"] == "ok" and realtime["websocket"] is False


def test_without_websockets_ws_answers_at_once_what_to_do_instead(database_url, db):
    from app import create_app
    from tests.service_fixtures import TransactionalDatabase, make_settings

    vercel = create_app(make_settings(database_url, platform="vercel", background_duties=False),
                        database=TransactionalDatabase(db))
    for headers in ({}, {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}):
        response = vercel.test_client().get("/ws?token=x", headers=headers)
        assert response.status_code == 501
        error = response.get_json()["error"]
        assert error["code"] == "realtime_unavailable" and error["details"]["pollSeconds"] == 15
        assert "Supabase Realtime" in error["message"]
