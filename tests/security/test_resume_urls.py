"""n8n resume URLs are secrets (on n8n 2.x they carry the signature that lets anyone resume
the execution): once n8n reports a wait, the URL is nowhere a person, an agent or a client can
read it, through our API or through the database's own roles; only the dispatcher reads it."""
from __future__ import annotations

import json

import pytest
from psycopg import sql

from tests.db.factories import make_workflow, secret_resume_url, set_task_status, start_workflow, tasks_of
from tests.db.world import PEOPLE
from tests.support import act_as, act_as_service

SECRET = "http://n8n.test/webhook-waiting/91?signature=5f2c0d1e9a7b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5"
READABLE_TABLES = """select table_name from information_schema.tables
                     where table_schema = 'public' and table_type = 'BASE TABLE' order by 1"""


@pytest.fixture
def waiting(db):
    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    task = tasks_of(db, workflow["id"])["await_statement"]
    set_task_status(db, task["id"], "WAITING", {"resumeUrl": SECRET})
    return workflow, task


@pytest.mark.parametrize("person", ["operator", "manager", "client_user_a", "client_admin_a"])
def test_no_table_a_person_may_read_holds_the_resume_url(db, waiting, person):
    # Every table of the public schema, as the person would read it through Supabase's REST API.
    tables = [row["table_name"] for row in db.execute(READABLE_TABLES)]
    act_as(db, PEOPLE[person])
    found = []
    for table in tables:
        text = db.execute(sql.SQL("select coalesce(string_agg(t::text, '|'), '') as t from {} t").format(
            sql.Identifier("public", table))).fetchone()["t"]
        if "signature=" in text or "webhook-waiting/91" in text:
            found.append(table)
    act_as_service(db)
    assert found == []
    assert secret_resume_url(db, waiting[1]["id"]) == SECRET  # the control: it is kept


def test_the_private_table_and_its_reader_refuse_every_request_role(db, waiting):
    for person in ("operator", "client_user_a", "agent_a", "anon"):
        act_as(db, PEOPLE[person])
        for statement in ("select url from private.n8n_resume_urls",
                          f"select private.n8n_resume_url('{waiting[1]['id']}')"):
            with pytest.raises(Exception) as refused, db.transaction():
                db.execute(statement)
            assert refused.value.sqlstate == "42501", (person, statement)
        act_as_service(db)


def test_the_api_shows_only_that_n8n_waits(as_, db, waiting):
    response = as_("operator").get(f"/api/tasks/{waiting[1]['id']}?include=timeline,executions")
    assert response.status_code == 200 and response.json["isWaitingOnN8n"] is True
    assert "signature" not in json.dumps(response.json) and "n8n-resume" not in json.dumps(response.json)
