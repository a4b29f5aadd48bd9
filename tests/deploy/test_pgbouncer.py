"""The service behind a transaction-mode pooler, as through Supabase's pooler on port 6543.

PgBouncer of our own (tests/deploy/pgbouncer.py: pool_mode = transaction, no prepared
statements, two server connections) in front of a committed world database (the server is
another process; as tests/realtime, nothing can hide in a rolled-back transaction). The service
runs under gunicorn with DATABASE_URL = the pooler and REALTIME_DATABASE_URL = the database
itself, as the README says to deploy on Supabase.
"""
from __future__ import annotations

import base64
import concurrent.futures
import itertools
import json
import threading
import time
import uuid

import psycopg
import pytest
import requests
from psycopg import conninfo
from psycopg.rows import dict_row

from app.auth import Principal
from app.db import Database
from app.realtime.hub import Hub
from app.webhooks.signing import signed_headers, workflow_key
from tests.conftest import world_database
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE, row
from tests.deploy import pgbouncer
from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import PAYOFF, Service, as_url, service_env, stop_service
from tests.service_fixtures import CALLBACK_SECRET
from tests.support import act_as

SERVER_CONNECTIONS = 2  # PgBouncer's pool: fewer than the service's own connections
APP_CONNECTIONS = 4  # the service's pool (DB_POOL_MIN = DB_POOL_MAX)
ALTERNATING = ("client_user_a", "client_user_b", "operator")


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def direct_url():
    for url in world_database("rexera_pooled"):
        yield as_url(url)


@pytest.fixture(scope="module")
def pooler(direct_url):
    try:
        bouncer = pgbouncer.start(direct_url, pool_size=SERVER_CONNECTIONS)
    except RuntimeError as error:
        pytest.fail(str(error))
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def dbname(direct_url) -> str:
    return conninfo.conninfo_to_dict(direct_url)["dbname"]


@pytest.fixture(scope="module")
def pooled_url(pooler, dbname) -> str:
    return pooler.url(dbname)


@pytest.fixture(scope="module")
def service(pooled_url, direct_url):
    env = service_env(pooled_url, free_port(), REALTIME_DATABASE_URL=direct_url,
                      DB_POOL_MIN=str(APP_CONNECTIONS), DB_POOL_MAX=str(APP_CONNECTIONS),
                      N8N_CALLBACK_SECRET="whsec_" + base64.b64encode(CALLBACK_SECRET).decode())
    process, base = start_service(env, "wsgi:app", "pgbouncer-tests-server.log")
    try:
        yield Service(base, direct_url, process)
    finally:
        stop_service(process)


@pytest.fixture(scope="module")
def database(pooled_url):
    """The service's database layer (app/db.py) with its real pool, through the pooler."""
    db = Database(pooled_url, min_size=APP_CONNECTIONS, max_size=APP_CONNECTIONS)
    db.open(wait=True)
    yield db
    db.close()


# ---- helpers ----------------------------------------------------------------------------------
def principal(name: str) -> Principal:
    person = PEOPLE[name]
    return Principal(kind="person", request_role="authenticated", claims=person.claims, user_id=person.user_id,
                     role=person.role, client_id=person.client_id)


