"""public.task_action as Supabase RPC and n8n's Postgres node see it."""
from __future__ import annotations

import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.db.factories import make_workflow, start_workflow, tasks_of
from tests.db.world import row


@pytest.mark.parametrize("role, allowed", [("anon", False), ("authenticated", True), ("service_role", True)])
def test_task_action_is_executable_only_by_signed_in_roles(db, role, allowed):
    # anon inherits whatever PUBLIC holds, so this also shows PUBLIC has no grant
    privilege = db.execute("select has_function_privilege(%s, 'public.task_action(uuid, text, jsonb)', 'execute') as ok",
                           (role,)).fetchone()["ok"]
    assert privilege is allowed


def test_the_service_path_may_take_any_action_and_is_audited_as_the_system(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["identify_lender_contact"]
    result = db.execute("select public.task_action(%s, 'escalate', %s) as r", (task["id"], Jsonb({"reason": "n8n escalation"}))).fetchone()["r"]
    assert result["workflowStatus"] == "BLOCKED" and result["dispatchId"] is None
    event = db.execute("select actor_type, actor_id from public.audit_events where event_type = 'task.escalate' and resource_id = %s",
                       (task["id"],)).fetchone()
    assert (event["actor_type"], event["actor_id"]) == ("system", "system")


@pytest.mark.parametrize("action, data, message", [
    ("explode", {}, "unknown task action"),
    (None, {}, "unknown task action"),
    ("complete", [], "data must be an object"),
])
def test_unknown_actions_and_non_object_data_are_refused(db, action, data, message):
    with pytest.raises(errors.InvalidParameterValue, match=message):
        db.execute("select public.task_action(%s, %s, %s)", (row("A201"), action, Jsonb(data)))


def test_an_unknown_task_reads_as_not_found(db):
    with pytest.raises(errors.NoDataFound):
        db.execute("select public.task_action(gen_random_uuid(), 'complete')")
