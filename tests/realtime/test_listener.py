"""The LISTEN connection on its own: events committed out of seq order while the connection is
down are found again on reconnect, once each."""
from __future__ import annotations

import threading
import time

import psycopg

from app.realtime.listener import StreamListener, application_name
from tests.db.world import row

UPDATE = "update public.workflows set total_tasks = total_tasks + 1 where id = %s"
SEQ = "select currval(pg_get_serial_sequence('public.realtime_events', 'seq'))"


class Collector:
    def __init__(self):
        self.seqs: list[int] = []
        self.changed = threading.Condition()

    def publish(self, conn, events) -> None:
        with self.changed:
            self.seqs.extend(event.seq for event in events)
            self.changed.notify_all()

    def wait_for(self, seqs: set[int], timeout: float = 15) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: seqs <= set(self.seqs), timeout)


def wait_until(condition, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_an_older_seq_committed_while_disconnected_is_replayed_once(realtime_database):
    collector = Collector()
    listener = StreamListener(realtime_database, collector.publish, retention_hours=72, prune_interval_seconds=0)
    listener.start_once()
    try:
        assert listener.connected.wait(10)
        with psycopg.connect(realtime_database) as early, psycopg.connect(realtime_database, autocommit=True) as other:
            early.execute(UPDATE, (row("A102"),))  # takes a seq, commits last
            older = early.execute(SEQ).fetchone()[0]
            with other.transaction():
                other.execute(UPDATE, (row("B102"),))
                newer = other.execute(SEQ).fetchone()[0]
            assert newer > older and collector.wait_for({newer})

            # Cut this process's listener connection, then commit the older seq while it is away.
            other.execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
                          (application_name(),))
            early.commit()
        assert wait_until(lambda: listener.reconnects >= 1 and listener.connected.is_set())
        assert collector.wait_for({older})
        time.sleep(0.3)
        assert collector.seqs.count(older) == 1 and collector.seqs.count(newer) == 1
    finally:
        listener.stop()


def test_the_listener_prunes_events_past_the_retention(realtime_database):
    with psycopg.connect(realtime_database, autocommit=True) as conn:
        old = conn.execute("insert into public.realtime_events (event_type, payload, created_at) values "
                           "('workflow_status_changed', '{}', now() - interval '100 hours') returning seq").fetchone()[0]
        recent = conn.execute("insert into public.realtime_events (event_type, payload, created_at) values "
                              "('workflow_status_changed', '{}', now() - interval '70 hours') returning seq"
                              ).fetchone()[0]
        listener = StreamListener(realtime_database, Collector().publish, retention_hours=72, prune_interval_seconds=1)
        listener.start_once()
        try:
            assert wait_until(lambda: conn.execute("select count(*) from public.realtime_events where seq = %s",
                                                   (old,)).fetchone()[0] == 0, timeout=10)
            assert conn.execute("select count(*) from public.realtime_events where seq = %s", (recent,)).fetchone()[0] == 1
        finally:
            listener.stop()
