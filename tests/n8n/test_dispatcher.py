"""The outbox dispatcher against a stand-in n8n: delivery, retries with backoff, dead letters,
the circuit breaker, and no double delivery with several dispatchers."""
from __future__ import annotations

import random
import threading
import uuid

import psycopg
import pytest

from app.db import Database
from app.n8n.dispatcher import CircuitBreaker, Dispatcher, OutboxListener, backoff_seconds
from app.webhooks.signing import encode_key, workflow_key
from tests.db.factories import make_workflow, start_workflow
from tests.service_fixtures import CALLBACK_SECRET, TransactionalDatabase, make_settings


@pytest.fixture
def dispatcher(db, database_url, n8n):
    # The shared world holds undelivered triggers of its own; out of the way for this test.
    db.execute("update public.n8n_dispatches set status = 'DELIVERED'")
    settings = make_settings(database_url, n8n_base_url=n8n.url, n8n_api_key="api-key", n8n_webhook_token="trigger-token",
                             public_base_url="http://service.test")
    return Dispatcher(TransactionalDatabase(db), settings, breaker=CircuitBreaker(threshold=3, cooldown=60))


def dispatch_row(db, workflow_id, kind="TRIGGER"):
    return db.execute("select * from public.n8n_dispatches where workflow_id = %s and kind = %s", (workflow_id, kind)).fetchone()


def test_a_started_workflow_reaches_n8n_with_its_key_and_plan(db, dispatcher, n8n):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    report = dispatcher.dispatch_due()
    assert (report.claimed, report.delivered) == (1, 1)
    request = n8n.requests[0]
    assert request["path"] == "/webhook/rexera/payoff-request"
    assert request["headers"]["X-Rexera-Token"] == "trigger-token"
    body = request["json"]
    assert body["workflowId"] == str(workflow["id"]) and len(body["tasks"]) == 7
    assert body["signingKey"] == encode_key(workflow_key(CALLBACK_SECRET, str(workflow["id"])))
    assert body["callbackUrl"] == "http://service.test/webhooks/n8n"
    assert CALLBACK_SECRET.decode() not in str(body)
    row = dispatch_row(db, workflow["id"])
    assert row["status"] == "DELIVERED" and row["attempts"] == 1
    assert db.execute("select n8n_execution_id from public.workflows where id = %s", (workflow["id"],)).fetchone()["n8n_execution_id"] == "exec-1"
    assert dispatcher.dispatch_due().claimed == 0


def test_a_down_n8n_is_retried_later_with_backoff(db, dispatcher, n8n):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    n8n.status = 503
    report = dispatcher.dispatch_due()
    assert report.retried == 1
    row = dispatch_row(db, workflow["id"])
    assert row["status"] == "FAILED" and "503" in row["last_error"]
    wait = db.execute("select extract(epoch from next_attempt_at - now()) as s from public.n8n_dispatches where id = %s",
                      (row["id"],)).fetchone()["s"]
    assert 0 < wait <= 3
    assert dispatcher.dispatch_due().claimed == 0  # not due yet
    db.execute("update public.n8n_dispatches set next_attempt_at = now() where id = %s", (row["id"],))
    n8n.status = 200
    assert dispatcher.dispatch_due().delivered == 1
    assert dispatch_row(db, workflow["id"])["attempts"] == 2


def test_the_last_attempt_gives_up_and_tells_people(db, dispatcher, n8n):
    workflow = make_workflow(db, hil_owner_id=uuid.UUID("cccccccc-0000-4000-8000-000000000001"))
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set max_attempts = 1 where workflow_id = %s", (workflow["id"],))
    n8n.status = 500
    assert dispatcher.dispatch_due().dead == 1
    assert dispatch_row(db, workflow["id"])["status"] == "DEAD"
    assert db.execute("select status from public.workflows where id = %s", (workflow["id"],)).fetchone()["status"] == "BLOCKED"
    notes = db.execute("select recipient_id, priority from public.notifications where workflow_id = %s", (workflow["id"],)).fetchall()
    assert notes == [{"recipient_id": uuid.UUID("cccccccc-0000-4000-8000-000000000001"), "priority": "URGENT"}]


def test_a_refusal_that_retrying_cannot_fix_is_final_at_once(db, dispatcher, n8n):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    n8n.status = 403
    assert dispatcher.dispatch_due().dead == 1


