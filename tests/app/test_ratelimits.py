"""Rate limits per principal and category, with 429 and Retry-After in the error shape."""
from __future__ import annotations

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


def test_instances_share_limits_through_redis(db, database_url):
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:6379/0")
    object.__setattr__(settings, "rate_limits_enabled", True)
    first, second = (create_app(settings, database=TransactionalDatabase(db)) for _ in range(2))
    first.extensions["limiter"].reset()
    for app in (first, second):
        app.config["RATE_LIMITS"] = {"standard": "2/hour"}
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(second.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 429
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


@pytest.mark.parametrize("webhook", WEBHOOKS)
def test_authenticated_webhook_requests_never_count(limited_client, db, webhook):
    # Far past every per-principal budget and the refusal budget: all answered, none 429.
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour", "views": "2/hour", "actions": "2/hour",
                                            "webhook_refusals": "2/hour"}
    path, authenticated, _ = _webhook_requests(db)[webhook]
    client = limited_client.test_client()
    statuses = [client.post(path, **authenticated).status_code for _ in range(8)]
    assert 429 not in statuses and not set(statuses) & {401, 403}, statuses


@pytest.mark.parametrize("webhook", WEBHOOKS)
def test_refused_webhook_requests_count_per_address_until_429(limited_client, db, webhook):
    limited_client.config["RATE_LIMITS"] = {"webhook_refusals": "3/hour"}
    requests_ = _webhook_requests(db)
    path, authenticated, refused = requests_[webhook]
    client = limited_client.test_client()
    assert [client.post(path, **refused).status_code for _ in range(3)] in ([401] * 3, [403] * 3)
    before = db.execute("select (select count(*) from public.webhook_receipts) + (select count(*) from public.audit_events) n").fetchone()["n"]
    # That address is now out of its refusal budget, on every webhook, authenticated or not.
    for other_path, other_authenticated, _ in requests_.values():
        response = client.post(other_path, **other_authenticated)
        assert response.status_code == 429, (other_path, response.status_code)
        assert response.json["error"]["code"] == "rate_limited" and "refused webhook requests" in response.json["error"]["message"]
        assert int(response.headers["Retry-After"]) > 0
    assert db.execute("select (select count(*) from public.webhook_receipts) + (select count(*) from public.audit_events) n").fetchone()["n"] == before
    # Another address is not affected.
    response = client.post(path, environ_base={"REMOTE_ADDR": "10.9.8.7"}, **authenticated)
    assert response.status_code not in (401, 403, 429), response.status_code


def test_webhooks_and_the_api_keep_separate_budgets(limited_client, db):
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour", "webhook_refusals": "2/hour"}
    path, _, refused = _webhook_requests(db)["n8n callback"]
    client = limited_client.test_client()
    assert [client.post(path, **refused).status_code for _ in range(3)] == [401, 401, 429]
    operator = Caller(client, "operator")
    assert [operator.get("/api/workflows").status_code for _ in range(3)] == [200, 200, 429]
