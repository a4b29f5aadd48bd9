"""/api/documents, including deliverable versioning under concurrency."""
from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from app.auth import Principal
from app.db import APPLY_REQUEST_CONTEXT
from app.services import documents as service
from tests.db.world import PEOPLE, row

A101 = str(row("A101"))


def counts(db) -> tuple:
    return tuple(db.execute(f"select count(*) as n from public.{t}").fetchone()["n"]
                 for t in ("documents", "document_tag_assignments", "audit_events"))


def ids(body) -> set[str]:
    return {d["id"] for d in body["documents"]}


def register(caller, **body):
    return caller.post("/api/documents", json={"workflowId": A101, "documentType": "WORKING",
                                               "filename": "notes.txt", **body})


def test_hil_registers_a_tagged_document(as_, db):
    response = register(as_("operator"), taskId=str(row("A201")), storagePath="workflows/a101/notes.txt",
                        contentType="text/plain", sizeBytes=1234, status="READY",
                        tags=["correspondence", "bylaws", "bylaws"])
    assert response.status_code == 201, response.json
    body = response.json
    assert body["documentType"] == "WORKING" and body["status"] == "READY" and body["version"] == 1
    assert body["isClientVisible"] is False and body["uploadedBy"] == str(row("C001"))
    assert body["tags"] == ["bylaws", "correspondence"] and body["previousVersionId"] is None
    stored = db.execute("select task_id, storage_path, size_bytes from public.documents where id = %s",
                        (body["id"],)).fetchone()
    assert stored == {"task_id": row("A201"), "storage_path": "workflows/a101/notes.txt", "size_bytes": 1234}
    audit = db.execute("select actor_type, workflow_id, client_id from public.audit_events "
                       "where event_type = 'document.created' and resource_id = %s", (body["id"],)).fetchone()
    assert audit == {"actor_type": "human", "workflow_id": row("A101"), "client_id": row("A001")}


def test_a_deliverable_with_a_known_key_becomes_the_next_version(as_, db):
    caller = as_("operator")
    second = register(caller, documentType="DELIVERABLE", filename="payoff-v2.pdf", deliverableKey="payoff_statement",
                      deliverableData={"payoffAmount": 251000.25, "goodThrough": "2026-12-15"}, isClientVisible=True)
    assert second.status_code == 201, second.json
    assert second.json["version"] == 2 and second.json["previousVersionId"] == str(row("A501"))
    assert second.json["deliverableData"] == {"payoffAmount": 251000.25, "goodThrough": "2026-12-15"}
    third = register(caller, documentType="DELIVERABLE", filename="payoff-v3.pdf", deliverableKey="payoff_statement")
    assert third.json["version"] == 3 and third.json["previousVersionId"] == second.json["id"]
    versions = db.execute("""select version, status from public.documents
                              where workflow_id = %s and deliverable_key = 'payoff_statement' order by version""",
                          (row("A101"),)).fetchall()
    assert versions == [{"version": 1, "status": "SUPERSEDED"}, {"version": 2, "status": "SUPERSEDED"},
                        {"version": 3, "status": "RECEIVED"}]
    superseded = db.execute("select changes from public.audit_events where event_type = 'document.updated' "
                            "and resource_id = %s", (row("A501"),)).fetchone()
    assert superseded["changes"]["status"] == {"old": "RECEIVED", "new": "SUPERSEDED"}
    # Client B's deliverable with the same key is another workflow's: untouched.
    assert db.execute("select status from public.documents where id = %s", (row("B501"),)).fetchone()["status"] == "RECEIVED"


def test_a_new_deliverable_key_starts_at_version_one(as_, db):
    response = register(as_("agent_a"), documentType="DELIVERABLE", deliverableKey="per_diem", tags=["per_diem"])
    assert response.status_code == 201, response.json
    assert response.json["version"] == 1 and response.json["tags"] == ["per_diem"]
    assert "uploadedBy" not in response.json  # people's ids: HIL people only (app/audience.py)
    assert db.execute("select uploaded_by from public.documents where id = %s",
                      (response.json["id"],)).fetchone()["uploaded_by"] is None


