"""/api/communications."""
from __future__ import annotations

import pytest

from tests.db.world import row

A101 = str(row("A101"))


def count(db, table="communications") -> int:
    return db.execute(f"select count(*) as n from public.{table}").fetchone()["n"]


def counts(db) -> tuple:
    return tuple(count(db, t) for t in ("communications", "email_metadata", "call_metadata", "message_metadata",
                                        "notifications", "audit_events"))


def ids(body) -> set[str]:
    return {c["id"] for c in body["communications"]}


def test_hil_records_an_email_with_its_threading_headers(as_, db):
    response = as_("operator").post("/api/communications", json={
        "workflowId": A101, "taskId": str(row("A201")), "counterpartyId": str(row("A301")), "type": "email",
        "direction": "OUTBOUND", "subject": "Payoff request", "body": "Please send the payoff statement.",
        "fromAddress": "ops@rexera.example", "toAddresses": ["payoffs@lender.example", "+1 555 010 0100"],
        "threadId": "0b6f1c9e-8c1a-4a55-9d43-1f2b3c4d5e6f", "sentAt": "2026-11-26T10:00:00Z",
        "email": {"messageId": "<m-1@rexera.example>", "inReplyTo": "<m-0@lender.example>",
                  "references": ["<m-0@lender.example>"], "cc": ["boss@rexera.example"]},
    })
    assert response.status_code == 201, response.json
    body = response.json
    assert body["type"] == "email" and body["direction"] == "OUTBOUND" and body["status"] == "SENT"
    assert body["isClientVisible"] is False and body["senderId"] == str(row("C001")) and body["agentName"] is None
    assert body["email"]["messageId"] == "<m-1@rexera.example>" and body["email"]["references"] == ["<m-0@lender.example>"]
    assert body["call"] is None and body["message"] is None and body["attachments"] == []
    stored = db.execute("""select c.task_id, c.counterparty_id, c.to_addresses, m.cc, m.bcc, m.in_reply_to
                             from public.communications c join public.email_metadata m on m.communication_id = c.id
                            where c.id = %s""", (body["id"],)).fetchone()
    assert stored["task_id"] == row("A201") and stored["counterparty_id"] == row("A301")
    assert stored["to_addresses"] == ["payoffs@lender.example", "+1 555 010 0100"]
    assert stored["cc"] == ["boss@rexera.example"] and stored["bcc"] == [] and stored["in_reply_to"] == "<m-0@lender.example>"
    audit = db.execute("select actor_type, actor_id, workflow_id, client_id, request_id from public.audit_events "
                       "where event_type = 'communication.created' and resource_id = %s", (body["id"],)).fetchone()
    assert audit["actor_type"] == "human" and audit["actor_id"] == str(row("C001"))
    assert audit["workflow_id"] == row("A101") and audit["client_id"] == row("A001")
    assert audit["request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("kind, block, table, column, expected", [
    ("call", {"call": {"phoneNumber": "+15550100", "durationSeconds": 95, "recordingUrl": "https://rec.example/1.mp3",
                       "transcript": "Hello", "outcome": "statement promised"}}, "call_metadata", "duration_seconds", 95),
    ("sms", {"message": {"channel": "sms", "externalMessageId": "SM123"}}, "message_metadata", "channel", "sms"),
    ("message", {"message": {}}, "message_metadata", "channel", "portal"),
])
def test_channel_metadata_is_written_with_the_communication(as_, db, kind, block, table, column, expected):
    response = as_("manager").post("/api/communications", json={
        "workflowId": A101, "type": kind, "direction": "OUTBOUND", **block})
    assert response.status_code == 201, response.json
    stored = db.execute(f"select {column} as v from public.{table} where communication_id = %s",
                        (response.json["id"],)).fetchone()
    assert stored["v"] == expected


