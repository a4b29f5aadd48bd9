"""The database layer of the service with its real pool: the one-message read applies the
caller's role and claims as run() does, quotes what it is given, and leaves the connection
clean whatever happens."""
from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from flask import Flask, g
from psycopg.rows import dict_row

from app.auth import Principal
from app.db import Database, OutcomeUnknown
from tests.db.world import CLIENT_A, PEOPLE, row
from tests.support import terminate_backends

ROW_OF_A = "select id, client_id from public.workflows where id = %s"


def principal(name: str) -> Principal:
    person = PEOPLE[name]
    return Principal(kind="person", request_role="authenticated", claims=person.claims, user_id=person.user_id,
                     role=person.role, client_id=person.client_id)


@pytest.fixture(scope="module")
def database(database_url):
    db = Database(database_url, min_size=1, max_size=1)  # one connection: every read reuses it
    db.open(wait=True)
    yield db
    db.close()


def test_a_read_sees_what_rls_shows_the_caller(database):
    assert database.single(principal("operator"), ROW_OF_A, (row("A101"),))["client_id"] == CLIENT_A
    assert database.single(principal("client_user_a"), ROW_OF_A, (row("A101"),))["client_id"] == CLIENT_A
    assert database.single(principal("client_user_b"), ROW_OF_A, (row("A101"),)) is None


def test_a_read_runs_in_one_transaction_with_the_request_context(database):
    app = Flask(__name__)
    with app.test_request_context(headers={"User-Agent": "reader/1"}):
        g.request_id = "req-123"
        got = database.single(principal("client_user_a"), """
            select current_user as role, auth.uid() as uid, private.client_id() as client,
                   current_setting('request.headers', true)::jsonb ->> 'x-request-id' as request_id,
                   now() = statement_timestamp() as own_transaction""")
    assert got == {"role": "authenticated", "uid": PEOPLE["client_user_a"].user_id, "client": CLIENT_A,
                   "request_id": "req-123", "own_transaction": True}


@pytest.mark.parametrize("hostile", ["x'; drop table public.workflows; --", "\\'; select 1; --", "$$; commit; $$"])
def test_values_are_quoted_not_run(database, hostile):
    assert database.single(principal("operator"), "select %s::text as v", (hostile,)) == {"v": hostile}
    assert database.single(principal("operator"), "select count(*) > 0 as ok from public.workflows")["ok"] is True


def test_a_failing_read_raises_and_leaves_the_connection_idle_and_unprivileged(database):
    with pytest.raises(psycopg.errors.DivisionByZero):
        database.single(principal("operator"), "select 1 / 0 as x")
    with database.pool.connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # the role and claims were local to the failed transaction
        assert conn.execute("select current_user as u, current_setting('request.jwt.claims', true) as c").fetchone() \
            in ({"u": "postgres", "c": ""}, {"u": "postgres", "c": None})
    assert database.single(principal("client_user_b"), ROW_OF_A, (row("A101"),)) is None


