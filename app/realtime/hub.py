"""Fan-out of stream events to this process's sockets. The database decides who may read each
event: once per batch and audience, under that audience's own role and claims, so a socket
receives exactly what RLS lets its caller read from public.realtime_events."""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable

import psycopg
from psycopg import sql

from app import audience
from app.auth import Principal
from app.realtime.channels import channels_of

log = logging.getLogger(__name__)

EVENT_COLUMNS = "seq, event_type, workflow_id, task_id, recipient_id, payload"


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    """One row of public.realtime_events. `text` is the whole event (what HIL people receive);
    a socket is sent `text_for(its principal)`: the event with only the fields that kind of
    caller sees (app/audience.py), made once per kind and event."""

    seq: int
    event_type: str
    workflow_id: object
    task_id: object
    recipient_id: object
    text: str
    body: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    _texts: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict) -> "StreamEvent":
        body = {"id": row["seq"], **row["payload"]}
        text = json.dumps(body, separators=(",", ":"))
        return cls(row["seq"], row["event_type"], row["workflow_id"], row["task_id"], row["recipient_id"], text, body)

    def text_for(self, principal: Principal) -> str:
        """The only text of this event a socket is sent, live or replayed: its fields as the
        principal's kind of caller may see them."""
        kind = audience.kind_of(principal)
        if kind in audience.SEES_EVERYTHING:
            return self.text
        text = self._texts.get(kind)
        if text is None:
            text = self._texts[kind] = json.dumps(audience.shape_event(self.body, kind), separators=(",", ":"))
        return text


def audience_key(principal: Principal, event_type: str) -> tuple:
    """Callers with equal keys read the same rows of public.realtime_events: its policies read
    only the request role and app_metadata, plus auth.uid() for notifications. (A test compares
    socket and REST for every kind of caller, so a policy reading more would show there.)"""
    key = (principal.request_role, json.dumps(principal.claims.get("app_metadata") or {}, sort_keys=True))
    return key + (str(principal.claims.get("sub")),) if event_type == "hil_notification" else key


# One round trip per audience: BEGIN, the audience's role and claims, the RLS-filtered read,
# ROLLBACK (simple query protocol, values quoted by psycopg).
READABLE_AS = sql.SQL(
    "begin; select set_config('role', {role}, true), set_config('request.jwt.claims', {claims}, true);"
    " select seq from public.realtime_events where seq = any({seqs}::bigint[]); rollback")


def readable_seqs(conn: psycopg.Connection, principal: Principal, seqs: list[int]) -> set[int]:
    """The events among `seqs` that `principal` may read, asked of the database under its claims."""
    query = READABLE_AS.format(role=principal.request_role, claims=json.dumps(principal.claims), seqs=seqs)
    return {row["seq"] for row in rows_of(conn, query, "seq")}


def rows_of(conn: psycopg.Connection, script: sql.Composable, first_column: str) -> list[dict]:
    """Run a script of several statements in one round trip (simple query protocol: BEGIN, a
    caller's role and claims, reads, ROLLBACK) and return the rows of the results whose first
    column is `first_column`; on an error the transaction is rolled back."""
    try:
        cursor = conn.execute(script, prepare=False)
    except psycopg.Error:
        if not conn.broken:
            conn.execute("rollback")
        raise
    rows: list[dict] = []
    while True:
        if cursor.description is not None and cursor.description[0].name == first_column:
            rows.extend(cursor.fetchall())
        if not cursor.nextset():
            return rows


class Subscriber:
    """One socket's side of the hub: its channels and a bounded outbox the hub never waits on."""

    def __init__(self, principal: Principal, queue_size: int):
        self.principal = principal
        self.channels: set[str] = set()
        self.queue_size = queue_size
        self.dropped_reason: str | None = None
        self.going_away = False  # the process is stopping: close with 1001
        self.revoked_reason: str | None = None  # the person no longer counts: close with 4003
        self._outbox: collections.deque[StreamEvent] = collections.deque()
        self._ready = threading.Condition()
        self._pending = False

    def offer(self, event: StreamEvent) -> bool:
        """Queue an event; False (and the subscriber marked dropped) when the outbox is full."""
        with self._ready:
            if self.dropped_reason is not None:
                return False
            if len(self._outbox) >= self.queue_size:
                self.dropped_reason = f"too slow: {self.queue_size} events waiting"
                self._outbox.clear()
                accepted = False
            else:
                self._outbox.append(event)
                accepted = True
            self._pending = True
            self._ready.notify()
        return accepted

    def wake(self) -> None:
        with self._ready:
            self._pending = True
            self._ready.notify()

    def wait(self, timeout: float) -> None:
        """Until an event is queued, a message arrives or `timeout` seconds pass."""
        with self._ready:
            if not self._pending:
                self._ready.wait(timeout)
            self._pending = False

    def take(self) -> list[StreamEvent]:
        with self._ready:
            events = list(self._outbox)
            self._outbox.clear()
        return events


