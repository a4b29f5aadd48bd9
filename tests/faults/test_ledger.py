"""The fault scripts' ledger (tests/perf/faults_callbacks.py) counts from what the database
holds: an event applied once is stored; an effect written twice is duplicated; a receipt without
its effects is half-written; an event never applied is lost."""
from __future__ import annotations

import json

import psycopg
import pytest

from tests.perf.faults_callbacks import KINDS, Event, ledger, seed


@pytest.fixture(scope="module")
def seeded():
    from tests.conftest import create_database, database_url_for, drop_database

    name = create_database("rexera_faults_ledger")
    try:
        url = database_url_for(name)
        yield url, seed(url, 2)
    finally:
        drop_database(name)


@pytest.fixture
def database(seeded):
    """The seeded database, its callbacks' rows removed again after each test."""
    url, plan = seeded
    yield url, plan
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")  # the timeline is append-only by trigger
        for table in ("agent_results", "cost_items", "task_executions", "task_timeline_events", "webhook_receipts"):
            conn.execute(f"delete from public.{table}")
        conn.execute("update public.tasks set status = 'PENDING'")


def first_task_events(plan: dict) -> list[Event]:
    workflow_id = sorted(plan)[0]
    task_id, task_key, agent = plan[workflow_id][0]
    return [Event(f"fault:{task_id}:{kind}", kind, workflow_id, task_id, task_key, agent, acknowledged=True)
            for kind in KINDS]


def apply(url: str, event: Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        data = json.loads(event.body())["data"]
        answer = conn.execute("select public.apply_n8n_event('n8n', %s, %s, %s)",
                              (event.event_id, event.kind, json.dumps(data))).fetchone()[0]
        assert answer["statusCode"] == 200, answer


def test_events_applied_once_are_stored(database):
    url, plan = database
    events = first_task_events(plan)
    for event in events:
        apply(url, event)
    figures = ledger(url, events)
    assert (figures["sent"], figures["stored"], figures["duplicated"], figures["lost"], figures["partial"]) == (2, 2, 0, 0, 0)


def test_an_effect_written_twice_is_duplicated(database):
    url, plan = database
    events = first_task_events(plan)
    for event in events:
        apply(url, event)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""insert into public.agent_results (task_id, workflow_id, agent_name, success)
                        select task_id, workflow_id, agent_name, success from public.agent_results""")
    assert ledger(url, events)["duplicated"] == 1


def test_a_receipt_without_its_effects_is_half_written_and_lost(database):
    url, plan = database
    started, completed = first_task_events(plan)
    apply(url, started)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""insert into public.webhook_receipts (source, event_id, event_type, workflow_id, status_code)
                        values ('n8n', %s, %s, %s, 200)""", (completed.event_id, completed.kind, completed.workflow_id))
    figures = ledger(url, [started, completed])
    assert (figures["stored"], figures["partial"], figures["lost"], figures["acknowledged_not_stored"]) == (1, 1, 1, 1)


def test_an_acknowledged_event_never_applied_is_lost(database):
    url, plan = database
    started, completed = first_task_events(plan)
    apply(url, started)
    figures = ledger(url, [started, completed])
    assert (figures["stored"], figures["lost"], figures["acknowledged_not_stored"], figures["partial"]) == (1, 1, 1, 0)
