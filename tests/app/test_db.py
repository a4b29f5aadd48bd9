"""The database layer of the service with its real pool: the one-message read applies the
caller's role and claims as run() does, quotes what it is given, and leaves the connection
clean whatever happens."""
from __future__ import annotations

import psycopg
import pytest
from flask import Flask, g

from app.auth import Principal
from app.db import Database
from tests.db.world import CLIENT_A, PEOPLE, row

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
    assert all(f'"clientId": "{PEOPLE["client_user_b"].client_id}"' in d for d in page["documents"])
    # an empty page still carries the total
    empty = workflow_documents_page(database.single(principal("client_user_b"), *workflow_page_statement(
        {**args, "offset": expected}), all_rows=True), 2)
    assert (empty["documents"], empty["total_count"], empty["has_more"]) == ([], expected, False)