def test_a_trigger_404_is_retried_while_n8n_registers_its_webhooks(db, dispatcher, n8n):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    n8n.status = 404
    assert dispatcher.dispatch_due().retried == 1
    assert dispatch_row(db, workflow["id"])["status"] == "FAILED"


def test_a_resume_that_arrives_before_n8n_parks_is_retried(db, dispatcher, n8n):
    other = make_workflow(db)
    db.execute("""insert into public.n8n_dispatches (workflow_id, kind, payload) values (%s, 'RESUME', %s)""",
               (other["id"], psycopg.types.json.Jsonb({"resumeUrl": f"{n8n.url}/webhook-waiting/43", "body": {}})))
    n8n.status = 409
    assert dispatcher.dispatch_due().retried == 1
    assert dispatch_row(db, other["id"], "RESUME")["status"] == "FAILED"


def test_the_circuit_opens_after_repeated_failures(db, dispatcher, n8n):
    n8n.status, n8n.healthy = 503, False
    for _ in range(3):
        workflow = make_workflow(db)
        start_workflow(db, workflow["id"])
        dispatcher.dispatch_due()
    assert dispatcher.breaker.state == "open"
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    report = dispatcher.dispatch_due()
    assert report.skipped_open_circuit and report.claimed == 0
    assert len(n8n.requests) == 3
    # Healthy again by its health check but still refusing: one trial, and the circuit opens again.
    n8n.healthy = True
    dispatcher._next_probe = 0.0  # a second later
    report = dispatcher.dispatch_due()
    assert (report.claimed, report.retried) == (1, 1) and dispatcher.breaker.state == "open"
    assert len(n8n.requests) == 4


@pytest.mark.parametrize("has_stop, calls", [
    (True, [("POST", "/api/v1/executions/exec-1/stop")]),  # 2.x
    (False, [("POST", "/api/v1/executions/exec-1/stop"), ("DELETE", "/api/v1/executions/exec-1")]),  # 1.x
], ids=["n8n 2.x stops", "n8n 1.x deletes"])
def test_cancel_stops_the_execution_and_resume_posts_to_the_wait(db, dispatcher, n8n, has_stop, calls):
    n8n.has_stop = has_stop
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    dispatcher.dispatch_due()
    before = len(n8n.requests)
    db.execute("select public.workflow_action(%s, 'cancel')", (workflow["id"],))
    assert dispatcher.dispatch_due().delivered == 1
    assert [(r["method"], r["path"]) for r in n8n.requests[before:]] == calls
    assert all(r["headers"]["X-N8N-API-KEY"] == "api-key" for r in n8n.requests[before:])
    other = make_workflow(db)
    db.execute("""insert into public.n8n_dispatches (workflow_id, kind, payload) values (%s, 'RESUME', %s)""",
               (other["id"], psycopg.types.json.Jsonb({"resumeUrl": f"{n8n.url}/webhook-waiting/42", "body": {"ok": True}})))
    dispatcher.dispatch_due()
    assert n8n.requests[-1]["path"] == "/webhook-waiting/42" and n8n.requests[-1]["json"] == {"ok": True}


@pytest.mark.parametrize("attempt, ceiling", [(1, 2), (2, 4), (5, 32), (30, 300)])
def test_backoff_is_jittered_below_an_exponential_ceiling(attempt, ceiling):
    rng = random.Random(7)
    draws = [backoff_seconds(attempt, rng=rng) for _ in range(200)]
    assert all(1 <= d <= max(ceiling, 1) for d in draws)
    assert len(set(draws)) > 50


@pytest.fixture
def race_database():
    """A database of its own: the race commits, and must see no other test's outbox rows."""
    from app.migrations import apply_migrations
    from tests.conftest import create_database, database_url_for, drop_database

    name = create_database("rexera_race")
    try:
        url = database_url_for(name)
        apply_migrations(url, seed=True)
        yield url
    finally:
        drop_database(name)


def started_workflows(url: str, count: int, client_name: str) -> list:
    """`count` payoff requests of a new client, started and committed: that many TRIGGER rows due."""
    with psycopg.connect(url, autocommit=True) as conn:
        client_id = conn.execute("insert into public.clients (name) values (%s) returning id", (client_name,)).fetchone()[0]
        workflow_ids = [conn.execute("""insert into public.workflows (workflow_type, client_id, title, payload)
                                        values ('PAYOFF_REQUEST', %s, %s, '{}') returning id""",
                                     (client_id, client_name.lower())).fetchone()[0] for _ in range(count)]
        for workflow_id in workflow_ids:
            conn.execute("select public.workflow_action(%s, 'start')", (workflow_id,))
    return workflow_ids