def direct(url: str, statement: str, params=()) -> list[dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(statement, params).fetchall()


def visible_workflows(url: str, name: str) -> set[str]:
    """The workflows RLS shows `name` on a direct connection: what every answer must equal."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        act_as(conn, PEOPLE[name])
        return {str(r["id"]) for r in conn.execute("select id from public.workflows")}


def raw_pooled(pooled_url: str) -> psycopg.Connection:
    return psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None, row_factory=dict_row)


def server_session(conn: psycopg.Connection) -> dict:
    """What a pooled server connection carries between transactions."""
    return conn.execute("""select pg_backend_pid() as pid, current_user as user_name,
                                  current_setting('role') as role,
                                  coalesce(current_setting('request.jwt.claims', true), '') as claims,
                                  coalesce(current_setting('request.headers', true), '') as headers""").fetchone()


def post_callback(service: Service, workflow_id: str, event_type: str, event_id: str, **data) -> requests.Response:
    body = json.dumps({"type": event_type, "timestamp": "2026-11-26T12:00:00Z",
                       "data": {"workflowId": workflow_id, "executionId": "exec-pooled", **data}}).encode()
    headers = {**signed_headers(workflow_key(CALLBACK_SECRET, workflow_id), event_id, body),
               "Content-Type": "application/json"}
    return requests.post(service.base + "/webhooks/n8n", data=body, headers=headers, timeout=10)


def transactions(pooler, dbname: str) -> int:
    return int(pooler.show("STATS", dbname)[0]["total_xact_count"])


# ---- the pooler is what the tests claim it is ---------------------------------------------------
def test_the_pooler_hands_one_clients_session_to_another(pooler, pooled_url, dbname):
    """Control: behind this pooler a session-level setting made by one client is there for the
    next client given the same server connection; what the service does must not rely on it."""
    assert {r["key"]: r["value"] for r in pooler.show("CONFIG")}["pool_mode"] == "transaction"
    with raw_pooled(pooled_url) as first, raw_pooled(pooled_url) as second:
        pid = first.execute("select pg_backend_pid() as pid, set_config('rexera_probe.owner', 'first', false)"
                            ).fetchone()["pid"]
        for _ in range(50):
            seen = second.execute("select pg_backend_pid() as pid,"
                                  " current_setting('rexera_probe.owner', true) as owner").fetchone()
            if seen["pid"] == pid:
                break
        assert seen == {"pid": pid, "owner": "first"}
    pooler.reconnect(dbname)


def test_the_pooler_keeps_no_prepared_statements(pooler, pooled_url, dbname):
    """Control: a client that prepares statements (psycopg's prepare_threshold=0) breaks here as
    behind Supabase's transaction pooler, so the tests below would catch a service that did."""
    failures = []
    with psycopg.connect(pooled_url, autocommit=True, prepare_threshold=0) as one, \
            psycopg.connect(pooled_url, autocommit=True, prepare_threshold=0) as other:
        for _ in range(3):
            for conn, query in ((one, "select 1 as one"), (other, "select 2 as other")):
                try:
                    conn.execute(query).fetchone()
                except (psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName) as error:
                    failures.append(type(error).__name__)
    pooler.reconnect(dbname)
    assert failures, "the two clients never met on a server connection: is the pool in transaction mode?"


# ---- app/db.py through the pooler -----------------------------------------------------------------
def test_each_request_context_is_its_own_and_leaves_nothing_on_the_server_connection(database, pooled_url, direct_url):
    """Three principals alternate over APP_CONNECTIONS client connections that share
    SERVER_CONNECTIONS server connections: every transaction sees its own role, user, client and
    settings, and after it the server connection carries no request context for the next client."""
    expected = {name: visible_workflows(direct_url, name) for name in ALTERNATING}
    assert expected["client_user_a"] and expected["client_user_b"]
    assert expected["client_user_a"].isdisjoint(expected["client_user_b"])
    read = """select current_user as role, auth.uid() as uid, private.client_id() as client,
                     current_setting('timezone') as timezone, current_setting('statement_timeout') as timeout,
                     pg_backend_pid() as pid,
                     (select coalesce(array_agg(id::text), '{}') from public.workflows) as workflows"""
    pids = set()

    def one(name: str, via_run: bool) -> dict:
        if via_run:
            got = database.run(principal(name), lambda conn: conn.execute(read).fetchone())
        else:
            got = database.single(principal(name), read)
        person = PEOPLE[name]
        assert {k: got[k] for k in ("role", "uid", "client", "timezone", "timeout")} == {
            "role": "authenticated", "uid": person.user_id, "client": person.client_id,
            "timezone": "UTC", "timeout": "15s"}, name
        assert set(got["workflows"]) == expected[name], name
        return got

    with raw_pooled(pooled_url) as bystander:
        for index, name in zip(range(30), itertools.cycle(ALTERNATING)):
            pids.add(one(name, via_run=index % 2 == 0)["pid"])
            # The next client on a server connection just released finds no request context.
            left = server_session(bystander)
            assert (left["user_name"], left["role"], left["claims"], left["headers"]) == ("postgres", "none", "", "")
        # A failed transaction is rolled back and leaves nothing either.
        with pytest.raises(psycopg.errors.DivisionByZero):
            database.single(principal("client_user_b"), "select 1 / 0 as x")
        left = server_session(bystander)
        assert (left["user_name"], left["role"], left["claims"]) == ("postgres", "none", "")

    # Concurrently: the service's connections interleave on the pooler's few server connections.
    names = [name for _, name in zip(range(90), itertools.cycle(ALTERNATING))]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda pair: one(*pair), [(n, i % 2 == 0) for i, n in enumerate(names)]))
    pids |= {r["pid"] for r in results}
    assert len(pids) <= SERVER_CONNECTIONS < APP_CONNECTIONS


