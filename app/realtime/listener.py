"""The process's one LISTEN connection: turns pg_notify('rexera_events', seq) into stream rows
for the hub, and after losing the database reconnects with backoff and replays what it missed.

Why seqs can be missed and how they are found again: seq is taken when a transaction inserts
its event, but transactions commit in any order, so seq 10 may be announced after seq 11. The
listener remembers every seq it has not seen below the highest one it has (a "gap"). A gap is
either a transaction still running (its notification will come), one rolled back (never will),
or one that committed while the connection was down: on reconnect the listener reads
`seq > highest or seq in gaps`, so nothing committed during the outage is lost. Gaps older
than GAP_SECONDS are forgotten (no transaction of this service lives that long).
"""
from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg.rows import dict_row

from app.realtime.hub import EVENT_COLUMNS, StreamEvent

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "rexera_events"
# A person's profile or a client changed (deactivated, deleted, moved): sockets are checked again.
PEOPLE_CHANNEL = "rexera_people"
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 10.0
GAP_SECONDS = 300
RECENT_SEQS = 100_000  # seqs already published, so a replayed or re-announced event goes out once
CATCH_UP_BATCH = 1000


def application_name() -> str:
    """How the listener shows in pg_stat_activity: one per process, named by its pid."""
    return f"rexera-realtime-listener:{os.getpid()}"


class StreamListener:
    """A daemon thread holding one dedicated connection (not from the pool: LISTEN needs a
    session of its own, and a pooled connection would be handed to requests)."""

    def __init__(self, database_url: str, publish: Callable[[psycopg.Connection, list[StreamEvent]], None],
                 retention_hours: int, prune_interval_seconds: int,
                 recheck_people: Callable[[psycopg.Connection], None] | None = None, recheck_seconds: int = 30):
        self.database_url = database_url
        self.publish = publish
        self.recheck_people = recheck_people
        self.recheck_seconds = recheck_seconds
        self._next_recheck = time.monotonic() + recheck_seconds
        self.retention_hours = retention_hours
        self.prune_interval_seconds = prune_interval_seconds
        self.last_seq: int | None = None
        self.last_event_at: float | None = None
        self.reconnects = 0
        self.connected = threading.Event()
        self.started = False
        self._gaps: dict[int, float] = {}
        self._recent: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._next_prune = time.monotonic() + prune_interval_seconds
        self._thread = threading.Thread(target=self._run, name="rexera-realtime-listener", daemon=True)

    def start_once(self, wait_seconds: float = 5.0) -> None:
        """Start the thread if it is not running; the first caller waits (a little) for the
        connection, so the first subscriber does not miss what commits meanwhile."""
        with self._start_lock:
            if self.started:
                return
            self.started = True
            self._thread.start()
            self.connected.wait(wait_seconds)

    def stop(self) -> None:
        self._stopping.set()
        if self.started:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True, prepare_threshold=None, row_factory=dict_row,
                                     connect_timeout=5, application_name=application_name(),
                                     options="-c timezone=UTC -c statement_timeout=15000") as conn:
                    conn.execute(f"listen {NOTIFY_CHANNEL}")
                    conn.execute(f"listen {PEOPLE_CHANNEL}")
                    self._catch_up(conn)
                    # Changes to people while the connection was down were not announced here.
                    self._recheck_people(conn)
                    self.connected.set()
                    delay = BACKOFF_FIRST
                    log.info("realtime listener connected", extra={"last_event_id": self.last_seq})
                    while not self._stopping.is_set():
                        seqs = []
                        people_changed = False
                        for notify in conn.notifies(timeout=1.0, stop_after=1):
                            if notify.channel == PEOPLE_CHANNEL:
                                people_changed = True
                            elif notify.payload.isdigit():
                                seqs.append(int(notify.payload))
                        if seqs:
                            self._deliver(conn, seqs)
                        if people_changed or time.monotonic() >= self._next_recheck:
                            self._recheck_people(conn)
                        self._prune_when_due(conn)
            except psycopg.Error as error:
                log.warning("realtime listener lost the database; reconnecting", extra={"error": str(error).strip()})
            except Exception:
                log.exception("realtime listener failed; restarting it")
            if self.connected.is_set():
                self.reconnects += 1
            self.connected.clear()
            self._stopping.wait(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_MAX)

    def _catch_up(self, conn: psycopg.Connection) -> None:
        """First connection: start from the newest event. Later ones: replay what was missed."""
        if self.last_seq is None:
            self.last_seq = conn.execute("select coalesce(max(seq), 0) as seq from public.realtime_events").fetchone()["seq"]
            return
        while True:
            gaps = sorted(self._gaps)
            rows = conn.execute(
                f"select {EVENT_COLUMNS} from public.realtime_events where seq > %s or seq = any(%s)"
                f" order by seq limit {CATCH_UP_BATCH}", (self.last_seq, gaps)).fetchall()
            fresh = [row for row in rows if row["seq"] not in self._recent]
            if fresh:
                log.info("realtime listener replaying missed events", extra={"count": len(fresh)})
                self._publish_rows(conn, fresh)
            if len(rows) < CATCH_UP_BATCH:
                return

    def _deliver(self, conn: psycopg.Connection, seqs: list[int]) -> None:
        wanted = [seq for seq in seqs if seq not in self._recent]
        if wanted:
            rows = conn.execute(f"select {EVENT_COLUMNS} from public.realtime_events where seq = any(%s) order by seq",
                                (wanted,)).fetchall()
            self._publish_rows(conn, rows)

    def _publish_rows(self, conn: psycopg.Connection, rows: list[dict]) -> None:
        # Published first, recorded after: if publishing fails (the connection dropped while
        # checking visibility) the rows are still unseen and the catch-up sends them again;
        # sockets drop what they already got.
        self.publish(conn, [StreamEvent.from_row(row) for row in rows])
        now = time.monotonic()
        for row in rows:
            seq = row["seq"]
            if seq > self.last_seq:
                # Cap what one jump records, so a far jump (a restored database) stays cheap.
                for missing in range(max(self.last_seq + 1, seq - 10_000), seq):
                    self._gaps.setdefault(missing, now)
                self.last_seq = seq
            else:
                self._gaps.pop(seq, None)
            self._recent[seq] = None
        while len(self._recent) > RECENT_SEQS:
            self._recent.popitem(last=False)
        for seq in [s for s, seen in self._gaps.items() if now - seen > GAP_SECONDS]:
            del self._gaps[seq]
        self.last_event_at = now

    def _recheck_people(self, conn: psycopg.Connection) -> None:
        self._next_recheck = time.monotonic() + self.recheck_seconds
        if self.recheck_people is not None:
            self.recheck_people(conn)

    def _prune_when_due(self, conn: psycopg.Connection) -> None:
        if self.prune_interval_seconds == 0 or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.prune_interval_seconds
        try:
            deleted = conn.execute("select public.prune_realtime_events(make_interval(hours => %s)) as n",
                                   (self.retention_hours,)).fetchone()["n"]
        except psycopg.Error as error:
            if conn.broken:
                raise
            # Pruning is housekeeping: a failure (say, a lock timeout) must not stop the stream.
            log.warning("pruning realtime events failed", extra={"error": str(error).strip()})
            return
        log.info("pruned realtime events", extra={"deleted": deleted, "retention_hours": self.retention_hours})
