"""What the database holds, to assert that a refused request wrote nothing."""
from __future__ import annotations

from psycopg import sql

# Every table of the public and auth schemas (business rows, receipts, outbox, audit, users).
TABLES = """select table_schema, table_name from information_schema.tables
            where table_schema in ('public', 'auth') and table_type = 'BASE TABLE'
            order by 1, 2"""


def fingerprint(conn) -> dict[str, tuple[int, str]]:
    """Row count and an md5 of the contents of every table: equal before and after means
    nothing was inserted, updated or deleted."""
    tables = conn.execute(TABLES).fetchall()
    parts = [sql.SQL("select {name} as t, count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h"
                     " from {table} x").format(name=sql.Literal(f"{t['table_schema']}.{t['table_name']}"),
                                               table=sql.Identifier(t["table_schema"], t["table_name"]))
             for t in tables]
    rows = conn.execute(sql.SQL(" union all ").join(parts)).fetchall()
    return {r["t"]: (r["n"], r["h"]) for r in rows}


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


ERROR_KEYS = {"code", "message", "details", "requestId"}


def assert_refused(response, status: int | tuple[int, ...] | None = None) -> dict:
    """A 4xx in the one error shape; returns the error."""
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    if status is not None:
        assert response.status_code in (status if isinstance(status, tuple) else (status,)), response.data[:300]
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, response.data[:300]
    assert set(body["error"]) == ERROR_KEYS and isinstance(body["error"]["code"], str)
    return body["error"]
