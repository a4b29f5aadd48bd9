"""The execution watch against a stand-in n8n API: a quiet workflow whose execution n8n lost
is started again once; anything else is left alone (the real n8n's lost worker: the scaled
end-to-end tests)."""
from __future__ import annotations

import pytest

from app.n8n.watch import ExecutionWatch
from tests.db.factories import make_workflow, start_workflow
from tests.service_fixtures import METRICS_HEADERS, TransactionalDatabase, make_settings


@pytest.fixture
def running(db):
    """One payoff workflow running as execution 41 (the only one in progress in this test)."""
    db.execute("update public.workflows set status = 'PAUSED' where status = 'IN_PROGRESS'")
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    db.execute("update public.workflows set n8n_execution_id = '41' where id = %s", (workflow["id"],))
    return workflow


def watch_for(db, database_url, n8n, metrics=None, **overrides):
    settings = make_settings(database_url, **{"n8n_base_url": n8n.url, "n8n_api_key": "api-key",
                                              "n8n_watch_quiet_seconds": 0, **overrides})
    return ExecutionWatch(TransactionalDatabase(db), settings, timeout=2, metrics=metrics)


def lost_counted(app, outcome):
    return app.extensions["metrics"].registry.get_sample_value("rexera_n8n_executions_lost_total",
                                                               {"outcome": outcome}) or 0


def triggers(db, workflow_id):
    return db.execute("select payload from public.n8n_dispatches where workflow_id = %s and kind = 'TRIGGER'"
                      " and status = 'PENDING'", (workflow_id,)).fetchall()


@pytest.mark.parametrize("status, answer", [
    ("error", (200, {"id": "41", "finished": False, "status": "error", "stoppedAt": "2026-12-04T10:00:00.000Z"})),
    ("crashed", (200, {"id": "41", "finished": False, "status": "crashed"})),
    ("missing", None),
])
def test_a_lost_execution_is_started_again_once(app, db, database_url, n8n, running, status, answer):
    if answer:
        n8n.executions["41"] = answer
    watch = watch_for(db, database_url, n8n, metrics=app.extensions["metrics"])
    counted = lost_counted(app, "recovered")
    assert watch.check() == {"checked": 1, "lost": 1, "recovered": 1, "blocked": 0, "unreachable": 0}
    assert lost_counted(app, "recovered") == counted + 1
    assert "rexera_n8n_executions_lost_total" in app.test_client().get("/metrics", headers=METRICS_HEADERS).get_data(as_text=True)
    [asked] = [r for r in n8n.requests if r["method"] == "GET"]
    assert asked["path"] == "/api/v1/executions/41" and asked["headers"]["X-N8N-API-KEY"] == "api-key"
    [trigger] = triggers(db, running["id"])
    assert trigger["payload"]["resume"]["lostExecutionId"] == "41"
    metadata = db.execute("select metadata from public.workflows where id = %s", (running["id"],)).fetchone()["metadata"]
    assert status in metadata["lostExecutions"][0]["reason"]
    # The workflow now waits for its new execution: nothing more to ask about.
    assert watch.check() == {"checked": 0, "lost": 0, "recovered": 0, "blocked": 0, "unreachable": 0}
    assert len(triggers(db, running["id"])) == 1


@pytest.mark.parametrize("status", ["running", "new", "waiting", "success", "canceled", "unknown"])
def test_an_execution_n8n_still_runs_or_finished_is_left_alone(db, database_url, n8n, running, status):
    n8n.executions["41"] = (200, {"id": "41", "status": status})
    summary = watch_for(db, database_url, n8n).check()
    assert summary == {"checked": 1, "lost": 0, "recovered": 0, "blocked": 0, "unreachable": 0}
    assert triggers(db, running["id"]) == []
    assert db.execute("select n8n_execution_id from public.workflows where id = %s",
                      (running["id"],)).fetchone()["n8n_execution_id"] == "41"


@pytest.mark.parametrize("answer", [(500, {"message": "boom"}), (401, {"message": "unauthorized"}), (200, "not json")])
def test_when_n8n_cannot_be_asked_nothing_changes(db, database_url, n8n, running, answer):
    n8n.executions["41"] = answer
    summary = watch_for(db, database_url, n8n).check()
    assert summary["unreachable"] == 1 and summary["recovered"] == 0
    assert triggers(db, running["id"]) == []


def test_an_unreachable_n8n_changes_nothing(db, database_url, running):
    settings = make_settings(database_url, n8n_base_url="http://127.0.0.1:9", n8n_api_key="k", n8n_watch_quiet_seconds=0)
    summary = ExecutionWatch(TransactionalDatabase(db), settings, timeout=1).check()
    assert summary["unreachable"] == 1 and triggers(db, running["id"]) == []


def test_a_workflow_not_quiet_long_enough_is_not_asked_about(db, database_url, n8n, running):
    summary = watch_for(db, database_url, n8n, n8n_watch_quiet_seconds=3600).check()
    assert summary["checked"] == 0 and not [r for r in n8n.requests if r["method"] == "GET"]


def test_without_an_api_key_the_watch_says_why_it_skips(db, database_url, n8n, running):
    summary = watch_for(db, database_url, n8n, n8n_api_key=None).check()
    assert "N8N_API_KEY" in summary["skipped"] and n8n.requests == []


def test_a_fourth_loss_in_a_row_is_counted_as_handed_to_a_person(app, db, database_url, n8n, running):
    db.execute("update public.workflows set metadata = metadata || '{\"lossesInARow\": 3}' where id = %s",
               (running["id"],))
    n8n.executions["41"] = (200, {"id": "41", "status": "error"})
    counted = lost_counted(app, "blocked")
    summary = watch_for(db, database_url, n8n, metrics=app.extensions["metrics"]).check()
    assert summary == {"checked": 1, "lost": 1, "recovered": 0, "blocked": 1, "unreachable": 0}
    assert lost_counted(app, "blocked") == counted + 1
    assert triggers(db, running["id"]) == []


def test_runners_take_turns_by_round(db, database_url, n8n, running):
    n8n.executions["41"] = (200, {"id": "41", "status": "running"})
    db.execute("delete from private.duty_rounds where duty = 'n8n_watch'")
    first, second = watch_for(db, database_url, n8n), watch_for(db, database_url, n8n)
    assert first.check(every=60) is not None
    assert second.check(every=60) is None
