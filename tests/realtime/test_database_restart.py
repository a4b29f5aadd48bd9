"""PostgreSQL restarted mid-stream: the listener reconnects with backoff and replays what
committed meanwhile, so a subscriber that stayed connected loses no event (a private cluster:
the shared server is never restarted)."""
from __future__ import annotations

import os
import shutil
import threading
import time

import psycopg
import pytest

from tests.db.world import PEOPLE, row
from tests.perf.bench_api import free_port, start_service
from tests.realtime.cluster import BIN, PrivateCluster
from tests.realtime.conftest import Service, service_env, stop_service

pytestmark = pytest.mark.skipif(not (BIN / "initdb").exists() or (os.geteuid() == 0 and not shutil.which("runuser")),
                                reason="needs PostgreSQL 15 server binaries (and runuser when run as root)")


def commit_progress(url: str, workflow_id, count: int) -> list[int]:
    """`count` committed workflow changes, each its own transaction; returns their event ids."""
    seqs = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(count):
            with conn.transaction():
                conn.execute("update public.workflows set total_tasks = total_tasks + 1 where id = %s", (workflow_id,))
                seqs.append(conn.execute(
                    "select currval(pg_get_serial_sequence('public.realtime_events', 'seq'))").fetchone()[0])
    return seqs


@pytest.fixture(scope="module")
def cluster():
    cluster = PrivateCluster().init()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_no_event_is_lost_when_postgres_restarts_mid_stream(cluster):
    url = cluster.create_world()
    process, base = start_service(service_env(url, free_port()), "wsgi:app", "realtime-restart-server.log")
    service = Service(base, url, process)
    try:
        sock = service.connect(PEOPLE["operator"])
        sock.subscribe(f"workflow:{row('A101')}")
        received: list[dict] = []
        stop = threading.Event()

        def read():
            while not stop.is_set():
                message = sock.receive(timeout=0.2)
                if message is not None and "id" in message:
                    received.append(message)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            committed = commit_progress(url, row("A101"), 5)
            time.sleep(0.5)
            cluster.restart()
            # Committed right after the restart, while the listener is still backing off.
            committed += commit_progress(url, row("A101"), 5)
            deadline = time.monotonic() + 20
            while {e["id"] for e in received} < set(committed) and time.monotonic() < deadline:
                time.sleep(0.1)
            committed += commit_progress(url, row("A101"), 3)  # and live again afterwards
            while {e["id"] for e in received} < set(committed) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
        finally:
            stop.set()
            reader.join()
        ids = [e["id"] for e in received]
        assert sorted(ids) == committed, "events were lost or invented across the restart"
        assert len(ids) == len(set(ids)), "an event came twice"
        health = service.health()
        assert health["reconnects"] >= 1 and health["listening"] is True
        # The REST API works again too (its pool dropped the dead connections).
        assert service.api(PEOPLE["operator"], "GET", f"/api/workflows/{row('A101')}").status_code == 200
        sock.close()
    finally:
        stop_service(process)
