"""Filtered, paged reads shared by the list endpoints: keyset cursors on the list's order
(newest first: created_at, id)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict

import psycopg
from psycopg import sql

from app.errors import ApiError
from app.schemas import decode_cursor, encode_cursor


@dataclasses.dataclass(frozen=True)
class Order:
    """A list's order: the columns (with the kind of value each holds, for the cursor) and the
    direction. The cursor is the keyset of the page's last row."""

    columns: tuple[str, ...]
    kinds: tuple[type, ...]
    descending: bool = True


NEWEST_FIRST = Order(("created_at", "id"), (dt.datetime, uuid.UUID))


class BadCursor(ApiError):
    """The cursor was not made by this service."""

    def __init__(self, message: str):
        super().__init__(400, message, "invalid_cursor")


@dataclasses.dataclass
class Filters:
    """AND-ed conditions (SQL fragments with %s placeholders) and their parameters."""

    clauses: list[sql.Composable] = dataclasses.field(default_factory=list)
    params: list = dataclasses.field(default_factory=list)

    def add(self, clause: str, *params) -> None:
        self.clauses.append(sql.SQL(clause))
        self.params.extend(params)

    def where(self) -> sql.Composable:
        return sql.SQL(" where ") + sql.SQL(" and ").join(self.clauses) if self.clauses else sql.SQL("")


def page_statement(table: str, alias: str, filters: Filters, *, limit: int, offset: int, cursor: str | None,
                   select: str | None = None, total: str | None = None,
                   order: Order = NEWEST_FIRST) -> tuple[sql.Composed, list]:
    """One statement for one page of `table` in `order` (newest first by default) under
    `filters` and their total: the count (always one row) joined to the page rows, so a list
    costs one query. `select` must include the order's columns. `total`: a query answering the
    total as page_total_count without counting rows (a kept counter), used when there are no
    filters. Read the result with page_from_rows()."""
    base = sql.SQL("from public.{} {}").format(sql.Identifier(table), sql.Identifier(alias))
    page_filters = Filters(list(filters.clauses), list(filters.params))
    keyset = ", ".join(f"{alias}.{column}" for column in order.columns)
    direction = "desc" if order.descending else "asc"
    if cursor:
        try:
            after = decode_cursor(cursor, order.kinds)
        except ValueError as error:
            raise BadCursor(str(error)) from error
        marks = ", ".join(["%s"] * len(after))
        page_filters.add(f"({keyset}) {'<' if order.descending else '>'} ({marks})", *after)
    columns = sql.SQL(select or f"{alias}.*")
    counted = (sql.SQL(total) if total is not None and not filters.clauses
               else sql.SQL("select count(*) as page_total_count ") + base + filters.where())
    query = (sql.SQL("select c.page_total_count, p.* from (") + counted
             + sql.SQL(") c left join lateral (select ") + columns + sql.SQL(" ") + base + page_filters.where()
             + sql.SQL(f" order by {', '.join(f'{alias}.{c} {direction}' for c in order.columns)}"
                       f" limit %s offset %s) p on true"
                       f" order by {', '.join(f'p.{c} {direction}' for c in order.columns)}"))
    count_params = [] if total is not None and not filters.clauses else filters.params
    return query, [*count_params, *page_filters.params, limit + 1, offset]


def page_from_rows(rows: list[dict], limit: int, order: Order = NEWEST_FIRST) -> dict:
    """The page, total and next cursor from the rows of page_statement()."""
    total = rows[0]["page_total_count"]
    rows = [row for row in rows if row["id"] is not None]  # an empty page is one row of nulls
    for row in rows:
        del row["page_total_count"]
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1][column] for column in order.columns]) if has_more and rows else None
    return {"rows": rows, "total_count": total, "has_more": has_more, "next_cursor": next_cursor}


def fetch_page(conn: psycopg.Connection, table: str, alias: str, filters: Filters, *, limit: int, offset: int,
               cursor: str | None, select: str | None = None, order: Order = NEWEST_FIRST) -> dict:
    """One page of `table` in `order` under `filters`, with the total and the next cursor."""
    query, params = page_statement(table, alias, filters, limit=limit, offset=offset, cursor=cursor, select=select,
                                   order=order)
    return page_from_rows(conn.execute(query, params).fetchall(), limit, order)


def attach_collection(conn: psycopg.Connection, rows: list[dict], name: str, query: str, foreign_key: str) -> None:
    """rows[i][name] = the related rows whose `foreign_key` is rows[i]["id"] (one query for all;
    `query` takes the list of ids as its one parameter)."""
    grouped: dict[uuid.UUID, list[dict]] = defaultdict(list)
    for related in conn.execute(query, ([row["id"] for row in rows],)):
        grouped[related[foreign_key]].append(related)
    for row in rows:
        row[name] = grouped[row["id"]]
