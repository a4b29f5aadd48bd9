"""/api/counterparties and their links to workflows."""
from __future__ import annotations

import pytest

from tests.db.world import row

A101, A102 = str(row("A101")), str(row("A102"))
A301, C301 = str(row("A301")), str(row("C301"))


def counts(db) -> tuple:
    return tuple(db.execute(f"select count(*) as n from public.{t}").fetchone()["n"]
                 for t in ("counterparties", "counterparty_contacts", "workflow_counterparties", "audit_events"))


def names(body) -> set[str]:
    return {c["name"] for c in body["counterparties"]}


NEW = {"type": "hoa", "name": "Maple Grove HOA", "email": "board@maplegrove.example", "phone": "+1 555 010 0200",
       "website": "https://maplegrove.example", "address": {"street": "1 Maple Way", "city": "Austin", "state": "TX"},
       "contacts": [{"fullName": "Dana Board", "title": "Secretary", "email": "dana@maplegrove.example",
                     "isPrimary": True},
                    {"fullName": "Lee Manager", "phone": "555-0101"}]}


def test_hil_creates_a_counterparty_with_its_contacts(as_, db):
    response = as_("manager").post("/api/counterparties", json={**NEW, "hasIvr": False, "requiresPhone": True})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["type"] == "hoa" and body["name"] == "Maple Grove HOA" and body["requiresPhone"] is True
    assert body["address"] == {"street": "1 Maple Way", "city": "Austin", "state": "TX"}
    assert [(c["fullName"], c["isPrimary"]) for c in body["contacts"]] == [("Dana Board", True), ("Lee Manager", False)]
    assert body["workflows"] == []
    stored = db.execute("select count(*) as n from public.counterparty_contacts where counterparty_id = %s",
                        (body["id"],)).fetchone()
    assert stored["n"] == 2
    audit = db.execute("select actor_type, actor_id from public.audit_events where event_type = 'counterparty.created' "
                       "and resource_id = %s", (body["id"],)).fetchone()
    assert audit == {"actor_type": "human", "actor_id": str(row("C002"))}


@pytest.mark.parametrize("name", ["Lender A", "  Lender A  "])
def test_a_duplicate_type_and_name_is_a_conflict(as_, db, name):
    before = counts(db)
    response = as_("operator").post("/api/counterparties", json={"type": "lender", "name": name,
                                                                  "contacts": [{"fullName": "X"}]})
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "duplicate"
    assert counts(db) == before


def test_the_same_name_with_another_type_is_fine(as_):
    assert as_("operator").post("/api/counterparties", json={"type": "utility", "name": "Lender A"}).status_code == 201


@pytest.mark.parametrize("person", ["client_user_a", "client_admin_a", "agent_a"])
def test_only_hil_people_create_counterparties(as_, db, person):
    before = counts(db)
    response = as_(person).post("/api/counterparties", json=NEW)
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    assert counts(db) == before


