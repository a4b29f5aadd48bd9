"""The fault injection scripts at a tiny scale, so CI proves they work: signed callbacks at load
while the private PostgreSQL cluster restarts, and while gunicorn workers are SIGKILLed; every
acknowledged callback stored exactly once, none lost, none half-written."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.perf import faults_callbacks
from tests.realtime.cluster import BIN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (BIN / "initdb").exists() or (os.geteuid() == 0 and not shutil.which("runuser")),
                       reason="needs PostgreSQL 15 server binaries (and runuser when run as root)"),
]


def assert_nothing_lost_or_duplicated(figures: dict) -> None:
    assert figures["sent"] > 0, figures
    assert figures["acknowledged"] == figures["sent"], figures
    assert figures["stored"] == figures["sent"], figures
    assert figures["duplicated"] == 0 and figures["lost"] == 0 and figures["partial"] == 0, figures
    assert figures["acknowledged_not_stored"] == 0, figures


def test_callbacks_survive_a_postgres_restart_without_restarting_the_service():
    figures = faults_callbacks.postgres_restart(workflows=100, senders=3, duration=6, at=2, progress=lambda _: None)
    assert figures["fault"]["at_s"] < figures["load_seconds"], figures  # the restart hit the load
    assert_nothing_lost_or_duplicated(figures)
    service = figures["service"]
    assert service["master_alive"] and service["workers_after"] == service["workers_before"], service
    assert service["health_database_after"] == 200, service


def test_callbacks_survive_a_killed_gunicorn_worker():
    figures = faults_callbacks.worker_kill(workflows=100, senders=3, duration=6, at=1.5, kills=2, interval=2,
                                           progress=lambda _: None)
    killed = {k["pid"] for k in figures["fault"]["killed"]}
    assert len(killed) == 2 and max(k["at_s"] for k in figures["fault"]["killed"]) < figures["load_seconds"], figures
    assert_nothing_lost_or_duplicated(figures)
    service = figures["service"]
    assert len(service["workers_after"]) == 2 and not killed & set(service["workers_after"]), service
