"""Rate limits per principal and category, with 429 and Retry-After in the error shape."""
from __future__ import annotations

import time

import pytest

from app import create_app
from tests.service_fixtures import Caller, TransactionalDatabase, make_settings
from tests.db.world import row


@pytest.fixture
def limited_client(db, database_url):
    settings = make_settings(database_url)
    object.__setattr__(settings, "rate_limits_enabled", True)
    app = create_app(settings, database=TransactionalDatabase(db))
    app.config["TESTING"] = True
    app.extensions["limiter"].reset()
    return app


def test_the_standard_limit_answers_429_with_retry_after(limited_client):
    limited_client.config["RATE_LIMITS"] = {"standard": "3/hour"}
    operator = Caller(limited_client.test_client(), "operator")
    statuses = [operator.get("/api/workflows").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = operator.get(f"/api/workflows/{row('A101')}")
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert response.json["error"]["message"].startswith("too many standard requests: the limit is 3 per 1 hour; retry in ")
    assert response.json["error"]["details"]["retryAfterSeconds"] == int(response.headers["Retry-After"]) > 0


def test_limits_are_per_principal_and_per_category(limited_client):
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour"}
    client = limited_client.test_client()
    operator, manager = Caller(client, "operator"), Caller(client, "manager")
    assert [operator.get("/api/workflows").status_code for _ in range(3)] == [200, 200, 429]
    assert manager.get("/api/workflows").status_code == 200
    # actions have their own budget
    response = operator.post(f"/api/workflows/{row('A102')}/actions", json={"action": "start"})
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:6379/0", None], ids=["Redis", "PostgreSQL"])
def test_instances_share_one_budget(db, database_url, redis_url):
    """Two instances (or workers) spend one budget: in Redis where configured, else in
    PostgreSQL (finding 5 of issue 30: per-worker budgets let N workers grant N times the limit)."""
    settings = make_settings(database_url, redis_url=redis_url)
    object.__setattr__(settings, "rate_limits_enabled", True)
    first, second = (create_app(settings, database=TransactionalDatabase(db)) for _ in range(2))
    first.extensions["limiter"].reset()
    for app in (first, second):
        app.config["RATE_LIMITS"] = {"standard": "2/hour"}
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(second.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 429
    windows = "select count(*) n from private.rate_limit_windows"
    assert (db.execute(windows).fetchone()["n"] > 0) is (redis_url is None)  # kept where it says
    first.extensions["limiter"].reset()


def test_deployments_sharing_a_redis_keep_their_own_budgets(db, database_url):
    """Staging and production (or two local systems) on one Redis: keyed by their database."""
    apps = []
    from psycopg import conninfo

    for url in (database_url, conninfo.make_conninfo(database_url, dbname="another_deployment")):
        settings = make_settings(url, redis_url="redis://127.0.0.1:6379/0")
        object.__setattr__(settings, "rate_limits_enabled", True)
        app = create_app(settings, database=TransactionalDatabase(db))
        app.config["RATE_LIMITS"] = {"standard": "1/hour"}
        apps.append(app)
    ours, theirs = apps
    ours.extensions["limiter"].reset()
    assert Caller(ours.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(theirs.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(ours.test_client(), "manager").get("/api/workflows").status_code == 429
    assert Caller(theirs.test_client(), "manager").get("/api/workflows").status_code == 429
    ours.extensions["limiter"].reset()


# ---- webhooks: machine traffic, authenticated per request ------------------------------------------
# One n8n sends every workflow's callbacks from one address; an outside party (a lender's mail
# gateway) delivers for many workflows. Authenticated requests never count; refusals do, per address.
def _webhook_requests(db):
    """For each webhook endpoint: (path, authenticated request kwargs, refused request kwargs)."""
    import json
    import uuid

    from app.webhooks.signing import inbound_token, signed_headers, workflow_key
    from tests.db.factories import make_workflow, start_workflow
    from tests.service_fixtures import CALLBACK_SECRET, ERROR_TOKEN

    workflow = make_workflow(db)
    start_workflow(db, workflow["id"])
    workflow_id = str(workflow["id"])
    db.execute("update public.workflows set n8n_execution_id = 'exec-limits' where id = %s", (workflow_id,))
    body = json.dumps({"type": "task.started", "timestamp": "2026-11-26T12:00:00Z",
                       "data": {"workflowId": workflow_id, "executionId": "exec-limits",
                                "taskKey": "identify_lender_contact"}}).encode()
    signed = signed_headers(workflow_key(CALLBACK_SECRET, workflow_id), f"evt-{uuid.uuid4()}", body)
    bearer = {"Authorization": f"Bearer {inbound_token(CALLBACK_SECRET, workflow_id)}"}
    statement = {"workflowId": workflow_id, "statement": {"payoffAmount": 1.5, "goodThrough": "2026-12-15"}}
    documents = {"workflowId": workflow_id, "documents": [{"filename": "a.pdf", "sizeBytes": 10}]}
    error = {"executionId": "exec-limits", "error": {"message": "boom"}}
    return {
        "n8n callback": ("/webhooks/n8n", {"data": body, "content_type": "application/json", "headers": signed},
                         {"data": body, "content_type": "application/json",
                          "headers": {**signed, "webhook-signature": "v1," + "A" * 44}}),
        "n8n error report": ("/webhooks/n8n/errors", {"json": error, "headers": {"X-N8N-Error-Token": ERROR_TOKEN}},
                             {"json": error, "headers": {"X-N8N-Error-Token": "nope"}}),
        "payoff statement": ("/webhooks/inbound/payoff-statement", {"json": statement, "headers": bearer},
                             {"json": statement, "headers": {"Authorization": "Bearer nope"}}),
        "HOA documents": ("/webhooks/inbound/hoa-documents", {"json": documents, "headers": bearer},
                          {"json": documents, "headers": {"Authorization": "Bearer nope"}}),
    }


WEBHOOKS = ["n8n callback", "n8n error report", "payoff statement", "HOA documents"]
# The budget each webhook's authenticated requests spend (app/ratelimits.py).
OWN_BUDGET = {"n8n callback": "callbacks", "n8n error report": "error_reports", "payoff statement": "inbound",
              "HOA documents": "inbound"}
WRITES = "select (select count(*) from public.webhook_receipts) + (select count(*) from public.audit_events) + " \
         "(select count(*) from public.communications) + (select count(*) from public.documents) n"


@pytest.mark.parametrize("webhook", WEBHOOKS)
def test_authenticated_webhook_requests_spend_only_their_own_budget(limited_client, db, webhook):
    # Far past every person's budget and the address's refusal budget: all served until their own
    # budget (per workflow, or per error token) is spent, then 429 naming it.
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour", "views": "2/hour", "actions": "2/hour",
                                            "refusals": "2/hour", OWN_BUDGET[webhook]: "6/hour"}
    path, authenticated, _ = _webhook_requests(db)[webhook]
    client = limited_client.test_client()
    statuses = [client.post(path, **authenticated).status_code for _ in range(7)]
    assert 429 not in statuses[:6] and not set(statuses) & {401, 403}, statuses
    assert statuses[6] == 429, statuses


@pytest.mark.parametrize("webhook", WEBHOOKS)
def test_a_forged_flood_from_an_address_never_costs_a_genuine_sender_there(limited_client, db, webhook):
    """Finding 4 of issue 30: forged callbacks from n8n's own address (a proxy, n8n Cloud's
    egress) must not lock out the genuine signed ones."""
    limited_client.config["RATE_LIMITS"] = {"refusals": "3/hour"}
    requests_ = _webhook_requests(db)
    path, _, refused = requests_[webhook]
    client = limited_client.test_client()
    assert [client.post(path, **refused).status_code for _ in range(3)] in ([401] * 3, [403] * 3)
    # That address is out of its refusal budget: what it cannot prove is 429, on every webhook ...
    before = db.execute(WRITES).fetchone()["n"]
    for other_path, _, other_refused in requests_.values():
        response = client.post(other_path, **other_refused)
        assert response.status_code == 429, (other_path, response.status_code)
        assert response.json["error"]["code"] == "rate_limited" and "refused requests" in response.json["error"]["message"]
        assert int(response.headers["Retry-After"]) > 0
    assert db.execute(WRITES).fetchone()["n"] == before
    # ... and what it proves is served, on every webhook.
    for other_path, other_authenticated, _ in requests_.values():
        response = client.post(other_path, **other_authenticated)
        assert response.status_code not in (401, 403, 429), (other_path, response.status_code, response.json)
    # Another address still has its own refusal budget.
    response = client.post(path, environ_base={"REMOTE_ADDR": "10.9.8.7"}, **refused)
    assert response.status_code in (401, 403), response.status_code


def test_webhooks_and_the_api_keep_separate_budgets(limited_client, db):
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour", "refusals": "2/hour"}
    path, _, refused = _webhook_requests(db)["n8n callback"]
    client = limited_client.test_client()
    assert [client.post(path, **refused).status_code for _ in range(3)] == [401, 401, 429]
    operator = Caller(client, "operator")
    assert [operator.get("/api/workflows").status_code for _ in range(3)] == [200, 200, 429]


def test_a_forged_callback_is_refused_before_its_body_is_parsed(limited_client, db, monkeypatch):
    """The signature is checked on the raw bytes, against the workflows the body names."""
    from app import inputs

    path, _, refused = _webhook_requests(db)["n8n callback"]
    parsed = []
    monkeypatch.setattr(inputs, "loads", lambda text: parsed.append(text) or {})
    response = limited_client.test_client().post(path, **refused)
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_signature"
    assert parsed == []


# ---- the API: every request counts, refused or not -------------------------------------------------
REFUSED_BODIES = {
    "not JSON": {"data": b"{", "content_type": "application/json"},
    "wrong media type": {"data": b"x=1", "content_type": "application/x-www-form-urlencoded"},
    "not an object": {"json": [1, 2]},
    "NUL in a field": {"json": {"type": "PAYOFF_REQUEST", "payload": {"address": "a\u0000"}}},
    "invalid fields": {"json": {"type": "NOPE"}},
}


@pytest.mark.parametrize("refusal", REFUSED_BODIES)
def test_refused_requests_spend_the_callers_budget(limited_client, refusal):
    """Finding 2 of issue 30: input checks ran before the budget, so refusals were free."""
    limited_client.config["RATE_LIMITS"] = {"standard": "3/hour"}
    operator = Caller(limited_client.test_client(), "operator")
    answers = [operator.post("/api/workflows", **REFUSED_BODIES[refusal]) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [answers[0].status_code] * 3 and 400 <= answers[0].status_code < 429
    assert [a.headers.get("X-RateLimit-Remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert answers[3].status_code == 429


@pytest.mark.parametrize("credentials", [{}, {"Authorization": "Bearer not-a-token"},
                                         {"X-API-Key": "wrong-key-0123456789", "X-Agent-Name": "nina"}],
                         ids=["none", "a bad token", "a bad agent key"])
def test_requests_that_prove_nobody_spend_the_address_budget_and_never_a_persons(limited_client, credentials):
    limited_client.config["RATE_LIMITS"] = {"refusals": "3/hour", "standard": "3/hour"}
    client = limited_client.test_client()
    assert [client.get("/api/workflows", headers=credentials).status_code for _ in range(4)] == [401, 401, 401, 429]
    # A person from the same address is served from their own budget.
    operator = Caller(client, "operator")
    assert operator.get("/api/workflows").status_code == 200
    # The tick's secret too.
    object.__setattr__(limited_client.config["SETTINGS"], "cron_secret", "the-right-secret-0123456789")
    assert client.get("/api/internal/tick", headers={"Authorization": "Bearer wrong-secret-0123456789"}).status_code == 429


def test_a_clients_work_for_people_has_a_budget_per_client(limited_client):
    """Finding 3 of issue 30: one client posted 300 messages in 5 s, each a HIGH task for people."""
    from tests.app.test_workflows_api import PAYOFF

    limited_client.config["RATE_LIMITS"] = {"client_work": "3/hour"}
    client = limited_client.test_client()
    user, admin, other = (Caller(client, name) for name in ("client_user_a", "client_admin_a", "client_user_b"))
    order = {"type": "PAYOFF_REQUEST", "payload": PAYOFF}
    assert [user.post("/api/workflows", json=order).status_code for _ in range(2)] == [201, 201]
    message = {"workflowId": str(row("A101")), "message": "any news?"}
    assert user.post("/webhooks/inbound/client-message", json=message).status_code == 202
    # The company's budget is spent, by any of its people, on every kind of work.
    refused = admin.post("/api/workflows", json=order)
    assert refused.status_code == 429 and "from this client" in refused.json["error"]["message"]
    assert user.post("/webhooks/inbound/client-message", json=message).status_code == 429
    # Reads, another client and HIL people are not affected.
    assert user.get("/api/workflows").status_code == 200
    assert other.post("/api/workflows", json=order).status_code == 201
    assert Caller(client, "operator").post("/api/workflows", json={**order, "clientId": str(row("A001"))}).status_code == 201


# ---- turns: one caller's requests in flight at once --------------------------------------------
def test_a_callers_requests_beyond_their_turns_wait_and_others_go_ahead(limited_client):
    import threading

    from app.ratelimits import Turns

    turns = Turns(limit=2, wait_seconds=0.5)
    assert turns.take("a") and turns.take("a")
    # A third of a's waits its turn, and is refused when none comes in time; b is not held up.
    began = time.monotonic()
    assert not turns.take("a")
    assert time.monotonic() - began >= 0.45
    assert turns.take("b")
    # A turn given back goes to the one waiting.
    threading.Timer(0.1, turns.give_back, args=("a",)).start()
    assert turns.take("a")
    for key in ("a", "a", "b"):
        turns.give_back(key)
    assert turns._turns == {}


def test_a_request_past_its_callers_turns_is_a_429_in_the_one_shape(limited_client):
    turns = limited_client.extensions["turns"]
    operator = Caller(limited_client.test_client(), "operator")
    key = f"user:{operator.person.user_id}"
    turns.wait_seconds = 0.2
    held = [turns.take(key) for _ in range(turns.limit)]
    assert all(held)
    try:
        response = operator.get("/api/workflows")
        assert response.status_code == 429 and response.json["error"]["code"] == "rate_limited"
        assert "at once" in response.json["error"]["message"] and response.headers["Retry-After"] == "1"
        assert Caller(limited_client.test_client(), "manager").get("/api/workflows").status_code == 200
    finally:
        for _ in held:
            turns.give_back(key)
    assert operator.get("/api/workflows").status_code == 200


def test_a_flood_past_its_budget_is_refused_without_asking_the_storage_again(limited_client, db, monkeypatch):
    """Forged callbacks past the address's refusals cost no round trip each (app.ratelimits.SpentBudgets)."""
    limited_client.config["RATE_LIMITS"] = {"refusals": "2/hour"}
    path, authenticated, refused = _webhook_requests(db)["n8n callback"]
    client = limited_client.test_client()
    assert [client.post(path, **refused).status_code for _ in range(3)] == [401, 401, 429]
    limiter = limited_client.extensions["limiter"].limiter
    asked = []
    original = limiter.hit
    monkeypatch.setattr(limiter, "hit", lambda *args, **kwargs: asked.append(args) or original(*args, **kwargs))
    assert {client.post(path, **refused).status_code for _ in range(20)} == {429}
    assert asked == []
    # What the address proves is still served (and spends its own budget).
    assert client.post(path, **authenticated).status_code == 200
    assert len(asked) == 1