def test_several_dispatchers_never_deliver_twice(race_database, n8n):
    """Committed rows, real pools, three dispatchers racing."""
    settings = make_settings(race_database, n8n_base_url=n8n.url, public_base_url="http://service.test")
    workflow_ids = started_workflows(race_database, 30, "Race")
    databases = [Database(race_database, 1, 2) for _ in range(3)]
    try:
        for database in databases:
            database.open(wait=True)
        dispatchers = [Dispatcher(database, settings) for database in databases]
        threads = [threading.Thread(target=lambda d=d: [d.dispatch_due(limit=4) for _ in range(10)]) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        delivered = [r["json"]["workflowId"] for r in n8n.requests]
        assert sorted(delivered) == sorted(str(w) for w in workflow_ids)
    finally:
        for database in databases:
            database.close()


def test_a_queued_dispatch_wakes_the_listening_dispatcher(race_database):
    database = Database(race_database, 1, 1)
    listener = OutboxListener(database)
    try:
        assert listener.wait(0.1) is False  # nothing queued: times out
        with psycopg.connect(race_database, autocommit=True) as conn:
            client_id = conn.execute("insert into public.clients (name) values ('Wake') returning id").fetchone()[0]
            workflow_id = conn.execute("""insert into public.workflows (workflow_type, client_id, title, payload)
                                          values ('PAYOFF_REQUEST', %s, 'wake', '{}') returning id""", (client_id,)).fetchone()[0]
            conn.execute("select public.workflow_action(%s, 'start')", (workflow_id,))
        assert listener.wait(30) is True
    finally:
        listener.close()


def queue_resume(db, n8n):
    workflow = make_workflow(db)
    db.execute("""insert into public.n8n_dispatches (workflow_id, kind, payload) values (%s, 'RESUME', %s)""",
               (workflow["id"], psycopg.types.json.Jsonb({"resumeUrl": f"{n8n.url}/webhook-waiting/7?signature=ab12",
                                                          "body": {"kind": "payoff_statement"}})))
    return workflow


RUNNING = (409, {"code": 409, "message": "The execution \"7\" is running already."})


def test_a_resume_that_arrives_before_the_execution_is_parked_goes_through_in_the_same_attempt(db, dispatcher, n8n):
    # task.waiting is sent a moment before n8n parks the execution at its Wait node; an answer
    # that comes at once meets 409 "running already" and is asked again within milliseconds.
    workflow = queue_resume(db, n8n)
    n8n.answers = [RUNNING, RUNNING]
    report = dispatcher.dispatch_due()
    assert (report.delivered, report.retried, report.dead) == (1, 0, 0)
    assert [r["path"] for r in n8n.requests] == ["/webhook-waiting/7?signature=ab12"] * 3
    assert all(r["json"] == {"kind": "payoff_statement"} for r in n8n.requests)
    row = dispatch_row(db, workflow["id"], "RESUME")
    assert (row["status"], row["attempts"], row["last_error"]) == ("DELIVERED", 1, None)
    assert row["response"]["notParkedYet"] == 2 and row["response"]["resumed"] is True
    assert dispatcher.breaker.failures == 0


def test_a_resume_still_refused_as_running_is_retried_later_without_opening_the_circuit(db, dispatcher, n8n):
    dispatcher.PARK_WAIT_SECONDS = 0.2
    workflows = [queue_resume(db, n8n) for _ in range(4)]  # more than the breaker's threshold (3)
    n8n.status, n8n.body = RUNNING
    report = dispatcher.dispatch_due()
    assert (report.retried, report.dead, report.skipped_open_circuit) == (4, 0, False)
    assert dispatcher.breaker.state == "closed" and dispatcher.breaker.failures == 0
    for workflow in workflows:
        row = dispatch_row(db, workflow["id"], "RESUME")
        assert row["status"] == "FAILED" and "409" in row["last_error"] and "running already" in row["last_error"]
    assert len(n8n.requests) > 4  # each asked more than once before giving the attempt up


def test_a_resume_refused_as_finished_is_dead_at_once(db, dispatcher, n8n):
    workflow = queue_resume(db, n8n)
    n8n.status, n8n.body = 409, {"message": "The execution has finished already"}
    report = dispatcher.dispatch_due()
    assert (report.retried, report.dead) == (0, 1)
    assert len(n8n.requests) == 1
    assert dispatch_row(db, workflow["id"], "RESUME")["status"] == "DEAD"


def test_a_resume_goes_to_the_secret_url_and_forgets_it(db, dispatcher, n8n):
    # tasks.resume_url and the outbox hold a reference; the dispatcher alone reads the URL, at
    # delivery, and forgets it once used.
    from tests.db.factories import secret_resume_url, set_task_status, tasks_of

    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    dispatcher.dispatch_due()
    task = tasks_of(db, workflow["id"])["await_statement"]
    secret = f"{n8n.url}/webhook-waiting/55?signature={'ab' * 32}"
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": secret})
    db.execute("select public.task_action(%s, 'resume', '{}')", (task["id"],))
    payload = db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'RESUME'",
                         (workflow["id"],)).fetchone()["payload"]
    assert payload["resumeUrl"] == f"n8n-resume:{task['id']}"
    assert dispatcher.dispatch_due().delivered == 1
    assert n8n.requests[-1]["path"] == f"/webhook-waiting/55?signature={'ab' * 32}"
    assert secret_resume_url(db, task["id"]) is None


