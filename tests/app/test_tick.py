"""The tick (GET or POST /api/internal/tick): who may call it, what one round does, and that
rounds from several schedulers at once deliver each outbox row once."""
from __future__ import annotations

import threading

import pytest

from app import create_app, duties
from app.db import Database
from tests.db.factories import make_workflow, start_workflow
from tests.n8n.fake_n8n import FakeN8n
from tests.n8n.test_dispatcher import race_database, started_workflows  # noqa: F401  (race_database: a fixture)
from tests.service_fixtures import AGENT_KEY, TransactionalDatabase, make_settings
from tests.db.world import PEOPLE
from tests.support import mint_token

CRON_SECRET = "cron-secret-for-tests-0123456789"
GOOD = {"Authorization": f"Bearer {CRON_SECRET}"}
METHODS = ["get", "post"]


@pytest.fixture(scope="module")
def fake():
    server = FakeN8n()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tick_app(_session_connection, database_url, fake):
    application = create_app(make_settings(database_url, n8n_base_url=fake.url, public_base_url="http://service.test",
                                           cron_secret=CRON_SECRET), database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def tick_client(tick_app, db, fake):
    fake.requests.clear()
    fake.status, fake.healthy = 200, True
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where status <> 'DELIVERED'")
    return tick_app.test_client()


def outbox_state(db):
    return db.execute("select id, status, attempts, next_attempt_at from public.n8n_dispatches order by id").fetchall()


@pytest.mark.parametrize("method", METHODS)
def test_without_cron_secret_the_tick_is_off(client, method):
    response = getattr(client, method)("/api/internal/tick", headers=GOOD)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "tick_disabled"
    assert "CRON_SECRET" in response.get_json()["error"]["message"]


WRONG_CREDENTIALS = {
    "none": {},
    "another secret": {"Authorization": "Bearer " + CRON_SECRET[::-1]},
    "the secret in other case": {"Authorization": "Bearer " + CRON_SECRET.upper()},
    "the secret with a suffix": {"Authorization": f"Bearer {CRON_SECRET}x"},
    "basic scheme": {"Authorization": f"Basic {CRON_SECRET}"},
    "no scheme": {"Authorization": CRON_SECRET},
    "a manager's token": {"Authorization": f"Bearer {mint_token(PEOPLE['manager'])}"},
    "an agent key": {"X-API-Key": AGENT_KEY, "X-Agent-Name": "nina", "X-Workflow-Scope": str(PEOPLE["agent_a"].workflow_id)},
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS), ids=str)
def test_only_the_cron_secret_runs_the_tick(tick_client, db, method, credentials):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    before = outbox_state(db)
    response = getattr(tick_client, method)("/api/internal/tick", headers=WRONG_CREDENTIALS[credentials])
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert CRON_SECRET not in response.get_data(as_text=True)
    assert outbox_state(db) == before


@pytest.mark.parametrize("method", METHODS)
def test_one_round_delivers_what_is_due_sweeps_and_prunes(tick_client, db, fake, method):
    due, later = make_workflow(db), make_workflow(db)
    for workflow in (due, later):
        start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set next_attempt_at = now() + interval '1 hour' where workflow_id = %s",
               (later["id"],))
    old = db.execute("""insert into public.realtime_events (event_type, workflow_id, payload, created_at)
                        values ('workflow_status_changed', %s, '{}', now() - interval '100 days') returning id""",
                     (due["id"],)).fetchone()["id"]
    response = getattr(tick_client, method)("/api/internal/tick", headers=GOOD)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] is True
    assert body["outbox"]["delivered"] == 1 and body["outbox"]["circuit"] == "closed"
    assert {"levelsRaised", "notificationsCreated", "rollupDays"} <= set(body["slaSweep"])
    assert body["eventPruning"]["deleted"] >= 1
    assert [r["json"]["workflowId"] for r in fake.requests] == [str(due["id"])]
    rows = {r["workflow_id"]: r for r in db.execute(
        "select workflow_id, status, response from public.n8n_dispatches where workflow_id in (%s, %s)",
        (due["id"], later["id"])).fetchall()}
    assert rows[due["id"]]["status"] == "DELIVERED" and rows[due["id"]]["response"]["deliveredBy"] == "tick"
    assert rows[later["id"]]["status"] == "PENDING"
    assert db.execute("select count(*) as n from public.realtime_events where id = %s", (old,)).fetchone()["n"] == 0


def test_a_body_sent_with_the_tick_is_ignored(tick_client):
    for kwargs in ({"data": "not json", "content_type": "text/plain"}, {"json": {"any": "thing"}}, {}):
        assert tick_client.post("/api/internal/tick", headers=GOOD, **kwargs).status_code == 200


def test_n8n_down_is_a_delivery_failure_not_a_failed_tick(tick_client, db, fake):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    fake.status = 503
    body = tick_client.post("/api/internal/tick", headers=GOOD).get_json()
    assert body["ok"] is True and body["outbox"]["retried"] == 1


def test_the_tick_is_not_rate_limited_nor_person_checked(tick_app, tick_client):
    tick_app.config["RATE_LIMITS"] = {"read": "1/minute", "write": "1/minute"}
    try:
        assert [tick_client.get("/api/internal/tick", headers=GOOD).status_code for _ in range(3)] == [200] * 3
    finally:
        tick_app.config.pop("RATE_LIMITS", None)


def test_ticks_from_several_schedulers_at_once_deliver_each_row_once(race_database):  # noqa: F811
    fake = FakeN8n()
    settings = make_settings(race_database, n8n_base_url=fake.url, public_base_url="http://service.test",
                             cron_secret=CRON_SECRET)
    workflow_ids = started_workflows(race_database, 24, "Ticks")
    apps = []
    try:
        for _ in range(3):
            database = Database(race_database, 1, 3)
            database.open(wait=True)
            apps.append(create_app(settings, database=database))
        results = []
        threads = [threading.Thread(target=lambda a=a: results.append(duties.tick(a))) for a in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r["ok"] for r in results)
        assert sum(r["outbox"]["delivered"] for r in results) == 24
        assert sorted(r["json"]["workflowId"] for r in fake.requests) == sorted(str(w) for w in workflow_ids)
        swept = [r["slaSweep"] for r in results]
        assert sum("skipped" not in s for s in swept) >= 1  # the sweeps took turns; at least one ran
    finally:
        for application in apps:
            application.extensions["database"].close()
        fake.stop()