def test_a_client_message_is_visible_inbound_and_notifies_the_hil_owner(as_, db):
    response = as_("client_user_a").post("/api/communications", json={
        "workflowId": A101, "type": "message", "direction": "INBOUND", "subject": "Please add the per-diem rate",
        "body": "We also need the per-diem."})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["isClientVisible"] is True and body["status"] == "RECEIVED"
    # Kept as the client's, shown to HIL people only (app/audience.py: people's ids).
    assert "senderId" not in body and db.execute("select sender_id from public.communications where id = %s", (body["id"],)).fetchone()["sender_id"] == row("A011")
    notification = db.execute(
        """select recipient_id, priority, message, action_required, data from public.notifications
            where notification_type = 'CLIENT_MESSAGE_RECEIVED' and workflow_id = %s""", (row("A101"),)).fetchall()
    assert len(notification) == 1
    assert notification[0]["recipient_id"] == row("C001") and notification[0]["action_required"] is True
    assert notification[0]["message"] == "Please add the per-diem rate"
    assert notification[0]["data"]["communicationId"] == body["id"]
    assert db.execute("select count(*) as n from public.realtime_events where event_type = 'hil_notification' "
                      "and recipient_id = %s and payload ->> 'notificationType' = 'CLIENT_MESSAGE_RECEIVED'",
                      (row("C001"),)).fetchone()["n"] == 1


def test_a_client_message_on_a_workflow_without_owner_notifies_nobody(as_, db):
    before = count(db, "notifications")
    response = as_("client_admin_a").post("/api/communications", json={
        "workflowId": str(row("A102")), "type": "email", "direction": "INBOUND", "body": "hi"})
    assert response.status_code == 201, response.json
    assert count(db, "notifications") == before


def test_hil_messages_notify_nobody(as_, db):
    before = count(db, "notifications")
    response = as_("operator").post("/api/communications", json={
        "workflowId": A101, "type": "message", "direction": "INBOUND", "isClientVisible": True})
    assert response.status_code == 201
    assert count(db, "notifications") == before


@pytest.mark.parametrize("body", [
    {"direction": "OUTBOUND"},
    {"direction": "INBOUND", "isClientVisible": False},
    {"direction": "INTERNAL"},
    # channel metadata is written by HIL people and agents only: the whole post is refused
    {"direction": "INBOUND", "message": {"channel": "portal"}},
])
def test_clients_may_post_only_client_visible_inbound_messages(as_, db, body):
    before = counts(db)
    response = as_("client_user_a").post("/api/communications", json={"workflowId": A101, "type": "message", **body})
    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "forbidden"
    assert counts(db) == before


@pytest.mark.parametrize("person, workflow", [
    ("client_user_b", "A101"), ("client_user_a", "B101"), ("agent_a", "A102"), ("agent_a", "B101"),
])
def test_posting_to_a_workflow_you_cannot_see_is_not_found(as_, db, person, workflow):
    before = counts(db)
    response = as_(person).post("/api/communications", json={
        "workflowId": str(row(workflow)), "type": "message", "direction": "INBOUND", "isClientVisible": True})
    assert response.status_code == 404, response.json
    assert response.json["error"]["code"] == "not_found"
    assert counts(db) == before


def test_an_agent_records_on_its_own_workflow_under_its_name(as_, db):
    response = as_("agent_a").post("/api/communications", json={
        "workflowId": A101, "type": "call", "direction": "OUTBOUND", "call": {"durationSeconds": 30}})
    assert response.status_code == 201, response.json
    assert response.json["agentName"] == "nina" and "senderId" not in response.json  # HIL people only
    assert db.execute("select sender_id from public.communications where id = %s",
                      (response.json["id"],)).fetchone()["sender_id"] is None
    audit = db.execute("select actor_type, actor_id from public.audit_events where event_type = 'communication.created' "
                       "and resource_id = %s", (response.json["id"],)).fetchone()
    assert audit == {"actor_type": "agent", "actor_id": "nina"}


VALID = {"workflowId": A101, "type": "email", "direction": "OUTBOUND"}


