"""Fixtures for tests that need committed data (threads, scripts, the service's runner): a
database of the SLA tests' own, migrated and seeded like the session's."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import world_database
from tests.sla.factories import make_team, start_payoff


@pytest.fixture(scope="session")
def own_database():
    yield from world_database("rexera_sla")


@pytest.fixture
def late_task(own_database):
    """A committed PAYOFF_REQUEST started 30 days ago, its first step long breached, with a
    team to tell; cancelled afterwards, so that later sweeps leave it alone."""
    with psycopg.connect(own_database, row_factory=dict_row) as conn:
        team = make_team(conn)
        workflow, first = start_payoff(conn, datetime.now(timezone.utc) - timedelta(days=30),
                                       hil_owner_id=team["owner"], manager_id=team["manager"])
        conn.execute("update public.tasks set assigned_to = %s where id = %s", (team["assignee"], first["id"]))
    yield first
    with psycopg.connect(own_database) as conn:
        conn.execute("update public.workflows set status = 'CANCELLED' where id = %s", (workflow["id"],))
