"""The workflow documents PostgreSQL builds equal what the documented schema gives."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import uuid

import pytest

from app.schemas.workflows import Workflow
from app.services.workflows import get_workflow_document, list_workflow_documents
from tests.db.factories import make_workflow, set_task_status, start_workflow, tasks_of
from tests.db.world import CLIENT_A, PEOPLE, row
from tests.support import act_as, act_as_service

INCLUDES = ["tasks", "communications", "documents", "counterparties"]
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def normalized(value):
    """Timestamps as instants: PostgreSQL trims trailing zeros of the fraction, Python does not;
    both are the same RFC 3339 instant."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, str) and ISO_TIME.match(value):
        return dt.datetime.fromisoformat(value)
    return value


def schema_document(db, workflow_id) -> dict:
    """The document as marshmallow would dump it, from plainly queried rows."""
    found = db.execute("select * from public.workflows where id = %s", (workflow_id,)).fetchone()
    found["tasks"] = db.execute("select * from public.tasks where workflow_id = %s order by sequence, task_key",
                                (workflow_id,)).fetchall()
    found["communications"] = db.execute("select * from public.communications where workflow_id = %s order by created_at desc",
                                         (workflow_id,)).fetchall()
    found["documents"] = db.execute("select * from public.documents where workflow_id = %s order by created_at desc",
                                    (workflow_id,)).fetchall()
    found["counterparties"] = db.execute(
        """select wc.*, c.counterparty_type, c.name from public.workflow_counterparties wc
             join public.counterparties c on c.id = wc.counterparty_id where wc.workflow_id = %s order by wc.created_at""",
        (workflow_id,)).fetchall()
    return normalized(json.loads(json.dumps(Workflow().dump(found))))


@pytest.mark.parametrize("code", ["A101", "A102", "B101"])
def test_database_documents_match_the_schema(db, code):
    assert normalized(json.loads(get_workflow_document(db, row(code), INCLUDES))) == schema_document(db, row(code))


def test_progress_rounds_half_up_in_both(db):
    workflow = make_workflow(db, "HOA_ACQUISITION")
    start_workflow(db, workflow["id"])
    tasks = list(tasks_of(db, workflow["id"]).values())
    set_task_status(db, tasks[0]["id"], "SKIPPED")  # 8 counted tasks
    set_task_status(db, tasks[1]["id"], "COMPLETED")  # 1 of 8 = 12.5 %
    document = normalized(json.loads(get_workflow_document(db, workflow["id"])))
    assert document["progress"] == {"totalTasks": 8, "completedTasks": 1, "progressPercentage": 13}
    assert document == {k: v for k, v in schema_document(db, workflow["id"]).items() if k not in INCLUDES}


def test_includes_in_documents_follow_rls(db):
    act_as(db, PEOPLE["client_user_a"])
    document = json.loads(get_workflow_document(db, row("A101"), INCLUDES))
    act_as_service(db)
    assert [c["id"] for c in document["communications"]] == [str(row("A401"))]
    assert [d["id"] for d in document["documents"]] == [str(row("A501"))]


@pytest.mark.parametrize("include", [list(chosen) for size in range(len(INCLUDES) + 1)
                                     for chosen in itertools.combinations(INCLUDES, size)])
def test_a_document_carries_exactly_the_collections_asked_for(db, include):
    document = normalized(json.loads(get_workflow_document(db, row("A101"), include)))
    expected = {k: v for k, v in schema_document(db, row("A101")).items() if k not in INCLUDES or k in include}
    assert document == expected


@pytest.mark.parametrize("include", [[], INCLUDES, ["documents", "tasks"]])
def test_listed_documents_are_the_documents_read_one_by_one(db, include):
    act_as(db, PEOPLE["client_user_a"])
    page = list_workflow_documents(db, {"limit": 50, "offset": 0, "include": include})
    listed = [json.loads(document) for document in page["documents"]]
    assert len(listed) == page["total_count"] > 1
    assert listed == [json.loads(get_workflow_document(db, uuid.UUID(d["id"]), include)) for d in listed]
    assert {d["clientId"] for d in listed} == {str(CLIENT_A)}


def test_an_invisible_or_missing_workflow_has_no_document(db):
    act_as(db, PEOPLE["client_user_b"])
    assert get_workflow_document(db, row("A101"), INCLUDES) is None
    assert get_workflow_document(db, uuid.uuid4()) is None