def test_a_client_uploads_an_attachment_to_their_own_workflow(as_, db):
    response = register(as_("client_user_a"), documentType="ATTACHMENT", filename="authorization.pdf",
                        contentType="application/pdf", sizeBytes=2048)
    assert response.status_code == 201, response.json
    assert response.json["isClientVisible"] is True and "uploadedBy" not in response.json  # HIL people only
    assert db.execute("select uploaded_by from public.documents where id = %s",
                      (response.json["id"],)).fetchone()["uploaded_by"] == row("A011")
    listed = as_("client_user_a").get(f"/api/documents?workflowId={A101}").json
    assert response.json["id"] in ids(listed)


@pytest.mark.parametrize("body", [
    {"documentType": "WORKING"},
    {"documentType": "ATTACHMENT", "isClientVisible": False},
    {"documentType": "DELIVERABLE", "deliverableKey": "payoff_statement"},
    # tagging is for HIL people and agents: the whole registration is refused
    {"documentType": "ATTACHMENT", "tags": ["correspondence"]},
])
def test_clients_may_register_only_visible_attachments(as_, db, body):
    before = counts(db)
    response = register(as_("client_user_a"), **body)
    assert response.status_code == 403, response.json
    assert counts(db) == before
    assert db.execute("select status from public.documents where id = %s", (row("A501"),)).fetchone()["status"] == "RECEIVED"


@pytest.mark.parametrize("person, workflow", [
    ("client_user_b", "A101"), ("client_user_a", "B101"), ("agent_a", "A102"), ("agent_a", "B101"),
])
def test_registering_on_a_workflow_you_cannot_see_is_not_found(as_, db, person, workflow):
    before = counts(db)
    response = register(as_(person), workflowId=str(row(workflow)), documentType="ATTACHMENT", isClientVisible=True)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert counts(db) == before


@pytest.mark.parametrize("body, field", [
    ({"workflowId": "nope"}, "workflowId"),
    ({"documentType": "PDF"}, "documentType"),
    ({"documentType": None}, "documentType"),
    ({"filename": ""}, "filename"),
    ({"filename": "x" * 501}, "filename"),
    ({"filename": ["a.txt"]}, "filename"),
    ({"storagePath": "../../etc/passwd"}, "storagePath"),
    ({"storagePath": "/absolute/path"}, "storagePath"),
    ({"storagePath": "a//b"}, "storagePath"),
    ({"contentType": "text"}, "contentType"),
    ({"sizeBytes": -1}, "sizeBytes"),
    ({"sizeBytes": "10"}, "sizeBytes"),
    ({"sizeBytes": 1.5}, "sizeBytes"),
    ({"sizeBytes": 10 ** 20}, "sizeBytes"),
    ({"status": "SUPERSEDED"}, "status"),
    ({"status": "LOST"}, "status"),
    ({"isClientVisible": 1}, "isClientVisible"),
    ({"documentType": "DELIVERABLE"}, "deliverableKey"),
    ({"documentType": "DELIVERABLE", "deliverableKey": "Payoff Statement"}, "deliverableKey"),
    ({"deliverableKey": "payoff_statement"}, "deliverableKey"),
    ({"deliverableData": {"a": 1}}, "deliverableData"),
    ({"documentType": "DELIVERABLE", "deliverableKey": "k", "deliverableData": "text"}, "deliverableData"),
    ({"tags": "bylaws"}, "tags"),
    ({"tags": ["Bylaws!"]}, "tags"),
    ({"tags": ["bylaws", "no_such_tag"]}, "no_such_tag"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"taskId": str(row("B201"))}, "taskId"),
    ({"version": 7}, "version"),
])
def test_bad_document_bodies_are_refused_and_nothing_is_written(as_, db, body, field):
    before = counts(db)
    response = register(as_("operator"), **body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] in ("validation_error", "invalid_reference") and field in str(error["details"])
    assert error["requestId"] == response.headers["X-Request-Id"]
    assert counts(db) == before