@pytest.mark.parametrize("body, field", [
    ({"type": "email", "direction": "OUTBOUND"}, "workflowId"),
    ({**VALID, "workflowId": "not-a-uuid"}, "workflowId"),
    ({**VALID, "workflowId": 42}, "workflowId"),
    ({**VALID, "type": "fax"}, "type"),
    ({**VALID, "direction": "SIDEWAYS"}, "direction"),
    ({**VALID, "status": "LOST"}, "status"),
    ({**VALID, "surprise": True}, "surprise"),
    ({**VALID, "body": "é" * 51_201}, "body"),  # 51,201 characters, 102,402 bytes
    ({**VALID, "subject": 7}, "subject"),
    ({**VALID, "toAddresses": [f"u{i}@x.example" for i in range(51)]}, "toAddresses"),
    ({**VALID, "toAddresses": ["not an address"]}, "toAddresses"),
    ({**VALID, "toAddresses": "a@b.example"}, "toAddresses"),
    ({**VALID, "fromAddress": "nobody"}, "fromAddress"),
    ({**VALID, "isClientVisible": "yes"}, "isClientVisible"),
    ({**VALID, "sentAt": "2026-11-26T10:00:00"}, "sentAt"),
    ({**VALID, "threadId": "thread-1"}, "threadId"),
    ({**VALID, "direction": "INTERNAL", "isClientVisible": True}, "isClientVisible"),
    ({**VALID, "call": {"durationSeconds": 10}}, "call"),
    ({**VALID, "message": {"channel": "portal"}}, "message"),
    ({**VALID, "type": "call", "call": {"durationSeconds": "10"}}, "durationSeconds"),
    ({**VALID, "type": "call", "call": {"durationSeconds": -1}}, "durationSeconds"),
    ({**VALID, "type": "call", "call": {"recordingUrl": "javascript:alert(1)"}}, "recordingUrl"),
    ({**VALID, "type": "sms", "message": {"channel": "pigeon"}}, "channel"),
    ({**VALID, "email": {"messageId": "<x@y>", "priority": "high"}}, "priority"),
    ({**VALID, "email": {"cc": ["not-an-email"]}}, "cc"),
    ({**VALID, "email": "headers"}, "email"),
])
def test_bad_communication_bodies_are_refused_and_nothing_is_written(as_, db, body, field):
    before = counts(db)
    response = as_("operator").post("/api/communications", json=body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error" and field in str(error["details"])
    assert error["requestId"] == response.headers["X-Request-Id"] and error["message"]
    assert counts(db) == before


@pytest.mark.parametrize("extra, field", [
    ({"taskId": str(row("B201"))}, "taskId"),
    ({"counterpartyId": "00000000-0000-4000-8000-000000000000"}, "counterpartyId"),
])
def test_references_must_belong_to_the_workflow(as_, db, extra, field):
    before = counts(db)
    response = as_("operator").post("/api/communications", json={**VALID, **extra})
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_reference"
    assert field in str(response.json["error"]["details"])
    assert counts(db) == before


def test_a_duplicate_message_id_is_a_conflict(as_, db):
    before = counts(db)
    response = as_("operator").post("/api/communications", json={**VALID, "email": {"messageId": "<msg-A@test.example>"}})
    assert response.status_code == 409 and response.json["error"]["code"] == "duplicate"
    assert counts(db) == before


def test_hil_lists_and_filters(as_):
    caller = as_("operator")
    assert ids(caller.get(f"/api/communications?workflowId={A101}").json) == {str(row("A401")), str(row("A402"))}
    assert ids(caller.get(f"/api/communications?workflowId={A101}&type=call").json) == {str(row("A402"))}
    assert ids(caller.get(f"/api/communications?workflowId={A101}&isClientVisible=true").json) == {str(row("A401"))}
    assert ids(caller.get(f"/api/communications?workflowId={A101}&direction=INTERNAL,INBOUND").json) == {str(row("A402"))}
    assert ids(caller.get(f"/api/communications?workflowId={A101}&status=SENT&type=email,sms").json) == {str(row("A401"))}
    assert caller.get(f"/api/communications?taskId={row('A201')}").json["totalCount"] == 0
    everything = caller.get("/api/communications").json
    assert {str(row(c)) for c in ("A401", "A402", "B401", "B402")} <= ids(everything)
    assert everything["totalCount"] == len(everything["communications"]) and everything["hasMore"] is False


def test_clients_list_only_their_client_visible_communications(as_):
    a = as_("client_user_a").get("/api/communications").json
    assert ids(a) == {str(row("A401"))} and a["totalCount"] == 1
    assert as_("client_user_a").get("/api/communications?isClientVisible=false").json["totalCount"] == 0
    assert as_("client_user_a").get("/api/communications?direction=INTERNAL").json["totalCount"] == 0
    b = as_("client_user_b").get(f"/api/communications?workflowId={A101}").json
    assert b == {"communications": [], "totalCount": 0, "hasMore": False, "nextCursor": None}
    assert ids(as_("client_user_b").get("/api/communications").json) == {str(row("B401"))}


def test_an_agent_lists_only_its_workflow(as_):
    body = as_("agent_a").get("/api/communications").json
    assert ids(body) == {str(row("A401")), str(row("A402"))}
    assert body["totalCount"] == 2


def test_the_cursor_pages_through_every_communication_once(as_):
    caller = as_("operator")
    seen, cursor = [], None
    while True:
        page = caller.get("/api/communications?limit=1" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [c["id"] for c in page["communications"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    everything = [c["id"] for c in caller.get("/api/communications?limit=200").json["communications"]]
    assert seen == everything and len(seen) == len(set(seen)) >= 4


@pytest.mark.parametrize("query, status, code", [
    ("cursor=garbage!!", 400, "invalid_cursor"),
    ("cursor=abc&offset=3", 422, "validation_error"),
    ("limit=0", 422, "validation_error"),
    ("limit=201", 422, "validation_error"),
    ("offset=-1", 422, "validation_error"),
    ("type=fax", 422, "validation_error"),
    ("direction=UP", 422, "validation_error"),
    ("status=LOST", 422, "validation_error"),
    ("isClientVisible=maybe", 422, "validation_error"),
    ("workflowId=not-a-uuid", 422, "validation_error"),
    ("taskId=1", 422, "validation_error"),
])
def test_bad_list_queries_get_a_clear_4xx(as_, query, status, code):
    response = as_("operator").get(f"/api/communications?{query}")
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code and response.json["error"]["requestId"]


def test_one_communication_comes_with_its_metadata_and_attachments(as_):
    email = as_("operator").get(f"/api/communications/{row('A401')}").json
    assert email["email"]["messageId"] == "<msg-A@test.example>" and email["message"]["channel"] == "portal"
    assert email["call"] is None and email["attachments"] == []
    call = as_("agent_a").get(f"/api/communications/{row('A402')}").json
    assert call["call"]["transcript"] == "internal transcript A" and call["call"]["durationSeconds"] == 120
    assert [a["filename"] for a in call["attachments"]] == ["internal-A.pdf"]
    client_view = as_("client_user_a").get(f"/api/communications/{row('A401')}")
    assert client_view.status_code == 200 and client_view.json["email"]["messageId"] == "<msg-A@test.example>"


@pytest.mark.parametrize("person, code", [
    ("client_user_a", "A402"),  # internal: never reaches the client
    ("client_admin_a", "A402"),
    ("client_user_b", "A401"),
    ("client_user_a", "B401"),
    ("agent_a", "B401"),
])
def test_communications_you_may_not_see_are_not_found(as_, person, code):
    response = as_(person).get(f"/api/communications/{row(code)}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_malformed_and_unknown_ids_are_not_found(as_):
    assert as_("operator").get("/api/communications/not-a-uuid").status_code == 404
    assert as_("operator").get("/api/communications/00000000-0000-4000-8000-000000000000").status_code == 404


def test_communications_cannot_be_changed_through_this_endpoint(as_):
    response = as_("operator").delete(f"/api/communications/{row('A401')}")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