class Hub:
    """The subscribers of this process, indexed by channel, fed by one StreamListener."""

    def __init__(self, database_url: str, retention_hours: int, prune_interval_seconds: int, gauge=None,
                 person_recheck_seconds: int = 30, gate=None):
        from app.realtime.listener import StreamListener

        self.gate = gate  # the sockets' connect and subscribe checks (app.realtime.gate)
        self._lock = threading.Lock()
        self._routes: dict[str, set[Subscriber]] = collections.defaultdict(set)
        self._subscribers: set[Subscriber] = set()
        self._gauge = gauge
        self.dropped_slow = 0
        self.delivered = 0
        self.revoked = 0
        self.listener = StreamListener(database_url, self.publish, retention_hours, prune_interval_seconds,
                                       recheck_people=self.recheck_people, recheck_seconds=person_recheck_seconds)

    def start(self) -> None:
        self.listener.start_once()

    def stop(self) -> None:
        self.listener.stop()

    def going_away(self) -> None:
        """The process is stopping: every session closes with 1001 at once, instead of holding
        the worker until its graceful timeout and being cut; clients reconnect (to another
        worker) and resume with since."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.going_away = True
            subscriber.wake()

    def attach(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.add(subscriber)
        if self._gauge is not None:
            self._gauge.inc()

    def detach(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber not in self._subscribers:
                return
            self._subscribers.discard(subscriber)
            for channel in subscriber.channels:
                self._unroute_locked(subscriber, channel)
        if self._gauge is not None:
            self._gauge.dec()

    def route(self, subscriber: Subscriber, channel: str) -> None:
        with self._lock:
            subscriber.channels.add(channel)
            self._routes[channel].add(subscriber)

    def unroute(self, subscriber: Subscriber, channel: str) -> None:
        with self._lock:
            subscriber.channels.discard(channel)
            self._unroute_locked(subscriber, channel)

    def _unroute_locked(self, subscriber: Subscriber, channel: str) -> None:
        routed = self._routes.get(channel)
        if routed is not None:
            routed.discard(subscriber)
            if not routed:
                del self._routes[channel]

    def publish(self, conn: psycopg.Connection, events: Iterable[StreamEvent]) -> None:
        """Deliver a batch (in seq order) to every subscriber whose channels carry an event and
        whose audience may read it. Runs on the listener thread; never blocks on a socket."""
        audiences: dict[tuple, tuple[Principal, list[tuple[Subscriber, StreamEvent]]]] = {}
        with self._lock:
            for event in events:
                candidates: set[Subscriber] = set()
                for channel in channels_of(event.event_type, event.workflow_id, event.task_id):
                    candidates.update(self._routes.get(channel, ()))
                for subscriber in candidates:
                    principal = subscriber.principal
                    if event.event_type == "hil_notification" and str(principal.user_id) != str(event.recipient_id):
                        continue
                    key = audience_key(principal, event.event_type)
                    audiences.setdefault(key, (principal, []))[1].append((subscriber, event))
        deliveries: dict[Subscriber, list[StreamEvent]] = collections.defaultdict(list)
        for principal, pairs in audiences.values():
            readable = readable_seqs(conn, principal, sorted({event.seq for _, event in pairs}))
            for subscriber, event in pairs:
                if event.seq in readable:
                    deliveries[subscriber].append(event)
        for subscriber, batch in deliveries.items():
            batch.sort(key=lambda event: event.seq)
            for event in batch:
                if not subscriber.offer(event):
                    self.dropped_slow += 1
                    log.warning("dropping a slow WebSocket subscriber", extra={"reason": subscriber.dropped_reason})
                    self.detach(subscriber)
                    break
                self.delivered += 1

    def recheck_people(self, conn: psycopg.Connection) -> None:
        """Ask the database whether each person on a socket still counts (active, the role and
        client their token claims, an active client); a socket of one who does not is told
        so and closed. Runs on the listener thread: on a change the database announces, every
        realtime_person_recheck_seconds, and after reconnecting."""
        with self._lock:
            people = [s for s in self._subscribers if s.principal.kind == "person" and s.revoked_reason is None]
        if not people:
            return
        pairs = {(str(s.principal.user_id), json.dumps(s.principal.claims.get("app_metadata") or {}, sort_keys=True))
                 for s in people}
        rows = conn.execute(
            "select p.sub, p.meta from jsonb_to_recordset(%s::jsonb) as p(sub uuid, meta text)"
            " where not private.person_is_current(p.sub, p.meta::jsonb)",
            (json.dumps([{"sub": sub, "meta": meta} for sub, meta in pairs]),)).fetchall()
        gone = {(str(row["sub"]), row["meta"]) for row in rows}
        for subscriber in people:
            key = (str(subscriber.principal.user_id),
                   json.dumps(subscriber.principal.claims.get("app_metadata") or {}, sort_keys=True))
            if key in gone:
                subscriber.revoked_reason = ("this person no longer has access (deactivated, deleted, or their role or "
                                             "client changed)")
                self.revoked += 1
                subscriber.wake()

    def health(self) -> dict:
        listener = self.listener
        with self._lock:
            subscribers = len(self._subscribers)
        figures = {"subscribers": subscribers, "lastEventId": listener.last_seq, "reconnects": listener.reconnects,
                   "droppedSlowConsumers": self.dropped_slow, "delivered": self.delivered,
                   "closedForRevokedAccess": self.revoked}
        if self.gate is not None:
            figures["gate"] = {"batches": self.gate.batches, "questions": self.gate.questions,
                               "largestBatch": self.gate.largest_batch}
        if not listener.started:
            return {"status": "ok", "listening": False, "message": "the listener starts with the first WebSocket",
                    **figures}
        if not listener.connected.is_set():
            return {"status": "down", "listening": False, "message": "reconnecting to the database", **figures}
        return {"status": "ok", "listening": True,
                "lastEventAgeSeconds": round(time.monotonic() - listener.last_event_at, 1)
                if listener.last_event_at else None, **figures}