def test_hil_lists_and_filters(as_):
    caller = as_("operator")
    assert ids(caller.get("/api/documents?tag=payoff_statement").json) == {str(row("A501")), str(row("B501"))}
    assert ids(caller.get(f"/api/documents?workflowId={A101}&documentType=WORKING").json) == {str(row("A502"))}
    assert ids(caller.get(f"/api/documents?workflowId={A101}&status=RECEIVED,READY").json) == {str(row("A501")), str(row("A502"))}
    assert caller.get(f"/api/documents?taskId={row('A201')}").json["totalCount"] == 0
    assert caller.get("/api/documents?tag=bylaws,lien_report").json["totalCount"] == 0
    listed = {d["id"]: d for d in caller.get(f"/api/documents?workflowId={A101}").json["documents"]}
    assert listed[str(row("A501"))]["tags"] == ["payoff_statement"] and listed[str(row("A502"))]["tags"] == []


def test_clients_list_only_their_client_visible_documents(as_):
    a = as_("client_user_a").get("/api/documents").json
    assert ids(a) == {str(row("A501"))} and a["totalCount"] == 1
    assert as_("client_user_a").get("/api/documents?documentType=WORKING").json["totalCount"] == 0
    assert ids(as_("client_user_b").get("/api/documents?tag=payoff_statement").json) == {str(row("B501"))}
    assert as_("client_user_b").get(f"/api/documents?workflowId={A101}").json["totalCount"] == 0


def test_an_agent_lists_only_its_workflow(as_):
    body = as_("agent_a").get("/api/documents").json
    assert ids(body) == {str(row("A501")), str(row("A502"))} and body["totalCount"] == 2


