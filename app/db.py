"""The connection pool and the per-request transaction that applies the caller's role and
claims exactly as PostgREST does, so RLS decides what every query sees."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
from flask import Flask, g, has_request_context, request
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from app.auth import Principal

log = logging.getLogger(__name__)
T = TypeVar("T")

APPLY_REQUEST_CONTEXT = """
select set_config('role', %s, true),
       set_config('request.jwt.claims', %s, true),
       set_config('request.headers', %s, true)
"""
# Run first in every person's transaction: a token whose person is deactivated, deleted, or no
# longer holds the role or client it claims is refused (SQLSTATE 28000, answered 401) by every
# endpoint alike. The answer is kept for the transaction, so the policies after reuse it.
REQUIRE_CURRENT_PERSON = "select private.require_current_person()"
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


class OutcomeUnknown(psycopg.OperationalError):
    """The connection was lost after COMMIT was sent: the change may or may not have been
    applied, so it is never retried blindly (a create would be written twice); the caller reads
    it back."""
# A pooled connection that died (the database restarted) fails on first use; the pool drops it
# and the unit of work is retried on a fresh one.
RECONNECTABLE = (psycopg.OperationalError,)


class PooledConnection(psycopg.Connection):
    """The pool's connections, with what every request's transaction reuses on its connection:
    libpq's quoting, a cursor for the statement and one that quotes its parameters."""

    _reused: tuple[psycopg.pq.Escaping, psycopg.Cursor, psycopg.ClientCursor] | None = None
    # The session settings every transaction sets for itself (set_config(..., true) in its BEGIN
    # message; Database fills this in): behind a transaction pooler (Supabase's on port 6543,
    # PgBouncer) startup options are refused ("unsupported startup parameter: options"), and a
    # server connection's session settings are whatever its previous client left there.
    local_settings: bytes = b""

    def reused(self) -> tuple[psycopg.pq.Escaping, psycopg.Cursor, psycopg.ClientCursor]:
        if self._reused is None:
            self._reused = (psycopg.pq.Escaping(self.pgconn), self.cursor(), psycopg.ClientCursor(self))
        return self._reused

    def begin_as(self, principal: Principal) -> bytes:
        """BEGIN and the request context (role, claims, headers) as one text for the simple
        query protocol, the values quoted by libpq: two statements, and for a person a third
        that refuses them unless they still count (REQUIRE_CURRENT_PERSON)."""
        quote = self.reused()[0].escape_literal
        begin = (b"begin; select set_config('role', " + quote(principal.request_role.encode())
                 + b", true), set_config('request.jwt.claims', " + quote(json.dumps(principal.claims).encode())
                 + b", true), set_config('request.headers', " + quote(request_headers_json().encode()) + b", true)"
                 + self.local_settings)
        return begin + b"; " + REQUIRE_CURRENT_PERSON.encode() if principal.kind == "person" else begin