# ---- the service through the pooler -------------------------------------------------------------
def test_the_api_works_through_the_pooler(service, pooler, dbname, direct_url):
    operator = PEOPLE["operator"]
    before = transactions(pooler, dbname)

    listed = service.api(operator, "GET", "/api/workflows?limit=200")
    assert listed.status_code == 200, listed.text
    assert {w["id"] for w in listed.json()["workflows"]} == visible_workflows(direct_url, "operator")

    one = service.api(operator, "GET", f"/api/workflows/{row('A101')}")
    assert one.status_code == 200, one.text
    assert (one.json()["id"], one.json()["clientId"]) == (str(row("A101")), str(CLIENT_A))

    created_id = service.create_workflow(operator, CLIENT_B)
    stored = direct(direct_url, "select client_id, status from public.workflows where id = %s", (created_id,))
    assert stored == [{"client_id": CLIENT_B, "status": "PENDING"}]
    assert service.act(operator, created_id, "start")["newStatus"] == "IN_PROGRESS"

    task = direct(direct_url, "select id, status from public.tasks where workflow_id = %s and task_key = %s",
                  (created_id, "identify_lender_contact"))[0]
    done = service.api(operator, "POST", f"/api/tasks/{task['id']}/actions",
                       json={"action": "complete", "data": {"result": {"phone": "555-0100"}}})
    assert done.status_code == 200, done.text
    assert (done.json()["previousStatus"], done.json()["newStatus"]) == (task["status"], "COMPLETED")
    assert direct(direct_url, "select status, result from public.tasks where id = %s", (task["id"],)) == [
        {"status": "COMPLETED", "result": {"phone": "555-0100"}}]

    # It all went through the pooler: each request is at least one transaction there.
    assert transactions(pooler, dbname) - before >= 6


def test_an_n8n_callback_works_through_the_pooler(service, direct_url):
    workflow_id = service.create_workflow(PEOPLE["operator"], CLIENT_A)
    service.act(PEOPLE["operator"], workflow_id, "start")
    started = post_callback(service, workflow_id, "task.started", f"evt-{uuid.uuid4()}",
                            taskKey="identify_lender_contact", attempt=1)
    assert started.status_code == 200, started.text
    event_id = f"evt-{uuid.uuid4()}"
    completed = post_callback(service, workflow_id, "task.completed", event_id, taskKey="identify_lender_contact",
                              attempt=1, output={"lender": "First Bank"}, metrics={"processingTimeMs": 900})
    assert completed.status_code == 200, completed.text
    assert completed.json()["result"]["newStatus"] == "COMPLETED"
    assert direct(direct_url, "select status, result from public.tasks where workflow_id = %s and task_key = %s",
                  (workflow_id, "identify_lender_contact")) == [{"status": "COMPLETED",
                                                                 "result": {"lender": "First Bank"}}]
    again = post_callback(service, workflow_id, "task.completed", event_id, taskKey="identify_lender_contact",
                          attempt=1, output={"lender": "First Bank"}, metrics={"processingTimeMs": 900})
    assert (again.status_code, again.headers.get("Webhook-Replay"), again.json()) == (200, "true", completed.json())
    assert direct(direct_url, "select count(*) as n from public.task_executions e join public.tasks t on t.id = e.task_id"
                              " where t.workflow_id = %s", (workflow_id,)) == [{"n": 1}]


