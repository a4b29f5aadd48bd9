"""An agent sees only the workflow it is working on: the workflow its request is scoped to
counts only where the agent has work, a task assigned to it or an attempt it made. Anyone
holding an agent key who names another workflow, or another agent's workflow, sees nothing."""
from __future__ import annotations

import dataclasses

import pytest
from psycopg import errors, sql

from tests.db.test_rls_matrix import AGENT_A_SEES, WORLD
from tests.db.world import PEOPLE, row, rows
from tests.support import act_as, act_as_service

NINA_ON_A101 = PEOPLE["agent_a"]  # the world's nina has the task A201 in A101
MIA_ON_A101 = dataclasses.replace(NINA_ON_A101, name="mia_a", agent_name="mia")  # no work in A101
NINA_ON_A102 = dataclasses.replace(NINA_ON_A101, name="nina_a102", workflow_id=row("A102"))  # A102 has no tasks


def seen(db, person, table: str) -> set:
    with db.transaction(force_rollback=True):
        act_as(db, person)
        query = sql.SQL("select id from public.{} where id = any(%s)").format(sql.Identifier(table))
        return {r["id"] for r in db.execute(query, (list(rows(WORLD[table])),))}


@pytest.mark.parametrize("table", sorted(WORLD))
def test_a_scope_where_the_agent_has_no_work_shows_nothing(db, table):
    assert seen(db, MIA_ON_A101, table) == set()
    assert seen(db, NINA_ON_A102, table) == set()
    # the same rows, as the agent working there (what the RLS matrix checks for every table)
    assert seen(db, NINA_ON_A101, table) == (rows(AGENT_A_SEES[table]) if table in AGENT_A_SEES else set())


def test_an_attempt_the_agent_made_is_work_there(db):
    """n8n's fallback may hand a task to another agent for one attempt: that agent, recorded on
    the execution, sees the workflow though the task names someone else."""
    with db.transaction(force_rollback=True):
        act_as_service(db)
        db.execute("""insert into public.task_executions (task_id, workflow_id, attempt, agent_name)
                      values (%s, %s, 2, 'mia')""", (row("A201"), row("A101")))
        act_as(db, MIA_ON_A101)
        assert {r["id"] for r in db.execute("select id from public.workflows")} == {row("A101")}
        assert {r["id"] for r in db.execute("select id from public.tasks")} == {row("A201")}


def test_an_agent_without_work_there_cannot_report_or_write(db):
    with db.transaction(force_rollback=True):
        act_as(db, MIA_ON_A101)
        with pytest.raises(errors.InsufficientPrivilege):
            db.execute("""insert into public.agent_results (task_id, workflow_id, agent_name, success)
                          values (%s, %s, 'mia', true)""", (row("A201"), row("A101")))
    with db.transaction(force_rollback=True):
        act_as(db, MIA_ON_A101)
        updated = db.execute("update public.tasks set priority = 'HIGH' where id = %s returning id", (row("A201"),))
        assert updated.fetchall() == []


def test_the_work_check_is_not_open_to_anonymous_callers(db):
    with db.transaction(force_rollback=True):
        act_as(db, PEOPLE["anon"])
        with pytest.raises(errors.InsufficientPrivilege):
            db.execute("select private.agent_has_work_in(%s, 'nina')", (row("A101"),))