@pytest.mark.parametrize("body, field", [
    ({"name": "No type"}, "type"),
    ({"type": "bank", "name": "X"}, "type"),
    ({"type": "hoa"}, "name"),
    ({"type": "hoa", "name": "   "}, "name"),
    ({"type": "hoa", "name": "x" * 301}, "name"),
    ({"type": "hoa", "name": 5}, "name"),
    ({"type": "hoa", "name": "X", "email": "not-an-email"}, "email"),
    ({"type": "hoa", "name": "X", "phone": "call me"}, "phone"),
    ({"type": "hoa", "name": "X", "website": "ftp://files.example"}, "website"),
    ({"type": "hoa", "name": "X", "address": "1 Main St"}, "address"),
    ({"type": "hoa", "name": "X", "address": {"street": {"nested": True}}}, "address"),
    ({"type": "hoa", "name": "X", "address": {f"k{i}": "v" for i in range(21)}}, "address"),
    ({"type": "hoa", "name": "X", "hasIvr": "true"}, "hasIvr"),
    ({"type": "hoa", "name": "X", "metadata": {}}, "metadata"),
    ({"type": "hoa", "name": "X", "contacts": [{"title": "no name"}]}, "fullName"),
    ({"type": "hoa", "name": "X", "contacts": [{"fullName": "A", "email": "bad"}]}, "email"),
    ({"type": "hoa", "name": "X", "contacts": [{"fullName": "A", "role": "boss"}]}, "role"),
    ({"type": "hoa", "name": "X", "contacts": [{"fullName": "A", "isPrimary": True},
                                                {"fullName": "B", "isPrimary": True}]}, "primary"),
    ({"type": "hoa", "name": "X", "contacts": [{"fullName": f"P{i}"} for i in range(51)]}, "contacts"),
    ({"type": "hoa", "name": "X", "contacts": {"fullName": "A"}}, "contacts"),
])
def test_bad_counterparty_bodies_are_refused_and_nothing_is_written(as_, db, body, field):
    before = counts(db)
    response = as_("operator").post("/api/counterparties", json=body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "validation_error" and field in str(error["details"])
    assert counts(db) == before


def test_hil_lists_every_counterparty_and_filters(as_):
    caller = as_("operator")
    assert {"Lender A", "Lender B", "Unlinked Lender"} <= names(caller.get("/api/counterparties").json)
    assert names(caller.get("/api/counterparties?search=LENDER%20a").json) == {"Lender A"}
    assert names(caller.get("/api/counterparties?search=unlinked&type=lender,hoa").json) == {"Unlinked Lender"}
    assert caller.get("/api/counterparties?type=hoa,tax_authority").json["totalCount"] == 0
    assert names(caller.get(f"/api/counterparties?workflowId={A101}").json) == {"Lender A"}
    assert caller.get(f"/api/counterparties?workflowId={A102}").json["totalCount"] == 0


@pytest.mark.parametrize("search", ["%", "_", "Lender%", "' or '1'='1", "\\", "'; drop table public.counterparties; --"])
def test_search_is_a_plain_substring_match(as_, search):
    response = as_("operator").get("/api/counterparties", query_string={"search": search})
    assert response.status_code == 200, response.json
    assert response.json["totalCount"] == 0


def test_clients_and_agents_list_only_their_workflows_counterparties(as_):
    assert names(as_("client_user_a").get("/api/counterparties").json) == {"Lender A"}
    assert names(as_("client_user_b").get("/api/counterparties").json) == {"Lender B"}
    assert as_("client_user_b").get(f"/api/counterparties?workflowId={A101}").json["totalCount"] == 0
    assert as_("client_user_b").get("/api/counterparties?search=Lender A").json["totalCount"] == 0
    agent = as_("agent_a").get("/api/counterparties").json
    assert names(agent) == {"Lender A"} and agent["totalCount"] == 1


@pytest.mark.parametrize("query, status", [
    ("cursor=garbage!!", 400), ("limit=1000", 422), ("type=bank", 422), ("workflowId=x", 422),
    ("search=" + "x" * 101, 422), ("search=", 422), ("search=a%00b", 422),
])
def test_bad_list_queries_get_a_clear_4xx(as_, query, status):
    response = as_("operator").get(f"/api/counterparties?{query}")
    assert response.status_code == status, response.json
    assert set(response.json["error"]) == {"code", "message", "details", "requestId"}


def test_cursor_pages_through_every_counterparty_once(as_):
    caller = as_("operator")
    seen, cursor = [], None
    while True:
        page = caller.get("/api/counterparties?limit=1" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [c["id"] for c in page["counterparties"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert seen == [c["id"] for c in caller.get("/api/counterparties?limit=200").json["counterparties"]]
    assert len(seen) >= 3


def test_one_counterparty_with_contacts_and_links(as_):
    hil = as_("operator").get(f"/api/counterparties/{A301}").json
    assert [c["fullName"] for c in hil["contacts"]] == ["Loan Desk A"]
    assert [(w["id"], w["workflowId"], w["status"]) for w in hil["workflows"]] == [(str(row("A311")), A101, "PENDING")]
    assert [c["fullName"] for c in as_("agent_a").get(f"/api/counterparties/{A301}").json["contacts"]] == ["Loan Desk A"]
    client = as_("client_user_a").get(f"/api/counterparties/{A301}")
    assert client.status_code == 200
    assert "contacts" not in client.json and [w["workflowId"] for w in client.json["workflows"]] == [A101]


@pytest.mark.parametrize("person, code", [
    ("client_user_b", "A301"), ("client_user_a", "B301"), ("client_user_a", "C301"), ("agent_a", "B301"),
    ("agent_a", "C301"),
])
def test_counterparties_you_may_not_see_are_not_found(as_, person, code):
    response = as_(person).get(f"/api/counterparties/{row(code)}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_malformed_counterparty_ids_are_not_found(as_):
    assert as_("operator").get("/api/counterparties/abc").status_code == 404
    assert as_("operator").post("/api/counterparties/abc/workflows", json={"workflowId": A101}).status_code == 404


# ============================================================================================
# Links to workflows
# ============================================================================================
def test_hil_links_a_counterparty_to_a_workflow(as_, db):
    response = as_("operator").post(f"/api/counterparties/{C301}/workflows", json={"workflowId": A101, "status": "CONTACTED",
                                                                                  "notes": "Emailed the desk"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["workflowId"] == A101 and body["counterpartyId"] == C301 and body["status"] == "CONTACTED"
    assert body["contactedAt"] and body["respondedAt"] is None and body["notes"] == "Emailed the desk"
    audit = db.execute("select workflow_id, client_id from public.audit_events where event_type = 'workflow_counterparty.created' "
                       "and resource_id = %s", (body["id"],)).fetchone()
    assert audit == {"workflow_id": row("A101"), "client_id": row("A001")}
    # now the client sees it too
    assert "Unlinked Lender" in names(as_("client_user_a").get("/api/counterparties").json)
    again = as_("operator").post(f"/api/counterparties/{C301}/workflows", json={"workflowId": A101})
    assert again.status_code == 409 and again.json["error"]["code"] == "duplicate"


def test_a_type_the_workflow_does_not_allow_is_refused_by_the_database(as_, db):
    before = counts(db)
    response = as_("operator").post(f"/api/counterparties/{C301}/workflows", json={"workflowId": A102})
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "constraint_violation"
    assert "MUNI_LIEN_SEARCH" in response.json["error"]["message"]
    assert counts(db) == before


@pytest.mark.parametrize("person, counterparty, workflow, status", [
    ("client_user_a", "A301", "A101", 403),  # sees both, may not link
    ("agent_a", "A301", "A101", 403),
    ("client_user_b", "A301", "B101", 404),  # cannot see the counterparty
    ("operator", "A301", "B102", 422),       # lender on a lien search
])
def test_linking_is_for_hil_people_on_rows_they_can_see(as_, db, person, counterparty, workflow, status):
    before = counts(db)
    response = as_(person).post(f"/api/counterparties/{row(counterparty)}/workflows",
                                json={"workflowId": str(row(workflow))})
    assert response.status_code == status, response.json
    assert counts(db) == before


def test_linking_to_an_unknown_workflow_is_not_found(as_):
    response = as_("operator").post(f"/api/counterparties/{C301}/workflows",
                                    json={"workflowId": "00000000-0000-4000-8000-000000000000"})
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{}, {"workflowId": "x"}, {"workflowId": A101, "status": "DONE"},
                                  {"workflowId": A101, "extra": 1}, {"workflowId": A101, "notes": 3}])
def test_bad_link_bodies_are_refused(as_, db, body):
    before = counts(db)
    response = as_("operator").post(f"/api/counterparties/{C301}/workflows", json=body)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert counts(db) == before


def test_link_status_moves_and_stamps_its_times(as_, db):
    url = f"/api/counterparties/{A301}/workflows/{A101}"
    contacted = as_("operator").patch(url, json={"status": "CONTACTED"})
    assert contacted.status_code == 200, contacted.json
    assert contacted.json["contactedAt"] and contacted.json["respondedAt"] is None
    responded = as_("agent_a").patch(url, json={"status": "RESPONDED", "notes": "Statement promised"})
    assert responded.status_code == 200, responded.json
    assert responded.json["contactedAt"] == contacted.json["contactedAt"] and responded.json["respondedAt"]
    stored = db.execute("select status, notes from public.workflow_counterparties where id = %s", (row("A311"),)).fetchone()
    assert stored == {"status": "RESPONDED", "notes": "Statement promised"}
    audit = db.execute("select count(*) as n from public.audit_events where event_type = 'workflow_counterparty.updated' "
                       "and resource_id = %s", (row("A311"),)).fetchone()
    assert audit["n"] == 2


@pytest.mark.parametrize("person, counterparty, workflow, status", [
    ("client_user_a", "A301", "A101", 403),
    ("client_user_b", "A301", "A101", 404),
    ("agent_a", "B301", "B101", 404),
    ("operator", "C301", "A101", 404),  # not linked
])
def test_link_changes_by_people_who_may_not_make_them(as_, db, person, counterparty, workflow, status):
    response = as_(person).patch(f"/api/counterparties/{row(counterparty)}/workflows/{row(workflow)}",
                                 json={"status": "COMPLETED"})
    assert response.status_code == status, response.json
    assert db.execute("select status from public.workflow_counterparties where id = %s", (row("A311"),)).fetchone()["status"] == "PENDING"


@pytest.mark.parametrize("body", [{}, {"status": "DONE"}, {"status": "CONTACTED", "contactedAt": "2026-01-01T00:00:00Z"}])
def test_bad_link_updates_are_refused(as_, body):
    response = as_("operator").patch(f"/api/counterparties/{A301}/workflows/{A101}", json=body)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"


def test_hil_unlinks_and_others_cannot(as_, db):
    url = f"/api/counterparties/{A301}/workflows/{A101}"
    assert as_("client_user_a").delete(url).status_code == 403
    assert as_("agent_a").delete(url).status_code == 403
    assert as_("client_user_b").delete(url).status_code == 404
    assert db.execute("select count(*) as n from public.workflow_counterparties where id = %s", (row("A311"),)).fetchone()["n"] == 1
    response = as_("operator").delete(url)
    assert response.status_code == 204 and response.data == b""
    assert db.execute("select count(*) as n from public.workflow_counterparties where id = %s", (row("A311"),)).fetchone()["n"] == 0
    assert db.execute("select count(*) as n from public.audit_events where event_type = 'workflow_counterparty.deleted' "
                      "and resource_id = %s", (row("A311"),)).fetchone()["n"] == 1
    assert as_("operator").delete(url).status_code == 404