def test_alternating_people_each_see_only_their_own_data_through_the_pooler(service, pooler, dbname, direct_url):
    """Many requests in a row and then at once, people of two clients and an operator
    alternating, each creating a workflow (a write in a transaction of several statements) and
    listing: every answer is exactly what RLS shows that person, never a 500 (such as "prepared
    statement does not exist"), never another's data; and the service's connections shared the
    pooler's few server connections."""
    own_client = {"client_user_a": CLIENT_A, "client_user_b": CLIENT_B}
    initial = {name: visible_workflows(direct_url, name) for name in ALTERNATING}
    expected = {name: set(ids) for name, ids in initial.items()}
    created = {CLIENT_A: set(), CLIENT_B: set()}
    lock = threading.Lock()
    before = transactions(pooler, dbname)

    def step(index: int, name: str, exact: bool) -> None:
        client = own_client.get(name, (CLIENT_A, CLIENT_B)[index % 2])
        body = {"type": "PAYOFF_REQUEST", "payload": PAYOFF, **({} if name in own_client else {"clientId": str(client)})}
        made = service.api(PEOPLE[name], "POST", "/api/workflows", json=body)
        assert made.status_code == 201, (name, made.text)
        assert made.json()["clientId"] == str(client)
        with lock:
            created[client].add(made.json()["id"])
            for watcher in ALTERNATING:
                if own_client.get(watcher, client) == client:
                    expected[watcher].add(made.json()["id"])
            wanted = set(expected[name])
        listed = service.api(PEOPLE[name], "GET", "/api/workflows?limit=200")
        assert listed.status_code == 200, (name, listed.text)
        page = listed.json()
        ids = {w["id"] for w in page["workflows"]}
        assert page["hasMore"] is False and page["totalCount"] == len(ids)
        if name in own_client:
            assert {w["clientId"] for w in page["workflows"]} == {str(own_client[name])}, name
            other = row("B101") if own_client[name] == CLIENT_A else row("A101")
            hidden = service.api(PEOPLE[name], "GET", f"/api/workflows/{other}")
            assert hidden.status_code == 404, (name, hidden.text)
        if exact:  # one request at a time: exactly what it should see by now
            assert ids == wanted, name
        else:  # at once: at least what it saw before, and its own new workflow
            assert initial[name] <= ids and made.json()["id"] in ids, name

    steps = list(zip(range(30), itertools.cycle(ALTERNATING)))
    for index, name in steps:
        step(index, name, exact=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: step(*pair, exact=False), steps))

    for name in ALTERNATING:
        assert visible_workflows(direct_url, name) == expected[name]
    assert visible_workflows(direct_url, "client_user_a").isdisjoint(created[CLIENT_B])
    assert visible_workflows(direct_url, "client_user_b").isdisjoint(created[CLIENT_A])
    assert transactions(pooler, dbname) - before >= 2 * 2 * len(steps)  # a create and a list per step, twice
    # The service's APP_CONNECTIONS client connections shared the pooler's few server connections.
    servers, clients = len(pooler.show("SERVERS", dbname)), len(pooler.show("CLIENTS", dbname))
    assert servers <= SERVER_CONNECTIONS < APP_CONNECTIONS <= clients