def test_n8n_answering_again_releases_every_row_waiting_out_its_backoff(db, dispatcher, n8n):
    workflows = [make_workflow(db) for _ in range(4)]
    for workflow in workflows:
        start_workflow(db, workflow["id"])
    n8n.status = 503
    assert dispatcher.dispatch_due().retried == 4  # one pass; the third failure opens the circuit
    waiting = db.execute("select count(*) as n from public.n8n_dispatches where status = 'FAILED' and next_attempt_at > now()").fetchone()
    assert waiting["n"] == 4 and dispatcher.breaker.state == "open"
    n8n.status = 200
    # The circuit is open, its cooldown (60 s) and the backoffs far off: the health probe finds n8n
    # answering, makes the four backed-off rows due and lets the trial through at once.
    report = dispatcher.dispatch_due()
    assert (report.delivered, report.released, report.skipped_open_circuit) == (1, 4, False)
    report = dispatcher.dispatch_due()
    assert report.delivered == 3
    assert db.execute("select count(*) as n from public.n8n_dispatches where status <> 'DELIVERED'").fetchone()["n"] == 0


def test_while_n8n_stays_down_the_probe_asks_at_most_once_a_second(db, dispatcher, n8n):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    for _ in range(3):
        dispatcher.breaker.failure()
    n8n.healthy = False
    reports = [dispatcher.dispatch_due() for _ in range(5)]
    assert all(r.skipped_open_circuit and r.claimed == 0 for r in reports)
    assert n8n.health_checks == 1 and n8n.requests == []


def test_a_success_without_earlier_failures_releases_nothing(db, dispatcher, n8n):
    held = make_workflow(db)
    start_workflow(db, held["id"])
    db.execute("update public.n8n_dispatches set status = 'FAILED', next_attempt_at = now() + interval '1 hour'"
               " where workflow_id = %s", (held["id"],))
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    report = dispatcher.dispatch_due()
    assert (report.delivered, report.released) == (1, 0)
    assert dispatch_row(db, held["id"])["status"] == "FAILED"


@pytest.mark.parametrize("person", ["operator", "manager", "client_admin_a", "client_user_a"])
@pytest.mark.parametrize("call", ["select public.release_n8n_dispatches()",
                                  "select * from public.claim_n8n_dispatches(10, 120, array[gen_random_uuid()])"])
def test_the_release_and_the_claim_by_id_are_the_service_s_alone(db, person, call):
    from tests.db.world import PEOPLE
    from tests.support import act_as

    act_as(db, PEOPLE[person])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.transaction():
            db.execute(call)


def test_a_claim_by_id_takes_only_those_rows_and_only_while_due(db, dispatcher):
    first, second, later = (make_workflow(db) for _ in range(3))
    for workflow in (first, second, later):
        start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set next_attempt_at = now() + interval '1 hour' where workflow_id = %s",
               (later["id"],))
    ids = [dispatch_row(db, w["id"])["id"] for w in (first, later)]
    claimed = db.execute("select * from public.claim_n8n_dispatches(10, 120, %s)", (ids,)).fetchall()
    assert [row["workflow_id"] for row in claimed] == [first["id"]]
    assert dispatch_row(db, second["id"])["status"] == "PENDING"