def test_a_read_cannot_write(database):
    """A caller's read runs under their role: a data-changing function call is refused by RLS
    and grants like any other request, and nothing is committed."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        database.single(principal("client_user_b"), "select private.rebuild_activity_counters()")
    with database.pool.connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_list_page_and_its_total_come_in_one_statement_under_rls(database, db):
    from app.services.workflows import workflow_documents_page, workflow_page_statement

    args = {"limit": 2, "offset": 0, "include": []}
    page = workflow_documents_page(database.single(principal("client_user_b"), *workflow_page_statement(args),
                                                   all_rows=True), 2)
    expected = db.execute("select count(*) as n from public.workflows where client_id = %s",
                          (PEOPLE["client_user_b"].client_id,)).fetchone()["n"]
    assert page["total_count"] == expected > 0
    assert len(page["documents"]) == min(2, expected)
    assert {json.loads(d)["clientId"] for d in page["documents"]} == {str(PEOPLE["client_user_b"].client_id)}
    # an empty page still carries the total
    empty = workflow_documents_page(database.single(principal("client_user_b"), *workflow_page_statement(
        {**args, "offset": expected}), all_rows=True), 2)
    assert (empty["documents"], empty["total_count"], empty["has_more"]) == ([], expected, False)


@pytest.mark.parametrize("name", ["operator", "client_user_a", "client_user_b"])
def test_an_unfiltered_list_total_from_the_counters_equals_a_count_under_rls(database, db, name):
    from app.services.workflows import workflow_documents_page, workflow_page_statement

    query, params = workflow_page_statement({"limit": 1, "offset": 0, "include": []})
    assert "visible_activity" in query.as_string(db)  # the counter path, not a count
    page = workflow_documents_page(database.single(principal(name), query, params, all_rows=True), 1)
    person = PEOPLE[name]
    expected = db.execute("select count(*) as n from public.workflows where %s::uuid is null or client_id = %s",
                          (person.client_id, person.client_id)).fetchone()["n"]
    assert page["total_count"] == expected > 0


# ---- connection loss: retried when nothing can have been applied, never when it may have -----
SERVICE = Principal(kind="service", request_role="service_role", claims={"role": "service_role"})
ADMIN = Principal(kind="service", request_role="postgres", claims={"role": "postgres"})  # may end its own backend


def clients_named(db, name: str) -> int:
    return db.execute("select count(*) as n from public.clients where name = %s", (name,)).fetchone()["n"]


def kill_pooled_connection(database, db) -> None:
    terminate_backends(db, [database.single(SERVICE, "select pg_backend_pid() as pid")["pid"]])


def test_a_write_on_a_pooled_connection_that_died_is_retried_on_a_fresh_one_once(database, database_url, db):
    name = f"stale-{uuid.uuid4().hex[:8]}"
    kill_pooled_connection(database, db)
    row = database.single(SERVICE, "insert into public.clients (name) values (%s) returning name", (name,), writes=True)
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as other:
        try:
            assert row == {"name": name} and clients_named(other, name) == 1  # committed, once
        finally:
            other.execute("delete from public.clients where name = %s", (name,))


def test_a_read_on_a_pooled_connection_that_died_is_retried(database, db):
    kill_pooled_connection(database, db)
    assert database.single(principal("operator"), ROW_OF_A, (row("A101"),))["client_id"] == CLIENT_A


def test_a_write_whose_connection_is_lost_after_it_was_sent_is_not_retried(database, database_url, monkeypatch):
    name = f"lost-{uuid.uuid4().hex[:8]}"
    sent = []
    original = database.pool.connection

    def counting(*args, **kwargs):
        sent.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(database.pool, "connection", counting)
    with pytest.raises(OutcomeUnknown):
        database.single(ADMIN, "insert into public.clients (name) values (%s); select pg_terminate_backend(pg_backend_pid())",
                        (name,), writes=True)
    assert len(sent) == 1  # one attempt: a retry could have applied a change twice
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as other:
        assert clients_named(other, name) == 0  # here the backend died before COMMIT: nothing applied


def test_an_unknown_outcome_is_a_503_saying_to_read_back_first():
    from app.errors import from_database_error

    error = from_database_error(OutcomeUnknown("server closed the connection unexpectedly"))
    assert (error.status, error.code) == (503, "outcome_unknown") and "read it back" in error.message


def test_after_a_restart_every_dead_pooled_connection_is_replaced_before_the_retry(database_url, db):
    """A pool full of dead connections (the database restarted) costs one retry, not one per
    connection: the first loss tests the whole pool."""
    pool_size = 4
    database = Database(database_url, min_size=pool_size, max_size=pool_size)
    database.open(wait=True)
    try:
        with database.pool.connection() as a, database.pool.connection() as b, \
                database.pool.connection() as c, database.pool.connection() as d:
            pids = [conn.execute("select pg_backend_pid() as pid").fetchone()["pid"] for conn in (a, b, c, d)]
        terminate_backends(db, pids)
        # three attempts, four dead connections: without the pool check the third would draw a dead one too
        assert database.single(principal("operator"), ROW_OF_A, (row("A101"),))["client_id"] == CLIENT_A
    finally:
        database.close()