class Database:
    observe: Callable[[float], None] | None = None  # set by observability: transaction durations

    def __init__(self, url: str, min_size: int = 2, max_size: int = 10, statement_timeout_ms: int = 15000,
                 prepare_threshold: int | None = None):
        # Per transaction, not as startup options (see PooledConnection.local_settings). UTC:
        # timestamps render the same from SQL-built and Python-built documents.
        local_settings = (f", set_config('statement_timeout', '{int(statement_timeout_ms)}', true),"
                          " set_config('timezone', 'UTC', true)").encode()

        def configure(conn: PooledConnection) -> None:
            conn.local_settings = local_settings

        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            connection_class=PooledConnection,
            configure=configure,
            open=False,
            name="rexera",
            timeout=10,
            kwargs={
                # Transactions are begun and ended explicitly (see transaction()).
                "autocommit": True,
                # None by default: Supabase's transaction pooler (port 6543) cannot keep prepared statements.
                "prepare_threshold": prepare_threshold,
                "row_factory": dict_row,
            },
        )

    def open(self, wait: bool = False) -> None:
        self.pool.open(wait=wait, timeout=10)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self, principal: Principal, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """One transaction acting as `principal`: committed on success, rolled back on error.
        `timeout`: seconds to wait for a pooled connection (the pool's default otherwise).

        Three round trips for a one-query request: BEGIN with the role and claims, the query,
        COMMIT. Savepoints (conn.transaction()) work inside."""
        with self.pool.connection(timeout=timeout) as conn:
            # Several statements in one round trip: never a prepared statement.
            conn.execute(conn.begin_as(principal), prepare=False)
            try:
                yield conn
            except BaseException:
                if not conn.broken:
                    conn.execute("rollback")
                raise
            try:
                conn.execute("commit")
            except psycopg.OperationalError as error:
                if not conn.broken:
                    raise
                raise OutcomeUnknown(str(error)) from error

    def run(self, principal: Principal, work: Callable[[psycopg.Connection], T], attempts: int = 3) -> T:
        """Run `work` in a transaction as `principal`, retrying serialization failures and
        deadlocks with a short backoff."""
        def attempt_work() -> T:
            with self.transaction(principal) as conn:
                return work(conn)

        return self._retrying(attempt_work, attempts)

    def single(self, principal: Principal, query: str | sql.Composable, params: tuple | list | dict = (), *,
               all_rows: bool = False, writes: bool = False, idempotent: bool = False) -> dict | list[dict] | None:
        """The first row of one statement run as `principal` in a transaction of its own, in one
        round trip: BEGIN with the role and claims, the statement and COMMIT go to PostgreSQL as
        one message (the simple query protocol: the context quoted by libpq, the statement's
        parameters by psycopg), instead of three. Same transaction, same RLS, same errors and retries as
        run(). For a read, or a call to one SQL function that makes the whole change. Returns
        the first row, or every row with all_rows.

        writes: the statement changes data. Then BEGIN goes first on its own (two round trips):
        a pooled connection that died (the database restarted) fails there, before anything was
        sent, and the call is retried on a fresh one; a connection lost once the statement and
        COMMIT are on their way raises OutcomeUnknown instead of running the change twice. A
        read is retried whenever its connection is lost.

        idempotent: a write that is the same done twice as once (an n8n callback, kept exactly
        once by its receipt): one round trip, and retried like a read."""
        def attempt() -> dict | None:
            with self.pool.connection() as conn:
                _, cursor, quoting = conn.reused()
                begin = conn.begin_as(principal)
                statement = quoting.mogrify(query, params).encode()
                try:
                    if writes and not idempotent:
                        cursor.execute(begin, prepare=False)
                        try:
                            cursor.execute(statement + b"; commit", prepare=False)
                        except psycopg.OperationalError as error:
                            if conn.broken:
                                raise OutcomeUnknown(str(error)) from error
                            raise
                    else:
                        cursor.execute(begin + b"; " + statement + b"; commit", prepare=False)
                        cursor.nextset()  # past BEGIN
                        cursor.nextset()  # past the request context
                        if principal.kind == "person":
                            cursor.nextset()  # past the person check
                except BaseException:
                    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.execute("rollback")
                    raise
                return cursor.fetchall() if all_rows else cursor.fetchone()

        return self._retrying(attempt, 3)

    def check_pool(self) -> None:
        """Test every idle pooled connection now, replacing the dead ones (after a restart)."""
        try:
            self.pool.check()
        except Exception:  # noqa: BLE001 (best effort: the retry reports what still fails)
            log.warning("checking the pool's connections failed", exc_info=True)

    def _retrying(self, attempt_work: Callable[[], T], attempts: int) -> T:
        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            try:
                return attempt_work()
            except RETRYABLE:
                if attempt == attempts:
                    raise
                log.info("retrying after a serialization failure (attempt %s)", attempt)
                time.sleep(0.01 * 2 ** attempt)
            except RECONNECTABLE as error:
                if attempt == attempts or isinstance(error, OutcomeUnknown) or not _is_connection_loss(error):
                    raise
                log.warning("retrying on a fresh connection after losing one (attempt %s)", attempt)
                # One dead connection means the others idle in the pool likely died with it (the
                # database restarted): test them all now, so the retry does not draw another.
                self.check_pool()
            finally:
                if self.observe is not None:
                    self.observe(time.perf_counter() - started)
        raise AssertionError("unreachable")


def switch_principal(conn: psycopg.Connection, principal: Principal) -> None:
    """From here to the end of the transaction, act as `principal` (its role and claims): how
    a request made for a person takes the service path for the part only the service may do,
    in the same transaction, so the whole request is still one unit."""
    conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                 (principal.request_role, json.dumps(principal.claims)))


def _is_connection_loss(error: psycopg.OperationalError) -> bool:
    """True when the connection itself failed (not, say, a statement timeout)."""
    return isinstance(error, (psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow)) or error.sqlstate is None


def request_headers_json() -> str:
    """The request context the audit trigger records (request id, client address, user agent),
    with what PostgreSQL cannot store in text (NUL, other control characters) left out."""
    if not has_request_context():
        return "{}"
    return json.dumps({
        "x-request-id": g.get("request_id"),
        "x-forwarded-for": request.remote_addr,
        "user-agent": "".join(c for c in (request.user_agent.string or "")[:300] if c.isprintable()),
    })


def init_app(app: Flask, database: Database | None = None) -> None:
    if database is None:
        settings = app.config["SETTINGS"]
        database = Database(settings.database_url, settings.db_pool_min, settings.db_pool_max,
                            prepare_threshold=settings.db_prepare_threshold)
        database.open()
    app.extensions["database"] = database


def get_db() -> Database:
    from flask import current_app

    return current_app.extensions["database"]
