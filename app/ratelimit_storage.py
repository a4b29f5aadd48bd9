"""Rate-limit budgets in PostgreSQL (storage URI `rexera+postgresql://`), for deployments
without Redis: one deployment, one budget, whatever the number of workers and instances.

A storage for the limits library (which flask-limiter drives) supporting its sliding window
counter strategy: each hit is one call of `private.take_rate_limit` (the arithmetic is there,
supabase/migrations/20261207000100_rate_limits.sql), through the service's own pool. The counts
a hit returns are kept for the rest of the request, so the X-RateLimit headers cost no second
round trip.
"""
from __future__ import annotations

import threading
import time

import psycopg
from limits.storage import SlidingWindowCounterSupport, Storage

from app.auth import Principal

SERVICE = Principal.service("rate-limits")
TAKE = "select * from private.take_rate_limit(%s, %s, %s, %s)"
RECENT_SECONDS = 1.0  # how long the counts of a hit answer a read of the same key


class PostgresStorage(Storage, SlidingWindowCounterSupport):
    STORAGE_SCHEME = ["rexera+postgresql"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, database=None, **_options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.database = database
        self._recent = threading.local()  # a greenlet's own under gevent

    @property
    def base_exceptions(self):
        return psycopg.Error

    def _take(self, key: str, expiry: int, limit: int, amount: int) -> dict:
        row = self.database.single(SERVICE, TAKE, (key, int(expiry), int(limit), int(amount)), idempotent=True)
        self._recent.seen = (key, time.monotonic(), row)
        return row

    # -- sliding window counter --------------------------------------------------------------
    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return bool(self._take(key, expiry, limit, amount)["allowed"])

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        seen = getattr(self._recent, "seen", None)
        if seen is not None and seen[0] == key and time.monotonic() - seen[1] < RECENT_SECONDS:
            row = seen[2]
        else:
            row = self._take(key, expiry, 2**31 - 1, 0)
        return row["previous_hits"], row["previous_ttl"], row["current_hits"], row["current_ttl"]

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        self.clear(key)

    # -- what every storage offers (fixed windows are not used with this storage) ------------
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._take(key, expiry, 2**31 - 1, amount)["current_hits"]

    def get(self, key: str) -> int:
        raise NotImplementedError("the PostgreSQL storage keeps sliding windows only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("the PostgreSQL storage keeps sliding windows only")

    def check(self) -> bool:
        try:
            self.database.single(SERVICE, "select 1 as ok")
            return True
        except psycopg.Error:
            return False

    def reset(self) -> int | None:
        return self.clear_prefix("")

    def clear(self, key: str) -> None:
        self.clear_prefix(key)

    def clear_prefix(self, prefix: str) -> int:
        row = self.database.single(SERVICE, "select private.reset_rate_limits(%s) as n", (prefix,), writes=True)
        return row["n"]