# ---- realtime: LISTEN on the direct connection ------------------------------------------------------
def test_realtime_events_reach_a_websocket_while_requests_go_through_the_pooler(service):
    operator = PEOPLE["operator"]
    sock = service.connect(operator)
    try:
        sock.subscribe("workflows")
        workflow_id = service.create_workflow(operator, CLIENT_A)
        service.act(operator, workflow_id, "start")
        events = sock.events_until(lambda got: any(e.get("workflowId") == workflow_id and e.get("status") == "IN_PROGRESS"
                                                   for e in got), timeout=10)
        statuses = [e["status"] for e in events if e.get("workflowId") == workflow_id]
        assert statuses and statuses[-1] == "IN_PROGRESS", events
        health = service.health()
        assert (health["status"], health["listening"]) == ("ok", True)
    finally:
        sock.close()


# ---- what LISTEN through the pooler would do ------------------------------------------------------
def emit_event(direct_url: str) -> int:
    """Commit a change that writes a stream event (and its pg_notify); its seq."""
    with psycopg.connect(direct_url, autocommit=True) as conn:
        conn.execute("update public.workflows set total_tasks = total_tasks + 1 where id = %s", (row("A102"),))
        return conn.execute("select max(seq) from public.realtime_events").fetchone()[0]


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def collecting_hub(url: str) -> tuple[Hub, list[int], threading.Event]:
    hub = Hub(url, retention_hours=72, prune_interval_seconds=0)
    seqs: list[int] = []
    arrived = threading.Event()

    def publish(conn, events):
        seqs.extend(event.seq for event in events)
        arrived.set()

    hub.listener.publish = publish
    return hub, seqs, arrived


def test_the_realtime_listener_pointed_at_pgbouncer_never_connects_and_health_says_down(pooled_url, pooler):
    """REALTIME_DATABASE_URL unset with DATABASE_URL the pooler: the listener's connection
    (with its startup options) is refused by PgBouncer, and /api/health/realtime says down."""
    hub, _, _ = collecting_hub(pooled_url)
    hub.listener.start_once(wait_seconds=1.0)  # what the first WebSocket does (it waits up to 5 s)
    try:
        assert wait_until(lambda: "unsupported startup parameter: options" in pooler.log, timeout=5)
        assert not hub.listener.connected.is_set()
        health = hub.health()
        assert (health["status"], health["listening"], health["message"]) == ("down", False,
                                                                              "reconnecting to the database")
    finally:
        hub.stop()


def test_listen_through_a_pooler_that_lets_it_connect_loses_every_event_while_health_says_listening(direct_url):
    """Where the pooler lets the listener in (PgBouncer told to ignore `options`; a pooler that
    accepts them alike), LISTEN runs on a server connection that goes back to the pool at once:
    PostgreSQL's notifications reach a connection no client holds and are dropped, yet the
    listener counts as connected and health says ok. The same listener on the direct URL gets
    the event (control). Hence REALTIME_DATABASE_URL must be direct or a session pooler."""
    lenient = pgbouncer.start(direct_url, pool_size=SERVER_CONNECTIONS, extra="ignore_startup_parameters = options\n")
    try:
        pooled_hub, pooled_seqs, _ = collecting_hub(lenient.url(conninfo.conninfo_to_dict(direct_url)["dbname"]))
        direct_hub, direct_seqs, direct_arrived = collecting_hub(direct_url)
        pooled_hub.start()
        direct_hub.start()
        try:
            assert wait_until(lambda: pooled_hub.listener.connected.is_set() and direct_hub.listener.connected.is_set(),
                              timeout=10)
            seq = emit_event(direct_url)
            assert direct_arrived.wait(10) and seq in direct_seqs
            assert not wait_until(lambda: seq in pooled_seqs, timeout=3)
            health = pooled_hub.health()
            assert (health["status"], health["listening"]) == ("ok", True)
            assert wait_until(lambda: "from server when not linked" in lenient.log, timeout=3)
        finally:
            pooled_hub.stop()
            direct_hub.stop()
    finally:
        lenient.stop()