def test_the_cursor_pages_through_every_document_once(as_):
    caller = as_("operator")
    seen, cursor = [], None
    while True:
        page = caller.get("/api/documents?limit=1" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [d["id"] for d in page["documents"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert seen == [d["id"] for d in caller.get("/api/documents?limit=200").json["documents"]] and len(seen) >= 4


@pytest.mark.parametrize("query, status", [
    ("cursor=garbage!!", 400), ("limit=0", 422), ("offset=x", 422), ("documentType=PDF", 422),
    ("status=LOST", 422), ("tag=Bad-Tag", 422), ("workflowId=1", 422), ("tag=" + ",".join(["a"] * 21), 422),
])
def test_bad_list_queries_get_a_clear_4xx(as_, query, status):
    response = as_("operator").get(f"/api/documents?{query}")
    assert response.status_code == status, response.json
    assert set(response.json["error"]) == {"code", "message", "details", "requestId"}


def test_one_document_comes_with_its_tags(as_):
    body = as_("client_user_a").get(f"/api/documents/{row('A501')}").json
    assert body["tags"] == ["payoff_statement"] and body["deliverableKey"] == "payoff_statement"


@pytest.mark.parametrize("person, code", [
    ("client_user_a", "A502"),  # working documents never reach the client
    ("client_user_b", "A501"),
    ("client_user_a", "B501"),
    ("agent_a", "B501"),
])
def test_documents_you_may_not_see_are_not_found(as_, person, code):
    response = as_(person).get(f"/api/documents/{row(code)}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_malformed_document_ids_are_not_found(as_):
    assert as_("operator").get("/api/documents/123").status_code == 404


# ============================================================================================
# Concurrency: real, committed transactions on a scratch workflow (removed afterwards).
# ============================================================================================
@pytest.fixture
def scratch_deliverable(database_url):
    """A committed workflow with version 1 of deliverable 'report', cleaned up afterwards."""
    client_id, workflow_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("insert into public.clients (id, name) values (%s, %s)", (client_id, f"Scratch {client_id}"))
        conn.execute("""insert into public.workflows (id, workflow_type, client_id, title, payload)
                        values (%s, 'PAYOFF_REQUEST', %s, 'Scratch', '{}')""", (workflow_id, client_id))
        conn.execute("""insert into public.documents (workflow_id, document_type, filename, deliverable_key)
                        values (%s, 'DELIVERABLE', 'report-v1.pdf', 'report')""", (workflow_id,))
    try:
        yield workflow_id
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("delete from public.workflows where id = %s", (workflow_id,))
            conn.execute("delete from public.clients where id = %s", (client_id,))
            conn.execute("delete from public.realtime_events where workflow_id = %s", (workflow_id,))


def register_as_operator(database_url: str, workflow_id: uuid.UUID, filename: str, ready=None, pid_box=None) -> dict:
    principal = Principal.from_claims(PEOPLE["operator"].claims)
    with psycopg.connect(database_url, row_factory=dict_row, prepare_threshold=None) as conn:
        if pid_box is not None:
            pid_box.append(conn.info.backend_pid)
        if ready is not None:
            ready.wait(5)
        with conn.transaction():
            conn.execute(APPLY_REQUEST_CONTEXT, ("authenticated", json.dumps(principal.claims), "{}"))
            return service.create_document(conn, principal, {
                "workflow_id": workflow_id, "document_type": "DELIVERABLE", "filename": filename,
                "deliverable_key": "report", "tags": []})


def versions_of(database_url: str, workflow_id: uuid.UUID) -> list[dict]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("""select id, version, status, previous_version_id from public.documents
                                where workflow_id = %s and deliverable_key = 'report' order by version""",
                            (workflow_id,)).fetchall()


def test_concurrent_versions_of_one_deliverable_queue_up(database_url, scratch_deliverable):
    barrier = threading.Barrier(3)
    results: list = []

    def worker(name):
        try:
            results.append(register_as_operator(database_url, scratch_deliverable, name, ready=barrier))
        except Exception as error:  # surfaced by the assertion below
            results.append(error)

    threads = [threading.Thread(target=worker, args=(f"report-{i}.pdf",)) for i in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait(5)
    for thread in threads:
        thread.join(10)
    assert all(isinstance(r, dict) for r in results), results
    assert sorted(r["version"] for r in results) == [2, 3]
    stored = versions_of(database_url, scratch_deliverable)
    assert [v["version"] for v in stored] == [1, 2, 3]
    assert [v["status"] for v in stored] == ["SUPERSEDED", "SUPERSEDED", "RECEIVED"]
    assert [v["previous_version_id"] for v in stored] == [None, stored[0]["id"], stored[1]["id"]]


def test_a_version_written_by_someone_else_meanwhile_is_retried_past(database_url, scratch_deliverable):
    """Another writer (not taking our advisory lock) inserts version 2 first; our insert of
    version 2 waits on the unique index, fails with 23505 when that commits, and retries as 3."""
    with psycopg.connect(database_url, row_factory=dict_row) as other, \
            psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as watcher:
        other.execute("""insert into public.documents (workflow_id, document_type, filename, deliverable_key, version)
                         values (%s, 'DELIVERABLE', 'report-other.pdf', 'report', 2)""", (scratch_deliverable,))
        results: list = []
        pids: list = []
        thread = threading.Thread(target=lambda: results.append(
            register_as_operator(database_url, scratch_deliverable, "report-ours.pdf", pid_box=pids)))
        thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until our insert waits on the other writer's row
            waiting = watcher.execute("select wait_event_type from pg_stat_activity where pid = %s",
                                    (pids[0] if pids else 0,)).fetchone()
            if waiting and waiting["wait_event_type"] == "Lock":
                break
            time.sleep(0.02)
        else:
            pytest.fail("our registration never waited on the other writer")
        other.commit()
        thread.join(10)
    assert results and results[0]["version"] == 3, results
    stored = versions_of(database_url, scratch_deliverable)
    assert [(v["version"], v["status"]) for v in stored] == [(1, "RECEIVED"), (2, "SUPERSEDED"), (3, "RECEIVED")]
    assert stored[2]["previous_version_id"] == stored[1]["id"]
