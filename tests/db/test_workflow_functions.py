"""Workflow and task state machines, plan instantiation, and the actions built on them."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.db.factories import make_workflow, secret_resume_url, set_task_status, start_workflow, tasks_of
from tests.db.world import CLIENT_B, PEOPLE, row
from tests.support import act_as, act_as_service

WORKFLOW_STATUSES = ["PENDING", "IN_PROGRESS", "AWAITING_REVIEW", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"]
TASK_STATUSES = ["PENDING", "RUNNING", "WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"]

WORKFLOW_MOVES = {
    "PENDING": {"IN_PROGRESS", "CANCELLED"},
    "IN_PROGRESS": {"AWAITING_REVIEW", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"},
    "AWAITING_REVIEW": {"IN_PROGRESS", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"},
    "BLOCKED": {"IN_PROGRESS", "AWAITING_REVIEW", "PAUSED", "FAILED", "CANCELLED"},
    "PAUSED": {"IN_PROGRESS", "BLOCKED", "CANCELLED"},
    # A HIL person's recovery of a failed workflow (workflow_action's resume or cancel); no
    # machine path and no client takes it (docs/security.md#finished-is-final-and-what-the-server-owns).
    "FAILED": {"IN_PROGRESS", "CANCELLED"},
    "COMPLETED": set(),
    "CANCELLED": set(),
}
TASK_MOVES = {
    "PENDING": {"RUNNING", "WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"},
    "RUNNING": {"WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "CANCELLED"},
    "WAITING": {"RUNNING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "CANCELLED"},
    "AWAITING_REVIEW": {"RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED"},
    "FAILED": {"PENDING", "RUNNING", "COMPLETED", "SKIPPED", "CANCELLED"},
    "COMPLETED": set(),
    "SKIPPED": set(),
    "CANCELLED": set(),
}


# --------------------------------------------------------------------------------------------
# Transitions, enforced by triggers whoever writes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, target", list(itertools.product(WORKFLOW_STATUSES, WORKFLOW_STATUSES)))
def test_workflow_transition_table(db, source, target):
    allowed = db.execute("select public.workflow_transition_allowed(%s, %s) as ok", (source, target)).fetchone()["ok"]
    assert allowed is (source == target or target in WORKFLOW_MOVES[source])


@pytest.mark.parametrize("source, target", list(itertools.product(TASK_STATUSES, TASK_STATUSES)))
def test_task_transition_table(db, source, target):
    allowed = db.execute("select public.task_transition_allowed(%s, %s) as ok", (source, target)).fetchone()["ok"]
    assert allowed is (source == target or target in TASK_MOVES[source])


def force_workflow_status(db, workflow_id, path):
    for status in path:
        db.execute("update public.workflows set status = %s where id = %s", (status, workflow_id))


@pytest.mark.parametrize("path, refused", [
    (["IN_PROGRESS", "COMPLETED"], "IN_PROGRESS"),
    (["CANCELLED"], "IN_PROGRESS"),
    ([], "COMPLETED"),
    (["IN_PROGRESS", "PAUSED"], "COMPLETED"),
    (["IN_PROGRESS", "FAILED"], "COMPLETED"),
    (["IN_PROGRESS", "FAILED"], "PAUSED"),
])
def test_illegal_workflow_transitions_are_refused_by_the_database(db, path, refused):
    workflow = make_workflow(db)
    force_workflow_status(db, workflow["id"], path)
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="cannot go from"):
        db.execute("update public.workflows set status = %s where id = %s", (refused, workflow["id"]))


def test_a_workflow_is_born_pending(db):
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="starts as PENDING"):
        make_workflow(db, status="IN_PROGRESS")


def test_a_workflow_cannot_change_client(db):
    workflow = make_workflow(db)
    with pytest.raises(errors.ObjectNotInPrerequisiteState):
        db.execute("update public.workflows set client_id = %s where id = %s", (CLIENT_B, workflow["id"]))


@pytest.mark.parametrize("path, refused", [
    (["RUNNING", "COMPLETED"], "RUNNING"),
    (["SKIPPED"], "RUNNING"),
    (["CANCELLED"], "PENDING"),
    (["RUNNING"], "PENDING"),
])
def test_illegal_task_transitions_are_refused_by_the_database(db, path, refused):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["identify_lender_contact"]
    for status in path:
        db.execute("update public.tasks set status = %s where id = %s", (status, task["id"]))
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="cannot go from"):
        db.execute("update public.tasks set status = %s where id = %s", (refused, task["id"]))


def test_task_key_is_unique_per_workflow(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    with pytest.raises(errors.UniqueViolation, match="tasks_workflow_task_key"):
        db.execute("""insert into public.tasks (workflow_id, client_id, task_key, task_type, title)
                      values (%s, %s, 'notify_client', 'notify_client', 'again')""", (workflow["id"], workflow["client_id"]))


def test_the_same_task_key_may_live_in_two_workflows(db):
    first, second = make_workflow(db), make_workflow(db)
    assert start_workflow(db, first["id"])["tasksCreated"] == start_workflow(db, second["id"])["tasksCreated"] == 7


# --------------------------------------------------------------------------------------------
# Other invariants the constraints hold
# --------------------------------------------------------------------------------------------
def test_a_counterparty_has_at_most_one_primary_contact(db):
    with pytest.raises(errors.UniqueViolation, match="counterparty_contacts_one_primary"):
        db.execute("""insert into public.counterparty_contacts (counterparty_id, full_name, is_primary)
                      values (%s, 'Second primary', true)""", (row("A301"),))


@pytest.mark.parametrize("statement", [
    "insert into public.cost_items (workflow_id, category, description, amount_usd) values ('{wf}', 'AGENT', 'x', -1)",
    "insert into public.invoice_items (invoice_id, description, unit_price_usd, amount_usd) values ('{inv}', 'x', 1, -5)",
    "insert into public.task_executions (task_id, workflow_id, attempt, cost_usd) values ('{task}', '{wf}', 5, -0.01)",
    "insert into public.agent_results (task_id, workflow_id, agent_name, success, confidence_score) values ('{task}', '{wf}', 'nina', true, 1.5)",
    "update public.invoices set total_usd = 999 where id = '{inv}'",
])
def test_amounts_and_scores_stay_in_range(db, statement):
    with pytest.raises(errors.CheckViolation):
        db.execute(statement.format(wf=row("A101"), inv=row("A911"), task=row("A201")))


def test_a_workflow_only_links_counterparty_types_its_type_allows(db):
    hoa_workflow = make_workflow(db, "HOA_ACQUISITION")
    with pytest.raises(errors.CheckViolation, match="cannot take a lender"):
        db.execute("insert into public.workflow_counterparties (workflow_id, counterparty_id) values (%s, %s)",
                   (hoa_workflow["id"], row("C301")))


def test_client_people_need_a_client_and_hil_people_must_not_have_one(db):
    user = db.execute("insert into auth.users (email) values ('x@y.example') returning id").fetchone()["id"]
    with pytest.raises(errors.CheckViolation, match="user_profiles_type_matches_role"):
        db.execute("""insert into public.user_profiles (id, email, user_type, role, client_id)
                      values (%s, 'x@y.example', 'hil_user', 'hil_operator', %s)""", (user, CLIENT_B))


def test_timeline_and_audit_are_append_only(db):
    timeline = db.execute("select id from public.task_timeline_events limit 1").fetchone()
    with pytest.raises(errors.RaiseException, match="append-only"), db.transaction():
        db.execute("update public.task_timeline_events set message = 'edited' where id = %s", (timeline["id"],))
    audit = db.execute("select id from public.audit_events limit 1").fetchone()
    with pytest.raises(errors.RaiseException, match="append-only"):
        db.execute("delete from public.audit_events where id = %s", (audit["id"],))


# --------------------------------------------------------------------------------------------
# Starting a workflow: the plan, planned SLA due dates in business time, the outbox
# --------------------------------------------------------------------------------------------
def test_start_instantiates_the_plan_with_keys_agents_and_dependencies(db):
    workflow = make_workflow(db, "HOA_ACQUISITION")
    result = start_workflow(db, workflow["id"])
    assert result["newStatus"] == "IN_PROGRESS" and result["tasksCreated"] == 9
    tasks = tasks_of(db, workflow["id"])
    assert tasks["research_hoa_contact"]["agent_name"] == "nina"
    assert tasks["make_phone_call"]["agent_name"] == "florian"
    assert tasks["await_documents"]["depends_on"] == ["send_email_request", "make_phone_call"]
    assert tasks["send_email_request"]["branch_group"] == tasks["make_phone_call"]["branch_group"] == "hoa_request"
    assert {t["status"] for t in tasks.values()} == {"PENDING"}
    assert {t["client_id"] for t in tasks.values()} == {workflow["client_id"]}
    stored = db.execute("select status, total_tasks, completed_tasks, started_at from public.workflows where id = %s",
                        (workflow["id"],)).fetchone()
    assert stored["status"] == "IN_PROGRESS" and stored["total_tasks"] == 9 and stored["completed_tasks"] == 0
    assert stored["started_at"] is not None


def test_only_actionable_tasks_get_a_due_date_when_the_plan_starts(db):
    # The SLA clock starts when a task becomes actionable (issue 6), not at instantiation:
    # the first step's clock runs at once, the steps after it have their minutes but no dates.
    workflow = make_workflow(db, "MUNI_LIEN_SEARCH")
    start_workflow(db, workflow["id"])
    tasks = tasks_of(db, workflow["id"])
    add = lambda start, minutes: db.execute("select public.add_business_minutes(%s, %s) as t", (start, minutes)).fetchone()["t"]  # noqa: E731
    research, portals = tasks["research_municipality"], tasks["portal_access"]
    now = db.execute("select now() as t").fetchone()["t"]
    assert research["sla_started_at"] == now
    assert research["sla_due_at"] == add(now, 30)
    assert (portals["sla_minutes"], portals["sla_started_at"], portals["sla_due_at"]) == (60, None, None)
    assert all(t["sla_due_at"] is None for key, t in tasks.items() if key != "research_municipality")


def test_an_sla_definition_overrides_the_plan(db):
    db.execute("""update public.sla_definitions set business_minutes = 90
                   where workflow_type = 'PAYOFF_REQUEST' and task_type = 'identify_lender_contact'""")
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    assert tasks_of(db, workflow["id"])["identify_lender_contact"]["sla_minutes"] == 90


def test_start_queues_one_n8n_trigger_carrying_the_plan(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    dispatches = db.execute("select * from public.n8n_dispatches where workflow_id = %s", (workflow["id"],)).fetchall()
    assert len(dispatches) == 1
    trigger = dispatches[0]
    assert trigger["kind"] == "TRIGGER" and trigger["status"] == "PENDING"
    payload = trigger["payload"]
    assert payload["workflowId"] == str(workflow["id"]) and payload["workflowType"] == "PAYOFF_REQUEST"
    assert payload["payload"]["loanNumber"] == "123"
    keys = [t["taskKey"] for t in payload["tasks"]]
    assert keys[0] == "identify_lender_contact" and len(keys) == 7
    assert "secret" not in str(payload).lower()


def test_starting_twice_is_refused_and_changes_nothing(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="only a PENDING workflow"):
        start_workflow(db, workflow["id"])


def test_start_writes_an_audit_event_with_the_actor(db):
    workflow = make_workflow(db)
    act_as(db, PEOPLE["operator"])
    db.execute("select set_config('request.headers', %s, true)",
               ('{"x-request-id": "req-123", "user-agent": "pytest", "x-forwarded-for": "10.0.0.9, 10.0.0.1"}',))
    start_workflow(db, workflow["id"])
    act_as_service(db)
    event = db.execute("select * from public.audit_events where event_type = 'workflow.started' and resource_id = %s",
                       (workflow["id"],)).fetchone()
    assert event["actor_type"] == "human" and event["actor_id"] == str(PEOPLE["operator"].user_id)
    assert event["client_id"] == workflow["client_id"] and event["workflow_id"] == workflow["id"]
    assert (event["request_id"], event["user_agent"], event["ip_address"]) == ("req-123", "pytest", "10.0.0.9")
    assert event["changes"] == {"status": {"old": "PENDING", "new": "IN_PROGRESS"}}


# --------------------------------------------------------------------------------------------
# Who may act
# --------------------------------------------------------------------------------------------
def test_a_client_can_start_their_own_workflow(db):
    workflow = make_workflow(db)
    act_as(db, PEOPLE["client_user_a"])
    assert start_workflow(db, workflow["id"])["newStatus"] == "IN_PROGRESS"


def test_another_clients_workflow_reads_as_not_found(db):
    workflow = make_workflow(db)
    act_as(db, PEOPLE["client_user_b"])
    with pytest.raises(errors.NoDataFound), db.transaction():
        start_workflow(db, workflow["id"])
    act_as_service(db)
    assert db.execute("select status from public.workflows where id = %s", (workflow["id"],)).fetchone()["status"] == "PENDING"


@pytest.mark.parametrize("person, action", [("client_user_a", "pause"), ("client_user_a", "complete"), ("agent_a", "cancel")])
def test_roles_may_only_take_their_actions(db, person, action):
    act_as(db, PEOPLE[person])
    with pytest.raises(errors.InsufficientPrivilege):
        db.execute("select public.workflow_action(%s, %s)", (row("A101"), action))


def test_a_client_cannot_move_tasks(db):
    act_as(db, PEOPLE["client_user_a"])
    with pytest.raises(errors.InsufficientPrivilege):
        set_task_status(db, row("A201"), "COMPLETED")


def test_an_agent_cannot_touch_another_workflows_tasks(db):
    act_as(db, PEOPLE["agent_a"])
    with pytest.raises(errors.NoDataFound):
        set_task_status(db, row("B201"), "COMPLETED")


# Callers whose claims give them no tenant: an agent without work in the workflow it names, a
# client user whose claims carry no client id. Their actions read every workflow as not found.
NO_TENANT = {
    "agent without work there": dataclasses.replace(PEOPLE["agent_a"], agent_name="mia"),
    "client user without a client id": dataclasses.replace(PEOPLE["client_user_a"], client_id=None),
}


@pytest.mark.parametrize("person", NO_TENANT.values(), ids=NO_TENANT.keys())
def test_a_caller_without_a_tenant_acts_on_no_workflow(db, person):
    pending = make_workflow(db)
    act_as(db, person)
    for statement, params in [("select public.workflow_action(%s, 'start')", (pending["id"],)),
                              ("select public.workflow_action(%s, 'cancel')", (row("A101"),)),
                              ("select public.task_action(%s, 'complete', '{}')", (row("A201"),)),
                              ("select public.task_action(%s, 'fail', '{}')", (row("A201"),))]:
        with pytest.raises(errors.NoDataFound), db.transaction():
            db.execute(statement, params)
    act_as_service(db)
    assert db.execute("select status from public.workflows where id = %s", (pending["id"],)).fetchone()["status"] == "PENDING"
    assert db.execute("select status from public.workflows where id = %s", (row("A101"),)).fetchone()["status"] == "IN_PROGRESS"
    assert db.execute("select status from public.tasks where id = %s", (row("A201"),)).fetchone()["status"] == "RUNNING"


def test_unknown_actions_are_refused(db):
    with pytest.raises(errors.InvalidParameterValue, match="unknown workflow action"):
        db.execute("select public.workflow_action(%s, 'explode')", (row("A101"),))


# --------------------------------------------------------------------------------------------
# Pause, resume, cancel, complete
# --------------------------------------------------------------------------------------------
def test_pause_and_resume(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    paused = db.execute("select public.workflow_action(%s, 'pause') as r", (workflow["id"],)).fetchone()["r"]
    assert (paused["previousStatus"], paused["newStatus"]) == ("IN_PROGRESS", "PAUSED")
    with pytest.raises(errors.ObjectNotInPrerequisiteState):
        with db.transaction():
            db.execute("select public.workflow_action(%s, 'pause')", (workflow["id"],))
    resumed = db.execute("select public.workflow_action(%s, 'resume') as r", (workflow["id"],)).fetchone()["r"]
    assert resumed["newStatus"] == "IN_PROGRESS"


def fail_workflow(db, workflow_type="PAYOFF_REQUEST"):
    """A workflow on n8n execution exec-1 whose first step was done, whose second failed, and
    which n8n then reported failed (as its error path does)."""
    workflow = make_workflow(db, workflow_type)
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    first, second = list(tasks_of(db, workflow["id"]))[:2]
    for event, data in [("task.started", {"taskKey": first}),
                        ("task.completed", {"taskKey": first, "output": {"lender": "First Bank"}}),
                        ("task.started", {"taskKey": second}),
                        ("task.failed", {"taskKey": second, "error": "portal down", "retryable": False}),
                        ("workflow.failed", {"error": "portal down"})]:
        result = db.execute("select public.apply_n8n_event('n8n', %s, %s, %s) as r", (
            f"evt-{event}-{data.get('taskKey', '')}", event,
            Jsonb({"workflowId": str(workflow["id"]), "executionId": "exec-1", **data}))).fetchone()["r"]
        assert result["statusCode"] == 200, result
    return workflow, first, second


@pytest.mark.parametrize("person", ["operator", "manager"])
def test_a_hil_person_resumes_a_failed_workflow_from_its_last_checkpoint(db, person):
    workflow, done, failed = fail_workflow(db)
    act_as(db, PEOPLE[person])
    result = db.execute("select public.workflow_action(%s, 'resume') as r", (workflow["id"],)).fetchone()["r"]
    act_as_service(db)
    assert (result["previousStatus"], result["newStatus"]) == ("FAILED", "IN_PROGRESS") and result["dispatchId"]
    stored = db.execute("select status, n8n_execution_id, n8n_status, completed_at, metadata from public.workflows"
                        " where id = %s", (workflow["id"],)).fetchone()
    assert (stored["status"], stored["n8n_execution_id"], stored["n8n_status"], stored["completed_at"]) == \
        ("IN_PROGRESS", None, None, None)
    [retired] = stored["metadata"]["lostExecutions"]
    assert retired["executionId"] == "exec-1" and retired["failure"] == "portal down"
    assert retired["interruptedTasks"] == [failed] and retired["resumedBy"] == str(PEOPLE[person].user_id)
    assert "failure" not in stored["metadata"]
    tasks = tasks_of(db, workflow["id"])
    assert tasks[done]["status"] == "COMPLETED"
    assert tasks[failed]["status"] == "PENDING" and tasks[failed]["error_message"] is None
    # One trigger more, the only one to deliver: resume.done carries the completed step's output.
    triggers = db.execute("select id, status, payload from public.n8n_dispatches where workflow_id = %s"
                          " and kind = 'TRIGGER' order by created_at, payload ? 'resume'", (workflow["id"],)).fetchall()
    assert [t["status"] for t in triggers] == ["DELIVERED", "PENDING"] and str(triggers[1]["id"]) == result["dispatchId"]
    assert triggers[1]["payload"]["resume"] == {"lostExecutionId": "exec-1", "done": {done: {"lender": "First Bank"}}}
    audit = db.execute("select actor_type, actor_id, changes, data from public.audit_events where resource_id = %s"
                       " and event_type = 'workflow.resumed'", (workflow["id"],)).fetchall()
    assert len(audit) == 1 and audit[0]["actor_id"] == str(PEOPLE[person].user_id)
    assert audit[0]["changes"]["status"] == {"old": "FAILED", "new": "IN_PROGRESS"}
    assert audit[0]["data"]["recovery"]["retiredExecutionId"] == "exec-1"
    assert audit[0]["data"]["recovery"]["done"] == [done] and audit[0]["data"]["recovery"]["rerunTasks"] == [failed]
    timeline = db.execute("select actor_type, actor_id from public.task_timeline_events where task_id = %s"
                          " and event_type = 'workflow_resumed'", (tasks[failed]["id"],)).fetchall()
    assert timeline == [{"actor_type": "human", "actor_id": str(PEOPLE[person].user_id)}]


def test_the_failed_execution_is_refused_and_the_new_one_runs_the_failed_step_as_its_next_attempt(db):
    workflow, _, failed = fail_workflow(db)
    act_as(db, PEOPLE["operator"])
    db.execute("select public.workflow_action(%s, 'resume')", (workflow["id"],))
    act_as_service(db)

    def event(event_id, event_type, execution, **data):
        return db.execute("select public.apply_n8n_event('n8n', %s, %s, %s) as r", (event_id, event_type, Jsonb(
            {"workflowId": str(workflow["id"]), "executionId": execution, **data}))).fetchone()["r"]

    late = event("evt-late", "task.completed", "exec-1", taskKey=failed, output={"late": True})
    assert late["statusCode"] == 409 and "was lost" in late["body"]["reason"]
    assert event("evt-2-start", "task.started", "exec-2", taskKey=failed, attempt=1)["statusCode"] == 200
    assert event("evt-2-done", "task.completed", "exec-2", taskKey=failed, attempt=1, output={"sent": 1})["statusCode"] == 200
    task = tasks_of(db, workflow["id"])[failed]
    attempts = db.execute("select attempt, status, n8n_execution_id from public.task_executions where task_id = %s"
                          " order by attempt", (task["id"],)).fetchall()
    assert attempts == [{"attempt": 1, "status": "FAILED", "n8n_execution_id": "exec-1"},
                        {"attempt": 2, "status": "SUCCEEDED", "n8n_execution_id": "exec-2"}]
    assert task["status"] == "COMPLETED" and task["result"] == {"sent": 1}
    assert db.execute("select n8n_execution_id from public.workflows where id = %s",
                      (workflow["id"],)).fetchone()["n8n_execution_id"] == "exec-2"


def test_a_hil_person_cancels_a_failed_workflow(db):
    workflow, done, failed = fail_workflow(db)
    act_as(db, PEOPLE["operator"])
    result = db.execute("select public.workflow_action(%s, 'cancel', '{\"reason\": \"client withdrew\"}') as r",
                        (workflow["id"],)).fetchone()["r"]
    act_as_service(db)
    # n8n's execution ended with the failure: nothing to stop.
    assert (result["previousStatus"], result["newStatus"], result["dispatchId"]) == ("FAILED", "CANCELLED", None)
    statuses = {k: t["status"] for k, t in tasks_of(db, workflow["id"]).items()}
    assert statuses.pop(done) == "COMPLETED" and set(statuses.values()) == {"CANCELLED"}
    assert db.execute("select count(*) n from public.n8n_dispatches where workflow_id = %s and status <> 'DELIVERED'",
                      (workflow["id"],)).fetchone()["n"] == 0


@pytest.mark.parametrize("caller, action, refused", [
    ("service", "resume", errors.ObjectNotInPrerequisiteState),
    ("service", "cancel", errors.ObjectNotInPrerequisiteState),
    ("client_user_a", "resume", errors.InsufficientPrivilege),  # clients never resume a workflow
    ("client_user_a", "cancel", errors.ObjectNotInPrerequisiteState),  # a failed order is HIL's to close
    ("agent_a", "resume", errors.NoDataFound),  # not the workflow it works on: not found
    ("operator", "pause", errors.ObjectNotInPrerequisiteState),
    ("operator", "complete", errors.ObjectNotInPrerequisiteState),
    ("operator", "start", errors.ObjectNotInPrerequisiteState),
])
def test_only_a_hil_persons_resume_or_cancel_moves_a_failed_workflow(db, caller, action, refused):
    workflow, _, _ = fail_workflow(db)
    with pytest.raises(refused), db.transaction():
        if caller != "service":
            act_as(db, PEOPLE[caller])
        db.execute("select public.workflow_action(%s, %s)", (workflow["id"], action))
    act_as_service(db)
    assert db.execute("select status from public.workflows where id = %s", (workflow["id"],)).fetchone()["status"] == "FAILED"


@pytest.mark.parametrize("status", ["COMPLETED", "CANCELLED"])
@pytest.mark.parametrize("action", ["resume", "cancel"])
def test_a_completed_or_cancelled_workflow_is_resumed_or_cancelled_by_nobody(db, status, action):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    if status == "COMPLETED":
        for task in tasks_of(db, workflow["id"]).values():
            set_task_status(db, task["id"], "COMPLETED")
    db.execute("select public.workflow_action(%s, %s)", (workflow["id"], "complete" if status == "COMPLETED" else "cancel"))
    for person in ("operator", "manager"):
        with pytest.raises(errors.ObjectNotInPrerequisiteState, match=f"finished \\({status}\\)"), db.transaction():
            act_as(db, PEOPLE[person])
            db.execute("select public.workflow_action(%s, %s)", (workflow["id"], action))
        act_as_service(db)


def test_a_persons_own_write_moves_no_failed_workflow(db):
    # Supabase's REST API writes as the caller: leaving FAILED is the resume or cancel action.
    workflow, _, _ = fail_workflow(db)
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="status changes are actions"), db.transaction():
        act_as(db, PEOPLE["operator"])
        db.execute("update public.workflows set status = 'IN_PROGRESS' where id = %s", (workflow["id"],))
    act_as_service(db)
    assert db.execute("select status from public.workflows where id = %s", (workflow["id"],)).fetchone()["status"] == "FAILED"


def test_cancel_cancels_open_tasks_and_drops_the_undelivered_trigger(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    tasks = tasks_of(db, workflow["id"])
    set_task_status(db, tasks["identify_lender_contact"]["id"], "RUNNING")
    set_task_status(db, tasks["identify_lender_contact"]["id"], "COMPLETED", {"output": {"contact": "x"}})
    result = db.execute("select public.workflow_action(%s, 'cancel', %s) as r",
                        (workflow["id"], Jsonb({"reason": "deal fell through"}))).fetchone()["r"]
    assert result["newStatus"] == "CANCELLED" and result["dispatchId"] is None
    statuses = {k: t["status"] for k, t in tasks_of(db, workflow["id"]).items()}
    assert statuses.pop("identify_lender_contact") == "COMPLETED"
    assert set(statuses.values()) == {"CANCELLED"}
    trigger = db.execute("select status from public.n8n_dispatches where workflow_id = %s", (workflow["id"],)).fetchone()
    assert trigger["status"] == "DEAD"
    stored = db.execute("select metadata, completed_at from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert stored["metadata"]["cancelReason"] == "deal fell through" and stored["completed_at"] is not None


def test_cancel_after_delivery_queues_a_stop_for_n8n(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    db.execute("update public.n8n_dispatches set status = 'DELIVERED' where workflow_id = %s", (workflow["id"],))
    db.execute("update public.workflows set n8n_execution_id = 'exec-42' where id = %s", (workflow["id"],))
    result = db.execute("select public.workflow_action(%s, 'cancel') as r", (workflow["id"],)).fetchone()["r"]
    stop = db.execute("select kind, payload from public.n8n_dispatches where id = %s", (result["dispatchId"],)).fetchone()
    assert stop["kind"] == "CANCEL" and stop["payload"]["executionId"] == "exec-42"


def test_complete_refuses_while_tasks_are_open(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="7 task"):
        db.execute("select public.workflow_action(%s, 'complete')", (workflow["id"],))


def test_complete_when_every_task_is_done(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    for task in tasks_of(db, workflow["id"]).values():
        set_task_status(db, task["id"], "COMPLETED")
    result = db.execute("select public.workflow_action(%s, 'complete') as r", (workflow["id"],)).fetchone()["r"]
    assert result["newStatus"] == "COMPLETED"


# --------------------------------------------------------------------------------------------
# Task transitions
# --------------------------------------------------------------------------------------------
def test_running_counts_attempts_and_completion_stores_the_result(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["identify_lender_contact"]
    assert set_task_status(db, task["id"], "RUNNING")["attempt"] == 1
    set_task_status(db, task["id"], "FAILED", {"error": "timeout"})
    assert set_task_status(db, task["id"], "RUNNING")["attempt"] == 2
    done = set_task_status(db, task["id"], "COMPLETED", {"output": {"phone": "555"}})
    assert (done["previousStatus"], done["newStatus"]) == ("RUNNING", "COMPLETED")
    stored = db.execute("select * from public.tasks where id = %s", (task["id"],)).fetchone()
    assert stored["result"] == {"phone": "555"} and stored["error_message"] is None
    assert stored["attempt_count"] == 2 and stored["completed_at"] is not None


def test_progress_counts_completed_tasks_and_leaves_skipped_ones_out(db):
    workflow = make_workflow(db, "HOA_ACQUISITION")
    start_workflow(db, workflow["id"])
    tasks = tasks_of(db, workflow["id"])
    set_task_status(db, tasks["research_hoa_contact"]["id"], "COMPLETED")
    set_task_status(db, tasks["make_phone_call"]["id"], "SKIPPED")
    stored = db.execute("select total_tasks, completed_tasks from public.workflows where id = %s", (workflow["id"],)).fetchone()
    assert (stored["total_tasks"], stored["completed_tasks"]) == (8, 1)


def test_waiting_keeps_the_resume_url_until_the_task_moves_on(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": "http://n8n.local/webhook-waiting/77"})
    # The task names it; the URL itself is kept where no request role reads it.
    assert db.execute("select resume_url from public.tasks where id = %s", (task["id"],)).fetchone()["resume_url"] == \
        f"n8n-resume:{task['id']}"
    assert secret_resume_url(db, task["id"]) == "http://n8n.local/webhook-waiting/77"
    set_task_status(db, task["id"], "COMPLETED")
    assert db.execute("select resume_url from public.tasks where id = %s", (task["id"],)).fetchone()["resume_url"] is None


def test_tasks_of_a_cancelled_workflow_cannot_change(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["identify_lender_contact"]
    db.execute("select public.workflow_action(%s, 'cancel')", (workflow["id"],))
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="CANCELLED"):
        set_task_status(db, task["id"], "COMPLETED")


def test_every_status_change_lands_on_the_timeline_and_the_event_stream(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["identify_lender_contact"]
    act_as(db, PEOPLE["agent_a"] if workflow["id"] == row("A101") else PEOPLE["operator"])
    set_task_status(db, task["id"], "RUNNING")
    act_as_service(db)
    timeline = db.execute("select event_type, from_status, to_status, actor_type from public.task_timeline_events "
                          "where task_id = %s order by created_at, event_type", (task["id"],)).fetchall()
    assert [(t["event_type"], t["from_status"], t["to_status"]) for t in timeline] == [
        ("created", None, "PENDING"), ("status_changed", "PENDING", "RUNNING")]
    assert timeline[-1]["actor_type"] == "human"
    events = db.execute("select event_type, payload from public.realtime_events where task_id = %s order by seq",
                        (task["id"],)).fetchall()
    assert [e["payload"]["status"] for e in events] == ["PENDING", "RUNNING"]
    assert events[-1]["payload"]["type"] == "task_execution_updated"
    assert events[-1]["payload"]["workflowId"] == str(workflow["id"])
    workflow_events = db.execute("select payload from public.realtime_events where workflow_id = %s and task_id is null "
                                 "order by seq", (workflow["id"],)).fetchall()
    # created, started, then the plan's progress counters (one event for the whole plan)
    assert [e["payload"]["status"] for e in workflow_events] == ["PENDING", "IN_PROGRESS", "IN_PROGRESS"]
    assert workflow_events[-1]["payload"]["metadata"]["totalTasks"] == 7
