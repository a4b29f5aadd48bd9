"""The stream in the database: written in the changing transaction, announced by id only,
pruned after a retention by the service path only, and published to Supabase Realtime."""
from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.db.world import PEOPLE, row
from tests.support import act_as

WATCHED = {"workflows", "tasks", "notifications"}


def test_pg_notify_carries_only_the_event_id_after_commit(realtime_database):
    with psycopg.connect(realtime_database, autocommit=True) as listener, \
            psycopg.connect(realtime_database, row_factory=dict_row) as writer:
        listener.execute("listen rexera_events")
        writer.execute("update public.workflows set total_tasks = total_tasks + 1 where id = %s", (row("B101"),))
        assert list(listener.notifies(timeout=0.5)) == [], "announced before commit"
        writer.commit()
        notes = list(listener.notifies(timeout=5, stop_after=1))
        assert len(notes) == 1 and notes[0].payload.isdigit()
        event = writer.execute("select event_type, workflow_id, payload from public.realtime_events where seq = %s",
                               (int(notes[0].payload),)).fetchone()
        assert event["event_type"] == "workflow_status_changed" and event["workflow_id"] == row("B101")
        assert event["payload"]["metadata"]["totalTasks"] >= 1


def test_a_rolled_back_change_leaves_no_event(db):
    before = db.execute("select count(*) as n from public.realtime_events").fetchone()["n"]
    with pytest.raises(psycopg.errors.CheckViolation):
        with db.transaction():
            db.execute("update public.workflows set completed_tasks = 1 where id = %s", (row("A101"),))
            db.execute("update public.workflows set completed_tasks = -1 where id = %s", (row("A101"),))
    assert db.execute("select count(*) as n from public.realtime_events").fetchone()["n"] == before


@pytest.mark.parametrize("change, event_types", [
    ("update public.workflows set completed_tasks = completed_tasks + 1, total_tasks = total_tasks + 1 "
     "where id = 'aaaaaaaa-0000-4000-8000-000000000101'", ["workflow_status_changed"]),
    ("update public.tasks set status = 'COMPLETED' where id = 'aaaaaaaa-0000-4000-8000-000000000201'",
     ["task_execution_updated", "workflow_status_changed"]),  # the task, then the workflow's progress
    ("insert into public.notifications (recipient_id, notification_type, title, message) values "
     "('aaaaaaaa-0000-4000-8000-000000000011', 'WORKFLOW_UPDATE', 't', 'm')", ["hil_notification"]),
])
def test_each_watched_change_writes_its_events_in_its_transaction(db, change, event_types):
    before = db.execute("select coalesce(max(seq), 0) as seq from public.realtime_events").fetchone()["seq"]
    db.execute(change)
    events = db.execute("select event_type from public.realtime_events where seq > %s order by seq",
                        (before,)).fetchall()
    assert [e["event_type"] for e in events] == event_types


def test_old_events_are_pruned_by_the_service_path_only(db):
    db.execute("insert into public.realtime_events (event_type, payload, created_at) values "
               "('workflow_status_changed', '{}', now() - interval '4 days'),"
               "('workflow_status_changed', '{}', now() - interval '1 hour')")
    old = db.execute("select count(*) as n from public.realtime_events where created_at < now() - interval '3 days'"
                     ).fetchone()["n"]
    with db.transaction():
        db.execute("set local role service_role")
        assert db.execute("select public.prune_realtime_events(interval '3 days') as n").fetchone()["n"] == old
    assert db.execute("select count(*) as n from public.realtime_events where created_at < now() - interval '3 days'"
                      ).fetchone()["n"] == 0
    assert db.execute("select count(*) as n from public.realtime_events where created_at > now() - interval '2 hours'"
                      ).fetchone()["n"] >= 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        act_as(db, PEOPLE["manager"])
        db.execute("select public.prune_realtime_events(interval '1 day')")
    with pytest.raises(psycopg.errors.InvalidParameterValue), db.transaction():
        db.execute("select public.prune_realtime_events(interval '1 second')")


def test_the_watched_tables_are_published_to_supabase_realtime_with_whole_rows(db):
    published = {r["tablename"] for r in db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'")}
    assert WATCHED | {"realtime_events"} <= published
    identities = {r["relname"]: r["relreplident"] for r in db.execute(
        "select relname, relreplident from pg_class where relnamespace = 'public'::regnamespace and relname = any(%s)",
        (list(WATCHED),))}
    assert identities == {table: "f" for table in WATCHED}
